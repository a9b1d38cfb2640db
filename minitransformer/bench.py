"""Benchmarks that tie the tiny models to the famous ones (``minitransformer bench ...``).

- ``table``: the reference table — parameters, disk and memory of BERT-Large, GPT-2 117M and 1.5B,
  GPT-3 175B, T5-11B, RoBERTa-Large and ELECTRA-Large. Parameters are exact (the real modules on the
  meta device); disk is measured by writing the weights to safetensors where the machine allows it
  (``--measure-up-to``) and computed (parameters x bytes) elsewhere; memory is estimated with
  ``estimate_memory``'s documented formulas.
- ``scaling``: where the parameters live (embeddings vs attention vs feed-forward) as models grow.
- ``throughput``: training-step tokens/s and model-FLOPs utilisation of small GPTs on this machine.
- ``attention``: time of the "manual" and "sdpa" attention backends over sequence lengths.

Each writes a markdown table (printed, and saved with ``--out``) and, where it helps, a PNG plot.
The heavier head-to-head comparisons with other implementations live in the repository's
``benchmarks/`` folder.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from minitransformer.accounting import count_parameters, estimate_memory
from minitransformer.models.config import BertConfig, GPTConfig, T5Config

# The reference table of the book this project grew from: rough published figures (~GB, millions).
REFERENCE_MODELS = [
    # (name, config, published disk ~GB, published memory ~GB, published params ~M)
    ("BERT-Large", BertConfig.preset("bert-large"), 1.3, 3.3, 340),
    ("GPT-2 117M", GPTConfig.preset("gpt2-117m"), 0.5, 1.5, 117),
    ("GPT-2 1.5B", GPTConfig.preset("gpt2-1.5b"), 6, 16, 1_500),
    ("GPT-3 175B", GPTConfig.preset("gpt3-175b"), 700, 2_000, 175_000),
    ("T5-11B", T5Config.preset("t5-11b"), 45, 40, 11_000),
    ("RoBERTa-Large", BertConfig.preset("roberta-large"), 1.5, 3.5, 355),
    ("ELECTRA-Large", BertConfig.preset("electra-large"), 1.3, 3.3, 335),
]

GB = 1e9


@dataclass
class TableRow:
    name: str
    parameters: int
    disk_fp32_gb: float
    disk_measured: bool
    inference_fp16_gb: float
    training_mixed_gb: float
    published_params_m: float
    published_disk_gb: float
    published_memory_gb: float


def measure_disk_bytes(cfg: BertConfig | GPTConfig | T5Config) -> int:
    """Build the model for real, write it as safetensors (float32) and return the file size."""
    from minitransformer.accounting import build_model
    from minitransformer.interop.files import WEIGHTS_NAME, save_pretrained

    model = build_model(cfg)
    with tempfile.TemporaryDirectory() as tmp:
        folder = save_pretrained(model, cfg, Path(tmp) / "m", family=type(cfg).__name__.replace("Config", "").lower())
        return (folder / WEIGHTS_NAME).stat().st_size


def reference_table(measure_up_to: int = 400_000_000, seq_len: int = 512) -> list[TableRow]:
    """The table's rows; models with at most ``measure_up_to`` parameters are written to disk and measured."""
    rows = []
    for name, cfg, pub_disk, pub_mem, pub_params in REFERENCE_MODELS:
        n = count_parameters(cfg)
        measured = n <= measure_up_to
        disk = measure_disk_bytes(cfg) if measured else 4 * n
        inference = estimate_memory(cfg, batch_size=1, seq_len=seq_len, dtype="float16", training=False).total
        training = estimate_memory(cfg, batch_size=1, seq_len=seq_len, dtype="bfloat16", training=True).total
        rows.append(TableRow(name, n, disk / GB, measured, inference / GB, training / GB, pub_params, pub_disk, pub_mem))
    return rows


