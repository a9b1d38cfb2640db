"""T5's relative position bias (Raffel et al. 2020 §2.1; Shaw et al. 2018).

Instead of adding position vectors to the tokens, T5 adds a learned scalar to each attention
score that depends only on the *offset* between query and key (key_pos - query_pos). Offsets are
grouped into buckets: small offsets get a bucket each, larger ones share logarithmically wider
buckets up to ``max_distance``, beyond which all offsets share the last bucket. Encoders look
both ways (half the buckets for each direction); decoders only look back. One bias table per
stack is computed once and shared by all its layers.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from minitransformer.checks import check_int


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
