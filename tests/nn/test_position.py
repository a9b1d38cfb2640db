"""Relative position schemes: T5's buckets and bias, RoPE and ALiBi, against transformers' implementations."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import T5Config as HFT5Config
from transformers.models.t5.modeling_t5 import T5Attention

from minitransformer.nn import (
    ALiBi,
    RelativePositionBias,
    RotaryEmbedding,
    alibi_slopes,
    apply_rotary,
    relative_position_bucket,
)

OFFSETS = torch.arange(-1024, 1025)  # every offset key_pos - query_pos up to ±1024


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("num_buckets,max_distance", [(32, 128), (16, 64), (64, 256), (8, 20)])
def test_bucket_equals_hugging_face_on_every_offset(bidirectional, num_buckets, max_distance):
    expected = T5Attention._relative_position_bucket(OFFSETS, bidirectional=bidirectional,
                                                     num_buckets=num_buckets, max_distance=max_distance)
    got = relative_position_bucket(OFFSETS, bidirectional, num_buckets, max_distance)
    assert got.dtype == torch.long
    assert torch.equal(got, expected)
    assert got.min() >= 0 and got.max() < num_buckets


def test_bucket_properties():
    b = relative_position_bucket(OFFSETS, bidirectional=False)
    assert torch.all(b[OFFSETS >= 0] == 0)  # a decoder cannot tell future keys apart (they are masked anyway)
    assert torch.all(b[:-1] >= b[1:])  # farther in the past -> same or later bucket
    bi = relative_position_bucket(OFFSETS, bidirectional=True)
    assert set(bi[OFFSETS > 0].tolist()).isdisjoint(bi[OFFSETS <= 0].tolist())  # two halves by direction


@pytest.mark.parametrize("bidirectional", [True, False])
def test_relative_position_bias_equals_hf_compute_bias(bidirectional):
    hf_cfg = HFT5Config(d_model=16, d_kv=4, num_heads=3, relative_attention_num_buckets=16,
                        relative_attention_max_distance=40, is_decoder=not bidirectional)
    hf = T5Attention(hf_cfg, has_relative_attention_bias=True).eval()
    ours = RelativePositionBias(3, num_buckets=16, max_distance=40, bidirectional=bidirectional)
    with torch.no_grad():
        hf.relative_attention_bias.weight.normal_()
        ours.bias.weight.copy_(hf.relative_attention_bias.weight)
    got = ours(7, 50)
    assert got.shape == (1, 3, 7, 50)
    torch.testing.assert_close(got, hf.compute_bias(7, 50))
    # decoding: queries at positions 45..49 of 50 keys
    torch.testing.assert_close(ours(5, 50, query_offset=45), hf.compute_bias(5, 50, past_seen_tokens=45))


def test_bias_of_a_step_is_a_slice_of_the_full_bias():
    torch.manual_seed(0)
    rel = RelativePositionBias(2, bidirectional=False)
    full = rel(9, 9)
    for pos, n in [(0, 3), (3, 1), (4, 5)]:
        torch.testing.assert_close(rel(n, pos + n, query_offset=pos), full[:, :, pos:pos + n, :pos + n])
    rel(9, 9).sum().backward()
    assert rel.bias.weight.grad is not None


@pytest.mark.parametrize("bidirectional,num_buckets,max_distance", [
    (True, 2, 128), (True, 32, 8), (True, 32, 7), (False, 1, 128), (False, 32, 16), (False, 8, 3)])
def test_bucket_settings_without_room_for_log_buckets_are_rejected(bidirectional, num_buckets, max_distance):
    """max_distance <= max_exact would divide by log(1) = 0 and hand out bucket ids outside the table."""
    with pytest.raises(ValueError, match="max_distance"):
        relative_position_bucket(OFFSETS, bidirectional, num_buckets, max_distance)
    with pytest.raises(ValueError, match="max_distance"):
        RelativePositionBias(2, num_buckets, max_distance, bidirectional)


def test_other_bad_arguments():
    with pytest.raises(TypeError, match="integer tensor"):
        relative_position_bucket(torch.tensor([-2.5, 0.5]))  # would give fractional bucket ids
    with pytest.raises(ValueError, match="n_heads"):
        RelativePositionBias(0)
    rel = RelativePositionBias(2, bidirectional=False)
    with pytest.raises(ValueError, match="query_offset >= 0"):
        rel(2, 3, query_offset=-1)
    with pytest.raises(ValueError, match="t_q >= 1"):
        rel(0, 3)


@settings(max_examples=60, deadline=None)
@given(bidirectional=st.booleans(), num_buckets=st.integers(4, 64), extra=st.integers(1, 200))
def test_every_allowed_setting_gives_ids_inside_the_table(bidirectional, num_buckets, extra):
    """Just above the smallest allowed max_distance, every offset still lands in [0, num_buckets)."""
    max_distance = (num_buckets // 2 if bidirectional else num_buckets) // 2 + extra
    ids = relative_position_bucket(OFFSETS, bidirectional, num_buckets, max_distance)
    assert int(ids.min()) >= 0 and int(ids.max()) < num_buckets


@settings(max_examples=40, deadline=None)
@given(t_q=st.integers(1, 40), t_k=st.integers(1, 40), query_offset=st.integers(0, 30), bidirectional=st.booleans(),
       heads=st.integers(1, 3), num_buckets=st.sampled_from([4, 8, 32]), max_distance=st.sampled_from([20, 128]))
def test_toeplitz_layout_equals_looking_up_every_pair(t_q, t_k, query_offset, bidirectional, heads, num_buckets,
                                                      max_distance):
    """The bias is laid out from one value per offset; it must equal bucketing each (query, key) pair
    on its own, in value and in the gradient it sends to the table."""
    torch.manual_seed(t_q * 41 + t_k)
    rel = RelativePositionBias(heads, num_buckets, max_distance, bidirectional)
    q_pos = torch.arange(query_offset, query_offset + t_q)[:, None]  # (Tq, 1)
    k_pos = torch.arange(t_k)[None, :]  # (1, Tk)
    buckets = relative_position_bucket(k_pos - q_pos, bidirectional, num_buckets, max_distance)  # (Tq, Tk)
    expected = rel.bias.weight[buckets].permute(2, 0, 1).unsqueeze(0)  # (1, h, Tq, Tk)
    got = rel(t_q, t_k, query_offset=query_offset)
    assert got.shape == (1, heads, t_q, t_k)
    assert got.is_contiguous()  # row-major: every layer adds it to its scores
    assert torch.equal(got, expected)
    upstream = torch.randn(got.shape)
    (grad_got,) = torch.autograd.grad(got, rel.bias.weight, upstream)
    (grad_expected,) = torch.autograd.grad(expected, rel.bias.weight, upstream)
    torch.testing.assert_close(grad_got, grad_expected)


# ---- RoPE ------------------------------------------------------------------------------------
def _rotate(x: torch.Tensor, positions: list[int], base: float = 10000.0) -> torch.Tensor:
    """x (1, h, T, d) rotated by RotaryEmbedding at the given positions."""
    rope = RotaryEmbedding(x.shape[-1], base)
    return apply_rotary(x, *rope(torch.tensor([positions])))


@settings(max_examples=20)
@given(m=st.integers(0, 500), n=st.integers(0, 500), shift=st.integers(0, 500),
       d_half=st.integers(1, 8), seed=st.integers(0, 2**16))
def test_rope_scores_depend_only_on_the_offset(m, n, shift, d_half, seed):
    """RoPE's point (Su et al. 2021 §3.4.2): q at m and k at n score the same as at m + s and n + s."""
    g = torch.Generator().manual_seed(seed)
    q, k = torch.randn(2, 1, 1, 1, 2 * d_half, generator=g, dtype=torch.float64).unbind(0)
    rope = RotaryEmbedding(2 * d_half)
    rope.inv_freq = rope.inv_freq.double()

    def score(qp: int, kp: int) -> float:
        cq, sq = rope(torch.tensor([[qp]]))
        ck, sk = rope(torch.tensor([[kp]]))
        return float((apply_rotary(q, cq.double(), sq.double()) * apply_rotary(k, ck.double(), sk.double())).sum())

    assert score(m, n) == pytest.approx(score(m + shift, n + shift), rel=1e-9, abs=1e-9)


