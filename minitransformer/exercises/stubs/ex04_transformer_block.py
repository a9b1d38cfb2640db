"""Exercise 4: a Transformer block, pre-LN (GPT-2, T5) and post-LN (original Transformer, BERT).

Tutorial: tutorials/03_gpt.py (and 04_bert.py for post-LN). Papers: Vaswani et al. 2017 §3.1
(each sub-layer is wrapped as LayerNorm(x + Sublayer(x))); Radford et al. 2019 §2.3 (GPT-2 moves
the LayerNorm to the *input* of each sub-block); Xiong et al. 2020 (why pre-LN trains more stably).

A block has two sub-layers, multi-head self-attention then a position-wise feed-forward network,
each with a residual connection ("x + ...") and a LayerNorm. The two orders:

    pre-LN:   x = x + Attn(LN1(x));   x = x + FFN(LN2(x))
    post-LN:  x = LN1(x + Attn(x));   x = LN2(x + FFN(x))

You get the block's parts ready-made as a ``layer`` (a ``minitransformer.nn.EncoderLayer`` or
``DecoderLayer`` without cross-attention, dropout off) and wire them together:

    layer.self_attn_norm   LN1, a module: (B, T, C) -> (B, T, C)
    layer.self_attn        multi-head attention: ``layer.self_attn(h, is_causal=...)`` returns a
                           pair ``(output (B, T, C), weights or None)``; take element [0]
    layer.ffn_norm         LN2
    layer.ffn              the feed-forward network: (B, T, C) -> (B, T, C)

When you are done:   minitransformer exercises check 4
"""
from __future__ import annotations

import torch
from torch import nn


def pre_ln_block(x: torch.Tensor, layer: nn.Module, causal: bool = True) -> torch.Tensor:
    """The pre-LN block (GPT-2): x (B, T, C) -> (B, T, C).

    ``causal=True`` for a decoder (each position sees only itself and the past), False for an encoder.

    Hints:
        - Keep ``x`` as the residual stream: normalise a *copy* for the sub-layer, add its output to x.
        - Two lines of code are enough.
    """
    raise NotImplementedError("x + Attn(LN1(x)), then x + FFN(LN2(x))")


def post_ln_block(x: torch.Tensor, layer: nn.Module) -> torch.Tensor:
    """The post-LN block (original Transformer, BERT; not causal): x (B, T, C) -> (B, T, C).

    Hint: here the norm comes *after* the residual addition, so the stream itself is normalised.
    """
    raise NotImplementedError("LN1(x + Attn(x)), then LN2(x + FFN(x))")
