"""Small exercises to go with the tutorials, checked automatically against the library's own code.

    minitransformer exercises list         # what there is
    minitransformer exercises start 2      # copy the stub to ./exercises/ex02_attention.py
    minitransformer exercises check 2      # run the checks on your solution

- ``stubs/``: one file per exercise: a function with its docstring, shapes and hints, the body
  still raising ``NotImplementedError``. No solutions anywhere in this package.
- ``catalog.py``: the list of exercises; ``checks.py``: the checks of each, comparing the
  learner's function with minitransformer's on seeded random cases; ``checking.py``: loading the
  learner's file, comparing results, reporting; ``commands.py``: the command line.
"""
from __future__ import annotations

import argparse

from minitransformer.exercises.catalog import EXERCISES, Exercise, get_exercise

__all__ = ["EXERCISES", "Exercise", "get_exercise", "add_commands"]


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``exercises list|start|check`` to the ``minitransformer`` command line (called by ``cli.py``)."""
    from minitransformer.exercises import commands

    commands.add_commands(subparsers)
