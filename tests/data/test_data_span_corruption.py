"""T5 span corruption: exact reconstruction, span statistics, fixed lengths for packed batches."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from minitransformer.data.span_corruption import (
    compute_span_corruption_lengths,
    random_spans_noise_mask,
    reconstruct,
    span_corruption,
    span_corruption_batch,
)

EOS, PAD = 1, 0
SENTINELS = list(range(32_099, 31_999, -1))   # like T5: <extra_id_0> is the last id, then downwards


def spans(mask: list[bool]) -> list[tuple[int, int]]:
    """(start, end) of each run of True."""
    out, start = [], None
    for i, m in enumerate([*mask, False]):
        if m and start is None:
            start = i
        elif not m and start is not None:
            out.append((start, i))
            start = None
    return out


@given(
    ids=st.lists(st.integers(2, 31_999), max_size=300),
    noise_density=st.floats(0.05, 0.9),
    mean_span=st.floats(1.0, 10.0),
    seed=st.integers(0, 2**16),
)
def test_inputs_and_targets_give_back_the_original_exactly(ids, noise_density, mean_span, seed):
    g = torch.Generator().manual_seed(seed)
    inputs, targets = span_corruption(ids, noise_density, mean_span, SENTINELS, EOS, g)
    assert reconstruct(inputs, targets, SENTINELS, EOS) == ids
    assert inputs[-1] == EOS and targets[-1] == EOS
    in_sentinels = [t for t in inputs if t in SENTINELS]
    tgt_sentinels = [t for t in targets if t in SENTINELS]
    assert in_sentinels == tgt_sentinels == SENTINELS[: len(in_sentinels)]   # in order, each once
    # every original token appears exactly once: kept in the input or hidden in the target
    kept, hidden = len(inputs) - 1 - len(in_sentinels), len(targets) - 1 - len(tgt_sentinels)
    assert kept + hidden == len(ids)
    if len(ids) >= 2:
        assert len(in_sentinels) >= 1 and kept >= 1


@given(length=st.integers(0, 400), noise_density=st.floats(0.01, 0.99), mean_span=st.floats(1.0, 20.0),
       seed=st.integers(0, 2**16))
def test_noise_mask_counts_follow_t5(length, noise_density, mean_span, seed):
    mask = random_spans_noise_mask(length, noise_density, mean_span, torch.Generator().manual_seed(seed))
    assert len(mask) == length
    if length < 2:
        assert not any(mask)
        return
    n_noise = min(max(round(length * noise_density), 1), length - 1)
    n_spans = min(max(round(n_noise / mean_span), 1), n_noise, length - n_noise)
    assert sum(mask) == n_noise
    assert len(spans(mask)) == n_spans          # separate spans: no two merged into one
    assert not mask[0] and mask[-1]             # kept first, noise last, as in T5


def test_noise_fraction_and_mean_span_length_over_many_sequences():
    g = torch.Generator().manual_seed(0)
    n_tokens = n_noise = 0
    span_lengths: list[int] = []
    position_noise = [0] * 100
    for _ in range(400):
        length = int(torch.randint(50, 400, (), generator=g))
        mask = random_spans_noise_mask(length, 0.15, 3.0, g)
        n_tokens += length
        n_noise += sum(mask)
        span_lengths += [e - s for s, e in spans(mask)]
        for i, m in enumerate(mask[:100]):
            position_noise[i] += m
    assert abs(n_noise / n_tokens - 0.15) < 0.005                   # rounding per sequence only
    assert abs(sum(span_lengths) / len(span_lengths) - 3.0) < 0.15
    assert max(span_lengths) > 6 and min(span_lengths) == 1        # lengths vary, as a random segmentation does
    # spans are spread over the sequence: away from the ends every position is noise ~15% of the time
    for count in position_noise[10:100]:
        assert abs(count - 400 * 0.15) <= 5 * math.sqrt(400 * 0.15 * 0.85)


def test_the_docstring_example_shape():
    ids = list(range(100, 110))
    inputs, targets = span_corruption(ids, 0.2, 1.0, SENTINELS, EOS, torch.Generator().manual_seed(3))
    # 10 tokens at density 0.2: 2 noise tokens in 2 spans of one token each
    assert len(inputs) == 8 + 2 + 1 and len(targets) == 2 + 2 + 1
    assert targets[0] == SENTINELS[0] and targets[2] == SENTINELS[1]


def test_published_lengths_for_t5_pretraining():
    # T5 (and Hugging Face's run_t5_mlm_flax example) pack 568 raw tokens into 512 inputs and 114 targets
    assert compute_span_corruption_lengths(512, 0.15, 3.0) == (568, 114)


@given(inputs_length=st.integers(8, 600), noise_density=st.sampled_from([0.1, 0.15, 0.3]),
       mean_span=st.sampled_from([2.0, 3.0, 5.0]), seed=st.integers(0, 100))
def test_lengths_match_compute_span_corruption_lengths(inputs_length, noise_density, mean_span, seed):
    tokens_length, targets_length = compute_span_corruption_lengths(inputs_length, noise_density, mean_span)
    g = torch.Generator().manual_seed(seed)
    inputs, targets = span_corruption(list(range(2, 2 + tokens_length)), noise_density, mean_span, SENTINELS, EOS, g)
    assert (len(inputs), len(targets)) == (inputs_length, targets_length)
    longer, _ = span_corruption(list(range(2, 3 + tokens_length)), noise_density, mean_span, SENTINELS, EOS, g)
    assert len(longer) > inputs_length          # tokens_length is the most that fits


def test_batch_rows_have_fixed_shapes_and_reconstruct():
    stream = [int(t) for t in torch.randint(2, 32_000, (5_000,), generator=torch.Generator().manual_seed(0))]
    g = torch.Generator().manual_seed(1)
    input_ids, labels = span_corruption_batch(stream, 64, SENTINELS, EOS, PAD, generator=g)
    tokens_length, targets_length = compute_span_corruption_lengths(64)
    assert input_ids.shape == (5_000 // tokens_length, 64) and labels.shape == (5_000 // tokens_length, targets_length)
    for row in range(input_ids.shape[0]):
        original = reconstruct(input_ids[row].tolist(), labels[row].tolist(), SENTINELS, EOS)
        assert original == stream[row * tokens_length:(row + 1) * tokens_length]
    again, _ = span_corruption_batch(torch.tensor(stream), 64, SENTINELS, EOS, PAD, generator=torch.Generator().manual_seed(1))
    assert torch.equal(again, input_ids)


def test_density_one_half_keeps_targets_within_inputs_length():
    # T5's adjustment at density 0.5: one raw token fewer so that targets fit in inputs_length.
    # By hand: 23 tokens -> 12 noise in round(12/3)=4 spans -> inputs 11+4+1=16, targets 12+4+1=17 > 16;
    # 22 tokens -> 11 noise, 4 spans -> inputs 16, targets 16.
    tokens_length, targets_length = compute_span_corruption_lengths(16, 0.5, 3.0)
    assert (tokens_length, targets_length) == (22, 16)
    stream = list(range(2, 2 + 3 * tokens_length))
    input_ids, labels = span_corruption_batch(stream, 16, SENTINELS, EOS, PAD, noise_density=0.5,
                                              generator=torch.Generator().manual_seed(0))
    assert input_ids.shape == (3, 16) and labels.shape == (3, 16)
    for row in range(3):
        inputs = [t for t in input_ids[row].tolist() if t != PAD]
        targets = [t for t in labels[row].tolist() if t != -100]
        assert reconstruct(inputs, targets, SENTINELS, EOS) == stream[row * 22:(row + 1) * 22]


def test_errors():
    ids = list(range(2, 202))   # 200 tokens: 30 noise tokens in 10 spans
    with pytest.raises(ValueError, match="need 10 sentinel ids, got 5"):
        span_corruption(ids, 0.15, 3.0, SENTINELS[:5], EOS)
    with pytest.raises(ValueError, match="sentinel_ids and eos_id"):
        span_corruption(ids)
    with pytest.raises(ValueError, match="must not contain sentinel ids"):
        span_corruption([5, SENTINELS[0], 6], 0.5, 1.0, SENTINELS, EOS)
    with pytest.raises(ValueError, match="must not contain sentinel ids or eos_id"):
        span_corruption([5, EOS, 6], 0.5, 1.0, SENTINELS, EOS)
    with pytest.raises(ValueError, match="ids must be an integer >= 0, got 3.7"):
        span_corruption([3.7, 4.2, 5.9, 6.1], 0.5, 1.0, SENTINELS, EOS)  # used to become 3, 4, 5, 6
    with pytest.raises(ValueError, match="distinct"):
        span_corruption(ids, 0.15, 3.0, [SENTINELS[0]] * 10, EOS)
    from_numpy = span_corruption(np.arange(2, 30), 0.5, 3.0, SENTINELS, EOS, torch.Generator().manual_seed(0))
    assert from_numpy == span_corruption(list(range(2, 30)), 0.5, 3.0, SENTINELS, EOS,
                                         torch.Generator().manual_seed(0))  # numpy integers are ids too
    with pytest.raises(ValueError, match="noise_density"):
        span_corruption(ids, 1.5, 3.0, SENTINELS, EOS)
    with pytest.raises(ValueError, match="mean_noise_span_length"):
        span_corruption(ids, 0.15, float("nan"), SENTINELS, EOS)  # used to fail inside int(NaN)
    with pytest.raises(ValueError, match="inputs_length"):
        compute_span_corruption_lengths(10.5)  # used to return (10.5, 4)
    with pytest.raises(ValueError, match="length must be an integer"):
        random_spans_noise_mask(5.5)
    with pytest.raises(ValueError, match="1-D"):
        span_corruption(torch.zeros(2, 3, dtype=torch.long), 0.15, 3.0, SENTINELS, EOS)
    with pytest.raises(ValueError, match="at least 568 ids"):
        span_corruption_batch(ids, 512, SENTINELS, EOS, PAD)
    with pytest.raises(ValueError, match="out of order"):
        reconstruct([5, SENTINELS[1], EOS], [SENTINELS[1], 6, EOS], SENTINELS, EOS)
