"""How big is a model? Exact parameter counts and memory estimates, without allocating the model.

Two independent ways to count parameters, which tests keep equal:

1. ``count_parameters(config)`` builds the real module on PyTorch's *meta* device (shapes, no
   storage) and sums its parameters — so it counts exactly what the code would allocate, even for
   GPT-3 175B on a laptop.
2. ``analytic_parameter_count(config)`` adds up the closed-form formulas below, the way one
   counts by hand (useful for reading: where do GPT-3's 175 billion parameters live?).

Memory formulas (``estimate_memory``) are documented on the function.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from minitransformer.models.config import BertConfig, GPTConfig, T5Config

Config = GPTConfig | BertConfig | T5Config

DTYPE_BYTES = {"float32": 4, "fp32": 4, "float16": 2, "fp16": 2, "bfloat16": 2, "bf16": 2, "int8": 1}


def build_model(cfg: Config) -> nn.Module:
    """The family's model for a config (plain dispatch on the config's type)."""
    from minitransformer.models import GPT, T5, Bert

    if isinstance(cfg, GPTConfig):
        return GPT(cfg)
    if isinstance(cfg, BertConfig):
        return Bert(cfg)
    if isinstance(cfg, T5Config):
        return T5(cfg)
    raise TypeError(f"expected a GPTConfig, BertConfig or T5Config, got {type(cfg).__name__}")


def count_parameters(cfg_or_model: Config | nn.Module) -> int:
    """Exact number of distinct parameters (a tied LM head counts once).

    A config is instantiated on the meta device: no memory is allocated, so this is instant even
    for GPT-3 175B.
    """
    if isinstance(cfg_or_model, nn.Module):
        return sum(p.numel() for p in cfg_or_model.parameters())  # .parameters() skips shared duplicates
    with torch.device("meta"):
        model = build_model(cfg_or_model)
    return sum(p.numel() for p in model.parameters())


# ---- closed forms ---------------------------------------------------------------------------
def _linear(d_in: int, d_out: int, bias: bool) -> int:
    return d_in * d_out + (d_out if bias else 0)


def _norm(d: int, bias: bool) -> int:
    return d * (2 if bias else 1)


def _ffn(d: int, d_ff: int, bias: bool, gated: bool) -> int:
    return _linear(d, d_ff, bias) * (2 if gated else 1) + _linear(d_ff, d, bias)


def analytic_parameter_count(cfg: Config) -> int:
    """Parameter count from formulas (see module docstring); equals ``count_parameters``."""
    if isinstance(cfg, GPTConfig):
        d, b = cfg.d_model, cfg.bias
        # attention: qkv (d -> 3d) + output (d -> d); feed-forward; two LayerNorms
        layer = _linear(d, 3 * d, b) + _linear(d, d, b) + _ffn(d, cfg.d_ff, b, False) + 2 * _norm(d, b)
        positions = cfg.max_seq_len * d if cfg.position == "learned" else 0  # the others learn nothing
        total = cfg.vocab_size * d + positions + cfg.n_layers * layer + _norm(d, b)
        return total + (0 if cfg.tie_embeddings else cfg.vocab_size * d)
    if isinstance(cfg, BertConfig):
        d, e = cfg.d_model, cfg.embedding_size
        embeddings = (cfg.vocab_size + cfg.max_seq_len + cfg.position_offset + cfg.type_vocab_size) * e + _norm(e, True)
        if e != d:
            embeddings += _linear(e, d, True)  # ELECTRA's projection
        layer = _linear(d, 3 * d, True) + _linear(d, d, True) + _ffn(d, cfg.d_ff, True, False) + 2 * _norm(d, True)
        total = embeddings + cfg.n_layers * layer
        if cfg.pooler:
            total += _linear(d, d, True)
        if cfg.mlm_head:  # transform (dense + LayerNorm) + output bias; the decoder matrix is tied
            total += _linear(d, e, True) + _norm(e, True) + cfg.vocab_size
        if cfg.nsp_head:
            total += _linear(d, 2, True)
        if cfg.discriminator_head:
            total += _linear(d, d, True) + _linear(d, 1, True)
        return total
    if isinstance(cfg, T5Config):
        d, inner = cfg.d_model, cfg.n_heads * cfg.d_kv
        attn = 4 * d * inner  # q, k, v, o without biases
        ffn = _ffn(d, cfg.d_ff, False, cfg.feed_forward == "gated-gelu")
        rel_bias = cfg.relative_attention_num_buckets * cfg.n_heads
        encoder = cfg.n_layers * (attn + ffn + 2 * d) + rel_bias + d
        decoder = cfg.n_decoder_layers * (2 * attn + ffn + 3 * d) + rel_bias + d
        total = cfg.vocab_size * d + encoder + decoder
        return total + (0 if cfg.tie_embeddings else cfg.vocab_size * d)
    raise TypeError(f"expected a GPTConfig, BertConfig or T5Config, got {type(cfg).__name__}")


# ---- memory ---------------------------------------------------------------------------------
@dataclass
class MemoryEstimate:
    """Bytes needed by each part of a forward (and, when training, backward + AdamW) pass."""

    weights: int
    gradients: int
    optimizer: int
    activations: int
    kv_cache: int
    total: int

    def gib(self) -> dict[str, float]:
        return {k: v / 2**30 for k, v in self.__dict__.items()}


def _shape(cfg: Config) -> tuple[int, int, int, int, int, int]:
    """(decoder-or-encoder layers, d_model, n_heads, attention inner size, d_ff, vocab)."""
    if isinstance(cfg, T5Config):
        return (cfg.n_layers + cfg.n_decoder_layers, cfg.d_model, cfg.n_heads, cfg.n_heads * cfg.d_kv,
                cfg.d_ff, cfg.vocab_size)
    return cfg.n_layers, cfg.d_model, cfg.n_heads, cfg.d_model, cfg.d_ff, cfg.vocab_size


def _saved_for_backward_16bit(cfg: Config, b: int, s: int) -> float:
    """Bytes (at 16 bits per value) that backward keeps from one forward pass of all layers.

    Korthikanti et al. 2022 (eq. 1, no recomputation) count, per layer and per s·b positions: the
    attention block 11·d (input, Q, K, V, the output projection's input, a dropout mask) plus 5·a·s
    for the a heads' scores (softmax output, dropout mask, dropout output); the MLP 19·d; the two
    norms 4·d: 34·s·b·d + 5·a·s²·b. That count assumes an attention width w = d and d_ff = 4·d.
    Written with w and f = d_ff it is 3·d + 8·w for attention and 3·d + 4·f for the MLP (8·f when
    gated: two projections, the activation and their product). T5's decoder layers add a norm and a
    cross-attention block, 5·d + 8·w + 5·a·s (keys and values over the encoder's s positions).
    """
    _, d, a, w, f, _ = _shape(cfg)
    gated = isinstance(cfg, T5Config) and cfg.feed_forward.startswith("gated")
    layer = s * b * ((3 * d + 8 * w) + (3 * d + (8 if gated else 4) * f) + 4 * d + 5 * a * s)
    if not isinstance(cfg, T5Config):
        return cfg.n_layers * layer
    cross = s * b * (5 * d + 8 * w + 5 * a * s)
    return cfg.n_layers * layer + cfg.n_decoder_layers * (layer + cross)


def estimate_memory(cfg: Config, batch_size: int = 1, seq_len: int = 512, dtype: str = "float32",
                    training: bool = False) -> MemoryEstimate:
    """Estimate memory in bytes; ``p`` = bytes per value of ``dtype``, N = parameters, b = batch, s = seq_len.

    - weights: N·p (also the size on disk as safetensors in that dtype).
    - gradients (training): N·p.
    - optimizer (training): AdamW's two moments in float32, 8·N; in 16-bit training also a float32
      master copy of the weights, +4·N (mixed-precision recipe of Micikevicius et al. 2018).
    - activations, training: what backward needs per layer, s·b·d·(34 + 5·h·s/d) bytes at 16 bits
      (Korthikanti et al. 2022, eq. 1, no recomputation) where the attention is d wide and d_ff = 4·d,
      generalised to other widths and to T5's cross-attention (``_saved_for_backward_16bit``),
      scaled by p/2, plus the logits b·s·V·p.
      Inference: the largest transient tensors of one layer, b·s·(2d + d_ff)·p + b·h·s²·p, plus logits.
    - kv_cache (inference, decoders): 2 (K and V) · layers · b · s · inner · p. T5 counts its decoder's
      self- and cross-attention caches over ``seq_len`` positions each.

    16-bit training here means 16-bit weights and gradients with a float32 master copy. PyTorch's
    autocast (our trainer's ``--dtype bfloat16``) keeps float32 weights and gradients instead: the
    same 16·N bytes in total, split 4 + 4 + 8, but it also keeps 16-bit copies of the weights and
    some float32 tensors for backward; measured at GPT-2 117M (b=1, s=512) its activations were
    about 2x this estimate.
    """
    if dtype not in DTYPE_BYTES:
        raise ValueError(f"unknown dtype {dtype!r}; allowed: {', '.join(DTYPE_BYTES)}")
    for name, value in (("batch_size", batch_size), ("seq_len", seq_len)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    p = DTYPE_BYTES[dtype]
    n = count_parameters(cfg)
    n_layers, d, h, inner, d_ff, vocab = _shape(cfg)
    b, s = batch_size, seq_len
    weights = n * p
    logits = b * s * vocab * p
    if training:
        gradients = n * p
        optimizer = 8 * n + (4 * n if p < 4 else 0)
        activations = int(_saved_for_backward_16bit(cfg, b, s) * p / 2) + logits
        kv_cache = 0
    else:
        gradients = optimizer = 0
        activations = b * s * (2 * d + d_ff) * p + b * h * s * s * p + logits
        if isinstance(cfg, GPTConfig):
            kv_cache = 2 * cfg.n_layers * b * s * inner * p
        elif isinstance(cfg, T5Config):
            kv_cache = 2 * 2 * cfg.n_decoder_layers * b * s * inner * p
        else:
            kv_cache = 0
    total = weights + gradients + optimizer + activations + kv_cache
    return MemoryEstimate(weights, gradients, optimizer, activations, kv_cache, total)
