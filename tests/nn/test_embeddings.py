"""Token, position and segment embeddings; the sinusoidal encoding against the paper's formula."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from minitransformer.nn import (
    LearnedPositionalEmbedding,
    SegmentEmbedding,
    SinusoidalPositionalEncoding,
    TokenEmbedding,
    check_ids,
)
from minitransformer.nn.embeddings import (
    PAD_SCORE,
    TiedGradient,
    padded_vocab_logits,
    tied_logits,
    tied_lookup,
    vocab_logits,
)


def vaswani_sinusoids(max_len: int, d_model: int) -> np.ndarray:
    """Vaswani et al. 2017 §3.5, written out in float64 numpy:
    PE(pos, 2i) = sin(pos / 10000^(2i/d_model)),  PE(pos, 2i+1) = cos(pos / 10000^(2i/d_model))."""
    pe = np.zeros((max_len, d_model), dtype=np.float64)
    for pos in range(max_len):
        for dim in range(d_model):
            i = dim // 2
            angle = pos / 10000.0 ** (2 * i / d_model)
            pe[pos, dim] = np.sin(angle) if dim % 2 == 0 else np.cos(angle)
    return pe


@pytest.mark.parametrize("d_model", [2, 7, 16, 64])
def test_sinusoidal_encoding_equals_the_paper(d_model):
    max_len = 128
    enc = SinusoidalPositionalEncoding(max_len, d_model)
    got = enc(torch.arange(max_len)[None]).squeeze(0).double().numpy()  # (L, C)
    # float32 angles of up to ~128 rad carry ~1e-5 rounding; the formula itself must match exactly
    np.testing.assert_allclose(got, vaswani_sinusoids(max_len, d_model), atol=2e-5, rtol=0)


def test_sinusoidal_encoding_is_fixed_and_batched():
    enc = SinusoidalPositionalEncoding(32, 8)
    assert list(enc.parameters()) == [] and enc.state_dict() == {}  # nothing learned, nothing saved
    positions = torch.tensor([[0, 1, 2], [5, 6, 7]])
    out = enc(positions)
    assert out.shape == (2, 3, 8) and out.dtype == torch.float32
    torch.testing.assert_close(out[1, 0], enc(torch.tensor([[5]]))[0, 0])
    with pytest.raises(ValueError, match="max_len"):
        enc(torch.tensor([[32]]))


def test_learned_positions_and_offset():
    torch.manual_seed(0)
    emb = LearnedPositionalEmbedding(max_len=10, d_model=4, offset=2)  # RoBERTa numbers from pad+1
    assert emb.weight.shape == (12, 4)
    positions = torch.arange(10)[None]
    torch.testing.assert_close(emb(positions)[0], emb.weight[2:])
    with pytest.raises(ValueError, match="max_seq_len=10"):
        emb(torch.arange(11)[None])
    emb(torch.arange(10)[None], check=False)  # a model that built the positions itself skips the check
    plain = LearnedPositionalEmbedding(max_len=5, d_model=3)
    torch.testing.assert_close(plain(torch.tensor([[4, 0]]))[0], plain.weight[[4, 0]])


def test_token_and_segment_embeddings():
    tok = TokenEmbedding(11, 6, padding_idx=0)
    ids = torch.tensor([[0, 3, 10]])
    out = tok(ids)
    assert out.shape == (1, 3, 6)
    assert torch.all(out[0, 0] == 0)  # the padding row starts at zero
    out.sum().backward()
    assert torch.all(tok.weight.grad[0] == 0)  # ... and is never updated
    seg = SegmentEmbedding(2, 6)
    assert seg(torch.tensor([[0, 1, 1]])).shape == (1, 3, 6)


@given(size=st.integers(1, 50), data=st.data())
def test_check_ids_accepts_valid_ids(size, data):
    B, T = data.draw(st.integers(1, 3)), data.draw(st.integers(0, 5))
    values = data.draw(st.lists(st.integers(0, size - 1), min_size=B * T, max_size=B * T))
    check_ids(torch.tensor(values, dtype=torch.long).view(B, T), size)


def test_check_ids_rejects_bad_ids():
    with pytest.raises(TypeError, match="torch.Tensor"):
        check_ids([[1, 2]], 10)
    with pytest.raises(TypeError, match="integer"):
        check_ids(torch.tensor([[1.0, 2.0]]), 10)
    with pytest.raises(ValueError, match="batch, seq_len"):
        check_ids(torch.tensor([1, 2]), 10)
    with pytest.raises(ValueError, match=r"\[0, 10\)"):
        check_ids(torch.tensor([[1, 10]]), 10)
    with pytest.raises(ValueError, match=r"-1"):
        check_ids(torch.tensor([[-1, 2]]), 10)
    with pytest.raises(ValueError, match="token_type_ids"):
        check_ids(torch.tensor([[0, 2]]), 2, what="token_type_ids")


@given(vocab=st.integers(1, 40), width=st.integers(1, 12), multiple_of=st.integers(1, 16), with_bias=st.booleans(),
       seed=st.integers(0, 2**16))
def test_padded_vocab_logits_are_f_linear_plus_unreachable_columns(vocab, width, multiple_of, with_bias, seed):
    """The GPU trick (vocabulary padded to a multiple of 8) computes exactly F.linear: same scores, same
    gradients, and pad columns that a softmax gives probability 0. Forced on here with ``multiple_of``."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 3, width, generator=gen, requires_grad=True)
    w = torch.randn(vocab, width, generator=gen, requires_grad=True)
    b = torch.randn(vocab, generator=gen, requires_grad=True) if with_bias else None
    full = padded_vocab_logits(x, w, b, multiple_of=multiple_of)
    pad = -vocab % multiple_of
    assert full.shape == (2, 3, vocab + pad)
    assert bool((full[..., vocab:] == PAD_SCORE).all())
    ref = torch.nn.functional.linear(x, w, b)
    torch.testing.assert_close(vocab_logits(x, w, b, multiple_of=multiple_of), ref)  # rounding: other GEMM shape
    # a softmax over all columns puts no mass on the padding, and the gradients are F.linear's
    probs = torch.softmax(full, dim=-1)
    assert bool((probs[..., vocab:] == 0).all())
    target = torch.randint(0, vocab, (6,), generator=gen)
    loss = torch.nn.functional.cross_entropy(full.reshape(6, -1), target)
    ref_loss = torch.nn.functional.cross_entropy(ref.reshape(6, -1), target)
    torch.testing.assert_close(loss, ref_loss)
    inputs = [x, w] + ([b] if with_bias else [])
    grads = torch.autograd.grad(loss, inputs)
    ref_grads = torch.autograd.grad(ref_loss, inputs)
    for g, r in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, r)


