"""Exercise 8: give a model room for new tokens: grow its embedding table.

Tutorial: tutorials/01_tokenization.py ("Adding tokens later"). Paper: Hewitt 2021, "Initializing
New Word Embeddings for Pretrained Language Models".

After ``tokenizer.add_tokens([...])`` the tokenizer has ids the model has no row for. The model's
token embedding (V, C) must become (V', C): the V old rows unchanged (the model has learned them),
and one new row per new id. What should a new row hold? With a tied LM head the same matrix
scores every token: score(token i) = h · E[i]. If every new row is the *mean* of the old rows, a new
token's score is h · mean(E) = the average of the old tokens' scores, for every hidden state h. So
until it is trained, a new token gets no more probability than an average old token. (A random
row could score far above every real token, and the model would start writing the new token
everywhere.)

The same function must also serve a bias (V,) -> (V',) (BERT's MLM head has one per token), and
shrink a table (V' < V keeps the first V' rows: the tokens added last are dropped).

The checks compare your table with ``minitransformer.nn.resize_vocab_rows`` on random tables.

When you are done:   minitransformer exercises check 8
"""
from __future__ import annotations

import torch


def grow_vocabulary(table: torch.Tensor, new_vocab_size: int) -> torch.Tensor:
    """A (V, C) matrix or a (V,) bias -> a NEW tensor with ``new_vocab_size`` rows, same dtype.

    Rows 0..min(V, V')-1 equal the old rows; every row after V (when growing) equals the mean of
    the V old rows. ``table`` itself must not change.

    Example: table [[1., 2.], [3., 4.]] and new_vocab_size 3 -> [[1., 2.], [3., 4.], [2., 3.]].

    Hints:
        - ``table[:new_vocab_size]`` is the part you keep (growing or shrinking).
        - ``table.mean(dim=0)`` is the mean row: shape (C,) for a matrix, () for a bias. Average in
          float32 (``dtype=torch.float32``), then ``.to(table.dtype)``: a bfloat16 sum of many rows
          would lose digits.
        - ``mean.expand(k, *table.shape[1:])`` repeats it k times without copying;
          ``torch.cat([...])`` makes the new tensor.
    """
    raise NotImplementedError("keep the old rows, append (new_vocab_size - V) copies of their mean")
