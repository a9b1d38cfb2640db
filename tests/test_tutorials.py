"""The tutorials run end to end as scripts (in their fast mode), write their plots, and are valid
percent-format notebooks whose cells also run one by one.

Each tutorial is a separate Python process, as a learner would run it: ``MT_TUTORIAL_FAST=1``
shrinks the training and data, ``MPLBACKEND=Agg`` draws without a display, and
``MT_TUTORIAL_OUTPUT`` sends the plots to a temporary folder instead of ``tutorials/_output/``.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

TUTORIALS_DIR = Path(__file__).resolve().parents[1] / "tutorials"
TUTORIALS = sorted(TUTORIALS_DIR.glob("[0-9][0-9]_*.py"))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def tutorial_env(output: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(MT_TUTORIAL_FAST="1", MPLBACKEND="Agg", MT_TUTORIAL_OUTPUT=str(output),
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               # CI runs two test workers on two cores: one thread per process avoids oversubscription
               OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return env


def cells(path: Path) -> list[tuple[str, str]]:
    """The percent-format cells of a file: [(kind, source)], kind "code" or "markdown"."""
    out: list[tuple[str, str]] = []
    kind, lines = None, []
    for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
        if line.startswith("# %%"):
            if kind is not None:
                out.append((kind, "".join(lines)))
            kind, lines = ("markdown" if "[markdown]" in line else "code"), []
        elif kind is not None:
            lines.append(line)
    if kind is not None:
        out.append((kind, "".join(lines)))
    return out


def test_the_six_tutorials_are_there():
    names = [p.name for p in TUTORIALS]
    assert len(names) >= 6, names
    assert [n[:2] for n in names] == [f"{i:02d}" for i in range(1, len(names) + 1)], "numbered 01, 02, ... in order"


@pytest.mark.parametrize("path", TUTORIALS, ids=lambda p: p.name)
def test_tutorial_is_percent_format_with_prose(path):
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# %% [markdown]\n# # "), "opens with a markdown cell holding the title"
    kinds = [kind for kind, _ in cells(path)]
    assert kinds.count("markdown") >= 4 and kinds.count("code") >= 4
    for kind, source in cells(path):
        if kind == "markdown":  # prose cells are comments only, so the file stays a plain script
            assert all(line.startswith("#") or not line.strip() for line in source.splitlines()), source[:80]
        else:
            compile(source, f"{path.name} (one cell)", "exec")  # each cell is complete on its own
    assert "plt.show()" not in text.replace("if INTERACTIVE:\n        plt.show()", ""), \
        "show plots only when running interactively"
    assert "MT_TUTORIAL_FAST" in text and "MT_TUTORIAL_OUTPUT" in text


@pytest.mark.parametrize("path", TUTORIALS, ids=lambda p: p.name)
def test_tutorial_runs_as_a_script_in_fast_mode(path, tmp_path):
    result = subprocess.run([sys.executable, str(path)], cwd=tmp_path, env=tutorial_env(tmp_path / "plots"),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{path.name} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    plots = re.findall(r"^\[plot\] (.+\.png)$", result.stdout, flags=re.MULTILINE)
    assert plots, f"{path.name} saved no plot"
    for plot in plots:
        plot_path = Path(plot)
        assert plot_path.parent == tmp_path / "plots", "plots go to MT_TUTORIAL_OUTPUT"
        assert plot_path.name.startswith(path.name[:3]), "plot files are named after their tutorial"
        assert plot_path.read_bytes()[:8] == PNG_MAGIC
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "_output").exists(), "nothing written next to the working directory"


def test_tutorial_runs_cell_by_cell_without_file(tmp_path):
    """As in Jupyter / VS Code: cells executed one after another in one namespace, no ``__file__``."""
    path = TUTORIALS_DIR / "02_attention.py"
    program = (
        "import sys\n"
        "namespace = {'__name__': '__main__'}\n"
        "for i, source in enumerate(CELLS):\n"
        "    exec(compile(source, f'cell {i}', 'exec'), namespace)\n"
        "print('cells run:', len(CELLS))\n"
    )
    code_cells = [source for kind, source in cells(path) if kind == "code"]
    script = tmp_path / "run_cells.py"
    script.write_text(f"CELLS = {code_cells!r}\n" + program, encoding="utf-8")
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=tutorial_env(tmp_path / "plots"),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-5000:]
    assert f"cells run: {len(code_cells)}" in result.stdout
    assert list((tmp_path / "plots").glob("02_*.png"))
