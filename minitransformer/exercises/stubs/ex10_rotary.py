"""Exercise 10: RoPE, rotary position embedding: turn queries and keys by their position.

Tutorial: tutorials/07_positions.py (four position schemes side by side). Paper: Su et al. 2021,
"RoFormer: Enhanced Transformer with Rotary Position Embedding", §3.4.

RoPE adds nothing to the tokens. Inside attention it treats the d features of each query and key
as d/2 pairs, each pair a point in a plane, and turns the pair at position m by the angle m·θ_i,
with θ_i = base^(-2i/d) for pair i = 0 .. d/2 - 1 (fast turns for the first pairs, slow ones for
the last). A query turned by m·θ and a key turned by n·θ have a dot product that depends only on
m - n: attention sees how far apart two tokens are.

Which features make a pair? Here, as in GPT-NeoX and LLaMA (and minitransformer): feature i and
feature i + d/2, the first half against the second half.

The checks compare your function with minitransformer's ``RotaryEmbedding`` + ``apply_rotary``.

When you are done:   minitransformer exercises check 10
"""
from __future__ import annotations

import torch


def rotate(x: torch.Tensor, positions: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """x (..., T, d) with d even, positions (T,) integers -> x turned by RoPE, same shape and dtype.

    For each position t and each pair i: with a = x[..., t, i], b = x[..., t, i + d/2] and the angle
    φ = positions[t] · base^(-2i/d), the result holds a·cos φ - b·sin φ at i and b·cos φ + a·sin φ
    at i + d/2 (the 2-D rotation of the point (a, b) by φ).

    Example: d = 2, base anything (θ_0 = 1): x [[1., 0.]] at position [1] -> [[cos 1, sin 1]].

    Hints:
        - theta = base ** (-torch.arange(0, d, 2) / d) is (d/2,); angles = positions[:, None] * theta
          is (T, d/2). Compute them in float32 (or float64 for float64 x), then cast.
        - first, second = x[..., : d // 2], x[..., d // 2:]; then cos and sin of the angles
          broadcast against (..., T, d/2).
        - torch.cat([first * cos - second * sin, second * cos + first * sin], dim=-1)
    """
    raise NotImplementedError("split x into halves, turn each pair (first[i], second[i]) by positions · θ_i")
