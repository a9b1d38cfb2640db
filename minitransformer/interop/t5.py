"""Hugging Face ``T5ForConditionalGeneration`` <-> our ``T5``: configs and state dicts, one to one.

Names on the two sides (``i`` = layer; Hugging Face numbers the sub-layers of a block):

    shared.weight                                         shared.weight
    encoder.block.i.layer.0.SelfAttention.{q,k,v}.weight  encoder_layers.i.self_attn.qkv.weight (rows q|k|v)
    encoder.block.i.layer.0.SelfAttention.o.weight        encoder_layers.i.self_attn.out.weight
    encoder.block.0.layer.0.SelfAttention
        .relative_attention_bias.weight                   encoder_rel_bias.bias.weight
    encoder.block.i.layer.0.layer_norm.weight             encoder_layers.i.self_attn_norm.weight
    encoder.block.i.layer.1.DenseReluDense.wi.weight      encoder_layers.i.ffn.fc_in.weight      (ReLU, v1.0)
    encoder.block.i.layer.1.DenseReluDense.wi_0.weight    encoder_layers.i.ffn.fc_gate.weight    (GELU'd, v1.1)
    encoder.block.i.layer.1.DenseReluDense.wi_1.weight    encoder_layers.i.ffn.fc_in.weight      (linear, v1.1)
    encoder.block.i.layer.1.DenseReluDense.wo.weight      encoder_layers.i.ffn.fc_out.weight
    encoder.block.i.layer.1.layer_norm.weight             encoder_layers.i.ffn_norm.weight
    encoder.final_layer_norm.weight                       encoder_final_norm.weight
    decoder.block.i.layer.0 ...                           decoder_layers.i.self_attn ... (as in the encoder)
    decoder.block.i.layer.1.EncDecAttention.q.weight      decoder_layers.i.cross_attn.q.weight
    decoder.block.i.layer.1.EncDecAttention.{k,v}.weight  decoder_layers.i.cross_attn.kv.weight (rows k|v)
    decoder.block.i.layer.1.EncDecAttention.o.weight      decoder_layers.i.cross_attn.out.weight
    decoder.block.i.layer.1.layer_norm.weight             decoder_layers.i.cross_attn_norm.weight
    decoder.block.i.layer.2 ...                           decoder_layers.i.ffn / ffn_norm
    decoder.final_layer_norm.weight                       decoder_final_norm.weight
    lm_head.weight                                        lm_head.weight (untied, v1.1 only)

``encoder.embed_tokens`` and ``decoder.embed_tokens`` are copies of ``shared``. About v1.1:
its configs say ``tie_word_embeddings: false``, which historically meant *both* "separate LM
head" and "no d_model^-0.5 rescale". transformers 5 always ties the head to ``shared`` and keeps
only the second meaning (``scale_decoder_outputs``). We read either spelling; an untied model
whose file has no ``lm_head.weight`` (saved by transformers 5) gets a copy of ``shared``, which
is exactly what transformers 5 computes with.
"""
from __future__ import annotations

from typing import Any

import torch

from minitransformer.models.config import T5Config

# transformers' feed_forward_proj -> ours; "gated-gelu" uses GELU with the tanh approximation ("gelu_new")
_FEED_FORWARD = {"relu": "relu", "gated-gelu": "gated-gelu"}
# keys some old checkpoints carry that no model uses
_IGNORED = ("decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight",)


def _or_default(value: Any, default: float) -> Any:
    """A JSON null means transformers' default; other values go to T5Config, which checks them."""
    return default if value is None else value


