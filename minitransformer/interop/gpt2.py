"""GPT-2 checkpoints (Hugging Face ``transformers`` / OpenAI layout) <-> our ``GPT``, tensor for tensor.

The two models are the same network with different names, and one layout difference: GPT-2's
linear layers are ``Conv1D`` modules storing the weight as (in_features, out_features), the
transpose of ``nn.Linear``'s (out, in). Every matrix below is transposed on the way; GPT-2's fused
``c_attn`` (Q, K, V side by side) is our fused ``qkv`` directly.

    ours                                   Hugging Face GPT2LMHeadModel
    tok_emb.weight                         transformer.wte.weight
    pos_emb.weight                         transformer.wpe.weight
    layers.{i}.self_attn_norm.{w,b}        transformer.h.{i}.ln_1.{w,b}
    layers.{i}.self_attn.qkv.{w,b}         transformer.h.{i}.attn.c_attn.{w (transposed),b}
    layers.{i}.self_attn.out.{w,b}         transformer.h.{i}.attn.c_proj.{w (transposed),b}
    layers.{i}.ffn_norm.{w,b}              transformer.h.{i}.ln_2.{w,b}
    layers.{i}.ffn.fc_in.{w,b}             transformer.h.{i}.mlp.c_fc.{w (transposed),b}
    layers.{i}.ffn.fc_out.{w,b}            transformer.h.{i}.mlp.c_proj.{w (transposed),b}
    final_norm.{w,b}                       transformer.ln_f.{w,b}
    lm_head.weight (tied to tok_emb)       lm_head.weight (tied to wte)

Checkpoints saved from ``GPT2Model`` (and OpenAI's originals on the hub) lack the ``transformer.``
prefix; both are read.
"""
from __future__ import annotations

from typing import Any

import torch

from minitransformer.models.config import GPTConfig

# GPT-2's activation names -> ours. "gelu_new" is GPT-2's tanh approximation.
_ACTIVATIONS = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu_fast": "gelu_tanh",
                "gelu": "gelu", "relu": "relu"}

# (our name inside a layer, GPT-2's name inside block h.{i}, is a Conv1D weight to transpose)
_LAYER_MAP = [
    ("self_attn_norm.weight", "ln_1.weight", False), ("self_attn_norm.bias", "ln_1.bias", False),
    ("self_attn.qkv.weight", "attn.c_attn.weight", True), ("self_attn.qkv.bias", "attn.c_attn.bias", False),
    ("self_attn.out.weight", "attn.c_proj.weight", True), ("self_attn.out.bias", "attn.c_proj.bias", False),
    ("ffn_norm.weight", "ln_2.weight", False), ("ffn_norm.bias", "ln_2.bias", False),
    ("ffn.fc_in.weight", "mlp.c_fc.weight", True), ("ffn.fc_in.bias", "mlp.c_fc.bias", False),
    ("ffn.fc_out.weight", "mlp.c_proj.weight", True), ("ffn.fc_out.bias", "mlp.c_proj.bias", False),
]
_TOP_MAP = [("tok_emb.weight", "wte.weight"), ("pos_emb.weight", "wpe.weight"),
            ("final_norm.weight", "ln_f.weight"), ("final_norm.bias", "ln_f.bias")]
# causal-mask buffers some GPT-2 checkpoints carry; they are not weights
_IGNORED_SUFFIXES = (".attn.bias", ".attn.masked_bias")


def config_from_hf(hf_config: dict[str, Any]) -> GPTConfig:
    """``GPT2Config.to_dict()`` (or a GPT-2 ``config.json``) -> our ``GPTConfig``."""
    c = hf_config
    if c.get("model_type", "gpt2") != "gpt2":
        raise ValueError(f"expected a GPT-2 config (model_type 'gpt2'), got {c.get('model_type')!r}")
    act = c.get("activation_function", "gelu_new")
    if act not in _ACTIVATIONS:
        raise ValueError(f"GPT-2 activation_function {act!r} is not supported; supported: {', '.join(_ACTIVATIONS)}")
    unsupported = {"add_cross_attention": False, "scale_attn_by_inverse_layer_idx": False, "scale_attn_weights": True}
    for key, ours in unsupported.items():
        if c.get(key, ours) != ours:
            raise ValueError(f"GPT-2 config {key}={c[key]!r} is not supported by minitransformer's GPT (needs {ours})")
    eos = c.get("eos_token_id")
    if isinstance(eos, list):
        eos = eos[0] if eos else None
    vocab = c.get("vocab_size", 50257)
    return GPTConfig(
        vocab_size=vocab,
        max_seq_len=c.get("n_positions", c.get("n_ctx", 1024)),
        d_model=c.get("n_embd", 768),
        n_layers=c.get("n_layer", 12),
        n_heads=c.get("n_head", 12),
        d_ff=c.get("n_inner"),  # None -> 4 * d_model, as in GPT-2
        dropout=c.get("resid_pdrop", 0.1),
        activation=_ACTIVATIONS[act],
        norm_eps=c.get("layer_norm_epsilon", 1e-5),
        bias=True,
        tie_embeddings=c.get("tie_word_embeddings", True),
        eos_token_id=eos if isinstance(eos, int) and 0 <= eos < vocab else None,
    )


