"""Beam search on synthetic step functions, where the right answer can be enumerated.

(Agreement with transformers' beam search on real T5 models is in tests/models/test_t5_parity.py.)
"""
from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from minitransformer.beam import beam_search

EOS, PAD = 1, 0


def markov_step(V: int, seed: int, max_len: int = 16):
    """A toy 'model': next-token logits depend on the last token and the position."""
    g = torch.Generator().manual_seed(seed)
    table = torch.randn(V, V, generator=g) * 2.0  # (prev, next)
    by_pos = torch.randn(max_len, V, generator=g)  # (position, next)

    def step(sequences: torch.Tensor) -> torch.Tensor:  # (N, t) -> (N, V)
        return table[sequences[:, -1]] + by_pos[sequences.shape[1]]

    return step


def brute_force_best(step, prompt: list[int], V: int, max_new: int, length_penalty: float) -> list[int]:
    """Score every possible output (ending at eos or at max_new tokens) as sum log p / len**lp."""
    best, best_score = None, -float("inf")
    for n in range(1, max_new + 1):
        for tail in itertools.product(range(V), repeat=n):
            if EOS in tail[:-1] or (n < max_new and tail[-1] != EOS):
                continue  # eos only at the end; shorter outputs must end with eos
            seq, logp = list(prompt), 0.0
            for tok in tail:
                logits = step(torch.tensor([seq]))
                logp += torch.log_softmax(logits.double(), dim=-1)[0, tok].item()
                seq.append(tok)
            score = logp / n ** length_penalty
            if score > best_score:
                best, best_score = seq, score
    return best


@settings(max_examples=15)
@given(seed=st.integers(0, 10_000), length_penalty=st.sampled_from([0.0, 0.5, 1.0, 2.0]),
       max_new=st.integers(1, 3))
def test_wide_beam_with_never_finds_the_exact_best(seed, length_penalty, max_new):
    """With as many beams as outputs, nothing is pruned; with early_stopping="never" and a length
    penalty >= 0 the stopping rule is an exact bound, so the search returns the true optimum."""
    V = 4
    step = markov_step(V, seed)
    prompt = [2]
    out = beam_search(step, torch.tensor([prompt]), num_beams=V ** max_new, max_new_tokens=max_new,
                      eos_token_id=EOS, pad_token_id=PAD, length_penalty=length_penalty, early_stopping="never")
    expected = brute_force_best(step, prompt, V, max_new, length_penalty)
    assert out[0, : len(expected)].tolist() == expected
    assert out[0, len(expected):].eq(PAD).all()


@pytest.mark.parametrize("early_stopping", [False, True, "never"])
@pytest.mark.parametrize("length_penalty", [1.0, -0.5, 2.0])
def test_batch_rows_are_independent(early_stopping, length_penalty):
    step = markov_step(7, seed=11)
    prompts = torch.tensor([[2], [3], [5]])
    kwargs = dict(num_beams=3, max_new_tokens=9, eos_token_id=EOS, pad_token_id=PAD,
                  length_penalty=length_penalty, early_stopping=early_stopping)
    batched = beam_search(step, prompts, **kwargs)
    for i in range(3):
        single = beam_search(step, prompts[i:i + 1], **kwargs)
        assert torch.equal(batched[i, : single.shape[1]], single[0])
        assert batched[i, single.shape[1]:].eq(PAD).all()


def test_reorder_keeps_a_cache_in_step_with_the_beams():
    """A step function that remembers what it was fed (like a KV cache) and is told about reorders
    sees, at every step, exactly the sequences beam search hands it; its logits match the stateless run."""
    V = 5
    stateless = markov_step(V, seed=5)
    cached: dict[str, torch.Tensor | None] = {"seen": None}

    def step(sequences):
        seen = cached["seen"]
        if seen is not None:
            assert torch.equal(sequences[:, : seen.shape[1]], seen)  # the cache holds these rows' prefixes
        cached["seen"] = sequences
        return stateless(sequences)

    def reorder(rows):
        cached["seen"] = cached["seen"].index_select(0, rows)

    kwargs = dict(num_beams=3, max_new_tokens=8, eos_token_id=EOS, pad_token_id=PAD)
    prompts = torch.tensor([[2], [4]])
    assert torch.equal(beam_search(step, prompts, reorder=reorder, **kwargs),
                       beam_search(stateless, prompts, **kwargs))


def test_length_penalty_changes_the_preferred_length():
    """A model that strongly prefers to stop: a big positive penalty buys a longer output."""
    V = 5

    def step(sequences):
        logits = torch.zeros(sequences.shape[0], V)
        logits[:, EOS] = 2.0  # eos is the most likely token everywhere
        logits[:, 3] = 1.5
        return logits

    prompts = torch.tensor([[2]])
    short = beam_search(step, prompts, num_beams=4, max_new_tokens=6, eos_token_id=EOS, pad_token_id=PAD,
                        length_penalty=0.0, early_stopping="never")
    long = beam_search(step, prompts, num_beams=4, max_new_tokens=6, eos_token_id=EOS, pad_token_id=PAD,
                       length_penalty=5.0, early_stopping="never")
    assert short.tolist() == [[2, EOS]]
    assert long.shape[1] > short.shape[1]


def test_bad_arguments():
    step = markov_step(4, seed=0)
    prompts = torch.tensor([[2]])
    for k in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="num_beams"):
            beam_search(step, prompts, num_beams=k, max_new_tokens=3, eos_token_id=EOS, pad_token_id=PAD)
    with pytest.raises(ValueError, match="early_stopping"):
        beam_search(step, prompts, num_beams=2, max_new_tokens=3, eos_token_id=EOS, pad_token_id=PAD,
                    early_stopping="maybe")
    with pytest.raises(ValueError, match="max_new_tokens"):
        beam_search(step, prompts, num_beams=2, max_new_tokens=0, eos_token_id=EOS, pad_token_id=PAD)
    with pytest.raises(ValueError, match="prompt"):
        beam_search(step, torch.tensor([2, 3]), num_beams=2, max_new_tokens=2, eos_token_id=EOS, pad_token_id=PAD)
    with pytest.raises(ValueError, match="eos_token_id"):
        beam_search(step, prompts, num_beams=2, max_new_tokens=2, eos_token_id=-1, pad_token_id=PAD)
    with pytest.raises(ValueError, match="batch >= 1"):
        beam_search(step, prompts[:0], num_beams=2, max_new_tokens=2, eos_token_id=EOS, pad_token_id=PAD)
    for penalty in (float("nan"), float("inf"), 1e308, "1", None, True):  # NaN used to end every beam early
        with pytest.raises(ValueError, match="length_penalty"):
            beam_search(step, prompts, num_beams=2, max_new_tokens=3, eos_token_id=EOS, pad_token_id=PAD,
                        length_penalty=penalty)