def test_vocab_logits_pads_only_off_the_cpu_by_default():
    w = torch.randn(13, 4)
    assert padded_vocab_logits(torch.randn(2, 4), w).shape == (2, 13)  # CPU: plain F.linear
    assert padded_vocab_logits(torch.randn(2, 4, device="meta"), w.to("meta")).shape == (2, 16)  # elsewhere: 8
    with pytest.raises(ValueError, match="multiple_of"):
        padded_vocab_logits(torch.randn(2, 4), w, multiple_of=0)


def tied_model_loss(weight, ids, targets, tied: bool, use_head: bool = True):
    """A tiny tied model: look ids up, mix the positions, score the vocabulary with the same matrix."""
    carry = TiedGradient() if tied else None
    h = tied_lookup(ids, weight, carry) if tied else torch.nn.functional.embedding(ids, weight)  # (B, T, C)
    h = torch.tanh(h + h.mean(1, keepdim=True))
    if not use_head:
        return (h ** 2).sum()
    logits = tied_logits(h, weight, carry) if tied else torch.nn.functional.linear(h, weight)  # (B, T, V)
    return torch.nn.functional.cross_entropy(logits.reshape(-1, weight.shape[0]), targets.reshape(-1))


@given(vocab=st.integers(2, 30), width=st.integers(1, 8), rows=st.integers(1, 3), length=st.integers(1, 12),
       use_head=st.booleans(), seed=st.integers(0, 2**16))
def test_tied_lookup_and_logits_give_the_plain_gradient(vocab, width, rows, length, use_head, seed):
    """The head's gradient table travels to the lookup, which adds its rows in place: the matrix must get
    exactly autograd's usual gradient (repeated ids, more ids than rows, no head in the loss), through
    .backward, torch.autograd.grad and a gradient hook alike, and twice with retain_graph."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (rows, length), generator=gen)
    targets = torch.randint(0, vocab, (rows, length), generator=gen)
    weight = torch.randn(vocab, width, generator=gen, dtype=torch.float64)
    plain, tied = weight.clone().requires_grad_(), weight.clone().requires_grad_()
    (expected,) = torch.autograd.grad(tied_model_loss(plain, ids, targets, False, use_head), plain)
    (got,) = torch.autograd.grad(tied_model_loss(tied, ids, targets, True, use_head), tied)
    torch.testing.assert_close(got, expected)
    seen = []
    tied.register_hook(seen.append)  # what DDP's reducer and gradient hooks see: the whole gradient, once
    loss = tied_model_loss(tied, ids, targets, True, use_head)
    loss.backward(retain_graph=True)
    assert len(seen) == 1
    torch.testing.assert_close(seen[0], expected)
    loss.backward()  # the hand-over is redone on every backward pass
    torch.testing.assert_close(tied.grad, 2 * expected)
