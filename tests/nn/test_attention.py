"""Multi-head attention: both backends agree, equal torch.nn.MultiheadAttention, masks, KV cache, errors.

Reference points are independent of our code: ``torch.nn.MultiheadAttention`` for the maths of
multi-head attention, and the definition of a causal / padding mask written out with loops.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from minitransformer.nn import (
    KVCache,
    MultiHeadAttention,
    RelativePositionBias,
    attention,
    causal_mask,
    padding_bias,
)

BACKENDS = ("manual", "sdpa")
NEG = torch.finfo(torch.float32).min


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _keep_mask(b: int, t: int, g: torch.Generator, p_pad: float = 0.3, first_real: bool = False) -> torch.Tensor:
    """(B, T) int mask: 1 = real, 0 = padding, in random places."""
    keep = (torch.rand(b, t, generator=g) > p_pad).long()
    if first_real:
        keep[:, 0] = 1
    return keep


# ---- causal_mask / padding_bias against their definitions ----------------------------------------
@pytest.mark.parametrize("t_q,t_k", [(1, 1), (3, 3), (2, 5), (1, 4), (4, 6)])
def test_causal_mask_is_bottom_right_aligned(t_q, t_k):
    m = causal_mask(t_q, t_k)
    assert m.shape == (t_q, t_k) and m.dtype == torch.bool
    for i in range(t_q):
        absolute = t_k - t_q + i  # the query's position among the keys
        for j in range(t_k):
            assert bool(m[i, j]) == (j <= absolute)


def test_padding_bias_values_and_shape():
    keep = torch.tensor([[1, 1, 0], [0, 1, 1]])
    bias = padding_bias(keep)
    assert bias.shape == (2, 1, 1, 3) and bias.dtype == torch.float32
    assert torch.equal(bias[:, 0, 0] == 0, keep.bool())
    assert torch.all(bias[:, 0, 0][keep == 0] == NEG)  # finite: no -inf, hence no NaN on all-padding rows
    assert padding_bias(keep, torch.bfloat16).dtype == torch.bfloat16
    assert torch.isfinite(padding_bias(keep, torch.bfloat16)).all()
    with pytest.raises(ValueError, match="attention_mask"):
        padding_bias(torch.ones(2, 1, 3))


# ---- the two backends compute the same thing --------------------------------------------------------
@st.composite
def attention_problems(draw):
    B, h = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    t_q, d = draw(st.integers(1, 6)), draw(st.integers(1, 8))
    t_k = draw(st.integers(t_q, 8)) if draw(st.booleans()) else t_q
    causal = draw(st.booleans())
    padding = draw(st.booleans())
    position_bias = draw(st.booleans())
    seed = draw(st.integers(0, 2**31 - 1))
    return B, h, t_q, t_k, d, causal, padding, position_bias, seed


def _problem_tensors(B, h, t_q, t_k, d, padding, position_bias, seed, first_real=False):
    g = _gen(seed)
    q, k, v = torch.randn(B, h, t_q, d, generator=g), torch.randn(B, h, t_k, d, generator=g), \
        torch.randn(B, h, t_k, d, generator=g)
    bias = None
    if position_bias:
        bias = torch.randn(1, h, t_q, t_k, generator=g)  # like T5's, shared by the batch
    if padding:
        pad = padding_bias(_keep_mask(B, t_k, g, p_pad=0.4, first_real=first_real))  # may mask a whole row
        bias = pad if bias is None else bias + pad
    return q, k, v, bias


def _reference_attention(q, k, v, bias, causal):
    """The formula in float64, written out here independently of both backends."""
    q, k, v = q.double(), k.double(), v.double()
    scores = q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5
    if bias is not None:
        scores = scores + bias.double()
    if causal:
        t_q, t_k = scores.shape[-2:]
        allowed = torch.arange(t_k)[None, :] <= torch.arange(t_q)[:, None] + (t_k - t_q)
        scores = scores.masked_fill(~allowed, torch.finfo(torch.float32).min)
    return torch.softmax(scores, dim=-1) @ v


@given(attention_problems(), st.booleans())
def test_backends_agree_outputs_and_gradients(problem, bias_needs_grad):
    """Both backends equal a float64 reference, outputs and gradients.

    A bias that needs a gradient (T5's learned position bias) sends the "sdpa" backend on CPU to
    our own formula (PyTorch's fused kernel cannot return that gradient); without one, the sdpa
    backend runs PyTorch's kernel.
    """
    B, h, t_q, t_k, d, causal, padding, position_bias, seed = problem
    results = {}
    for backend in (*BACKENDS, "reference"):
        # (the first key is real, so no query row is fully masked: there the "gradient" of a
        # constant output is an artefact, and PyTorch's fused kernel returns a different one)
        q, k, v, bias = _problem_tensors(B, h, t_q, t_k, d, padding, position_bias, seed, first_real=True)
        leaves = [q, k, v] + ([bias] if bias is not None and bias_needs_grad else [])
        for t in leaves:
            t.requires_grad_(True)
        if backend == "reference":
            out = _reference_attention(q, k, v, bias, causal).float()
        else:
            out, _ = attention(q, k, v, attn_bias=bias, is_causal=causal, backend=backend)
        assert out.shape == (B, h, t_q, d)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        results[backend] = (out.detach(), [t.grad for t in leaves])
    out_r, grads_r = results["reference"]
    for backend in BACKENDS:
        out, grads = results[backend]
        assert torch.isfinite(out).all()
        torch.testing.assert_close(out, out_r, atol=1e-5, rtol=1e-5)
        for g, gr in zip(grads, grads_r, strict=True):
            assert torch.isfinite(g).all()
            torch.testing.assert_close(g, gr, atol=1e-5, rtol=1e-4)


def test_manual_weights_are_a_distribution_that_respects_masks():
    g = _gen(0)
    B, h, t_q, t_k, d = 2, 3, 4, 6, 5
    q, k, v = torch.randn(B, h, t_q, d, generator=g), torch.randn(B, h, t_k, d, generator=g), \
        torch.randn(B, h, t_k, d, generator=g)
    keep = torch.tensor([[1, 1, 1, 1, 0, 1], [0, 1, 1, 1, 1, 1]])
    for backend in BACKENDS:  # need_weights works whatever the backend
        out, w = attention(q, k, v, attn_bias=padding_bias(keep), is_causal=True, backend=backend, need_weights=True)
        assert w.shape == (B, h, t_q, t_k)
        torch.testing.assert_close(w.sum(-1), torch.ones(B, h, t_q))
        allowed = (causal_mask(t_q, t_k)[None, None] & keep.bool()[:, None, None, :]).expand(B, h, t_q, t_k)
        assert torch.all(w[~allowed] == 0)
        torch.testing.assert_close(out, w @ v)
    # without need_weights the fused path returns None for the weights
    assert attention(q, k, v, backend="sdpa")[1] is None


@pytest.mark.parametrize("backend", BACKENDS)
def test_fully_masked_rows_give_no_nan_fp32_including_gradients(backend):
    g = _gen(1)
    B, h, T, d = 2, 2, 5, 4
    x = torch.randn(B, T, 8, generator=g, requires_grad=True)
    mha = MultiHeadAttention(8, h, backend=backend)
    keep = torch.tensor([[0, 0, 0, 0, 0], [0, 0, 1, 1, 1]])  # a row of all padding; left padding + causal
    for causal in (False, True):
        out, _ = mha(x, attn_bias=padding_bias(keep), is_causal=causal)
        assert torch.isfinite(out).all()
        out.sum().backward()
        assert torch.isfinite(x.grad).all()
        assert all(torch.isfinite(p.grad).all() for p in mha.parameters())
        x.grad = None
        mha.zero_grad()
    # raw function, queries beyond a causal window that sees only padding
    q, k, v = (torch.randn(B, h, T, d, generator=g) for _ in range(3))
    out, w = attention(q, k, v, attn_bias=padding_bias(keep), is_causal=True, backend=backend, need_weights=True)
    assert torch.isfinite(out).all() and torch.isfinite(w).all()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_fully_masked_rows_give_no_nan_half_precision(backend, dtype):
    """A half-precision model with a padding bias and a fully padded row must not produce NaN.

    Two traps: a float32 bias (the default of ``padding_bias``) cast to half becomes -inf, and in
    float16 a score below ~-16 added to finfo(float16).min overflows to -inf.
    """
    g = _gen(2)
    q = torch.ones(1, 2, 3, 4) * 10
    k = -torch.ones(1, 2, 3, 4) * 10  # large negative scores
    v = torch.randn(1, 2, 3, 4, generator=g)
    keep = torch.tensor([[0, 0, 0]])
    for bias in (padding_bias(keep), padding_bias(keep, dtype)):
        out, _ = attention(q.to(dtype), k.to(dtype), v.to(dtype), attn_bias=bias, backend=backend)
        assert not out.isnan().any(), f"NaN with a {bias.dtype} bias on {dtype} inputs ({backend})"


# ---- equals torch.nn.MultiheadAttention --------------------------------------------------------------
def _twin(d_model: int, n_heads: int, backend: str, seed: int, cross: bool = False):
    torch.manual_seed(seed)
    ref = torch.nn.MultiheadAttention(d_model, n_heads, batch_first=True).eval()
    with torch.no_grad():  # torch initialises in_proj_bias to zeros; make the test see biases
        ref.in_proj_bias.normal_()
        ref.out_proj.bias.normal_()
    ours = MultiHeadAttention(d_model, n_heads, backend=backend, cross_attention=cross).eval()
    with torch.no_grad():
        if cross:  # rows [0, C) project queries, [C, 3C) keys then values
            ours.q.weight.copy_(ref.in_proj_weight[:d_model])
            ours.q.bias.copy_(ref.in_proj_bias[:d_model])
            ours.kv.weight.copy_(ref.in_proj_weight[d_model:])
            ours.kv.bias.copy_(ref.in_proj_bias[d_model:])
        else:
            ours.qkv.weight.copy_(ref.in_proj_weight)
            ours.qkv.bias.copy_(ref.in_proj_bias)
        ours.out.weight.copy_(ref.out_proj.weight)
        ours.out.bias.copy_(ref.out_proj.bias)
    return ref, ours


@given(B=st.integers(1, 3), T=st.integers(1, 7), n_heads=st.sampled_from([1, 2, 4]),
       use_padding=st.booleans(), mask_kind=st.sampled_from(["none", "causal", "float"]),
       backend=st.sampled_from(BACKENDS), seed=st.integers(0, 10_000))
def test_self_attention_equals_torch_multihead_attention(B, T, n_heads, use_padding, mask_kind, backend, seed):
    d_model = 8
    ref, ours = _twin(d_model, n_heads, backend, seed)
    g = _gen(seed)
    x = torch.randn(B, T, d_model, generator=g)
    keep = _keep_mask(B, T, g, first_real=True)  # torch gives NaN for all-padding rows; we do not compare those
    kwargs, bias, is_causal = {}, None, False
    if use_padding:  # torch: True (or -inf) = ignore; same kind as attn_mask to avoid its deprecation path
        kwargs["key_padding_mask"] = (keep == 0) if mask_kind != "float" else \
            torch.zeros(B, T).masked_fill(keep == 0, float("-inf"))
        bias = padding_bias(keep)
    if mask_kind == "causal":
        kwargs["attn_mask"] = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)  # True = not allowed
        kwargs["is_causal"] = True
        is_causal = True
    elif mask_kind == "float":
        float_mask = torch.randn(B * n_heads, T, T, generator=g)  # per (batch, head) additive mask
        kwargs["attn_mask"] = float_mask
        fm = float_mask.view(B, n_heads, T, T)
        bias = fm if bias is None else bias + fm
    expected, expected_w = ref(x, x, x, need_weights=True, average_attn_weights=False, **kwargs)
    got, got_w = ours(x, attn_bias=bias, is_causal=is_causal, need_weights=True)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got_w, expected_w, atol=1e-6, rtol=1e-5)
    got_fast, w_none = ours(x, attn_bias=bias, is_causal=is_causal)  # the backend's own path
    assert w_none is None
    torch.testing.assert_close(got_fast, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_cross_attention_equals_torch_multihead_attention(backend):
    d_model, n_heads, B, T, S = 12, 3, 2, 4, 6
    ref, ours = _twin(d_model, n_heads, backend, seed=3, cross=True)
    g = _gen(3)
    x, memory = torch.randn(B, T, d_model, generator=g), torch.randn(B, S, d_model, generator=g)
    keep = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]])
    expected, _ = ref(x, memory, memory, key_padding_mask=keep == 0)
    got, _ = ours(x, memory=memory, attn_bias=padding_bias(keep))
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


# ---- dropout on the attention weights ----------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_dropout_acts_on_attention_weights(backend):
    """With V = [identity | ones] the output is the dropped-out weight matrix and, last, its row sums.

    Each weight is either 0 or w/(1-p); and the last column equals the sum of the others only if
    the dropout hit the weights (dropping the output would zero entries independently).
    """
    g = _gen(4)
    B, h, T, p = 2, 2, 8, 0.5
    q, k = torch.randn(B, h, T, T + 1, generator=g), torch.randn(B, h, T, T + 1, generator=g)
    v = torch.cat([torch.eye(T), torch.ones(T, 1)], dim=1).expand(B, h, T, T + 1)  # (B, h, Tk, Tk + 1)
    _, w = attention(q, k, v, backend="manual", need_weights=True)
    torch.manual_seed(0)
    out, _ = attention(q, k, v, dropout_p=p, backend=backend)
    dropped_w, row_sums = out[..., :T], out[..., T]
    kept = dropped_w != 0
    assert 0 < kept.float().mean() < 1  # some dropped, some kept
    torch.testing.assert_close(dropped_w[kept], (w / (1 - p))[kept], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(row_sums, dropped_w.sum(-1), atol=1e-5, rtol=1e-5)
    # no dropout: exactly the weights, rows summing to one
    out0, _ = attention(q, k, v, dropout_p=0.0, backend=backend)
    torch.testing.assert_close(out0[..., :T], w, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(out0[..., T], torch.ones(B, h, T), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_module_dropout_only_in_training(backend):
    mha = MultiHeadAttention(16, 4, dropout=0.5, backend=backend)
    x = torch.randn(2, 6, 16, generator=_gen(5))
    mha.train()
    torch.manual_seed(0)
    a = mha(x)[0]
    torch.manual_seed(1)
    b = mha(x)[0]
    assert not torch.allclose(a, b)
    mha.eval()
    torch.testing.assert_close(mha(x)[0], mha(x)[0], atol=0, rtol=0)


# ---- KV cache: incremental decoding equals the full forward -----------------------------------------
def _full_bias(B, h, T, keep, rel):  # (B, h, T, T): padding + relative position bias
    return padding_bias(keep).expand(B, h, T, T) + rel(T, T)


@given(chunks=st.lists(st.integers(1, 4), min_size=1, max_size=5), backend=st.sampled_from(BACKENDS),
       use_bias=st.booleans(), seed=st.integers(0, 10_000))
def test_kv_cache_self_attention_matches_full_forward(chunks, backend, use_bias, seed):
    """Feeding the sequence one chunk at a time through the cache equals one causal forward.

    Chunks of several tokens test the bottom-right alignment of the causal mask: the chunk's
    queries sit at the *end* of the keys seen so far.
    """
    torch.manual_seed(seed)
    B, C, h, T = 2, 8, 2, sum(chunks)
    mha = MultiHeadAttention(C, h, backend=backend).eval()
    rel = RelativePositionBias(h, num_buckets=8, max_distance=16, bidirectional=False)
    x = torch.randn(B, T, C)
    keep = _keep_mask(B, T, _gen(seed))
    bias = _full_bias(B, h, T, keep, rel) if use_bias else None
    full, _ = mha(x, attn_bias=bias, is_causal=True)
    cache, outs, pos = KVCache(), [], 0
    for n in chunks:
        step_bias = bias[:, :, pos:pos + n, :pos + n] if use_bias else None
        y, _ = mha(x[:, pos:pos + n], attn_bias=step_bias, is_causal=True, cache=cache)
        outs.append(y)
        pos += n
        assert cache.length == pos
    # A query that sees only padding (left padding) has no meaningful output; compare the rest.
    sees_something = keep.cumsum(dim=1) > 0 if use_bias else torch.ones(B, T, dtype=torch.bool)
    torch.testing.assert_close(torch.cat(outs, dim=1)[sees_something], full[sees_something], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_kv_cache_reorder_keeps_chosen_rows(backend):
    torch.manual_seed(0)
    mha = MultiHeadAttention(8, 2, backend=backend).eval()
    x = torch.randn(3, 5, 8)
    cache = KVCache()
    mha(x[:, :3], is_causal=True, cache=cache)
    index = torch.tensor([2, 2, 0])
    cache.reorder(index)
    y, _ = mha(x[index, 3:], is_causal=True, cache=cache)
    full, _ = mha(x[index], is_causal=True)
    torch.testing.assert_close(y, full[:, 3:], atol=1e-5, rtol=1e-5)
    assert cache.k.shape == (3, 2, 5, 4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_cross_attention_cache_projects_memory_once(backend):
    torch.manual_seed(0)
    mha = MultiHeadAttention(8, 2, backend=backend, cross_attention=True).eval()
    x, memory = torch.randn(2, 4, 8), torch.randn(2, 6, 8)
    full, _ = mha(x, memory=memory)
    cache = KVCache()
    first, _ = mha(x[:, :1], memory=memory, cache=cache)
    assert cache.length == 6
    rest, _ = mha(x[:, 1:], memory=None, cache=cache)  # memory no longer needed
    torch.testing.assert_close(torch.cat([first, rest], 1), full, atol=1e-5, rtol=1e-5)


# ---- shapes, gradients, errors -----------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cross", [False, True])
def test_every_parameter_gets_a_gradient_and_shapes(backend, cross):
    torch.manual_seed(0)
    mha = MultiHeadAttention(12, 3, d_head=5, backend=backend, cross_attention=cross)
    x = torch.randn(2, 4, 12)
    memory = torch.randn(2, 7, 12) if cross else None
    out, w = mha(x, memory=memory, need_weights=True)
    assert out.shape == (2, 4, 12) and out.dtype == torch.float32
    assert w.shape == (2, 3, 4, 7 if cross else 4)
    out.square().sum().backward()
    for name, p in mha.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    n_params = sum(p.numel() for p in mha.parameters())
    assert n_params == 4 * (12 * 15) + 3 * 15 + 12  # q, k, v (12 -> 3*5) and out (15 -> 12), with biases


def test_bfloat16_module_keeps_dtype():
    mha = MultiHeadAttention(8, 2).to(torch.bfloat16)
    out, _ = mha(torch.randn(1, 3, 8, dtype=torch.bfloat16), is_causal=True)
    assert out.dtype == torch.bfloat16


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(10, 3)
    with pytest.raises(ValueError, match="backend"):
        MultiHeadAttention(8, 2, backend="flash")
    q = torch.randn(1, 1, 2, 4)
    with pytest.raises(ValueError, match="backend"):
        attention(q, q, q, backend="flash")


def test_bad_input_rank():
    mha = MultiHeadAttention(8, 2)
    with pytest.raises(ValueError, match="batch, seq_len, d_model"):
        mha(torch.randn(3, 8))
    with pytest.raises(ValueError, match="memory"):
        MultiHeadAttention(8, 2, cross_attention=True)(torch.randn(1, 3, 8))


def test_bad_input_width_names_d_model():
    with pytest.raises(ValueError, match="d_model"):
        MultiHeadAttention(8, 2)(torch.randn(1, 3, 7))


def test_bad_input_dtype_is_a_clear_error():
    with pytest.raises((TypeError, ValueError), match="dtype|floating"):
        MultiHeadAttention(8, 2)(torch.ones(1, 3, 8, dtype=torch.long))


def test_cross_attention_memory_of_wrong_rank():
    with pytest.raises(ValueError, match="memory"):
        MultiHeadAttention(8, 2, cross_attention=True)(torch.randn(1, 3, 8), memory=torch.randn(5, 8))


@pytest.mark.parametrize("backend", BACKENDS)
def test_mismatched_bias_shape_is_a_clear_error(backend):
    mha = MultiHeadAttention(8, 2, backend=backend)
    x = torch.randn(2, 3, 8)
    with pytest.raises(ValueError, match="attn_bias"):
        mha(x, attn_bias=padding_bias(torch.ones(2, 4)))  # 4 keys for 3 positions


@pytest.mark.parametrize("backend", BACKENDS)
def test_boolean_bias_is_rejected_not_added_as_zero_and_one(backend):
    """A boolean mask passed where an additive bias is expected must not silently become +0/+1."""
    mha = MultiHeadAttention(8, 2, backend=backend)
    x = torch.randn(2, 3, 8)
    with pytest.raises(TypeError, match="attn_bias"):
        mha(x, attn_bias=torch.ones(2, 1, 1, 3, dtype=torch.bool))


def test_scale_argument_is_used():
    g = _gen(6)
    q, k, v = (torch.randn(1, 2, 3, 4, generator=g) for _ in range(3))
    for backend in BACKENDS:
        got, _ = attention(q, k, v, scale=1.0, backend=backend)
        expected = F.softmax(q @ k.transpose(-2, -1), dim=-1) @ v
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_keys_and_values_of_different_lengths_are_refused_by_both_backends():
    """The fused backend used to return an output for 3 keys and 4 values."""
    q, k, v = torch.randn(1, 2, 5, 8), torch.randn(1, 2, 3, 8), torch.randn(1, 2, 4, 8)
    for backend in BACKENDS:
        with pytest.raises(ValueError, match="same length"):
            attention(q, k, v, backend=backend)
    for n_heads in (0, -4, 2.0):
        with pytest.raises(ValueError, match="n_heads"):
            MultiHeadAttention(16, n_heads)
