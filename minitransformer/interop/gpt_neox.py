"""GPT-NeoX and Pythia checkpoints (Hugging Face ``GPTNeoXForCausalLM``) <-> our ``GPT`` with ``position="rope"``.

GPT-NeoX (Black et al. 2022) is GPT-2's layer stack with three changes, all ``GPTConfig`` settings:
RoPE instead of a position table, on the first quarter of each head's features
(``rotary_fraction=0.25``); attention and feed-forward side by side, ``x + Attn(LN(x)) + FFN(LN'(x))``
(``parallel_residual=True``); an untied output head and exact GELU. Pythia (Biderman et al. 2023)
is that shape. A NeoX checkpoint with the sequential residual and full rotary is our plain RoPE GPT.

One layout difference: NeoX's fused projection groups its output by head, ``[q_h, k_h, v_h]``
for each head h in turn; ours holds all queries, then all keys, then all values.

    ours                                   Hugging Face GPTNeoXForCausalLM
    tok_emb.weight                         gpt_neox.embed_in.weight
    layers.{i}.self_attn_norm.{w,b}        gpt_neox.layers.{i}.input_layernorm.{w,b}
    layers.{i}.self_attn.qkv.{w,b}         gpt_neox.layers.{i}.attention.query_key_value.{w,b} (regrouped)
    layers.{i}.self_attn.out.{w,b}         gpt_neox.layers.{i}.attention.dense.{w,b}
    layers.{i}.ffn_norm.{w,b}              gpt_neox.layers.{i}.post_attention_layernorm.{w,b}
    layers.{i}.ffn.fc_in.{w,b}             gpt_neox.layers.{i}.mlp.dense_h_to_4h.{w,b}
    layers.{i}.ffn.fc_out.{w,b}            gpt_neox.layers.{i}.mlp.dense_4h_to_h.{w,b}
    final_norm.{w,b}                       gpt_neox.final_layer_norm.{w,b}
    lm_head.weight                         lm_head.weight (``embed_out.weight`` before transformers 5)
"""
from __future__ import annotations

from typing import Any

import torch

from minitransformer.models.config import GPTConfig

# NeoX's activation names -> ours
_ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu_fast": "gelu_tanh",
                "relu": "relu"}
_LAYER_MAP = [("self_attn_norm", "input_layernorm"), ("self_attn.qkv", "attention.query_key_value"),
              ("self_attn.out", "attention.dense"), ("ffn_norm", "post_attention_layernorm"),
              ("ffn.fc_in", "mlp.dense_h_to_4h"), ("ffn.fc_out", "mlp.dense_4h_to_h")]
_TOP_MAP = [("tok_emb.weight", "gpt_neox.embed_in.weight"), ("final_norm.weight", "gpt_neox.final_layer_norm.weight"),
            ("final_norm.bias", "gpt_neox.final_layer_norm.bias")]
# buffers older checkpoints carry (RoPE's frequencies, causal masks); they are not weights
_IGNORED_SUFFIXES = (".rotary_emb.inv_freq", ".attention.bias", ".attention.masked_bias")


def _rope_settings(c: dict[str, Any]) -> tuple[float, float, str]:
    """(theta, fraction of each head turned, rope type) from a transformers 5 or an older config."""
    rope = c.get("rope_parameters") or {}
    theta = rope.get("rope_theta", c.get("rope_theta", c.get("rotary_emb_base", 10000.0)))
    fraction = rope.get("partial_rotary_factor", c.get("partial_rotary_factor", c.get("rotary_pct", 0.25)))
    return float(theta), float(fraction), rope.get("rope_type", "default")


def config_from_hf(hf_config: dict[str, Any]) -> GPTConfig:
    """``GPTNeoXConfig.to_dict()`` (or a NeoX ``config.json``) -> our ``GPTConfig`` (``position="rope"``)."""
    c = hf_config
    if c.get("model_type", "gpt_neox") != "gpt_neox":
        raise ValueError(f"expected a GPT-NeoX config (model_type 'gpt_neox'), got {c.get('model_type')!r}")
    theta, fraction, rope_type = _rope_settings(c)
    if rope_type != "default":
        raise ValueError(f"RoPE scaling {rope_type!r} is not supported; minitransformer's RoPE is the plain one")
    if not c.get("attention_bias", True):
        raise ValueError("this GPT-NeoX has attention without biases; minitransformer's GPT has them (bias=True)")
    act = c.get("hidden_act", "gelu")
    if act not in _ACTIVATIONS:
        raise ValueError(f"GPT-NeoX hidden_act {act!r} is not supported; supported: {', '.join(_ACTIVATIONS)}")
    vocab = c.get("vocab_size", 50432)
    eos = c.get("eos_token_id")
    return GPTConfig(
        vocab_size=vocab, max_seq_len=c.get("max_position_embeddings", 2048), d_model=c["hidden_size"],
        n_layers=c["num_hidden_layers"], n_heads=c["num_attention_heads"], d_ff=c.get("intermediate_size"),
        dropout=c.get("hidden_dropout", 0.0), activation=_ACTIVATIONS[act], norm_eps=c.get("layer_norm_eps", 1e-5),
        bias=True, tie_embeddings=c.get("tie_word_embeddings", False), position="rope", rope_base=theta,
        rotary_fraction=fraction, parallel_residual=bool(c.get("use_parallel_residual", True)),
        eos_token_id=eos if isinstance(eos, int) and 0 <= eos < vocab else None,
    )


