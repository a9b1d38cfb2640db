"""Dropout (Srivastava et al. 2014), written out: the regulariser every family uses while training.

During training each element is zeroed with probability ``p`` and the survivors are scaled by
``1 / (1 - p)`` ("inverted" dropout), so that the expected value of every element is unchanged
and evaluation needs no rescaling: in ``eval()`` mode dropout is the identity.

    keep = (u >= p) / (1 - p),   u ~ Uniform[0, 1) per element;    y = x * keep

Why not just ``torch.nn.Dropout``? It computes the same thing, and on GPUs we call it (one fused
kernel). On CPUs PyTorch draws its mask with a Bernoulli sampler that spends a 64-bit random
number per element, about twice the time of the 32-bit uniform draw above, and in a small
model's training step that sampling is the single largest cost (benchmarks/bench_bert.py).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from minitransformer.checks import check_number


def check_probability(p: float) -> None:
    """Raise unless 0 <= p <= 1 (NaN included, which ``torch.nn.Dropout`` lets through)."""
    check_number("dropout probability", p, 0, 1)


def dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """Zero each element of ``x`` with probability ``p`` and scale the rest by 1/(1-p); identity if not training."""
    check_probability(p)
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0  # everything dropped (keeps the graph, unlike zeros_like)
    if x.device.type != "cpu":
        return F.dropout(x, p, training=True)  # the fused kernel
    # The mask is drawn in float32 even for half-precision x: a bf16 uniform has only 256 levels,
    # which would round p. Values: 0 (dropped) or 1/(1-p) (kept).
    keep = torch.rand(x.shape, device=x.device).ge_(p).mul_(1.0 / (1.0 - p)).to(x.dtype)  # same shape as x
    return x * keep


class Dropout(nn.Dropout):
    """``torch.nn.Dropout`` with the mask drawn as in ``dropout`` above; same ``p``, same modes."""

    def __init__(self, p: float = 0.5) -> None:
        check_probability(p)
        super().__init__(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)
