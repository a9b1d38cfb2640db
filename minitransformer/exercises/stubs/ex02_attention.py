"""Exercise 2: scaled dot-product attention.

Tutorial: tutorials/02_attention.py. Paper: Vaswani et al. 2017, "Attention Is All You Need",
§3.2.1, equation (1):

    Attention(Q, K, V) = softmax(Q Kᵀ / √d_k) V

Every query scores every key with a dot product; the scores are divided by √d_k so their spread
does not grow with the head size (§3.2.1, footnote 4), turned into weights by a softmax over the
keys, and the weights average the values.

When you are done:   minitransformer exercises check 2
"""
from __future__ import annotations

import torch


def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention of every query over all keys; returns the output and the attention weights.

    Args:
        q: queries (B, h, Tq, d): batch, heads, query positions, head size.
        k: keys (B, h, Tk, d).
        v: values (B, h, Tk, d_v).
        mask: None, or a bool tensor broadcastable to (B, h, Tq, Tk), e.g. (Tq, Tk):
            True where a query MAY attend to a key, False where it must not. Every query may
            attend to at least one key.

    Returns:
        out: (B, h, Tq, d_v), the weighted average of the values for each query.
        weights: (B, h, Tq, Tk), the softmax weights; each row sums to 1 and is exactly 0 at
            masked keys.
        Both in the dtype of q (float32 here).

    Hints:
        - ``k.transpose(-2, -1)`` turns (B, h, Tk, d) into (B, h, d, Tk); ``@`` multiplies the
          last two dimensions and broadcasts the rest.
        - d is ``q.shape[-1]``; scale by ``1 / math.sqrt(d)``.
        - Masking: before the softmax set the forbidden scores to a huge negative number
          (``scores.masked_fill(~mask, float("-inf"))`` or ``torch.finfo(scores.dtype).min``);
          exp of it is 0.
        - The softmax runs over the keys: ``torch.softmax(scores, dim=-1)``.
    """
    raise NotImplementedError("scores = q kᵀ / √d, mask, softmax over keys, weights @ v")
