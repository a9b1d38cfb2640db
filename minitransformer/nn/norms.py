"""Normalisation layers: LayerNorm (BERT, GPT) and RMSNorm (T5).

Both rescale each position's feature vector to a standard size so that deep stacks train stably.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LayerNorm(nn.Module):
    """Layer normalisation (Ba et al. 2016): ``(x - mean) / sqrt(var + eps) * weight + bias``.

    Statistics are taken over the last dimension (the features of one position). ``bias=False``
    gives the bias-free variant some modern GPTs use.
    """

    def __init__(self, d_model: int, eps: float = 1e-5, bias: bool = True) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model))
        self.bias = nn.Parameter(torch.zeros(d_model)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., C) -> (..., C)
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}, bias={self.bias is not None}"


class RMSNorm(nn.Module):
    """Root-mean-square norm, T5's "layer norm" (Zhang & Sennrich 2019; Raffel et al. 2020 §3.1.1).

    ``x / sqrt(mean(x²) + eps) * weight``: no mean subtraction and no bias. The statistic is
    computed in float32 even under half precision, as T5 does, then cast back.
    """

    def __init__(self, d_model: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., C) -> (..., C)
        variance = x.float().pow(2).mean(dim=-1, keepdim=True)
        x_normed = x * torch.rsqrt(variance + self.eps)
        if self.weight.dtype in (torch.float16, torch.bfloat16):
            x_normed = x_normed.to(self.weight.dtype)
        return self.weight * x_normed

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"


def make_norm(kind: str, d_model: int, eps: float, bias: bool = True) -> nn.Module:
    """``"layernorm"`` or ``"rmsnorm"`` -> the module."""
    if kind == "layernorm":
        return LayerNorm(d_model, eps=eps, bias=bias)
    if kind == "rmsnorm":
        return RMSNorm(d_model, eps=eps)
    raise ValueError(f"unknown norm {kind!r}; allowed: 'layernorm', 'rmsnorm'")
