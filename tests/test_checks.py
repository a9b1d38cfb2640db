"""The shared argument checks: what Python's own comparisons let through, they refuse."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minitransformer.checks import check_int, check_number, check_texts


@given(st.integers(-50, 50), st.integers(-50, 50), st.integers(-50, 50))
def test_check_int_accepts_exactly_the_integers_in_range(value, low, high):
    if low <= value <= high:
        assert check_int("n", value, low, high) == value
    else:
        with pytest.raises(ValueError, match=rf"n must be an integer in \[{low}, {high}\], got {value}"):
            check_int("n", value, low, high)


def test_check_int_refuses_what_int_comparisons_let_through():
    assert check_int("n", np.int64(3), 1) == 3 and type(check_int("n", np.int64(3), 1)) is int
    for bad in (True, 2.0, "2", None):
        with pytest.raises(ValueError, match="n must be an integer >= 1"):
            check_int("n", bad, 1)


def test_check_number_refuses_nan_inf_bools_and_open_bounds():
    assert check_number("lr", 1e-3, 0, low_open=True) == 1e-3
    for bad in (float("nan"), float("inf"), True, "0.1", None, 0.0):
        with pytest.raises(ValueError, match=r"lr must be a finite number > 0"):
            check_number("lr", bad, 0, low_open=True)
    with pytest.raises(ValueError, match=r"p must be a finite number in \(0, 1\)"):
        check_number("p", 1.0, 0, 1, low_open=True, high_open=True)


def test_check_texts_refuses_one_string_and_non_strings():
    assert check_texts("texts", ("a", "b")) == ["a", "b"]
    with pytest.raises(TypeError, match="list of strings"):
        check_texts("texts", "ab")  # would be two one-letter texts
    with pytest.raises(TypeError, match="must hold strings, got a int"):
        check_texts("texts", ["a", 1])
