"""Span corruption: T5's pretraining objective (Raffel et al. 2020, §3.1.4 and §3.3.4).

About 15% of the tokens are dropped in contiguous spans of mean length 3. Each span is replaced in
the input by a sentinel token (``<extra_id_0>``, ``<extra_id_1>``, ...); the target lists each
sentinel followed by the tokens it hid:

    original: Thank you for inviting me to your party last week .
    input:    Thank you <X> me to your party <Y> week . </s>
    target:   <X> for inviting <Y> last </s>

The spans are placed the way the T5 code's ``random_spans_noise_mask`` places them: the number of
noise tokens is ``round(length * noise_density)``, the number of spans
``round(noise_tokens / mean_noise_span_length)``; the noise tokens and the kept tokens are each cut
into that many non-empty runs at random, and the runs alternate, starting with kept tokens (so the
sequence always ends with a noise span). Because the counts are fixed by the length, a sequence of
``tokens_length`` tokens always gives inputs and targets of the same lengths, which
``compute_span_corruption_lengths`` works out in advance so batches pack to fixed shapes.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from minitransformer.checks import check_int, check_number

IGNORE_INDEX = -100


def _random_segmentation(num_items: int, num_segments: int, generator: torch.Generator | None) -> list[int]:
    """Cut ``num_items`` items into ``num_segments`` non-empty runs at random; the run lengths.

    Every way of cutting is equally likely: choose ``num_segments - 1`` distinct cut points among
    the ``num_items - 1`` gaps between items.
    """
    cuts = torch.randperm(num_items - 1, generator=generator)[: num_segments - 1].sort().values.tolist()
    bounds = [0, *(c + 1 for c in cuts), num_items]
    return [bounds[k + 1] - bounds[k] for k in range(num_segments)]


def _noise_counts(length: int, noise_density: float, mean_noise_span_length: float) -> tuple[int, int]:
    """(noise tokens, noise spans) for a sequence of ``length >= 2`` tokens, as T5 counts them.

    At least one token is noise and one kept, and there is at least one span. Where T5 would ask
    for more spans than there are noise (or kept) tokens, leaving some runs empty so that spans
    merge, we cap the number of spans instead, so every span is a real, separate span.
    """
    num_noise = min(max(round(length * noise_density), 1), length - 1)
    num_spans = max(round(num_noise / mean_noise_span_length), 1)
    return num_noise, min(num_spans, num_noise, length - num_noise)


def _check_noise_settings(noise_density: float, mean_noise_span_length: float) -> None:
    check_number("noise_density", noise_density, 0, 1, low_open=True, high_open=True)
    check_number("mean_noise_span_length", mean_noise_span_length, 1, 1e6)  # longer spans: seconds of looping


def random_spans_noise_mask(
    length: int,
    noise_density: float = 0.15,
    mean_noise_span_length: float = 3.0,
    generator: torch.Generator | None = None,
) -> list[bool]:
    """Which of ``length`` positions are noise (to be hidden), as T5 chooses them.

    At least one token is noise and at least one is kept (for ``length >= 2``); the runs start with
    kept tokens and end with noise. A sequence of one token is never corrupted.
    """
    check_int("length", length, 0)
    _check_noise_settings(noise_density, mean_noise_span_length)
    original_length = length
    length = max(length, 2)  # as in T5: one token is treated as two, then cut back below
    num_noise, num_spans = _noise_counts(length, noise_density, mean_noise_span_length)
    num_kept = length - num_noise
    noise_lengths = _random_segmentation(num_noise, num_spans, generator)
    kept_lengths = _random_segmentation(num_kept, num_spans, generator)
    mask: list[bool] = []
    for kept, noise in zip(kept_lengths, noise_lengths, strict=True):
        mask += [False] * kept + [True] * noise
    return mask[:original_length]


def _spans_to_sentinels(ids: Sequence[int], hide: list[bool], sentinel_ids: Sequence[int]) -> list[int]:
    """Replace every run of hidden positions by the next sentinel; keep the rest."""
    out: list[int] = []
    k = 0
    for pos, token in enumerate(ids):
        if not hide[pos]:
            out.append(token)
        elif pos == 0 or not hide[pos - 1]:
            out.append(sentinel_ids[k])
            k += 1
    return out


def span_corruption(
    ids: Sequence[int] | torch.Tensor,
    noise_density: float = 0.15,
    mean_noise_span_length: float = 3.0,
    sentinel_ids: Sequence[int] | None = None,
    eos_id: int | None = None,
    generator: torch.Generator | None = None,
) -> tuple[list[int], list[int]]:
    """T5 span corruption of one 1-D id sequence -> ``(inputs, targets)`` lists.

    inputs: the kept tokens with each hidden span replaced by the next sentinel
        (``sentinel_ids[0]``, ``sentinel_ids[1]``, ...), then ``eos_id``.
    targets: each sentinel followed by the tokens it hid, then ``eos_id``.
    ``reconstruct(inputs, targets, sentinel_ids, eos_id)`` gives ``ids`` back exactly.

    ``sentinel_ids`` and ``eos_id`` come from the tokenizer (they are required). ``ids`` should
    not end with ``eos_id`` already (it is appended here) and must not contain sentinel ids.
    Raises ValueError if there are fewer sentinels than spans.
    """
    if sentinel_ids is None or eos_id is None:
        raise ValueError("span_corruption needs sentinel_ids and eos_id (from the tokenizer, e.g. the ids of "
                         "<extra_id_0>, <extra_id_1>, ... and </s>)")
    if isinstance(ids, torch.Tensor):
        if ids.dim() != 1:
            raise ValueError(f"ids must be 1-D, got shape {tuple(ids.shape)}")
        ids = ids.tolist()
    # each id an integer >= 0: int(3.7) would quietly make a token 3
    ids = [check_int("ids", t, 0) for t in ids]
    sentinel_ids = [check_int("sentinel_ids", t, 0) for t in sentinel_ids]
    eos_id = check_int("eos_id", eos_id, 0)
    if len(set(sentinel_ids)) != len(sentinel_ids) or eos_id in sentinel_ids:
        raise ValueError("sentinel_ids must be distinct ids, none of them eos_id")
    noise = random_spans_noise_mask(len(ids), noise_density, mean_noise_span_length, generator)
    num_spans = sum(1 for pos, n in enumerate(noise) if n and (pos == 0 or not noise[pos - 1]))
    if num_spans > len(sentinel_ids):
        raise ValueError(f"{len(ids)} tokens at noise_density={noise_density}, mean_noise_span_length="
                         f"{mean_noise_span_length} need {num_spans} sentinel ids, got {len(sentinel_ids)}")
    reserved = set(sentinel_ids) | {eos_id}
    if any(t in reserved for t in ids):
        raise ValueError("ids must not contain sentinel ids or eos_id (the output could not be told apart "
                         "from a masked span or an end)")

    inputs = _spans_to_sentinels(ids, noise, sentinel_ids) + [eos_id]
    # The target is the mirror image: the kept runs become sentinels. Since the sequence starts with
    # kept tokens, the k-th kept run's sentinel comes right before the k-th noise span.
    targets = _spans_to_sentinels(ids, [not n for n in noise], sentinel_ids) if num_spans else []
    return inputs, targets + [eos_id]


def reconstruct(inputs: Sequence[int], targets: Sequence[int], sentinel_ids: Sequence[int], eos_id: int) -> list[int]:
    """Undo ``span_corruption``: put each sentinel's hidden tokens back in its place in the input.

    Raises ValueError on a malformed pair (a missing eos, sentinels out of order or unmatched).
    """
    if not inputs or inputs[-1] != eos_id or not targets or targets[-1] != eos_id:
        raise ValueError("inputs and targets must each end with eos_id")
    position = {int(s): k for k, s in enumerate(sentinel_ids)}
    hidden: list[list[int]] = []            # hidden[k]: the tokens behind sentinel k
    for token in targets[:-1]:
        if token in position:
            if position[token] != len(hidden):
                raise ValueError(f"target sentinels out of order at sentinel id {token}")
            hidden.append([])
        elif not hidden:
            raise ValueError("targets must start with a sentinel")
        else:
            hidden[-1].append(token)
    out: list[int] = []
    used = 0
    for token in inputs[:-1]:
        if token in position:
            if position[token] != used or used >= len(hidden):
                raise ValueError(f"input sentinel id {token} does not match the targets")
            out.extend(hidden[used])
            used += 1
        else:
            out.append(token)
    if used != len(hidden):
        raise ValueError(f"targets hold {len(hidden)} spans but inputs only {used} sentinels")
    return out


def compute_span_corruption_lengths(
    inputs_length: int, noise_density: float = 0.15, mean_noise_span_length: float = 3.0
) -> tuple[int, int]:
    """``(tokens_length, targets_length)`` for packed batches, computed as T5's ``random_spans_helper``.

    ``tokens_length`` is the longest raw sequence whose corrupted input (kept tokens + one sentinel
    per span + eos) still fits in ``inputs_length``; ``targets_length`` is the length of its target
    (noise tokens + one sentinel per span + eos). For example 512 -> (568, 114) at the defaults,
    the figures of the T5 paper's setting. The counts are those ``span_corruption`` uses, so the
    result is exact; it equals T5's except for tiny inputs, where T5 allows zero spans.
    """
    check_int("inputs_length (a token, a sentinel and eos at least)", inputs_length, 3)
    _check_noise_settings(noise_density, mean_noise_span_length)

    def lengths(tokens_length: int) -> tuple[int, int]:
        num_noise, num_spans = _noise_counts(tokens_length, noise_density, mean_noise_span_length)
        return tokens_length - num_noise + num_spans + 1, num_noise + num_spans + 1

    tokens_length = inputs_length - 1
    while lengths(tokens_length + 1)[0] <= inputs_length:
        tokens_length += 1
    _, targets_length = lengths(tokens_length)
    # T5's small adjustment: at density 0.5 keep the targets no longer than the inputs.
    if noise_density == 0.5 and targets_length > inputs_length:
        tokens_length -= 1
        targets_length -= 1
    return tokens_length, targets_length


def span_corruption_batch(
    ids: Sequence[int] | torch.Tensor,
    inputs_length: int,
    sentinel_ids: Sequence[int],
    eos_id: int,
    pad_id: int,
    noise_density: float = 0.15,
    mean_noise_span_length: float = 3.0,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut a long id stream into rows of ``tokens_length`` tokens and corrupt each row.

    Returns ``input_ids`` (N, inputs_length) and ``labels`` (N, targets_length), with the lengths
    from ``compute_span_corruption_lengths``; a leftover shorter than ``tokens_length`` is dropped.
    Rows shorter than the fixed shape (only possible in corner cases such as density 0.5) are padded
    with ``pad_id`` in the inputs and -100 in the labels (ignored by the loss).
    """
    if isinstance(ids, torch.Tensor):
        ids = ids.reshape(-1).tolist()
    tokens_length, targets_length = compute_span_corruption_lengths(inputs_length, noise_density,
                                                                    mean_noise_span_length)
    n_rows = len(ids) // tokens_length
    if n_rows == 0:
        raise ValueError(f"need at least {tokens_length} ids for one row of inputs_length={inputs_length}, "
                         f"got {len(ids)}")
    input_ids = torch.full((n_rows, inputs_length), pad_id, dtype=torch.long)        # (N, inputs_length)
    labels = torch.full((n_rows, targets_length), IGNORE_INDEX, dtype=torch.long)     # (N, targets_length)
    for row in range(n_rows):
        inputs, targets = span_corruption(ids[row * tokens_length:(row + 1) * tokens_length], noise_density,
                                          mean_noise_span_length, sentinel_ids, eos_id, generator)
        input_ids[row, : len(inputs)] = torch.tensor(inputs)
        labels[row, : len(targets)] = torch.tensor(targets)
    return input_ids, labels
