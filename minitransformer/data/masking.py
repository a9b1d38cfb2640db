"""Masked language modelling (MLM): BERT's corruption of the input (Devlin et al. 2019, §3.1 Task #1).

A fraction ``mlm_probability`` (15%) of the eligible positions is selected for prediction. Of the
selected positions 80% are replaced by ``[MASK]``, 10% by a random token and 10% are left as they
are, so the model cannot rely on ``[MASK]`` being present at fine-tuning time (§3.1 and App. C.2).
The loss is computed only at selected positions: labels hold the original id there and -100
(``cross_entropy``'s ignore index) everywhere else.

Dynamic masking (RoBERTa, Liu et al. 2019, §4.1): call ``mask_tokens`` afresh for every batch of
every epoch, so the model sees a new mask each time it sees a sentence. BERT's original "static"
masking masked each sequence once during preprocessing (duplicated 10 times with different masks).

Whole-word masking (the later BERT release's ``--do_whole_word_mask``): pass ``word_starts``, a
boolean tensor that is True where a token begins a word; then whole words are selected, each with
probability ``mlm_probability``, and all their tokens are predicted. For WordPiece, a token begins a
word unless it starts with ``##`` (see ``wordpiece_word_starts``).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch

IGNORE_INDEX = -100  # labels at positions that do not count in the loss


def wordpiece_word_starts(tokens: Sequence[str]) -> list[bool]:
    """Word-start flags for WordPiece tokens: ``["play", "##ing", "now"] -> [True, False, True]``."""
    return [not token.startswith("##") for token in tokens]


def mask_tokens(
    input_ids: torch.Tensor,
    vocab_size: int,
    mask_token_id: int,
    special_token_ids: Iterable[int],
    mlm_probability: float = 0.15,
    generator: torch.Generator | None = None,
    attention_mask: torch.Tensor | None = None,
    word_starts: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's MLM corruption: ``input_ids`` (B, T) or (T,) -> (new ids, labels), same shape.

    Args:
        input_ids: integer ids in ``[0, vocab_size)``; not modified.
        vocab_size: V; random replacements are drawn uniformly from ``[0, V)``.
        mask_token_id: the id of ``[MASK]``.
        special_token_ids: ids never selected ([CLS], [SEP], [PAD], ...).
        mlm_probability: the chance that an eligible token (or word) is selected.
        generator: a ``torch.Generator`` for reproducible masks (the same seed gives the same
            output); its device is where the random numbers are drawn.
        attention_mask: optional, same shape; positions where it is 0 (padding) are never selected.
        word_starts: optional bool, same shape: True where a token starts a word (whole-word masking).
            Tokens before the first start of a row form a word of their own.

    Returns:
        ids: a copy of ``input_ids`` with the selected positions corrupted (80% ``[MASK]``, 10% a
            random id, 10% unchanged, decided per token); unselected positions unchanged.
        labels: the original id at the selected positions, -100 elsewhere (int64).
    """
    if not isinstance(input_ids, torch.Tensor):
        raise TypeError(f"input_ids must be a torch.Tensor, got {type(input_ids).__name__}")
    if input_ids.dtype not in (torch.int64, torch.int32):  # a narrower type would wrap random ids
        raise TypeError(f"input_ids must hold integer ids of dtype torch.long (or torch.int32), got {input_ids.dtype}")
    for name, value in (("vocab_size", vocab_size), ("mask_token_id", mask_token_id)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an integer, got {value!r}")
    if input_ids.dim() not in (1, 2):
        raise ValueError(f"input_ids must be (B, T) or (T,), got shape {tuple(input_ids.shape)}")
    if vocab_size < 1:
        raise ValueError(f"vocab_size must be >= 1, got {vocab_size}")
    if not 0 <= mask_token_id < vocab_size:
        raise ValueError(f"mask_token_id {mask_token_id} is outside the vocabulary [0, {vocab_size})")
    if not 0.0 <= mlm_probability <= 1.0:
        raise ValueError(f"mlm_probability must be in [0, 1], got {mlm_probability}")
    if input_ids.numel() and (int(input_ids.min()) < 0 or int(input_ids.max()) >= vocab_size):
        raise ValueError(f"input_ids must lie in [0, {vocab_size}); got values in "
                         f"[{int(input_ids.min())}, {int(input_ids.max())}]")
    for name, extra in (("attention_mask", attention_mask), ("word_starts", word_starts)):
        if extra is not None and extra.shape != input_ids.shape:
            raise ValueError(f"{name} must have the shape of input_ids {tuple(input_ids.shape)}, "
                             f"got {tuple(extra.shape)}")

    squeeze = input_ids.dim() == 1
    ids = input_ids.unsqueeze(0) if squeeze else input_ids  # (B, T)
    device = ids.device
    rng_device = generator.device if generator is not None else device

    # Which positions may be selected: not special, not padding.
    special = torch.tensor(sorted(set(int(i) for i in special_token_ids)), dtype=ids.dtype, device=device)
    eligible = ~torch.isin(ids, special)                                  # (B, T)
    if attention_mask is not None:
        eligible &= attention_mask.reshape(ids.shape).to(device) != 0

    # Word index of every token (each token is its own word unless word_starts says otherwise).
    if word_starts is None:
        word_index = torch.arange(ids.shape[1], device=device).expand_as(ids)
    else:
        starts = word_starts.reshape(ids.shape).to(device=device, dtype=torch.long)
        word_index = starts.cumsum(dim=1)                                   # (B, T), in [0, T]

    # Select each word with probability p; a token is selected when its word is (and it is eligible).
    B, T = ids.shape
    word_draw = torch.rand((B, T + 1), generator=generator, device=rng_device).to(device)
    selected = (word_draw < mlm_probability).gather(1, word_index) & eligible   # (B, T)

    # 80 / 10 / 10 among the selected tokens.
    action = torch.rand(ids.shape, generator=generator, device=rng_device).to(device)
    random_ids = torch.randint(0, vocab_size, ids.shape, generator=generator, device=rng_device)
    to_mask = selected & (action < 0.8)
    to_random = selected & (action >= 0.8) & (action < 0.9)

    new_ids = ids.clone()
    new_ids[to_mask] = mask_token_id
    new_ids[to_random] = random_ids.to(device=device, dtype=ids.dtype)[to_random]
    labels = torch.where(selected, ids.long(), torch.full_like(ids, IGNORE_INDEX, dtype=torch.long))

    if squeeze:
        return new_ids.squeeze(0), labels.squeeze(0)
    return new_ids, labels
