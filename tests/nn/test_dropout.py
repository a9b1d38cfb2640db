"""Dropout written out: the right fraction dropped, survivors scaled by 1/(1-p), identity in eval, clear errors."""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from minitransformer.nn.dropout import Dropout, dropout


@given(p=st.floats(0.05, 0.95), seed=st.integers(0, 2**16))
def test_each_element_is_dropped_or_scaled(p, seed):
    """Every output element is either 0 or x / (1 - p): nothing else can come out of inverted dropout."""
    torch.manual_seed(seed)
    x = torch.rand(64, 33) + 0.5  # no zeros in x, so a zero in y means "dropped"
    y = dropout(x, p)
    kept = y != 0
    torch.testing.assert_close(y[kept], x[kept] / (1 - p), rtol=1e-6, atol=0)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_fraction_dropped_within_binomial_bound(p):
    torch.manual_seed(0)
    n = 200_000
    dropped = (dropout(torch.ones(n), p) == 0).float().mean().item()
    bound = 5 * math.sqrt(p * (1 - p) / n)  # five standard deviations of the observed fraction
    assert abs(dropped - p) < bound


def test_expectation_is_preserved():
    torch.manual_seed(0)
    x = torch.full((400_000,), 2.0)
    assert dropout(x, 0.3).mean().item() == pytest.approx(2.0, rel=0.01)


def test_identity_when_not_training_or_p_zero_and_zeros_when_p_one():
    x = torch.randn(4, 5, requires_grad=True)
    assert dropout(x, 0.5, training=False) is x
    assert dropout(x, 0.0) is x
    y = dropout(x, 1.0)
    assert torch.equal(y, torch.zeros_like(x)) and y.requires_grad


def test_gradient_flows_through_the_same_mask():
    torch.manual_seed(1)
    x = torch.randn(32, 16, requires_grad=True)
    y = dropout(x, 0.4)
    y.sum().backward()
    expected = torch.where(y != 0, torch.tensor(1 / 0.6), torch.tensor(0.0))
    torch.testing.assert_close(x.grad, expected)


def test_same_seed_same_mask_and_half_precision_keeps_dtype():
    x = torch.randn(8, 8, dtype=torch.bfloat16)
    torch.manual_seed(3)
    a = dropout(x, 0.25)
    torch.manual_seed(3)
    b = dropout(x, 0.25)
    assert torch.equal(a, b) and a.dtype == torch.bfloat16


def test_module_follows_train_and_eval_modes():
    layer = Dropout(0.5)
    x = torch.ones(1000)
    assert (layer(x) == 0).any()
    layer.eval()
    assert torch.equal(layer(x), x)


@pytest.mark.parametrize("p", [-0.1, 1.5, float("nan"), "0.1", None, True])  # a str or None was a bare TypeError
def test_bad_probability_is_a_clear_error(p):
    with pytest.raises(ValueError, match="dropout probability"):
        dropout(torch.ones(3), p)
    with pytest.raises(ValueError, match="dropout probability"):
        Dropout(p)
