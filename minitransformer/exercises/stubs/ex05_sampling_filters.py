"""Exercise 5: top-k and top-p (nucleus) filtering for sampling.

Tutorial: tutorials/03_gpt.py. Papers: Fan et al. 2018, "Hierarchical Neural Story Generation"
(top-k sampling); Holtzman et al. 2020, "The Curious Case of Neural Text Degeneration", §3.1
(nucleus sampling).

A language model gives one logit per vocabulary entry for the next token. Sampling from all of
them lets the long tail of unlikely tokens in now and then, and text derails. Both filters cut
the tail before sampling by setting the logits outside the kept set to ``-inf`` (probability 0
after the softmax):

- top-k keeps the k largest logits;
- top-p keeps the smallest set of most likely tokens whose probabilities add up to at least p.
  Its size adapts: few tokens when the model is sure, many when it is not.

When you are done:   minitransformer exercises check 5
"""
from __future__ import annotations

import torch


def filter_top_k(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k`` largest logits in each row, set all others to ``float("-inf")``.

    Args:
        logits: (..., V), any number of leading dimensions; the last one is the vocabulary.
        k: 1 <= k; if k >= V nothing is removed.

    Returns:
        a new tensor of the same shape (do not modify ``logits`` in place); kept entries keep their
        values exactly.

    Hints: ``torch.topk(logits, k, dim=-1)`` gives the values and indices of the k largest; either
    compare with the k-th largest value, or build a tensor of -inf and ``scatter`` the kept values back.
    (The checks use logits without ties.)
    """
    raise NotImplementedError("keep the k largest logits of each row")


def filter_top_p(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filtering: keep the most likely tokens until their probabilities add up to ``p``.

    Precisely: sort the tokens by probability (softmax of the row), most likely first. A token is
    kept if the total probability of the tokens ranked *above* it is still below ``p``
    (``mass_before < p``). So the most likely token is always kept, and so is the token that
    carries the sum over p. All others become ``-inf``.

    Args:
        logits: (..., V).
        p: 0 < p <= 1; p = 1 keeps everything.

    Returns:
        a new tensor of the same shape, kept entries unchanged.

    Example:
        probabilities [0.5, 0.3, 0.15, 0.05] with p = 0.7: masses before are [0, 0.5, 0.8, 0.95]
        -> keep the first two.

    Hints:
        - ``torch.sort(logits, dim=-1, descending=True)`` returns the sorted values and the order.
        - ``probs.cumsum(dim=-1) - probs`` is the mass before each sorted token.
        - To go back from sorted order to vocabulary order, ``scatter`` with the order
          (or index a tensor of the original positions).
        - Return early when p >= 1: in floating point the running sum may reach 1.0 before the
          last token, which would wrongly drop it.
    """
    raise NotImplementedError("sort, softmax, cumulative sum, keep while the mass before is < p")
