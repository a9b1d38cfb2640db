"""BERT's MLM corruption: selection rate, the 80/10/10 rule, what is never selected, reproducibility."""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from minitransformer.data.masking import mask_tokens, wordpiece_word_starts

V, PAD, CLS, SEP, MASK = 1000, 0, 1, 2, 3
SPECIALS = [PAD, CLS, SEP, MASK]


def within_binomial(count: int, n: int, p: float, sigmas: float = 5.0) -> bool:
    return abs(count - n * p) <= sigmas * math.sqrt(n * p * (1 - p)) + 1


def make_batch(B: int, T: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random ids framed like BERT inputs, with right padding of random length."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(4, V, (B, T), generator=g)
    lengths = torch.randint(T // 2, T + 1, (B,), generator=g)
    attention_mask = (torch.arange(T)[None, :] < lengths[:, None]).long()
    ids[:, 0] = CLS
    ids[torch.arange(B), lengths - 1] = SEP
    ids[attention_mask == 0] = PAD
    return ids, attention_mask


def test_selection_rate_and_80_10_10_within_binomial_bounds():
    ids, attention_mask = make_batch(64, 512, seed=0)
    new, labels = mask_tokens(ids, V, MASK, SPECIALS, 0.15, torch.Generator().manual_seed(1),
                              attention_mask=attention_mask)
    eligible = (attention_mask == 1) & (ids != CLS) & (ids != SEP)
    selected = labels != -100
    n = int(eligible.sum())
    assert within_binomial(int(selected.sum()), n, 0.15)
    assert not (selected & ~eligible).any()

    k = int(selected.sum())
    became_mask = int((new[selected] == MASK).sum())
    unchanged = int((new[selected] == ids[selected]).sum())
    other = k - became_mask - unchanged
    # a "random" replacement may draw [MASK] or the original id itself (1/V each)
    assert within_binomial(became_mask, k, 0.8 + 0.1 / V)
    assert within_binomial(unchanged, k, 0.1 + 0.1 / V)
    assert within_binomial(other, k, 0.1 * (V - 2) / V)
    assert other > 0 and ((new >= 0) & (new < V)).all()


def test_labels_exactly_at_selected_positions_and_the_rest_unchanged():
    ids, attention_mask = make_batch(8, 128, seed=2)
    original = ids.clone()
    new, labels = mask_tokens(ids, V, MASK, SPECIALS, 0.3, torch.Generator().manual_seed(3),
                              attention_mask=attention_mask)
    assert torch.equal(ids, original)                       # input not modified
    selected = labels != -100
    assert torch.equal(labels[selected], ids[selected])
    assert torch.equal(new[~selected], ids[~selected])
    assert labels.dtype == torch.long and new.dtype == ids.dtype and new.shape == ids.shape


def test_same_seed_same_output_and_new_seed_new_mask():
    ids, attention_mask = make_batch(4, 64, seed=4)
    a = mask_tokens(ids, V, MASK, SPECIALS, generator=torch.Generator().manual_seed(7), attention_mask=attention_mask)
    b = mask_tokens(ids, V, MASK, SPECIALS, generator=torch.Generator().manual_seed(7), attention_mask=attention_mask)
    c = mask_tokens(ids, V, MASK, SPECIALS, generator=torch.Generator().manual_seed(8), attention_mask=attention_mask)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])   # dynamic masking: a fresh call gives a fresh mask
    g = torch.Generator().manual_seed(7)
    first, second = mask_tokens(ids, V, MASK, SPECIALS, generator=g), mask_tokens(ids, V, MASK, SPECIALS, generator=g)
    assert not torch.equal(first[1], second[1])


def test_one_dimensional_input_and_padding_without_attention_mask():
    ids = torch.tensor([CLS, 10, 11, 12, SEP, PAD, PAD])
    new, labels = mask_tokens(ids, V, MASK, SPECIALS, mlm_probability=1.0, generator=torch.Generator().manual_seed(0))
    assert new.shape == labels.shape == (7,)
    assert torch.equal(labels, torch.tensor([-100, 10, 11, 12, -100, -100, -100]))


