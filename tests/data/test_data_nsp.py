"""BERT's next-sentence-prediction pairs and their framing."""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from minitransformer.data.corpus import load_plays, split_sentences
from minitransformer.data.nsp import frame_pair, make_nsp_pairs, nsp_batch, truncate_pair

CLS, SEP, PAD = 1, 2, 0
STRIDE = 1_000_000  # token = document * STRIDE + position in the document: tells where a token came from


def traceable_documents(n_docs: int, seed: int) -> list[list[list[int]]]:
    """Documents whose token ids name their document and position (sentences of 1 to 30 tokens)."""
    g = torch.Generator().manual_seed(seed)
    docs = []
    for d in range(n_docs):
        n_sentences = int(torch.randint(1, 40, (), generator=g))
        position, doc = 0, []
        for _ in range(n_sentences):
            length = int(torch.randint(1, 31, (), generator=g))
            doc.append([d * STRIDE + position + k for k in range(length)])
            position += length
        docs.append(doc)
    return docs


def test_about_half_is_next_and_not_next_never_from_the_same_document():
    docs = traceable_documents(200, seed=0)
    pairs = make_nsp_pairs(docs, max_len=64, generator=torch.Generator().manual_seed(1))
    n = len(pairs)
    n_next = sum(is_next for _, _, is_next in pairs)
    assert n > 1000
    assert abs(n_next - n / 2) <= 5 * math.sqrt(n / 4)
    for a, b, is_next in pairs:
        assert a and b and len(a) + len(b) <= 64 - 3
        doc_a = a[0] // STRIDE
        assert a == list(range(a[0], a[0] + len(a)))          # A: consecutive text of one document
        assert all(t // STRIDE == b[0] // STRIDE for t in b)  # B: text of one document
        if is_next:
            assert b[0] == a[-1] + 1                            # B begins where A ends, even if cut
            assert b == list(range(b[0], b[0] + len(b)))
        else:
            assert b[0] // STRIDE != doc_a


def test_every_document_is_used():
    docs = traceable_documents(20, seed=2)
    pairs = make_nsp_pairs(docs, max_len=128, generator=torch.Generator().manual_seed(3))
    assert {a[0] // STRIDE for a, _, _ in pairs} == set(range(20))


def test_same_seed_same_pairs():
    docs = traceable_documents(10, seed=4)
    a = make_nsp_pairs(docs, max_len=32, generator=torch.Generator().manual_seed(5))
    b = make_nsp_pairs(docs, max_len=32, generator=torch.Generator().manual_seed(5))
    c = make_nsp_pairs(docs, max_len=32, generator=torch.Generator().manual_seed(6))
    assert a == b and a != c


def test_short_sequences_appear_with_short_seq_prob():
    docs = traceable_documents(40, seed=7)
    always_short = make_nsp_pairs(docs, max_len=128, generator=torch.Generator().manual_seed(8), short_seq_prob=1.0)
    never_short = make_nsp_pairs(docs, max_len=128, generator=torch.Generator().manual_seed(8), short_seq_prob=0.0)
    mean = lambda pairs: sum(len(a) + len(b) for a, b, _ in pairs) / len(pairs)  # noqa: E731
    assert mean(always_short) < 0.8 * mean(never_short)


def test_nsp_batch_cut_shorter_keeps_is_next_pairs_joined():
    """Framing to a max_len below the pairs' own cuts A from its start too, not from its end."""
    docs = traceable_documents(50, seed=9)
    pairs = [p for p in make_nsp_pairs(docs, max_len=64, generator=torch.Generator().manual_seed(2)) if p[2]]
    batch = nsp_batch(pairs, CLS, SEP, PAD, max_len=24)
    rows = zip(batch["input_ids"].tolist(), batch["token_type_ids"].tolist(), batch["attention_mask"].tolist(),
               strict=True)
    for ids, types, mask in rows:
        length, n_b = sum(mask), sum(types)  # [CLS] A [SEP] | B [SEP] | padding
        a, b = ids[1:length - n_b - 1], ids[length - n_b:length - 1]
        assert len(a) + len(b) <= 24 - 3 and b[0] == a[-1] + 1


def test_pairs_from_the_embedded_plays():
    # documents = plays, sentences = split_sentences, "ids" = byte values (no tokenizer needed here)
    plays = list(load_plays().values())[:3]
    docs = [[list(s.encode()) for s in split_sentences(play)[:300]] for play in plays]
    pairs = make_nsp_pairs(docs, max_len=128, generator=torch.Generator().manual_seed(0))
    batch = nsp_batch(pairs, CLS, SEP, PAD, max_len=128)
    assert batch["input_ids"].shape[1] <= 128
    assert set(batch["nsp_labels"].tolist()) == {0, 1}


@given(la=st.integers(0, 60), lb=st.integers(0, 60), max_tokens=st.integers(0, 80), a_from_start=st.booleans())
def test_truncate_pair_is_longest_first(la, lb, max_tokens, a_from_start):
    a, b = list(range(la)), list(range(100, 100 + lb))
    ta, tb = truncate_pair(a, b, max_tokens, a_from_start=a_from_start)
    assert ta == (a[la - len(ta):] if a_from_start else a[: len(ta)])  # A's start or its end is cut
    assert tb == b[: len(tb)]                                    # B's end
    assert len(ta) + len(tb) == min(la + lb, max_tokens)
    if len(ta) < la and len(tb) < lb:
        assert abs(len(ta) - len(tb)) <= 1                       # both cut: left balanced
    elif len(ta) < la:
        assert len(ta) >= len(tb) - 1                            # only the longer one (A on ties) was cut
    elif len(tb) < lb:
        assert len(tb) >= len(ta)


@given(la=st.integers(1, 50), lb=st.integers(1, 50), max_len=st.integers(5, 120))
def test_frame_pair_layout_and_length(la, lb, max_len):
    a, b = list(range(10, 10 + la)), list(range(100, 100 + lb))
    ids, types = frame_pair(a, b, CLS, SEP, max_len=max_len)
    assert len(ids) == len(types) <= max_len
    assert ids[0] == CLS and ids[-1] == SEP and ids.count(SEP) == 2
    sep = ids.index(SEP)
    assert types == [0] * (sep + 1) + [1] * (len(ids) - sep - 1)
    assert ids[1:sep] == a[: sep - 1] and ids[sep + 1:-1] == b[: len(ids) - sep - 2]


def test_nsp_batch_pads_and_labels_is_next_as_zero():
    pairs = [([5, 6, 7], [8], True), ([9], [10, 11], False)]
    batch = nsp_batch(pairs, CLS, SEP, PAD)
    assert batch["input_ids"].tolist() == [[CLS, 5, 6, 7, SEP, 8, SEP], [CLS, 9, SEP, 10, 11, SEP, PAD]]
    assert batch["token_type_ids"].tolist() == [[0, 0, 0, 0, 0, 1, 1], [0, 0, 0, 1, 1, 1, 0]]
    assert batch["attention_mask"].tolist() == [[1] * 7, [1] * 6 + [0]]
    assert batch["nsp_labels"].tolist() == [0, 1]   # as BertForPreTraining: 0 = IsNext, 1 = NotNext


def test_bad_input_raises():
    with pytest.raises(ValueError, match="at least 2 non-empty documents"):
        make_nsp_pairs([[[1, 2], [3]], [[]]], max_len=16)
    with pytest.raises(ValueError, match="max_len"):
        make_nsp_pairs([[[1]], [[2]]], max_len=4)
    with pytest.raises(ValueError, match="next_probability"):
        make_nsp_pairs([[[1]], [[2]]], next_probability=2.0)
    with pytest.raises(ValueError, match="at least one pair"):
        nsp_batch([], CLS, SEP, PAD)
    with pytest.raises(TypeError, match="is_next must be True or False"):  # "False" is truthy: IsNext
        nsp_batch([([5], [6], "False")], CLS, SEP, PAD)
    with pytest.raises(TypeError, match="token ids must be integers"):  # 1.9 used to become 1
        nsp_batch([([1.9], [6], True)], CLS, SEP, PAD)