def config_from_hf(hf_config: dict[str, Any]) -> T5Config:
    """transformers' ``T5Config.to_dict()`` (or a T5 ``config.json``) -> our T5Config."""
    if not isinstance(hf_config, dict):
        raise TypeError(f"config_from_hf expects a dict, got {type(hf_config).__name__}")
    model_type = hf_config.get("model_type", "t5")
    if model_type != "t5":
        raise ValueError(f"expected a Hugging Face T5 config (model_type 't5'), got {model_type!r}")
    missing = [k for k in ("vocab_size", "d_model", "d_kv", "num_heads", "d_ff", "num_layers") if k not in hf_config]
    if missing:
        raise ValueError(f"the T5 config lacks {', '.join(missing)}")
    proj = hf_config.get("feed_forward_proj", "relu")
    if proj not in _FEED_FORWARD:
        raise ValueError(f"unsupported T5 feed_forward_proj {proj!r}; supported: {', '.join(_FEED_FORWARD)}")
    # v1.0 (tied and rescaled) vs v1.1 (untied, no rescale); see the module docstring
    tied = hf_config.get("scale_decoder_outputs", hf_config.get("tie_word_embeddings", True))
    eos = hf_config.get("eos_token_id", 1)
    if isinstance(eos, list):
        if len(eos) != 1:
            raise ValueError(f"T5 supports a single eos_token_id, got {eos}")
        eos = eos[0]
    pad = hf_config.get("pad_token_id", 0)
    pad = 0 if pad is None else pad
    start = hf_config.get("decoder_start_token_id")
    return T5Config(
        vocab_size=hf_config["vocab_size"],
        d_model=hf_config["d_model"],
        d_kv=hf_config["d_kv"],
        n_heads=hf_config["num_heads"],
        d_ff=hf_config["d_ff"],
        n_layers=hf_config["num_layers"],
        n_decoder_layers=hf_config.get("num_decoder_layers") or hf_config["num_layers"],
        relative_attention_num_buckets=hf_config.get("relative_attention_num_buckets", 32),
        relative_attention_max_distance=hf_config.get("relative_attention_max_distance", 128),
        dropout=_or_default(hf_config.get("dropout_rate"), 0.1),
        norm_eps=_or_default(hf_config.get("layer_norm_epsilon"), 1e-6),
        feed_forward=_FEED_FORWARD[proj],
        tie_embeddings=tied,  # T5Config refuses anything but True/False (bool("false") would be True)
        pad_token_id=pad,
        eos_token_id=1 if eos is None else eos,
        decoder_start_token_id=pad if start is None else start,
        max_seq_len=hf_config.get("n_positions") or 512,
    )


def config_to_hf(cfg: T5Config) -> dict[str, Any]:
    """Our T5Config -> keyword arguments for ``transformers.T5Config``."""
    return dict(
        vocab_size=cfg.vocab_size, d_model=cfg.d_model, d_kv=cfg.d_kv, num_heads=cfg.n_heads, d_ff=cfg.d_ff,
        num_layers=cfg.n_layers, num_decoder_layers=cfg.n_decoder_layers,
        relative_attention_num_buckets=cfg.relative_attention_num_buckets,
        relative_attention_max_distance=cfg.relative_attention_max_distance,
        dropout_rate=cfg.dropout, layer_norm_epsilon=cfg.norm_eps, feed_forward_proj=cfg.feed_forward,
        tie_word_embeddings=cfg.tie_embeddings, pad_token_id=cfg.pad_token_id, eos_token_id=cfg.eos_token_id,
        decoder_start_token_id=cfg.decoder_start_token_id, is_encoder_decoder=True,
    )


def _renames(cfg: T5Config) -> list[tuple[str, str]]:
    """(our key, HF key) for every tensor that maps one to one (all but the fused attention projections)."""
    ffn = {"relu": [("ffn.fc_in", "DenseReluDense.wi")],
           "gated-gelu": [("ffn.fc_gate", "DenseReluDense.wi_0"), ("ffn.fc_in", "DenseReluDense.wi_1")]}
    pairs = []
    for stack, n in (("encoder", cfg.n_layers), ("decoder", cfg.n_decoder_layers)):
        ff = 2 if stack == "decoder" else 1  # index of the feed-forward sub-layer in HF's block
        for i in range(n):
            ours, hf = f"{stack}_layers.{i}.", f"{stack}.block.{i}.layer."
            renames = [("self_attn.out", "0.SelfAttention.o"), ("self_attn_norm", "0.layer_norm"),
                       *((o, f"{ff}.{h}") for o, h in ffn[cfg.feed_forward]),
                       ("ffn.fc_out", f"{ff}.DenseReluDense.wo"), ("ffn_norm", f"{ff}.layer_norm")]
            if stack == "decoder":
                renames += [("cross_attn.q", "1.EncDecAttention.q"), ("cross_attn.out", "1.EncDecAttention.o"),
                            ("cross_attn_norm", "1.layer_norm")]
            pairs += [(ours + o + ".weight", hf + h + ".weight") for o, h in renames]
    pairs += [("shared.weight", "shared.weight"),
              ("encoder_final_norm.weight", "encoder.final_layer_norm.weight"),
              ("decoder_final_norm.weight", "decoder.final_layer_norm.weight"),
              ("encoder_rel_bias.bias.weight", "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"),
              ("decoder_rel_bias.bias.weight", "decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight")]
    return pairs


