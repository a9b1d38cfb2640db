"""What the step-through tutorials share: a fast mode for tests, and one way to save figures.

A tutorial runs as a script (figures go to ``tutorials/_output/``, no windows open) or cell by cell
in Jupyter / VS Code (figures also show inline). ``MT_TUTORIAL_FAST=1`` asks it to shrink its work
to seconds; ``MT_TUTORIAL_OUTPUT`` moves the figures elsewhere.

    from minitransformer.tutorial import FAST, figure_saver
    save = figure_saver("02", globals().get("__file__"))  # save(fig, "heads") -> _output/02_heads.png
"""
from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import matplotlib

INTERACTIVE = "ipykernel" in sys.modules  # Jupyter / VS Code cells: show plots inline
if not INTERACTIVE:
    matplotlib.use("Agg")  # a script: write the plots to files, open no windows

FAST = os.environ.get("MT_TUTORIAL_FAST") == "1"


def figure_saver(prefix: str, tutorial_file: str | None = None) -> Callable[..., Path]:
    """A ``save(fig, name)`` that writes ``<prefix>_<name>.png`` beside the tutorial, in ``_output/``.

    ``tutorial_file`` is the tutorial's ``__file__`` (absent when run cell by cell: then the
    current folder is used).
    """
    import matplotlib.pyplot as plt

    here = Path(tutorial_file).resolve().parent if tutorial_file else Path.cwd()
    out = Path(os.environ.get("MT_TUTORIAL_OUTPUT", here / "_output"))
    out.mkdir(parents=True, exist_ok=True)

    def save(fig, name: str) -> Path:
        path = out / f"{prefix}_{name}.png"
        # FAST mode (tests): small and without the extra layout pass of bbox_inches="tight"
        fig.savefig(path, dpi=60 if FAST else 110, bbox_inches=None if FAST else "tight")
        print(f"[plot] {path}")
        if INTERACTIVE:
            plt.show()
        plt.close(fig)
        return path

    return save