def table_markdown(rows: list[TableRow], seq_len: int) -> str:
    lines = [
        "| model | parameters (exact) | published ~M | disk fp32 GB | published disk ~GB | inference fp16 GB "
        f"(b=1, s={seq_len}) | training bf16+AdamW GB (b=1, s={seq_len}) | published memory ~GB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        disk = f"{r.disk_fp32_gb:,.2f}" + (" (measured)" if r.disk_measured else " (computed)")
        lines.append(f"| {r.name} | {r.parameters:,} | {r.published_params_m:,} | {disk} | {r.published_disk_gb:,} | "
                     f"{r.inference_fp16_gb:,.2f} | {r.training_mixed_gb:,.1f} | {r.published_memory_gb:,} |")
    lines.append("")
    lines.append("Parameters: the real modules built on the meta device. Disk: safetensors file size (measured) or "
                 "4 bytes x parameters (computed). Memory: `estimate_memory` (see its docstring for the formulas). "
                 "The published columns are the rough figures of the reference table we teach from; the book's "
                 "memory column sits between our fp16 inference and training figures (for most rows about the "
                 "fp32 weights plus overhead; T5-11B's 40 GB is below its fp32 weights of 45 GB). Training "
                 "activations follow Korthikanti et al. 2022's count; at T5-11B's proportions our own T5 keeps "
                 "1.25x (float32) to 1.5x (bfloat16) that for backward, measured on small models.")
    return "\n".join(lines)


def plot_table(rows: list[TableRow], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    names = [r.name for r in rows]
    x = range(len(rows))
    ax.bar([i - 0.27 for i in x], [r.disk_fp32_gb for r in rows], width=0.27, label="disk (fp32)")
    ax.bar(list(x), [r.inference_fp16_gb for r in rows], width=0.27, label="inference memory (fp16)")
    ax.bar([i + 0.27 for i in x], [r.training_mixed_gb for r in rows], width=0.27, label="training memory (bf16+AdamW)")
    ax.set_yscale("log")
    ax.set_xticks(list(x), names, rotation=30, ha="right")
    ax.set_ylabel("GB (log scale)")
    ax.set_title("The reference models: disk and memory")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---- scaling --------------------------------------------------------------------------------
def parameter_breakdown(cfg: GPTConfig) -> dict[str, int]:
    """Embeddings vs attention vs feed-forward vs norms of a GPT, from its real module on the meta device."""
    from minitransformer.models.gpt import GPT

    with torch.device("meta"):
        model = GPT(cfg)
    parts = {"embeddings": 0, "attention": 0, "feed-forward": 0, "norms": 0}
    for name, p in model.named_parameters():
        if "emb" in name:
            parts["embeddings"] += p.numel()
        elif "attn" in name and "norm" not in name:
            parts["attention"] += p.numel()
        elif "ffn." in name:
            parts["feed-forward"] += p.numel()
        else:
            parts["norms"] += p.numel()
    return parts


def scaling_markdown() -> tuple[str, list[tuple[str, dict[str, int]]]]:
    shapes = [(n, GPTConfig.preset(n)) for n in ("tiny", "shakespeare-char", "gpt2-117m", "gpt2-1.5b", "gpt3-175b")]
    rows = [(name, parameter_breakdown(cfg)) for name, cfg in shapes]
    lines = ["| GPT shape | total | embeddings | attention | feed-forward | norms | 12·L·d² (rule of thumb) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for (name, parts), (_, cfg) in zip(rows, shapes, strict=True):
        total = sum(parts.values())
        pct = {k: f"{v:,} ({100 * v / total:.0f}%)" for k, v in parts.items()}
        lines.append(f"| {name} | {total:,} | {pct['embeddings']} | {pct['attention']} | {pct['feed-forward']} | "
                     f"{pct['norms']} | {12 * cfg.n_layers * cfg.d_model**2:,} |")
    lines.append("\nAs models grow, the layers' 12·L·d² dominates and the embeddings become a rounding error.")
    return "\n".join(lines), rows


def plot_scaling(rows: list[tuple[str, dict[str, int]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    bottom = [0.0] * len(rows)
    for part in ("embeddings", "attention", "feed-forward", "norms"):
        share = [100 * parts[part] / sum(parts.values()) for _, parts in rows]
        ax.bar([name for name, _ in rows], share, bottom=bottom, label=part)
        bottom = [b + s for b, s in zip(bottom, share, strict=True)]
    ax.set_ylabel("% of parameters")
    ax.set_title("Where a GPT's parameters live")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---- throughput and attention ---------------------------------------------------------------
def _time(fn, repeats: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def _train_step(model: torch.nn.Module, opt: torch.optim.Optimizer, ids: torch.Tensor) -> None:
    """One causal-LM training step: forward, backward, AdamW."""
    model(ids, labels=ids).loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)


def throughput_markdown(steps: int = 5) -> str:
    """Training-step tokens/s of small GPTs (fp32, AdamW) and model-FLOPs utilisation vs a measured matmul peak."""
    from minitransformer.flops import gpt_flops_per_token, measure_matmul_peak, mfu
    from minitransformer.models.gpt import GPT

    peak = measure_matmul_peak("cpu")  # the best FLOP/s of a 1024 x 1024 fp32 matmul, as everywhere else
    lines = [f"Measured fp32 matmul peak: {peak / 1e9:,.1f} GFLOP/s ({torch.get_num_threads()} threads)", "",
             "| shape | params | batch x context | tokens/s | MFU |", "|---|---:|---:|---:|---:|"]
    for name, batch in (("tiny", 16), ("shakespeare-char", 8)):
        cfg = GPTConfig.preset(name, dropout=0.0)
        torch.manual_seed(0)
        model = GPT(cfg)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        ids = torch.randint(0, cfg.vocab_size, (batch, cfg.max_seq_len))
        seconds = _time(lambda m=model, o=opt, x=ids: _train_step(m, o, x), steps)
        tokens_per_s = batch * cfg.max_seq_len / seconds
        n_params = count_parameters(model)
        utilisation = mfu(tokens_per_s, gpt_flops_per_token(cfg), peak)  # N without the position table
        lines.append(f"| {name} | {n_params:,} | {batch} x {cfg.max_seq_len} | {tokens_per_s:,.0f} | "
                     f"{100 * utilisation:.1f}% |")
    return "\n".join(lines)


def attention_markdown(lengths: tuple[int, ...] = (64, 256, 1024, 2048), repeats: int = 3) -> str:
    """Forward time of causal attention, manual vs sdpa (B=1, 8 heads of 64)."""
    from minitransformer.nn.attention import attention

    lines = ["| T | manual ms | sdpa ms | manual / sdpa | (T, T) scores MB the manual path keeps |",
             "|---:|---:|---:|---:|---:|"]
    for t in lengths:
        q, k, v = (torch.randn(1, 8, t, 64) for _ in range(3))
        times = {b: _time(lambda b=b, q=q, k=k, v=v: attention(q, k, v, is_causal=True, backend=b), repeats)
                 for b in ("manual", "sdpa")}
        lines.append(f"| {t} | {1e3 * times['manual']:.2f} | {1e3 * times['sdpa']:.2f} | "
                     f"{times['manual'] / times['sdpa']:.2f}x | {8 * t * t * 4 / 1e6:.1f} |")
    return "\n".join(lines)


# ---- command line ---------------------------------------------------------------------------
def _emit(text: str, out: str | None, name: str) -> None:
    print(text)
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / f"{name}.md").write_text(text + "\n", encoding="utf-8")


def run(args: argparse.Namespace) -> int:
    out = args.out
    if args.what == "table":
        rows = reference_table(measure_up_to=args.measure_up_to, seq_len=args.seq_len)
        command = (f"`minitransformer bench table --measure-up-to {args.measure_up_to} --seq-len {args.seq_len}` "
                   "(which models are measured on disk depends on --measure-up-to)\n\n")
        _emit(command + table_markdown(rows, args.seq_len), out, "reference_table")
        if out:
            plot_table(rows, Path(out) / "reference_table.png")
    elif args.what == "scaling":
        text, rows = scaling_markdown()
        _emit(text, out, "scaling")
        if out:
            plot_scaling(rows, Path(out) / "scaling.png")
    elif args.what == "throughput":
        _emit(throughput_markdown(), out, "throughput")
    else:
        _emit(attention_markdown(), out, "attention_quick")
    return 0


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("bench", help="parameter/disk/memory table, scaling, throughput, attention")
    p.add_argument("what", choices=["table", "scaling", "throughput", "attention"])
    p.add_argument("--out", default=None, help="folder for the markdown table and PNG plot")
    p.add_argument("--seq-len", type=int, default=512, help="sequence length for memory estimates (table)")
    p.add_argument("--measure-up-to", type=int, default=400_000_000,
                   help="write models up to this many parameters to disk to measure their size (table)")
    p.set_defaults(func=run)
