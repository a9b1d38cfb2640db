"""How fast is training, compared with what the hardware can do? FLOPs per token and MFU.

Model FLOPs utilisation (MFU, Chowdhery et al. 2022, App. B) is the fraction of the hardware's
peak arithmetic that the model's *necessary* FLOPs use: tokens/s x FLOPs/token / peak FLOP/s.

FLOPs per token of one training step (forward + backward), as in Kaplan et al. 2020 §2.1 and
PaLM's App. B:  6·N + 12·L·T·d
- 6·N: every weight does a multiply-add (2 FLOPs) in the forward pass and twice that in the
  backward pass. N counts the matrices that are multiplied: all parameters except the position
  table (a lookup, no arithmetic); a tied token embedding counts once, as the LM head.
- 12·L·T·d: attention's QKᵀ and (softmax)·V, 2·T·d multiply-adds per token per layer forward,
  x3 for forward + backward, for L layers and context T (ignoring the causal mask's halving).

The peak is *measured* (a large matrix multiply timed on the same device in the same process),
never a datasheet number: on a shared 2-core CPU or a throttled GPU the datasheet is fiction.
"""
from __future__ import annotations

import time

import torch

from minitransformer.checks import check_int, check_number


def flops_per_token(n_params: int, n_layers: int, seq_len: int, d_model: int) -> int:
    """Training FLOPs per token: ``6·N + 12·L·T·d`` (see module docstring for what N counts)."""
    for name, value in (("n_params", n_params), ("n_layers", n_layers), ("seq_len", seq_len), ("d_model", d_model)):
        check_int(name, value, 1)
    return 6 * n_params + 12 * n_layers * seq_len * d_model


def gpt_flops_per_token(config, seq_len: int | None = None) -> int:
    """``flops_per_token`` for a GPTConfig: N = all parameters minus the position table (if learned)."""
    from minitransformer.accounting import analytic_parameter_count
    from minitransformer.models.config import GPTConfig

    if not isinstance(config, GPTConfig):
        raise TypeError(f"gpt_flops_per_token needs a GPTConfig, got {type(config).__name__}")
    seq_len = config.max_seq_len if seq_len is None else seq_len
    check_int("seq_len (at most the model's max_seq_len)", seq_len, 1, config.max_seq_len)
    n = analytic_parameter_count(config) - (config.max_seq_len * config.d_model if config.position == "learned" else 0)
    return flops_per_token(n, config.n_layers, seq_len, config.d_model)


def t5_flops_per_step(config, batch: int, src_len: int, tgt_len: int) -> int:
    """Training FLOPs (forward + backward) of one T5 step on ``batch`` pairs of ``src_len``/``tgt_len`` tokens.

    An encoder-decoder has two kinds of tokens, so a per-token ``6·N`` does not fit; this counts
    every matrix multiply, x3 for forward + backward (Kaplan et al. 2020 §2.1):
    - encoder tokens: each layer's q, k, v, o and feed-forward matrices, plus the decoder's
      cross-attention k, v (they read the encoder output): 6 · tokens · weights;
    - decoder tokens: self-attention q, k, v, o, cross-attention q, o, feed-forward, LM head;
    - attention scores and weighted sums: 12 · B · heads · Tq · Tk · d_kv per attention layer.
    Norms, softmax and the relative position bias (a lookup) are left out: they are not matmuls.
    """
    from minitransformer.models.config import T5Config

    if not isinstance(config, T5Config):
        raise TypeError(f"t5_flops_per_step needs a T5Config, got {type(config).__name__}")
    for name, value in (("batch", batch), ("src_len", src_len), ("tgt_len", tgt_len)):
        check_int(name, value, 1)
    d, inner, d_ff = config.d_model, config.n_heads * config.d_kv, config.d_ff
    ffn = (3 if config.feed_forward == "gated-gelu" else 2) * d * d_ff
    enc_tokens, dec_tokens = batch * src_len, batch * tgt_len
    per_enc_token = config.n_layers * (4 * d * inner + ffn) + config.n_decoder_layers * 2 * d * inner
    per_dec_token = config.n_decoder_layers * (6 * d * inner + ffn) + d * config.vocab_size
    attn = 12 * batch * config.n_heads * config.d_kv * (
        config.n_layers * src_len * src_len + config.n_decoder_layers * (tgt_len * tgt_len + tgt_len * src_len))
    return 6 * (enc_tokens * per_enc_token + dec_tokens * per_dec_token) + attn


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def measure_matmul_peak(device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                        size: int | None = None, seconds: float = 1.0) -> float:
    """Best observed FLOP/s of a square ``size x size`` matrix multiply on ``device`` in ``dtype``.

    ``size`` defaults to 1024 on CPU and 8192 on GPUs (large enough to reach the plateau). Runs
    for about ``seconds`` after a warm-up and reports the fastest repetition (the peak, not the mean).
    """
    device = torch.device(device)
    if size is None:
        size = 8192 if device.type == "cuda" else 1024
    gen = torch.Generator(device=device).manual_seed(0)  # own generator: leaves the caller's RNG alone
    a = torch.randn(size, size, device=device, dtype=dtype, generator=gen)
    b = torch.randn(size, size, device=device, dtype=dtype, generator=gen)
    out = torch.empty(size, size, device=device, dtype=dtype)
    flop = 2 * size**3
    reps = 1
    for _ in range(3):  # warm-up, and pick how many multiplies make one timing (~50 ms)
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(reps):
            torch.mm(a, b, out=out)
        _sync(device)
        dt = time.perf_counter() - t0
        reps = max(1, min(1000, int(reps * 0.05 / max(dt, 1e-6))))
    best = float("inf")
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(reps):
            torch.mm(a, b, out=out)
        _sync(device)
        best = min(best, (time.perf_counter() - t0) / reps)
    return flop / best


def mfu(tokens_per_second: float, flops_per_tok: float, peak_flops: float) -> float:
    """Model FLOPs utilisation in [0, 1]: achieved model FLOP/s over the measured peak."""
    check_number("tokens_per_second", tokens_per_second, 0)
    check_number("flops_per_tok", flops_per_tok, 0)
    check_number("peak_flops", peak_flops, 0, low_open=True)
    return tokens_per_second * flops_per_tok / peak_flops