def _fused(cfg: T5Config) -> list[tuple[str, list[str]]]:
    """(our fused key, HF keys whose rows it concatenates): self-attention q|k|v, cross-attention k|v."""
    out = []
    for stack, n in (("encoder", cfg.n_layers), ("decoder", cfg.n_decoder_layers)):
        for i in range(n):
            sa = f"{stack}.block.{i}.layer.0.SelfAttention."
            out.append((f"{stack}_layers.{i}.self_attn.qkv.weight", [sa + f"{p}.weight" for p in "qkv"]))
            if stack == "decoder":
                ca = f"decoder.block.{i}.layer.1.EncDecAttention."
                out.append((f"decoder_layers.{i}.cross_attn.kv.weight", [ca + "k.weight", ca + "v.weight"]))
    return out


def state_dict_from_hf(sd: dict[str, torch.Tensor], cfg: T5Config) -> dict[str, torch.Tensor]:
    """Hugging Face T5 state dict -> ours (same tensors; q, k, v rows concatenated).

    Raises ValueError naming missing or unexpected keys, or a tied LM head that differs from
    ``shared`` (our v1.0 model could not represent it).
    """
    sd = dict(sd)
    if "shared.weight" not in sd:  # some checkpoints keep only the stacks' copies
        for alias in ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight"):
            if alias in sd:
                sd["shared.weight"] = sd[alias]
                break
    used = {"encoder.embed_tokens.weight", "decoder.embed_tokens.weight", *_IGNORED}
    out: dict[str, torch.Tensor] = {}
    missing = []
    for ours, hf in _renames(cfg):
        if hf in sd:
            out[ours] = sd[hf]
            used.add(hf)
        else:
            missing.append(hf)
    for ours, parts in _fused(cfg):
        if all(p in sd for p in parts):
            out[ours] = torch.cat([sd[p] for p in parts], dim=0)
            used.update(parts)
        else:
            missing += [p for p in parts if p not in sd]
    if "lm_head.weight" in sd:
        used.add("lm_head.weight")
        if cfg.tie_embeddings:
            if "shared.weight" in sd and not torch.equal(sd["lm_head.weight"], sd["shared.weight"]):
                raise ValueError("lm_head.weight differs from shared.weight, but the config ties them "
                                 "(tie_embeddings=True); load it with tie_embeddings=False")
        else:
            out["lm_head.weight"] = sd["lm_head.weight"]
    elif not cfg.tie_embeddings and "shared.weight" in sd:
        out["lm_head.weight"] = sd["shared.weight"].clone()  # saved by transformers 5: head == shared
    unexpected = sorted(k for k in sd if k not in used)
    if missing or unexpected:
        raise ValueError("Hugging Face T5 weights do not fit the config: "
                         f"missing {missing[:10]}{' ...' if len(missing) > 10 else ''}; "
                         f"unexpected {unexpected[:10]}{' ...' if len(unexpected) > 10 else ''}")
    return out


def state_dict_to_hf(sd: dict[str, torch.Tensor], cfg: T5Config) -> dict[str, torch.Tensor]:
    """Our T5 state dict -> Hugging Face names: every key ``T5ForConditionalGeneration.state_dict()`` has."""
    out: dict[str, torch.Tensor] = {}
    for ours, hf in _renames(cfg):
        out[hf] = sd[ours]
    inner = cfg.n_heads * cfg.d_kv
    for ours, parts in _fused(cfg):
        for p, rows in zip(parts, sd[ours].split(inner, dim=0), strict=True):
            out[p] = rows
    out["encoder.embed_tokens.weight"] = out["decoder.embed_tokens.weight"] = sd["shared.weight"]
    out["lm_head.weight"] = sd["shared.weight"] if cfg.tie_embeddings else sd["lm_head.weight"]
    return out
