"""Attention backends: time and peak memory of "manual" vs "sdpa" as the sequence grows.

    python benchmarks/bench_attention.py                 # 64 ... 4096, writes benchmarks/results/attention.{md,png}
    python benchmarks/bench_attention.py --quick         # a smoke run (64, 128; one repeat)

The manual backend writes softmax(QKᵀ/√d)·V out, so it materialises (B, h, T, T) score and
weight matrices: memory grows as T². PyTorch's fused ``scaled_dot_product_attention`` (on CPU a
flash-attention style kernel for the causal case) works in tiles and never holds the whole
matrix. Both are called through ``minitransformer.nn.attention``, the function the models use.

Timing: the best of several repeats (on a shared machine slower runs measure the other jobs); in each repeat the two backends run back to back, and
which goes first alternates, so background load hits both alike. Memory: a separate run under
``torch.profiler`` with ``profile_memory=True``, which records every CPU-allocator allocation and
free with a timestamp; the peak is the largest running total of bytes allocated minus freed
during the call (inputs excluded, the output and gradients included).
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from minitransformer.nn import attention

BACKENDS = ("manual", "sdpa")
RESULTS = Path(__file__).resolve().parent / "results"


def make_inputs(B: int, h: int, T: int, d: int, requires_grad: bool, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(B, h, T, d, generator=g).requires_grad_(requires_grad) for _ in range(3)]  # q, k, v


def step(backend: str, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, backward: bool) -> None:
    """One causal attention call; with ``backward`` also the gradients of q, k and v."""
    if backward:
        out, _ = attention(q, k, v, is_causal=True, backend=backend)
        out.sum().backward()
        for t in (q, k, v):
            t.grad = None
    else:
        with torch.no_grad():
            attention(q, k, v, is_causal=True, backend=backend)


def time_pair(inputs: list[torch.Tensor], backward: bool, repeats: int) -> dict[str, float]:
    """Best-of-``repeats`` seconds per call for each backend, alternating which one runs first.

    The minimum, as ``timeit`` advises: on a shared machine slower runs measure the other jobs.
    """
    times: dict[str, list[float]] = {b: [] for b in BACKENDS}
    for r in range(repeats):
        order = BACKENDS if r % 2 == 0 else BACKENDS[::-1]
        for backend in order:
            start = time.perf_counter()
            step(backend, *inputs, backward=backward)
            times[backend].append(time.perf_counter() - start)
    return {b: min(ts) for b, ts in times.items()}


def peak_bytes(backend: str, inputs: list[torch.Tensor], backward: bool) -> int:
    """Peak of (bytes allocated - bytes freed) on the CPU allocator during one call."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step(backend, *inputs, backward=backward)
    events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events()
                    if e.name() == "[memory]")
    live = peak = 0
    for _, nbytes in events:
        live += nbytes
        peak = max(peak, live)
    return peak


def repeats_for(T: int, base: int) -> int:
    """Fewer repeats where one call takes seconds (default: 9 up to T=1024, 4 at 2048, 3 at 4096)."""
    return base if T <= 1024 else max(1, base // 2) if T <= 2048 else max(1, base // 3)


def run(lengths: list[int], B: int, h: int, d: int, repeats: int) -> list[dict]:
    rows = []
    for T in lengths:
        row: dict = {"T": T, "scores_bytes": B * h * T * T * 4}
        for backward in (False, True):
            mode = "fwd_bwd" if backward else "fwd"
            inputs = make_inputs(B, h, T, d, requires_grad=backward)
            if T <= 1024:  # warm-up (allocator, kernels); skipped where one call takes seconds
                for backend in BACKENDS:
                    step(backend, *inputs, backward=backward)
            t = time_pair(inputs, backward, repeats_for(T, repeats))
            for backend in BACKENDS:
                row[f"{mode}_time_{backend}"] = t[backend]
                row[f"{mode}_mem_{backend}"] = peak_bytes(backend, inputs, backward)
        rows.append(row)
        print(f"T={T:5d}  fwd {row['fwd_time_manual'] * 1e3:9.2f} / {row['fwd_time_sdpa'] * 1e3:9.2f} ms   "
              f"fwd+bwd {row['fwd_bwd_time_manual'] * 1e3:9.2f} / {row['fwd_bwd_time_sdpa'] * 1e3:9.2f} ms   "
              f"peak fwd+bwd {row['fwd_bwd_mem_manual'] / 2**20:8.1f} / {row['fwd_bwd_mem_sdpa'] / 2**20:7.1f} MiB"
              "   (manual / sdpa)", flush=True)
    return rows


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} logical cores (shared with other jobs), no GPU; torch {torch.__version__}, "
            f"{torch.get_num_threads()} intra-op threads")


