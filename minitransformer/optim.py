"""Optimizer set-up shared by every family's trainer: AdamW with decoupled weight decay.

Weight decay (Loshchilov & Hutter 2019) pulls weights towards zero. It is meant for the big
matrices that mix features (linear layers); on biases and norm gains it only fights the scale
the model needs, and on embedding tables it shrinks rows of rare tokens that get few gradient
updates. So parameters split into two groups, as GPT-2/3 and BERT training recipes do:

- decay: weights of linear layers (2-D matrices),
- no decay: biases, norm weights (1-D), and every embedding table (nn.Embedding and subclasses).

A tied LM head is the token embedding itself, so it lands (once) in the no-decay group.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Split ``model``'s trainable parameters into AdamW groups: ``[{decay}, {no decay}]``.

    Works for any ``nn.Module``; each group also carries the parameter ``names`` (for logging and tests).
    """
    if isinstance(weight_decay, bool) or not isinstance(weight_decay, (int, float)) or weight_decay < 0:
        raise ValueError(f"weight_decay must be a number >= 0, got {weight_decay!r}")
    decay, no_decay = ([], []), ([], [])  # (names, params)
    seen: set[int] = set()
    for module_name, module in model.named_modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad or id(p) in seen:
                continue  # frozen, or shared with a module already visited (a tied LM head)
            seen.add(id(p))
            full = f"{module_name}.{name}" if module_name else name
            group = no_decay if isinstance(module, nn.Embedding) or p.dim() < 2 else decay
            group[0].append(full)
            group[1].append(p)
    return [
        {"params": decay[1], "weight_decay": float(weight_decay), "names": decay[0]},
        {"params": no_decay[1], "weight_decay": 0.0, "names": no_decay[0]},
    ]


def make_adamw(model: nn.Module, lr: float, weight_decay: float = 0.1, betas: tuple[float, float] = (0.9, 0.95),
               eps: float = 1e-8, fused: bool | None = None) -> torch.optim.AdamW:
    """AdamW over ``param_groups(model, weight_decay)``.

    ``fused=None`` picks PyTorch's fused kernel where every parameter is on a device that has one
    (CUDA, and CPU in recent PyTorch), else the multi-tensor ``foreach`` kernel.
    """
    groups = [{k: v for k, v in g.items() if k != "names"} for g in param_groups(model, weight_decay)]
    groups = [g for g in groups if g["params"]]
    if fused is None:
        fused = all(p.device.type in ("cuda", "cpu") and p.dtype.is_floating_point for g in groups for p in g["params"])
    if fused:
        return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, fused=True)
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, foreach=True)
