"""Exercise 7: T5's relative position buckets.

Tutorial: tutorials/05_t5.py. Papers: Raffel et al. 2020, "Exploring the Limits of Transfer
Learning with a Unified Text-to-Text Transformer", §2.1 ("Model"); Shaw et al. 2018 (relative
position representations).

T5 has no position embeddings. Each attention score gets a learned scalar added that depends only
on the offset ``relative_position = key_pos - query_pos``. Offsets are grouped into
``num_buckets`` buckets, and each bucket has one learned scalar per head:

- bidirectional (encoder): half the buckets for keys behind or at the query (offset <= 0), half
  for keys ahead (offset > 0): keys ahead add ``num_buckets // 2`` to their bucket. Then work with
  ``n = num_buckets // 2`` and the distance ``|offset|``.
  causal (decoder): only the past matters: distance = ``max(-offset, 0)`` (future keys get
  distance 0; the causal mask hides them anyway) and ``n = num_buckets``.
- small distances get a bucket each: distance d < ``max_exact = n // 2`` -> bucket d;
- larger distances share logarithmically wider buckets:
      max_exact + floor( log(d / max_exact) / log(max_distance / max_exact) * (n - max_exact) )
  capped at n - 1. So every distance >= max_distance lands in the last bucket.

The checks compare your buckets with ``minitransformer.nn.relative_position_bucket`` on many
offsets exactly.

When you are done:   minitransformer exercises check 7
"""
from __future__ import annotations

import math  # noqa: F401  (you will want math.log)

import torch


def relative_position_bucket(
    relative_position: torch.Tensor,
    bidirectional: bool = True,
    num_buckets: int = 32,
    max_distance: int = 128,
) -> torch.Tensor:
    """Offsets (any shape, integer tensor) -> bucket ids in [0, num_buckets), same shape, torch.long.

    Examples with the defaults (bidirectional, 32 buckets, max_distance 128):
        offset 0 -> 0,  -3 -> 3,  +3 -> 19 (16 + 3),  -10 -> 8,  -200 -> 15,  +200 -> 31.

    Hints:
        - Build the result from ``torch.zeros_like(relative_position)`` and add the parts.
        - Compute the logarithmic part in float32 exactly as written above, on
          ``distance.float()`` (clamp the distance to at least 1 before the log, since small
          distances do not use that branch), then ``.long()`` to round down (the values are >= 0).
        - ``torch.where(is_small, distance, log_bucket)`` chooses per element;
          ``tensor.clamp(max=...)`` caps.
    """
    raise NotImplementedError("direction half, then exact buckets for small distances, log buckets beyond")