def write_markdown(rows: list[dict], path: Path, B: int, h: int, d: int, command: str, elapsed: float,
                   repeats: int) -> None:
    mib = 2**20
    repeats_note = ", ".join(f"T={r['T']}: {repeats_for(r['T'], repeats)}" for r in rows)
    repeats_note = f"repeats per length: {repeats_note}"
    lines = [
        "# Attention backends: `manual` vs `sdpa` (CPU)",
        "",
        f"Causal self-attention, B={B}, h={h}, d_head={d}, float32, through `minitransformer.nn.attention`. "
        f"Machine: {machine()}. Generated {datetime.date.today().isoformat()} by `{command}` in {elapsed:.0f} s.",
        "",
        "- **Time**: best (minimum) wall time of one call over the repeats, as `timeit` advises on a shared machine (forward under `no_grad`; forward+backward = forward, "
        f"`out.sum().backward()`). Each repeat runs both backends back to back, alternating which goes first "
        f"({repeats_note}).",
        "- **Peak memory**: one extra call of each under `torch.profiler.profile(profile_memory=True)`, which "
        "records every CPU-allocator allocation and free with its timestamp; the peak is the largest running "
        "total of bytes allocated minus freed during the call (q, k, v excluded; the output and, for "
        "forward+backward, the gradients included). For scale, the last column is one fp32 (B, h, T, T) "
        "score matrix, which the manual path materialises several times.",
        "- **Ratio** = sdpa / manual (below 1: sdpa is faster / smaller).",
        "",
        "| T | fwd manual (ms) | fwd sdpa (ms) | ratio | fwd+bwd manual (ms) | fwd+bwd sdpa (ms) | ratio | "
        "peak fwd manual (MiB) | peak fwd sdpa (MiB) | ratio | peak fwd+bwd manual (MiB) | "
        "peak fwd+bwd sdpa (MiB) | ratio | (T,T) scores (MiB) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        cells = [str(r["T"])]
        for mode in ("fwd", "fwd_bwd"):
            m, s = r[f"{mode}_time_manual"], r[f"{mode}_time_sdpa"]
            cells += [f"{m * 1e3:.2f}", f"{s * 1e3:.2f}", f"{s / m:.2f}"]
        for mode in ("fwd", "fwd_bwd"):
            m, s = r[f"{mode}_mem_manual"], r[f"{mode}_mem_sdpa"]
            cells += [f"{m / mib:.1f}", f"{s / mib:.2f}", f"{s / m:.3f}" if m else "n/a"]
        cells.append(f"{r['scores_bytes'] / mib:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")


def write_plot(rows: list[dict], path: Path, B: int, h: int, d: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    T = [r["T"] for r in rows]
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(11, 4.2))
    styles = {"manual": "tab:red", "sdpa": "tab:blue"}
    for backend, colour in styles.items():
        ax_t.plot(T, [r[f"fwd_time_{backend}"] * 1e3 for r in rows], "o--", color=colour, label=f"{backend} fwd")
        ax_t.plot(T, [r[f"fwd_bwd_time_{backend}"] * 1e3 for r in rows], "s-", color=colour,
                  label=f"{backend} fwd+bwd")
        ax_m.plot(T, [max(r[f"fwd_mem_{backend}"], 1) / 2**20 for r in rows], "o--", color=colour,
                  label=f"{backend} fwd")
        ax_m.plot(T, [max(r[f"fwd_bwd_mem_{backend}"], 1) / 2**20 for r in rows], "s-", color=colour,
                  label=f"{backend} fwd+bwd")
    ax_m.plot(T, [r["scores_bytes"] / 2**20 for r in rows], ":", color="grey", label="one (T,T) fp32 matrix")
    for ax, ylabel in ((ax_t, "time per call (ms)"), (ax_m, "peak allocated (MiB)")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("sequence length T")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"Causal attention on CPU, B={B}, h={h}, d_head={d}, fp32: manual vs sdpa")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[64, 128, 256, 512, 1024, 2048, 4096])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--d-head", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=9, help="repeats up to T=1024 (fewer above)")
    parser.add_argument("--threads", type=int, default=1,
                        help="intra-op threads (default 1: the cores are shared, and more threads than free "
                             "cores make timings erratic)")
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    parser.add_argument("--quick", action="store_true", help="smoke run: T in (64, 128), one repeat")
    args = parser.parse_args(argv)
    if args.quick:
        args.lengths, args.repeats = [64, 128], 1
    if min(args.lengths + [args.batch, args.heads, args.d_head, args.repeats, args.threads]) <= 0:
        parser.error("lengths, --batch, --heads, --d-head, --repeats and --threads must be positive")
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    rows = run(args.lengths, args.batch, args.heads, args.d_head, args.repeats)
    elapsed = time.perf_counter() - start
    args.out_dir.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/bench_attention.py" + (" " + " ".join(argv if argv is not None else sys.argv[1:])
                                                         if (argv if argv is not None else sys.argv[1:]) else "")
    write_markdown(rows, args.out_dir / "attention.md", args.batch, args.heads, args.d_head, command.strip(), elapsed,
                   args.repeats)
    write_plot(rows, args.out_dir / "attention.png", args.batch, args.heads, args.d_head)
    print(f"wrote {args.out_dir / 'attention.md'} and {args.out_dir / 'attention.png'} ({elapsed:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
