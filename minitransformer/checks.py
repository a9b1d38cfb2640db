"""Argument checks shared by the whole library: one place that says what a size, a rate or a list of texts is.

Each function returns the value it checked (as a plain ``int``/``float``/``list``) or raises an
error that names the argument and what is allowed. Python's own comparisons are not enough: a
``bool`` is an ``int`` (``True`` would pass as 1), NaN fails every comparison (so ``not x > 0``
and ``x > 0`` both need care), and a ``str`` is a sequence of one-letter strings.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Sequence


def _bounds(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    """The allowed range in words, e.g. " >= 1" or " in (0, 1)"."""
    if low is not None and high is not None:
        return f" in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    if low is not None:
        return f" {'>' if low_open else '>='} {low}"
    if high is not None:
        return f" {'<' if high_open else '<='} {high}"
    return ""


def check_int(name: str, value: object, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an int if it is an integer (numpy's too, not a bool) in [low, high]; else ValueError."""
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if not ok or (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name} must be an integer{_bounds(low, high, False, False)}, got {value!r}")
    return int(value)


def check_number(name: str, value: object, low: float | None = None, high: float | None = None, *,
                 low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a float if it is a finite real number (not a bool) in the given range; else ValueError.

    ``low_open``/``high_open`` exclude the bound itself: ``check_number("lr", lr, 0, low_open=True)``
    means lr > 0.
    """
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        raise ValueError(f"{name} must be a finite number{_bounds(low, high, low_open, high_open)}, got {value!r}")
    return float(value)


def check_texts(name: str, texts: object) -> list[str]:
    """A list of strings, not one string (whose characters would pass for a list of one-letter texts)."""
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise TypeError(f"{name} must be a list of strings, got {type(texts).__name__}")
    for text in texts:
        if not isinstance(text, str):
            raise TypeError(f"{name} must hold strings, got a {type(text).__name__}")
    return list(texts)
