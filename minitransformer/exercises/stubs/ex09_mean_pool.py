"""Exercise 9: one vector per sentence: the mean of its token vectors, padding left out.

Tutorial: tutorials/04_bert.py (sentence embeddings, and fine-tuning a classifier). Paper: Reimers &
Gurevych 2019, "Sentence-BERT", §3 (mean pooling).

An encoder gives one vector per token, (B, T, C). A classifier, or a search by similarity, needs one
vector per text. BERT's own answer is the [CLS] token's vector (through its pooler); sentence
encoders such as all-MiniLM-L6-v2 average the token vectors instead, and so does
``minitransformer finetune bert`` for an encoder without a pooler.

The catch is padding: a batch pads its shorter texts to the longest, and the padded positions
still get vectors (meaningless ones). The mean must be over the *real* tokens only, so that a text's
vector does not depend on what else is in its batch: padding invariance.

The checks compare your function with ``minitransformer.embedding_search.mean_pool``.

When you are done:   minitransformer exercises check 9
"""
from __future__ import annotations

import torch


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, T, C) token vectors and a (B, T) mask (1 = real token, 0 = padding) -> (B, C) means.

    Row b is the average of ``hidden[b, t]`` over the positions t where ``attention_mask[b, t] == 1``.
    A row with no real token at all gives zeros (not NaN). Same dtype as ``hidden``.

    Example: hidden [[[1., 1.], [3., 5.], [100., 100.]]], mask [[1, 1, 0]] -> [[2., 3.]].

    Hints:
        - ``attention_mask.unsqueeze(-1).to(hidden.dtype)`` is (B, T, 1): multiplying by it zeroes
          the padded vectors.
        - Sum over the T dimension, and divide by the number of real tokens (the mask's sum).
        - ``.clamp(min=1e-9)`` on the count keeps an all-padding row from dividing by zero.
    """
    raise NotImplementedError("zero the padded vectors, sum over T, divide by the number of real tokens")
