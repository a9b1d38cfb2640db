"""Exercise 6: BERT's masked-language-model corruption (15% selected; 80/10/10).

Tutorial: tutorials/04_bert.py. Paper: Devlin et al. 2019, "BERT", §3.1 (Task #1: Masked LM) and
Appendix C.2 (why not always [MASK]).

BERT learns by filling in blanks. For each sequence:

1. select each eligible position with probability ``mlm_probability`` (15%); special tokens
   ([CLS], [SEP], [PAD], ...) are never selected;
2. of the selected positions, replace 80% by [MASK], 10% by a random token id in [0, vocab_size),
   and leave 10% unchanged (decided independently for each selected position). The model cannot
   tell which unmasked tokens are originals, so it must keep a good representation of every token;
3. the labels are the original ids at the selected positions and -100 everywhere else (-100 is
   the ``ignore_index`` of ``torch.nn.functional.cross_entropy``: the loss skips those positions).

The checks cannot compare random draws with the library's, so they compare *behaviour*: what is
never touched, what the labels hold, and the rates (15%, then 80/10/10) on a large batch.

When you are done:   minitransformer exercises check 6
"""
from __future__ import annotations

from collections.abc import Iterable

import torch


def mask_tokens(
    input_ids: torch.Tensor,
    vocab_size: int,
    mask_token_id: int,
    special_token_ids: Iterable[int],
    mlm_probability: float = 0.15,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T) long ids -> (corrupted ids (B, T), labels (B, T) long).

    Args:
        input_ids: (B, T) token ids; do NOT modify this tensor (work on a ``clone()``).
        vocab_size: V; random replacements are drawn uniformly from [0, V).
        mask_token_id: the id of [MASK].
        special_token_ids: ids that must never be selected.
        mlm_probability: the chance that an eligible position is selected.
        generator: pass it to every random call (``torch.rand(..., generator=generator)``,
            ``torch.randint(..., generator=generator)``), so the same seed gives the same result.

    Returns:
        ids: a copy of input_ids, corrupted at the selected positions as described above.
        labels: the original id where selected, -100 elsewhere; dtype torch.long.

    Hints:
        - ``torch.isin(input_ids, torch.tensor(list(special_token_ids)))`` finds special tokens.
        - ``torch.rand(shape, generator=generator) < p`` is a bool tensor, True with probability p.
        - One more uniform draw per position splits the selected ones: < 0.8 -> [MASK],
          0.8 .. 0.9 -> random id, >= 0.9 -> unchanged.
        - Boolean tensors combine with ``&`` and ``~``; ``torch.where(cond, a, b)`` picks elementwise.
    """
    raise NotImplementedError("select 15%, then 80% [MASK] / 10% random / 10% unchanged, labels -100 elsewhere")
