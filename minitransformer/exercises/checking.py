"""The machinery behind ``minitransformer exercises check``: load a learner's file, run cases, report.

A *check* is one property of the learner's answer ("matches the library without a mask", "never
selects special tokens"), tried on many seeded random cases. It stops at the first wrong case
and raises ``CheckFailed`` with a message that says which input it was and what differed
(shapes, dtypes, the first wrong value), so the learner can reproduce it. ``Report`` prints one
line per check and counts the failures.
"""
from __future__ import annotations

import importlib.util
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, TextIO

import torch


class CheckFailed(Exception):
    """A case gave a wrong answer (or raised); the message is meant for the learner."""


class NotWrittenYet(CheckFailed):
    """The learner's function still raises NotImplementedError (the untouched stub)."""

    def __init__(self, function_name: str) -> None:
        super().__init__(f"`{function_name}` is not written yet: its body still raises NotImplementedError")
        self.function_name = function_name


class LearnerFileError(Exception):
    """The learner's file could not be imported (a syntax error, an exception at import time)."""


def load_learner_module(path: Path, module_name: str) -> ModuleType:
    """Import the learner's file from ``path`` afresh (never a cached copy from an earlier run)."""
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise LearnerFileError(f"cannot import {path} as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules.pop(module_name, None)
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as e:  # the learner's code: anything can happen; report it, do not crash
        raise LearnerFileError(f"importing {path} failed: {_describe_exception(e, path)}") from e
    return module


def learner_function(module: ModuleType, name: str) -> Callable[..., Any]:
    """The function ``name`` from the learner's module, or CheckFailed saying it is missing."""
    fn = getattr(module, name, None)
    if not callable(fn):
        raise CheckFailed(f"your file has no function `{name}` (keep the name and signature of the stub)")
    return fn


def _describe_exception(e: BaseException, path: Path | None = None) -> str:
    """``TypeError: message (line 12 of ex02_attention.py)``, pointing into the learner's file if possible."""
    if isinstance(e, SyntaxError):  # its own message already names the file and line
        return f"{type(e).__name__}: {e.msg} (line {e.lineno} of {Path(e.filename or '?').name})"
    where = ""
    frames = traceback.extract_tb(e.__traceback__)
    if path is not None:
        mine = [f for f in frames if Path(f.filename).resolve() == path.resolve()]
        if mine:
            where = f" (line {mine[-1].lineno} of {path.name}: {(mine[-1].line or '').strip()})"
    return f"{type(e).__name__}: {e}{where}"


def call(fn: Callable[..., Any], case: str, *args: Any, path: Path | None = None, **kwargs: Any) -> Any:
    """Run the learner's ``fn``; an exception becomes a CheckFailed that names the case."""
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        raise NotWrittenYet(getattr(fn, "__name__", str(fn))) from None
    except (Exception, SystemExit) as e:  # exit() inside a function must fail the check, not pass it
        raise CheckFailed(f"{case}\n`{getattr(fn, '__name__', fn)}` raised {_describe_exception(e, path)}") from None


# ---- comparing results ----------------------------------------------------------------------
def shape_of(x: Any) -> str:
    return str(tuple(x.shape)) if isinstance(x, torch.Tensor) else type(x).__name__


def _index_str(flat_index: int, shape: torch.Size) -> str:
    idx = []
    for size in reversed(shape):
        idx.append(flat_index % size)
        flat_index //= size
    return str(tuple(reversed(idx)))


def _fmt(value: float | int | bool) -> str:
    return f"{value:.7g}" if isinstance(value, float) else str(value)


def expect_tensor(got: Any, expected: torch.Tensor, what: str, case: str, atol: float = 1e-5,
                  rtol: float = 1e-4, check_dtype: bool = False) -> None:
    """CheckFailed unless ``got`` is a tensor of ``expected``'s shape with (nearly) the same values.

    Float values are compared with ``atol``/``rtol`` (infinities must match exactly); integer and
    bool values exactly. ``check_dtype`` also demands the same dtype.
    """
    if not isinstance(got, torch.Tensor):
        raise CheckFailed(f"{case}\n{what}: expected a torch.Tensor of shape {tuple(expected.shape)}, "
                          f"got {type(got).__name__}")
    if got.shape != expected.shape:
        raise CheckFailed(f"{case}\n{what}: shape mismatch: expected {tuple(expected.shape)}, got {tuple(got.shape)}")
    if check_dtype and got.dtype != expected.dtype:
        raise CheckFailed(f"{case}\n{what}: dtype mismatch: expected {expected.dtype}, got {got.dtype}")
    got_c = got.detach().to("cpu")
    exp_c = expected.detach().to("cpu")
    if exp_c.dtype.is_floating_point or got_c.dtype.is_floating_point:
        g, e = got_c.double(), exp_c.double()
        both_inf = torch.isinf(g) & torch.isinf(e) & (torch.sign(g) == torch.sign(e))
        close = torch.isclose(g, e, rtol=rtol, atol=atol) | both_inf
    else:
        close = got_c == exp_c
    if bool(close.all()):
        return
    wrong = (~close).flatten().nonzero()[:, 0]
    first = int(wrong[0])
    detail = (f"{len(wrong)} of {close.numel()} values differ; first at index {_index_str(first, exp_c.shape)}: "
              f"expected {_fmt(exp_c.flatten()[first].item())}, got {_fmt(got_c.flatten()[first].item())}")
    if exp_c.dtype.is_floating_point and got_c.dtype.is_floating_point:
        finite_wrong = torch.isfinite(exp_c) & torch.isfinite(got_c) & ~close
        if bool(finite_wrong.any()):
            diff = (got_c.double() - exp_c.double()).abs()[finite_wrong].max().item()
            detail += f" (largest |expected - got|: {diff:.3g})"
    raise CheckFailed(f"{case}\n{what}: {detail}")


def expect_equal(got: Any, expected: Any, what: str, case: str) -> None:
    """CheckFailed unless ``got == expected`` (plain Python values)."""
    if got != expected:
        raise CheckFailed(f"{case}\n{what}: expected {expected!r}, got {got!r}")


# ---- running checks and reporting -----------------------------------------------------------
@dataclass
class Check:
    """One property of the learner's answer: ``run()`` returns how many cases passed or raises CheckFailed."""

    description: str
    run: Callable[[], int]
    hint: str = ""


@dataclass
class Report:
    """Prints ``PASS``/``FAIL`` per check and remembers whether everything passed."""

    out: TextIO = field(default_factory=lambda: sys.stdout)
    passed: int = 0
    failed: int = 0

    def run(self, checks: Sequence[Check]) -> bool:
        not_written: set[str] = set()  # functions already reported as untouched stubs
        for check in checks:
            try:
                n = check.run()
            except NotWrittenYet as e:
                self.failed += 1
                if e.function_name in not_written:
                    self._line("FAIL", f"{check.description} (`{e.function_name}` not written yet)")
                else:
                    not_written.add(e.function_name)
                    self._fail(check, str(e))
            except CheckFailed as e:
                self.failed += 1
                self._fail(check, str(e))
            else:
                self.passed += 1
                self._line("PASS", f"{check.description} ({n} case{'s' if n != 1 else ''})")
        return self.failed == 0

    def _fail(self, check: Check, message: str) -> None:
        self._line("FAIL", check.description)
        for line in message.splitlines():
            print(f"        {line}", file=self.out)
        if check.hint:
            print(f"        hint: {check.hint}", file=self.out)

    def _line(self, status: str, text: str) -> None:
        print(f"  {status}  {text}", file=self.out)
