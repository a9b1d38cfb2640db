"""T5's relative position buckets and bias, against Hugging Face's implementation."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import T5Config as HFT5Config
from transformers.models.t5.modeling_t5 import T5Attention

from minitransformer.nn import RelativePositionBias, relative_position_bucket

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
