"""What a run logs: one JSON object per event in ``metrics.jsonl``, a CSV copy, and a loss plot.

Every event has at least ``step``, ``split`` (``"train"`` or ``"val"``) and ``loss``; train events
add the learning rate, gradient norm and throughput, validation events the family's metrics
(perplexity; MLM and NSP accuracy; span-corruption token accuracy). JSON lines are easy to append
to (a crash loses at most the line being written) and easy to read back::

    import json
    events = [json.loads(line) for line in open("runs/gpt/metrics.jsonl")]

On ``--resume`` the log is cut back to the checkpoint's step, so the resumed run's log reads as
if it had never stopped.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path
from typing import Any

from minitransformer.training.checkpoint import atomic_write_text

METRICS_NAME = "metrics.jsonl"
CSV_NAME = "metrics.csv"
PLOT_NAME = "loss.png"


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The events of a ``metrics.jsonl`` (a run folder or the file); unreadable lines are skipped."""
    path = Path(path)
    if path.is_dir():
        path = path / METRICS_NAME
    if not path.is_file():
        return []
    events = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue  # e.g. a line cut short by a crash
        if isinstance(event, dict) and "step" in event:
            events.append(event)
    return events


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN/inf; keep the file strictly valid
    return value


class MetricsLog:
    """Appends events to ``run_dir/metrics.jsonl``; only the main process writes (``enabled``)."""

    def __init__(self, run_dir: str | os.PathLike, enabled: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / METRICS_NAME
        self.enabled = enabled
        self.events: list[dict[str, Any]] = read_metrics(self.path) if enabled else []

    def log(self, event: dict[str, Any]) -> None:
        if not {"step", "split", "loss"} <= event.keys():
            raise ValueError(f"a metrics event needs step, split and loss, got {sorted(event)}")
        event = {k: _jsonable(v) for k, v in event.items()}
        self.events.append(event)
        if self.enabled:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(event) + "\n")

    def truncate_after(self, step: int) -> None:
        """Forget events logged after ``step`` (and damaged lines): the log a resumed run continues."""
        self.events = [e for e in self.events if int(e["step"]) <= step]
        if self.enabled:
            atomic_write_text(self.path, "".join(json.dumps(e) + "\n" for e in self.events))

    def write_csv(self) -> None:
        if self.enabled:
            atomic_write_text(self.run_dir / CSV_NAME, events_to_csv(self.events))

    def plot(self, title: str = "") -> Path | None:
        if not self.enabled:
            return None
        return plot_metrics(self.events, self.run_dir / PLOT_NAME, title)


def events_to_csv(events: list[dict[str, Any]]) -> str:
    """Events as CSV text: one row per event, one column per key seen (first-seen order)."""
    columns: list[str] = []
    for e in events:
        columns += [k for k in e if k not in columns]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for e in events:
        writer.writerow(e)
    return out.getvalue()


ACCURACY_KEYS = ("mlm_accuracy", "nsp_accuracy", "token_accuracy")


def plot_metrics(events: list[dict[str, Any]], path: str | os.PathLike, title: str = "") -> Path:
    """Loss against step for train and validation; a second panel for validation accuracies if any."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def series(split: str, key: str) -> tuple[list[int], list[float]]:
        pts = [(int(e["step"]), float(e[key])) for e in events
               if e.get("split") == split and isinstance(e.get(key), (int, float)) and math.isfinite(e[key])]
        return [p[0] for p in pts], [p[1] for p in pts]

    accuracy_keys = [k for k in ACCURACY_KEYS if series("val", k)[0]]
    n_panels = 2 if accuracy_keys else 1
    fig, axes = plt.subplots(1, n_panels, figsize=(6.5 * n_panels, 4.2), squeeze=False)
    ax = axes[0][0]
    for split, style in (("train", dict(alpha=0.6, lw=1)), ("val", dict(marker="o", ms=3, lw=1.5))):
        x, y = series(split, "loss")
        if x:
            ax.plot(x, y, label=f"{split} loss", **style)
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy loss (nats)")
    ax.grid(alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title)
    if accuracy_keys:
        ax = axes[0][1]
        for key in accuracy_keys:
            x, y = series("val", key)
            ax.plot(x, y, marker="o", ms=3, label=key.replace("_", " "))
        ax.set_xlabel("step")
        ax.set_ylabel("validation accuracy")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.subplots_adjust(left=0.1 if n_panels == 1 else 0.06, right=0.98, bottom=0.13, top=0.92, wspace=0.2)
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)
    return path
