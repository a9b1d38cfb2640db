"""Several runs side by side: their validation curves in one plot, and a table of what each reached.

    minitransformer compare runs/gpt-lr1e-3 runs/gpt-lr3e-3 runs/gpt-lr1e-2 --out lr.png

The classic experiments of small-scale pretraining (which learning rate, how much the seed
matters, what a bigger batch buys) are comparisons of runs. Their validation losses compare only
when they measure the same thing: the same family, validation text, tokenizer and sequence
length (a character is a different unit of loss from a word piece). The validation examples do
not depend on the seed, the batch size or the learning rate (``batches.validation_generators``),
so runs that differ only in those are scored on the same examples, or on a common first part of
them when ``eval_batches x batch_size`` differs. ``compare`` checks this and says so.
"""
from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path

from minitransformer.training.checkpoint import TOKENIZER_NAME
from minitransformer.training.config import TrainConfig
from minitransformer.training.metrics import read_metrics


@dataclass
class RunSummary:
    """What ``compare`` reads from one run folder."""

    path: Path
    config: TrainConfig
    tokenizer_sha256: str
    val: list[tuple[int, float]]  # (step, validation loss), in log order
    train: list[tuple[int, float]]  # (step, training loss)
    tokens_per_step: float | None  # training tokens per optimizer step, from the log
    metric: str = "loss"  # what ``val`` holds: the validation loss, or another logged metric (accuracy, ...)

    @property
    def steps(self) -> int:
        return max([s for s, _ in self.val + self.train], default=0)

    @property
    def best_val(self) -> tuple[int, float] | None:
        if not self.val:
            return None
        return (max if higher_is_better(self.metric) else min)(self.val, key=lambda p: p[1])

    @property
    def last_val(self) -> tuple[int, float] | None:
        return self.val[-1] if self.val else None

    @property
    def val_examples(self) -> int:
        return self.config.eval_batches * self.config.batch_size


def higher_is_better(metric: str) -> bool:
    """Accuracies and exact match grow as a model learns; losses and perplexity shrink."""
    return "accuracy" in metric or metric in ("exact_match", "macro_f1")


def read_run(run_dir: str | os.PathLike, metric: str = "loss") -> RunSummary:
    """A run folder's settings, tokenizer fingerprint, training losses and the validation ``metric``
    (FileNotFoundError if it is no run; ValueError naming the logged metrics if it never logged ``metric``)."""
    from minitransformer.training.trainer import read_run_config

    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    tokenizer = run_dir / TOKENIZER_NAME
    if not tokenizer.is_file():
        raise FileNotFoundError(f"{run_dir} has no {TOKENIZER_NAME}: it was not written by `minitransformer pretrain` "
                                "or `finetune`")
    events = read_metrics(run_dir)

    def losses(split: str, name: str = "loss") -> list[tuple[int, float]]:
        return [(int(e["step"]), float(e[name])) for e in events
                if e.get("split") == split and isinstance(e.get(name), (int, float)) and math.isfinite(e[name])]

    val = losses("val", metric)
    logged = sorted({k for e in events if e.get("split") == "val" for k in e} - {"step", "split"})
    if metric not in logged and logged:
        raise ValueError(f"{run_dir} logged no validation {metric!r}; it logged {', '.join(logged)}")

    counted = [e for e in events if e.get("split") == "train" and isinstance(e.get("tokens"), (int, float))]
    tokens_per_step = counted[-1]["tokens"] / counted[-1]["step"] if counted and counted[-1]["step"] else None
    return RunSummary(run_dir, config, hashlib.sha256(tokenizer.read_bytes()).hexdigest(),
                      val, losses("train"), tokens_per_step, metric)


def comparability(runs: list[RunSummary]) -> list[str]:
    """Why these runs' validation losses do not compare (empty: they do); notes about a partial overlap last."""
    first = runs[0].config
    problems = []
    for what, value in (("family", lambda r: r.config.family), ("corpus", lambda r: r.config.corpus),
                        ("validation fraction", lambda r: r.config.val_fraction),
                        ("sequence length", lambda r: r.config.seq_len), ("task", lambda r: r.config.task),
                        ("validation pairs", lambda r: r.config.val_corpus),
                        ("target length", lambda r: r.config.target_len)):
        values = [value(r) for r in runs]
        if len(set(values)) > 1:
            problems.append(f"their {what} differs ({', '.join(map(str, values))})")
    if len({r.tokenizer_sha256 for r in runs}) > 1:
        problems.append(f"their tokenizers differ ({', '.join(r.config.tokenizer for r in runs)}): "
                        "a loss per token measures different units")
    if first.family == "bert" and len({r.config.mlm_probability for r in runs}) > 1:
        problems.append("their masking rate differs (mlm_probability)")
    if first.family == "t5" and len({(r.config.noise_density, r.config.mean_noise_span_length) for r in runs}) > 1:
        problems.append("their span corruption differs (noise density or mean span length)")
    return problems


def summary_table(runs: list[RunSummary]) -> str:
    """A Markdown table: one row per run."""
    metric = runs[0].metric.replace("_", " ") if runs else "loss"
    rows = [f"| run | family | tokenizer | steps | tokens seen | best val {metric} (step) | last val {metric} (step) |",
            "|---|---|---|---|---|---|---|"]
    for r in runs:
        best, last = r.best_val, r.last_val
        tokens = f"{r.tokens_per_step * r.steps:,.0f}" if r.tokens_per_step else "-"
        rows.append(f"| {r.path} | {r.config.family} | {r.config.tokenizer} | {r.steps} | {tokens} | "
                    f"{f'{best[1]:.4f} ({best[0]})' if best else '-'} | "
                    f"{f'{last[1]:.4f} ({last[0]})' if last else '-'} |")
    return "\n".join(rows)


def plot_runs(runs: list[RunSummary], path: str | os.PathLike, x: str = "step") -> Path:
    """The validation metric (solid, dots; the loss by default) of every run against step or tokens seen, and
    with the loss the training loss (faint)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if x not in ("step", "tokens"):
        raise ValueError(f"x must be 'step' or 'tokens', got {x!r}")
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for i, r in enumerate(runs):
        color = f"C{i % 10}"
        scale = r.tokens_per_step if x == "tokens" and r.tokens_per_step else 1.0
        if r.train and r.metric == "loss":
            ax.plot([s * scale for s, _ in r.train], [v for _, v in r.train], color=color, alpha=0.25, lw=1)
        if r.val:
            ax.plot([s * scale for s, _ in r.val], [v for _, v in r.val], color=color, marker="o", ms=3, lw=1.5,
                    label=str(r.path))
    ax.set_xlabel("training tokens seen" if x == "tokens" else "step")
    metric = runs[0].metric if runs else "loss"
    ax.set_ylabel("validation loss (nats; faint: training)" if metric == "loss" else f"validation {metric.replace('_', ' ')}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)  # a reader never sees half a file
    return path
