"""Exercise 3: the causal mask and the padding mask.

Tutorial: tutorials/02_attention.py. Papers: Vaswani et al. 2017 §3.2.3 (the decoder must not see
the future, so the scores of forbidden query-key pairs are set to -inf before the softmax);
Radford et al. 2018 §3.1 (GPT is such a masked, left-to-right decoder).

Two masks decide which keys a query may look at:

- causal: position i sees positions 0..i only. With a KV cache the queries are only the newest
  Tq of Tk positions (Tq <= Tk), so query i sits at absolute position ``Tk - Tq + i`` and the
  mask is aligned to the *bottom right* of the (Tq, Tk) grid.
- padding: a batch pads short sequences to one length; padded keys must get no attention. It is
  applied as an additive bias on the scores: 0 where allowed, a very negative number where not.

When you are done:   minitransformer exercises check 3
"""
from __future__ import annotations

import torch


def causal_mask(t_q: int, t_k: int) -> torch.Tensor:
    """Bool (Tq, Tk): True where query i may attend key j, i.e. ``j <= i + (Tk - Tq)``.

    Examples:
        causal_mask(3, 3)            causal_mask(2, 4)   (2 new queries, 2 cached positions)
        [[T, F, F],                  [[T, T, T, F],
         [T, T, F],                   [T, T, T, T]]
         [T, T, T]]

    Hints:
        - ``torch.arange(t_q)[:, None]`` is a column (Tq, 1) and ``torch.arange(t_k)[None, :]`` a row
          (1, Tk); comparing them broadcasts to (Tq, Tk).
        - Or: ``torch.ones(t_q, t_k, dtype=torch.bool).tril(diagonal=...)``; which diagonal?
        - The result's dtype must be ``torch.bool``.
    """
    raise NotImplementedError("compare key positions with (shifted) query positions")


def padding_bias(attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, Tk) of 1 = real token, 0 = padding  ->  additive float32 bias (B, 1, 1, Tk).

    The bias is 0.0 at real tokens and ``torch.finfo(torch.float32).min`` (the most negative finite
    float32) at padding. The two middle dimensions of size 1 let it broadcast over heads and queries.

    Why the most negative *finite* number rather than -inf: a query whose keys are all padding then
    gets equal weights instead of 0/0 = NaN (its output is thrown away anyway).

    Example:
        padding_bias(torch.tensor([[1, 1, 0]]))  ->  shape (1, 1, 1, 3): [[[[0., 0., -3.4028e+38]]]]

    Hints: ``torch.zeros(...)``, ``.masked_fill(condition, value)``, ``x[:, None, None, :]``.
    """
    raise NotImplementedError("0 where attention_mask is 1, finfo(float32).min where it is 0")
