"""LayerNorm and RMSNorm against their references; the feed-forward variants against their formulas."""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from transformers import T5Config as HFT5Config
from transformers.models.t5.modeling_t5 import T5DenseActDense, T5DenseGatedActDense, T5LayerNorm

from minitransformer.nn import FeedForward, LayerNorm, RMSNorm, make_norm


@given(d=st.integers(1, 16), lead=st.lists(st.integers(1, 3), min_size=1, max_size=3),
       eps=st.sampled_from([1e-12, 1e-6, 1e-5, 0.1]), bias=st.booleans(), seed=st.integers(0, 1000))
def test_layernorm_equals_torch(d, lead, eps, bias, seed):
    g = torch.Generator().manual_seed(seed)
    ours, ref = LayerNorm(d, eps=eps, bias=bias), torch.nn.LayerNorm(d, eps=eps, bias=bias)
    with torch.no_grad():
        ours.weight.copy_(torch.randn(d, generator=g))
        ref.weight.copy_(ours.weight)
        if bias:
            ours.bias.copy_(torch.randn(d, generator=g))
            ref.bias.copy_(ours.bias)
    assert (ours.bias is None) == (not bias)
    x = 3 * torch.randn(*lead, d, generator=g) + 1
    torch.testing.assert_close(ours(x), ref(x), atol=1e-5, rtol=1e-5)


@given(d=st.integers(1, 16), eps=st.sampled_from([1e-6, 1e-3]), seed=st.integers(0, 1000))
def test_rmsnorm_equals_hf_t5_layernorm_fp32(d, eps, seed):
    g = torch.Generator().manual_seed(seed)
    ours, ref = RMSNorm(d, eps=eps), T5LayerNorm(d, eps=eps)
    with torch.no_grad():
        ours.weight.copy_(torch.randn(d, generator=g))
        ref.weight.copy_(ours.weight)
    x = 2 * torch.randn(2, 3, d, generator=g)
    torch.testing.assert_close(ours(x), ref(x), atol=1e-6, rtol=1e-6)
    assert sum(p.numel() for p in ours.parameters()) == d  # no bias, no mean


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_rmsnorm_equals_hf_t5_layernorm_half(dtype):
    g = torch.Generator().manual_seed(0)
    ours, ref = RMSNorm(32).to(dtype), T5LayerNorm(32).to(dtype)
    with torch.no_grad():
        ours.weight.copy_(torch.randn(32, generator=g))
        ref.weight.copy_(ours.weight)
    x = (4 * torch.randn(3, 32, generator=g)).to(dtype)
    got, expected = ours(x), ref(x)
    assert got.dtype == expected.dtype == dtype
    torch.testing.assert_close(got, expected, atol=0, rtol=0)


def test_rmsnorm_is_scale_invariant():
    x = torch.randn(4, 8)
    norm = RMSNorm(8, eps=0.0)
    torch.testing.assert_close(norm(x), norm(7.5 * x), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(norm(x).pow(2).mean(-1), torch.ones(4), atol=1e-5, rtol=1e-5)


def test_make_norm():
    assert isinstance(make_norm("layernorm", 8, 1e-5), LayerNorm)
    assert make_norm("layernorm", 8, 1e-5, bias=False).bias is None
    rms = make_norm("rmsnorm", 8, 1e-6)
    assert isinstance(rms, RMSNorm) and rms.eps == 1e-6
    with pytest.raises(ValueError, match="batchnorm.*layernorm.*rmsnorm"):
        make_norm("batchnorm", 8, 1e-5)


# ---- feed-forward ------------------------------------------------------------------------------------
def _gelu_exact(x: float) -> float:  # x·Φ(x)
    return 0.5 * x * (1.0 + math.erf(x / math.sqrt(2.0)))


def _gelu_tanh(x: float) -> float:  # Hendrycks & Gimpel's tanh approximation (GPT-2's "gelu_new")
    return 0.5 * x * (1.0 + math.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


@pytest.mark.parametrize("activation,fn", [("relu", lambda v: max(v, 0.0)), ("gelu", _gelu_exact),
                                           ("gelu_tanh", _gelu_tanh)])
def test_feedforward_equals_formula(activation, fn):
    torch.manual_seed(0)
    ffn = FeedForward(4, 6, activation).double()
    x = 2 * torch.randn(2, 3, 4, dtype=torch.float64)
    pre = ffn.fc_in(x)
    h = pre.detach().apply_(fn)  # the activation applied element by element in plain Python
    expected = ffn.fc_out(h)
    torch.testing.assert_close(ffn(x), expected, atol=1e-12, rtol=1e-10)
    assert ffn.fc_gate is None


def test_gated_gelu_equals_hf_t5_v1_1():
    torch.manual_seed(0)
    hf = T5DenseGatedActDense(HFT5Config(d_model=8, d_ff=12, feed_forward_proj="gated-gelu", dropout_rate=0.0)).eval()
    ours = FeedForward(8, 12, "gated-gelu", bias=False).eval()
    with torch.no_grad():
        ours.fc_gate.weight.copy_(hf.wi_0.weight)  # the gelu-activated branch
        ours.fc_in.weight.copy_(hf.wi_1.weight)  # the linear branch
        ours.fc_out.weight.copy_(hf.wo.weight)
    x = torch.randn(2, 5, 8)
    torch.testing.assert_close(ours(x), hf(x), atol=1e-6, rtol=1e-5)


def test_relu_ffn_equals_hf_t5_v1_0():
    torch.manual_seed(0)
    hf = T5DenseActDense(HFT5Config(d_model=8, d_ff=12, feed_forward_proj="relu", dropout_rate=0.0)).eval()
    ours = FeedForward(8, 12, "relu", bias=False).eval()
    with torch.no_grad():
        ours.fc_in.weight.copy_(hf.wi.weight)
        ours.fc_out.weight.copy_(hf.wo.weight)
    x = torch.randn(2, 5, 8)
    torch.testing.assert_close(ours(x), hf(x), atol=1e-6, rtol=1e-5)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in hf.parameters())


def test_inner_dropout_and_errors():
    ffn = FeedForward(4, 64, "relu", dropout=0.5)
    x = torch.randn(3, 4)
    ffn.train()
    torch.manual_seed(0)
    a = ffn(x)
    torch.manual_seed(1)
    assert not torch.allclose(a, ffn(x))
    ffn.eval()
    torch.testing.assert_close(ffn(x), ffn.fc_out(torch.relu(ffn.fc_in(x))))
    with pytest.raises(ValueError, match="swish.*relu"):
        FeedForward(4, 8, "swish")
    # every parameter learns, gated variant included
    gated = FeedForward(4, 8, "gated-gelu")
    gated(torch.randn(2, 4)).square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in gated.parameters())