def test_rope_is_a_rotation_that_starts_at_zero():
    x = torch.randn(2, 3, 5, 8)
    turned = _rotate(x, [0, 1, 2, 50, 999])
    assert torch.equal(turned[:, :, 0], x[:, :, 0])  # position 0: angle 0, nothing turns
    assert torch.allclose(turned.norm(dim=-1), x.norm(dim=-1), atol=1e-5)  # lengths kept
    assert not torch.allclose(turned[:, :, 1:], x[:, :, 1:])


def test_rope_equals_the_complex_number_form():
    """Pair (x_i, x_{i+d/2}) as the complex number x_i + j·x_{i+d/2}, times e^{j·m·θ_i}, θ_i = 10000^(-2i/d)."""
    d, positions = 6, [0, 3, 17]
    x = torch.randn(1, 1, len(positions), d, dtype=torch.float64)
    rope = RotaryEmbedding(d)
    rope.inv_freq = rope.inv_freq.double()
    cos, sin = rope(torch.tensor([positions]))
    got = apply_rotary(x, cos.double(), sin.double())
    theta = torch.tensor([10000.0 ** (-2 * i / d) for i in range(d // 2)], dtype=torch.float64)
    z = torch.complex(x[..., : d // 2], x[..., d // 2:])
    turned = z * torch.polar(torch.ones_like(theta), torch.tensor(positions, dtype=torch.float64)[:, None] * theta)
    assert torch.allclose(got, torch.cat([turned.real, turned.imag], dim=-1), atol=1e-12)


@pytest.mark.parametrize("d_head,base", [(8, 10000.0), (16, 500.0), (2, 10000.0)])
def test_rope_equals_gpt_neox_in_transformers(d_head, base):
    from transformers import GPTNeoXConfig
    from transformers.models.gpt_neox.modeling_gpt_neox import GPTNeoXRotaryEmbedding, apply_rotary_pos_emb

    hf_cfg = GPTNeoXConfig(hidden_size=2 * d_head, num_attention_heads=2,
                           rope_parameters={"rope_type": "default", "rope_theta": base, "partial_rotary_factor": 1.0})
    positions = torch.tensor([[0, 1, 5, 40, 333], [2, 2, 3, 4, 5]])
    q, k = torch.randn(2, 2, 2, 5, d_head).unbind(0)  # (B, h, T, d) each
    hf_cos, hf_sin = GPTNeoXRotaryEmbedding(hf_cfg)(q, positions)
    hf_q, hf_k = apply_rotary_pos_emb(q, k, hf_cos, hf_sin)
    cos, sin = RotaryEmbedding(d_head, base)(positions)
    assert torch.allclose(apply_rotary(q, cos, sin), hf_q, atol=1e-6)
    assert torch.allclose(apply_rotary(k, cos, sin), hf_k, atol=1e-6)


def test_rope_bad_settings():
    with pytest.raises(ValueError, match="even"):
        RotaryEmbedding(7)
    with pytest.raises(ValueError, match="base"):
        RotaryEmbedding(8, base=1.0)
    with pytest.raises(ValueError, match="d_head"):
        RotaryEmbedding(0)


# ---- ALiBi -----------------------------------------------------------------------------------
def test_alibi_slopes_for_eight_heads_are_the_papers():
    """Press et al. 2022 §3: for 8 heads the slopes are 1/2, 1/4, ..., 1/256."""
    assert alibi_slopes(8).tolist() == [2.0 ** -i for i in range(1, 9)]


@pytest.mark.parametrize("n_heads", [1, 2, 3, 5, 6, 8, 12, 16, 25])
def test_alibi_equals_bloom_in_transformers(n_heads):
    """BLOOM adds slope·key_position; ours slope·(key - query). They differ by a constant per query
    row, which softmax ignores: the attention weights must agree, also with left padding."""
    from transformers.models.bloom.modeling_bloom import build_alibi_tensor

    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1]])
    bloom = build_alibi_tensor(mask, n_heads, torch.float32).view(2, n_heads, 1, 6)  # (B, h, 1, Tk)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    ours = ALiBi(n_heads)(positions, positions)  # (B, h, Tq, Tk)
    scores = torch.randn(2, n_heads, 6, 6)
    hide = ~torch.ones(6, 6, dtype=torch.bool).tril() | (mask[:, None, None, :] == 0)
    a = torch.softmax((scores + ours).masked_fill(hide, float("-inf")), -1)
    b = torch.softmax((scores + bloom).masked_fill(hide, float("-inf")), -1)
    real = mask.bool()[:, None, :, None].expand_as(a)
    assert torch.allclose(a[real], b[real], atol=1e-6)


def test_alibi_penalises_distance_linearly():
    bias = ALiBi(4)(torch.arange(6)[None], torch.arange(6)[None])[0]  # (h, Tq, Tk)
    slopes = alibi_slopes(4)
    for h in range(4):
        for i in range(6):
            for j in range(i + 1):
                assert bias[h, i, j].item() == pytest.approx(-slopes[h].item() * (i - j))
    assert torch.all(bias.diagonal(dim1=-2, dim2=-1) == 0)


def test_rotary_is_refused_in_cross_attention():
    from minitransformer.nn import MultiHeadAttention

    mha = MultiHeadAttention(8, 2, cross_attention=True)
    rope = RotaryEmbedding(4)(torch.arange(3)[None])
    with pytest.raises(ValueError, match="cross-attention"):
        mha(torch.randn(1, 3, 8), memory=torch.randn(1, 4, 8), rotary=rope)