@given(
    B=st.integers(1, 4), T=st.integers(1, 40), p=st.floats(0.0, 1.0), seed=st.integers(0, 2**16),
    n_special=st.integers(0, 5),
)
def test_invariants_hold_for_any_shape_and_probability(B, T, p, seed, n_special):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 50, (B, T), generator=g)
    specials = list(range(n_special))
    attention_mask = torch.randint(0, 2, (B, T), generator=g)
    new, labels = mask_tokens(ids, 50, 49, specials, p, g, attention_mask=attention_mask)
    selected = labels != -100
    assert not selected[attention_mask == 0].any()
    assert not selected[torch.isin(ids, torch.tensor(specials, dtype=torch.long))].any()
    assert torch.equal(labels[selected], ids[selected]) and torch.equal(new[~selected], ids[~selected])
    if p == 0.0:
        assert not selected.any()
    if p == 1.0:
        assert torch.equal(selected, (attention_mask == 1) & ~torch.isin(ids, torch.tensor(specials, dtype=torch.long)))


def test_whole_word_masking_selects_whole_words_at_the_word_rate():
    g = torch.Generator().manual_seed(5)
    B, T = 32, 256
    ids = torch.randint(4, V, (B, T), generator=g)
    ids[:, 0] = CLS
    starts = torch.rand((B, T), generator=g) < 0.6          # words of 1-4ish tokens
    starts[:, 0] = True
    starts[:, 1] = True
    new, labels = mask_tokens(ids, V, MASK, SPECIALS, 0.15, g, word_starts=starts)
    selected = labels != -100
    word = starts.long().cumsum(dim=1)
    n_words, n_selected_words = 0, 0
    for row in range(B):
        for w in word[row, 1:].unique():                     # every word after [CLS]
            member = selected[row][word[row] == w]
            assert member.all() or not member.any()          # all of a word or none of it
            n_words += 1
            n_selected_words += int(member.all())
    assert within_binomial(n_selected_words, n_words, 0.15)
    assert not selected[:, 0].any()


def test_wordpiece_word_starts():
    assert wordpiece_word_starts(["[CLS]", "play", "##ing", "##s", "now", "[SEP]"]) == [
        True, True, False, False, True, True]


def test_bad_arguments_raise():
    ids = torch.tensor([[5, 6, 7]])
    with pytest.raises(TypeError, match="integer"):
        mask_tokens(ids.float(), V, MASK, SPECIALS)
    with pytest.raises(TypeError, match="torch.Tensor"):
        mask_tokens([[5, 6, 7]], V, MASK, SPECIALS)
    with pytest.raises(TypeError, match="torch.long"):  # int8 random ids used to wrap to negatives
        mask_tokens(ids.to(torch.int8), V, MASK, SPECIALS)
    with pytest.raises(TypeError, match="mask_token_id must be an integer"):  # 4.7 used to become 4
        mask_tokens(ids, V, 4.7, SPECIALS)
    with pytest.raises(ValueError, match="mask_token_id"):
        mask_tokens(ids, V, V, SPECIALS)
    with pytest.raises(ValueError, match=r"input_ids must lie in \[0, 7\)"):
        mask_tokens(ids, 7, MASK, SPECIALS)
    with pytest.raises(ValueError, match="mlm_probability"):
        mask_tokens(ids, V, MASK, SPECIALS, mlm_probability=1.5)
    with pytest.raises(ValueError, match="attention_mask must have the shape"):
        mask_tokens(ids, V, MASK, SPECIALS, attention_mask=torch.ones(1, 4))
    with pytest.raises(ValueError, match=r"\(B, T\) or \(T,\)"):
        mask_tokens(ids[None], V, MASK, SPECIALS)
