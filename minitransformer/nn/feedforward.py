"""The position-wise feed-forward network (Vaswani et al. 2017 §3.3) and its variants.

Each position is transformed on its own by two linear maps with a non-linearity between:
``FFN(x) = W_out · act(W_in · x)``. Variants: ReLU (original Transformer, T5 v1.0), GELU (BERT,
exact erf form), GELU with the tanh approximation (GPT-2), and gated GELU (T5 v1.1, Shazeer 2020):
``W_out · (gelu(W_gate · x) * (W_in · x))``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from minitransformer.nn.dropout import Dropout

ACTIVATIONS = ("relu", "gelu", "gelu_tanh", "gated-gelu")


def activation_fn(name: str, x: torch.Tensor) -> torch.Tensor:
    """Apply one of the non-linearities by name."""
    if name == "relu":
        return F.relu(x)
    if name == "gelu":  # exact: x·Φ(x)
        return F.gelu(x)
    if name in ("gelu_tanh", "gated-gelu"):  # 0.5·x·(1 + tanh(√(2/π)(x + 0.044715x³)))
        return F.gelu(x, approximate="tanh")
    raise ValueError(f"unknown activation {name!r}; allowed: {', '.join(ACTIVATIONS)}")


class FeedForward(nn.Module):
    """Two-layer MLP applied at every position; ``activation="gated-gelu"`` adds a gate matrix.

    ``dropout`` here is the *inner* dropout after the activation (T5 has one); the residual
    dropout after the block lives in the layer.
    """

    def __init__(self, d_model: int, d_ff: int, activation: str = "gelu", bias: bool = True,
                 dropout: float = 0.0) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; allowed: {', '.join(ACTIVATIONS)}")
        self.activation = activation
        self.fc_in = nn.Linear(d_model, d_ff, bias=bias)
        self.fc_gate = nn.Linear(d_model, d_ff, bias=bias) if activation == "gated-gelu" else None
        self.fc_out = nn.Linear(d_ff, d_model, bias=bias)
        self.dropout = Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, C) -> (B, T, C)
        if self.fc_gate is not None:
            h = activation_fn(self.activation, self.fc_gate(x)) * self.fc_in(x)  # (B, T, d_ff)
        else:
            h = activation_fn(self.activation, self.fc_in(x))  # (B, T, d_ff)
        return self.fc_out(self.dropout(h))