def config_to_hf(cfg: GPTConfig) -> dict[str, Any]:
    """Our RoPE ``GPTConfig`` -> keyword arguments for ``transformers.GPTNeoXConfig``."""
    if cfg.position != "rope":
        raise ValueError(f"GPT-NeoX positions are RoPE; a GPTConfig with position={cfg.position!r} has no "
                         "GPT-NeoX equivalent")
    if not cfg.bias:
        raise ValueError("GPT-NeoX has biases everywhere; a GPTConfig with bias=False has no GPT-NeoX equivalent")
    acts = {"gelu": "gelu", "gelu_tanh": "gelu_new", "relu": "relu"}
    if cfg.activation not in acts:
        raise ValueError(f"activation {cfg.activation!r} has no GPT-NeoX equivalent; use one of {', '.join(acts)}")
    return dict(vocab_size=cfg.vocab_size, max_position_embeddings=cfg.max_seq_len, hidden_size=cfg.d_model,
                num_hidden_layers=cfg.n_layers, num_attention_heads=cfg.n_heads, intermediate_size=cfg.d_ff,
                hidden_act=acts[cfg.activation], use_parallel_residual=cfg.parallel_residual,
                layer_norm_eps=cfg.norm_eps, rope_parameters={"rope_type": "default", "rope_theta": cfg.rope_base,
                                                              "partial_rotary_factor": cfg.rotary_fraction},
                hidden_dropout=cfg.dropout, attention_dropout=cfg.dropout, tie_word_embeddings=cfg.tie_embeddings,
                bos_token_id=cfg.eos_token_id, eos_token_id=cfg.eos_token_id)


def _regroup(t: torch.Tensor, n_heads: int, by_head: bool) -> torch.Tensor:
    """The fused projection's rows (3·C, ...): NeoX's per-head [q_h, k_h, v_h] <-> our [Q | K | V]."""
    d_head = t.shape[0] // (3 * n_heads)
    if by_head:  # ours -> NeoX: (3, h, d, ...) -> (h, 3, d, ...)
        return t.reshape(3, n_heads, d_head, *t.shape[1:]).transpose(0, 1).reshape(t.shape)
    return t.reshape(n_heads, 3, d_head, *t.shape[1:]).transpose(0, 1).reshape(t.shape)


def _names(cfg: GPTConfig) -> dict[str, str]:
    """Our parameter name -> GPT-NeoX's, for every tensor but the head."""
    names = dict(_TOP_MAP)
    for i in range(cfg.n_layers):
        for ours, hf in _LAYER_MAP:
            for kind in ("weight", "bias"):
                names[f"layers.{i}.{ours}.{kind}"] = f"gpt_neox.layers.{i}.{hf}.{kind}"
    return names


def state_dict_from_hf(sd: dict[str, torch.Tensor], cfg: GPTConfig) -> dict[str, torch.Tensor]:
    """GPT-NeoX names and layouts -> ours. Unknown keys raise ValueError; missing ones are left for the loader."""
    hf_to_ours = {hf: ours for ours, hf in _names(cfg).items()}
    out: dict[str, torch.Tensor] = {}
    unknown = []
    for key, value in sd.items():
        if key in hf_to_ours:
            ours = hf_to_ours[key]
            out[ours] = _regroup(value, cfg.n_heads, by_head=False) if ".qkv." in ours else value
        elif key in ("lm_head.weight", "embed_out.weight"):
            embedding = sd.get("gpt_neox.embed_in.weight")
            if not cfg.tie_embeddings:
                out["lm_head.weight"] = value
            elif embedding is not None and not torch.equal(value, embedding):
                # dropping it would quietly give the model other logits than the checkpoint's
                raise ValueError(f"the checkpoint's {key} differs from its embed_in.weight (an untied head), "
                                 "but the config ties them: use tie_embeddings=False")
        elif not key.endswith(_IGNORED_SUFFIXES):
            unknown.append(key)
    if unknown:
        raise ValueError(f"GPT-NeoX checkpoint has keys minitransformer's GPT does not know: "
                         f"{', '.join(sorted(unknown)[:10])}{' ...' if len(unknown) > 10 else ''}")
    return out


def state_dict_to_hf(sd: dict[str, torch.Tensor], cfg: GPTConfig) -> dict[str, torch.Tensor]:
    """Our names and layouts -> ``GPTNeoXForCausalLM``'s (``load_state_dict`` it)."""
    ours_to_hf = _names(cfg)
    out: dict[str, torch.Tensor] = {}
    unknown = []
    for key, value in sd.items():
        if key in ours_to_hf:
            out[ours_to_hf[key]] = _regroup(value, cfg.n_heads, by_head=True) if ".qkv." in key else value
        elif key != "lm_head.weight":
            unknown.append(key)
    if unknown:
        raise ValueError(f"state dict has keys that are not part of a RoPE GPT: {', '.join(sorted(unknown)[:10])}")
    head = "tok_emb.weight" if cfg.tie_embeddings else "lm_head.weight"
    if head in sd:
        out["lm_head.weight"] = sd[head]
    return out
