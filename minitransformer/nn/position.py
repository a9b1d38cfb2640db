"""Relative position schemes: the model learns *how far apart* two tokens are, not where each one is.

Three ways to put the offset between query and key into attention (absolute schemes, a vector
added to each token, are in ``embeddings.py``):

- **T5's relative position bias** (Raffel et al. 2020 §2.1; Shaw et al. 2018): a learned scalar
  added to each attention score that depends only on the *offset* between query and key
  (key_pos - query_pos). Offsets are grouped into buckets: small offsets get a bucket each, larger
  ones share logarithmically wider buckets up to ``max_distance``, beyond which all offsets share
  the last bucket. Encoders look both ways (half the buckets for each direction); decoders only
  look back. One bias table per stack is computed once and shared by all its layers.
- **RoPE**, rotary position embedding (Su et al. 2021): queries and keys are rotated by an angle
  proportional to their position, so their dot product depends only on the offset. Nothing is
  learned (GPT-NeoX, LLaMA).
- **ALiBi**, attention with linear biases (Press et al. 2022): a fixed penalty ``slope x distance``
  subtracted from each score, one slope per head. Nothing is learned, and it keeps working on
  sequences longer than the ones it was trained on (BLOOM, MPT).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from minitransformer.checks import check_int, check_number

# the position schemes a GPT can use (GPTConfig.position): two absolute ones (embeddings.py), two relative
POSITIONS = ("learned", "sinusoidal", "rope", "alibi")


def check_bucket_settings(num_buckets: int, max_distance: int, bidirectional: bool) -> None:
    """Raise ``ValueError`` unless the bucket scheme below is well defined for these settings.

    Offsets under ``max_exact`` (a quarter of the buckets in an encoder, half in a decoder) get a
    bucket each; the log-spaced buckets span ``max_exact .. max_distance``, so that range must not
    be empty: at least one exact bucket, and ``max_distance > max_exact``. (Otherwise the formula
    divides by log(1) = 0 and the bucket ids are garbage.)
    """
    max_exact = (num_buckets // 2 if bidirectional else num_buckets) // 2
    if max_exact < 1 or max_distance <= max_exact:
        kind = "bidirectional (encoder)" if bidirectional else "causal (decoder)"
        raise ValueError(f"{kind} relative position buckets need num_buckets >= {4 if bidirectional else 2} and "
                         f"max_distance > {'num_buckets // 4' if bidirectional else 'num_buckets // 2'}; got "
                         f"num_buckets={num_buckets}, max_distance={max_distance}")


def relative_position_bucket(relative_position: torch.Tensor, bidirectional: bool = True,
                             num_buckets: int = 32, max_distance: int = 128) -> torch.Tensor:
    """Map offsets ``key_pos - query_pos`` (any integer tensor) to bucket ids in [0, num_buckets)."""
    check_bucket_settings(num_buckets, max_distance, bidirectional)
    if relative_position.is_floating_point() or relative_position.dtype == torch.bool:
        raise TypeError(f"relative positions must be an integer tensor, got dtype {relative_position.dtype}")
    buckets = torch.zeros_like(relative_position)
    if bidirectional:
        num_buckets //= 2
        buckets = buckets + (relative_position > 0).long() * num_buckets  # keys ahead use the upper half
        distance = relative_position.abs()
    else:
        distance = (-relative_position).clamp(min=0)  # only the past counts; the future maps to 0
    max_exact = num_buckets // 2
    is_small = distance < max_exact
    # Larger distances: logarithmic buckets from max_exact up to max_distance.
    log_bucket = max_exact + (
        torch.log(distance.float().clamp(min=1) / max_exact) / math.log(max_distance / max_exact)
        * (num_buckets - max_exact)
    ).long()
    log_bucket = log_bucket.clamp(max=num_buckets - 1)
    return buckets + torch.where(is_small, distance, log_bucket)


class RelativePositionBias(nn.Module):
    """Learned bias per (bucket, head) -> additive attention bias (1, n_heads, Tq, Tk)."""

    def __init__(self, n_heads: int, num_buckets: int = 32, max_distance: int = 128,
                 bidirectional: bool = True) -> None:
        super().__init__()
        check_int("n_heads", n_heads, 1)
        check_bucket_settings(num_buckets, max_distance, bidirectional)
        self.num_buckets, self.max_distance, self.bidirectional = num_buckets, max_distance, bidirectional
        self.bias = nn.Embedding(num_buckets, n_heads)

    def forward(self, t_q: int, t_k: int, query_offset: int = 0) -> torch.Tensor:
        """Bias for queries at positions ``query_offset .. query_offset+Tq-1`` and keys 0..Tk-1.

        Query i (at position ``query_offset + i``) and key j get the bias of the offset
        ``j - query_offset - i``. It depends on j - i only, so the (Tq, Tk) matrix has just
        Tq + Tk - 1 distinct values, one per diagonal (a Toeplitz matrix). We look those up once
        and lay them out, rather than bucketing and looking up all Tq x Tk pairs: the same numbers,
        and in training the gradient of the table gathers from Tq + Tk - 1 entries, not Tq x Tk.
        """
        if min(t_q, t_k) < 1 or query_offset < 0:
            raise ValueError(f"need t_q >= 1, t_k >= 1 and query_offset >= 0, got {t_q}, {t_k}, {query_offset}")
        device = self.bias.weight.device
        first = -(query_offset + t_q - 1)  # the smallest offset: key 0 seen from the last query
        offsets = torch.arange(first, first + t_q + t_k - 1, device=device)  # (Tq + Tk - 1,) ascending
        buckets = relative_position_bucket(offsets, self.bidirectional, self.num_buckets, self.max_distance)
        values = self.bias(buckets).t()  # (h, Tq + Tk - 1): values[:, d] is the bias of offset first + d
        # Row i needs values[:, j - i + Tq - 1] for j = 0..Tk-1: the window of Tk values starting at
        # Tq - 1 - i. unfold lists the windows starting at 0, 1, ..., Tq - 1; flip puts them in row order.
        windows = values.unfold(1, t_k, 1).flip(1)  # (h, Tq, Tk)
        # flip may hand back any memory layout (here often heads innermost); every layer adds this bias
        # to its (B, h, Tq, Tk) scores, which is several times faster from a row-major bias.
        return windows.contiguous().unsqueeze(0)  # (1, h, Tq, Tk)


class RotaryEmbedding(nn.Module):
    """RoPE (Su et al. 2021, "RoFormer" §3.4): the angles that turn queries and keys by their position.

    Feature pair ``(i, i + d/2)`` of a head (d = ``d_head``) is a point in a plane; at position m it
    is rotated by ``m·θ_i`` with ``θ_i = base^(-2i/d)``: fast turns for the first pairs, slow ones
    for the last. A rotation by m·θ of the query and by n·θ of the key leaves their dot product
    depending on m - n only, so attention sees offsets, and no vector is added to the tokens.

    The pairs are ``(i, i + d/2)``, as in GPT-NeoX and LLaMA (Hugging Face's ``rotate_half``), not
    the paper's neighbours ``(2i, 2i + 1)``: the same model with each head's features permuted.
    """

    def __init__(self, d_head: int, base: float = 10000.0) -> None:
        super().__init__()
        check_int("d_head", d_head, 2)
        if d_head % 2:
            raise ValueError(f"RoPE turns pairs of features, so d_head must be even, got {d_head}")
        self.base = check_number("RoPE base", base, 1, low_open=True)
        inv_freq = 1.0 / self.base ** (torch.arange(0, d_head, 2, dtype=torch.float32) / d_head)  # (d/2,) θ_i
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Positions (B|1, T) -> (cos, sin) of the angles, each (B|1, 1, T, d_head) in float32."""
        angles = positions[..., None].float() * self.inv_freq  # (B|1, T, d/2): m·θ_i
        angles = torch.cat([angles, angles], dim=-1)  # (B|1, T, d): pair (i, i + d/2) shares its angle
        return angles.cos()[:, None], angles.sin()[:, None]  # heads dimension for broadcasting


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate each feature pair ``(x_i, x_{i+d/2})`` of x (B, h, T, d) by its angle -> (B, h, T, d).

    The 2-D rotation ``(a, b) -> (a·cos - b·sin, b·cos + a·sin)``, written for all pairs at once.
    If ``cos`` and ``sin`` cover fewer features than x has (d_rot < d), only the first d_rot turn and
    the rest pass unchanged: GPT-NeoX and Pythia turn a quarter of each head (``rotary_fraction``).
    """
    d_rot = cos.shape[-1]
    if d_rot < x.shape[-1]:
        return torch.cat([apply_rotary(x[..., :d_rot], cos, sin), x[..., d_rot:]], dim=-1)
    first, second = x.chunk(2, dim=-1)  # (B, h, T, d/2) each
    turned = torch.cat([-second, first], dim=-1)  # (B, h, T, d): each pair's partner, one sign flipped
    return x * cos.to(x.dtype) + turned * sin.to(x.dtype)


def alibi_slopes(n_heads: int) -> torch.Tensor:
    """ALiBi's per-head slopes (Press et al. 2022 §3) -> (n_heads,) float32.

    For n heads, n a power of two: the geometric sequence 2^(-8/n), 2^(-16/n), ..., 2^(-8), so
    some heads see far back and others mostly their neighbours. Otherwise the slopes of the next
    smaller power of two p, then every other slope of 2p for the remaining heads.
    """
    check_int("n_heads", n_heads, 1)

    def geometric(n: int) -> list[float]:
        return [2.0 ** (-8.0 * (i + 1) / n) for i in range(n)]

    p = 1 << (n_heads.bit_length() - 1)  # the largest power of two <= n_heads
    return torch.tensor(geometric(p) + geometric(2 * p)[0::2][: n_heads - p], dtype=torch.float32)


class ALiBi(nn.Module):
    """ALiBi (Press et al. 2022): attention bias ``-slope_h x (query_pos - key_pos)``, fixed, per head.

    A key d tokens behind the query loses ``slope_h x d`` from its score; the penalty grows without
    limit, so what is far away fades the same way in a sequence longer than any seen in training.
    """

    def __init__(self, n_heads: int) -> None:
        super().__init__()
        self.register_buffer("slopes", alibi_slopes(n_heads), persistent=False)  # (h,)

    def forward(self, query_positions: torch.Tensor, key_positions: torch.Tensor) -> torch.Tensor:
        """Positions (B|1, Tq) and (B|1, Tk) -> additive bias (B|1, h, Tq, Tk) in float32.

        Keys ahead of the query get a positive bias; a causal mask hides them anyway.
        """
        distance = key_positions[:, None, None, :] - query_positions[:, None, :, None]  # (B|1, 1, Tq, Tk)
        return self.slopes[:, None, None] * distance.float()  # (B|1, h, Tq, Tk)