def config_to_hf(cfg: GPTConfig) -> dict[str, Any]:
    """Our ``GPTConfig`` -> keyword arguments for ``transformers.GPT2Config``."""
    if cfg.position != "learned":
        raise ValueError(f"GPT-2 learns a vector per position; a GPTConfig with position={cfg.position!r} has no "
                         "GPT-2 equivalent (only position='learned' converts)")
    if not cfg.bias:
        raise ValueError("GPT-2 has biases everywhere; a GPTConfig with bias=False has no GPT-2 equivalent")
    acts = {"gelu_tanh": "gelu_new", "gelu": "gelu", "relu": "relu"}
    if cfg.activation not in acts:
        raise ValueError(f"activation {cfg.activation!r} has no GPT-2 equivalent; use one of {', '.join(acts)}")
    out = dict(vocab_size=cfg.vocab_size, n_positions=cfg.max_seq_len, n_embd=cfg.d_model, n_layer=cfg.n_layers,
               n_head=cfg.n_heads, n_inner=cfg.d_ff, activation_function=acts[cfg.activation],
               resid_pdrop=cfg.dropout, embd_pdrop=cfg.dropout, attn_pdrop=cfg.dropout,
               layer_norm_epsilon=cfg.norm_eps, tie_word_embeddings=cfg.tie_embeddings)
    if cfg.eos_token_id is not None:
        out.update(eos_token_id=cfg.eos_token_id, bos_token_id=cfg.eos_token_id)
    return out


def state_dict_from_hf(sd: dict[str, torch.Tensor], cfg: GPTConfig) -> dict[str, torch.Tensor]:
    """GPT-2 names and layouts -> ours. Unknown keys raise ValueError; missing ones are left for the loader."""
    prefix = "transformer." if any(k.startswith("transformer.") for k in sd) else ""
    hf_to_ours: dict[str, tuple[str, bool]] = {prefix + hf: (ours, False) for ours, hf in _TOP_MAP}
    for i in range(cfg.n_layers):
        for ours, hf, transpose in _LAYER_MAP:
            hf_to_ours[f"{prefix}h.{i}.{hf}"] = (f"layers.{i}.{ours}", transpose)
    out: dict[str, torch.Tensor] = {}
    unknown = []
    for key, value in sd.items():
        if key in hf_to_ours:
            ours, transpose = hf_to_ours[key]
            out[ours] = value.t() if transpose else value
        elif key == "lm_head.weight":
            if not cfg.tie_embeddings:
                out["lm_head.weight"] = value
            elif (prefix + "wte.weight") in sd and not torch.equal(value, sd[prefix + "wte.weight"]):
                # dropping it would quietly give the model other logits than the checkpoint's
                raise ValueError("the checkpoint's lm_head.weight differs from its wte.weight (an untied head), "
                                 "but the config ties them: use tie_embeddings=False")
        elif not key.endswith(_IGNORED_SUFFIXES):
            unknown.append(key)
    if unknown:
        raise ValueError(f"GPT-2 checkpoint has keys minitransformer's GPT does not know: "
                         f"{', '.join(sorted(unknown)[:10])}{' ...' if len(unknown) > 10 else ''}")
    return out


def state_dict_to_hf(sd: dict[str, torch.Tensor], cfg: GPTConfig) -> dict[str, torch.Tensor]:
    """Our names and layouts -> ``GPT2LMHeadModel``'s (``load_state_dict`` it)."""
    ours_to_hf: dict[str, tuple[str, bool]] = {ours: ("transformer." + hf, False) for ours, hf in _TOP_MAP}
    for i in range(cfg.n_layers):
        for ours, hf, transpose in _LAYER_MAP:
            ours_to_hf[f"layers.{i}.{ours}"] = (f"transformer.h.{i}.{hf}", transpose)
    out: dict[str, torch.Tensor] = {}
    unknown = []
    for key, value in sd.items():
        if key in ours_to_hf:
            hf, transpose = ours_to_hf[key]
            out[hf] = value.t().contiguous() if transpose else value
        elif key != "lm_head.weight":
            unknown.append(key)
    if unknown:
        raise ValueError(f"state dict has keys that are not part of a GPT: {', '.join(sorted(unknown)[:10])}")
    head = "tok_emb.weight" if cfg.tie_embeddings else "lm_head.weight"
    if head in sd:
        out["lm_head.weight"] = sd[head]
    return out
