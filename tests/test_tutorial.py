"""The tutorials' shared helper: figures named after their tutorial, written where MT_TUTORIAL_OUTPUT says."""
from __future__ import annotations

import matplotlib.pyplot as plt

from minitransformer.tutorial import figure_saver

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_figures_go_to_the_output_folder_named_after_the_tutorial(tmp_path, monkeypatch):
    monkeypatch.setenv("MT_TUTORIAL_OUTPUT", str(tmp_path / "plots"))
    save = figure_saver("07", str(tmp_path / "07_example.py"))
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    path = save(fig, "line")
    assert path == tmp_path / "plots" / "07_line.png"
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert not plt.get_fignums(), "the figure is closed after saving"


def test_without_an_output_folder_figures_go_beside_the_tutorial(tmp_path, monkeypatch):
    monkeypatch.delenv("MT_TUTORIAL_OUTPUT", raising=False)
    save = figure_saver("07", str(tmp_path / "07_example.py"))
    fig, _ = plt.subplots()
    assert save(fig, "empty") == tmp_path / "_output" / "07_empty.png"
