"""Where one T5 training step spends its time on a CPU, ours next to transformers'.

    python benchmarks/t5_step_anatomy.py                  # t5-small, batch 4, encoder 128 / decoder 32
    python benchmarks/t5_step_anatomy.py --preset tiny

Three views of the same step (forward, backward, fused AdamW), both models holding the same weights:

1. Matrix multiplies by shape, from ``torch.profiler``: how many, and milliseconds per step.
2. The same multiplies on their own, into a preallocated output (``torch.mm(a, b, out=c)``): the
   difference to (1) is what a fresh output buffer costs inside a step (on Linux, page faults).
3. Memory each step allocates (``profile_memory``), by operator.

A diagnosis, not a race: ``bench_t5.py`` gives the speed ratios. See benchmarks/results/t5.md.
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from bench_t5 import DEC_LEN, ENC_LEN, TRAIN_BATCH, hf_twin  # noqa: E402
from torch.profiler import profile  # noqa: E402

from minitransformer.models.config import T5Config  # noqa: E402
from minitransformer.models.t5 import T5  # noqa: E402


def training_step(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, hf: bool):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)

    def step() -> None:
        out = model(input_ids=x, labels=y) if hf else model(x, labels=y)
        out.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return step


def isolated_mm_ms(shapes: list[list[int]], reps: int = 7) -> float:
    """Median time of one ``mm`` of these input shapes into a preallocated output, in ms."""
    (m, k), (_, n) = shapes
    a, b, out = torch.randn(m, k), torch.randn(k, n), torch.empty(m, n)
    for _ in range(2):
        torch.mm(a, b, out=out)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        torch.mm(a, b, out=out)
        times.append(time.perf_counter() - t0)
    return sorted(times)[reps // 2] * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="t5-small", choices=list(TRAIN_BATCH))
    ap.add_argument("--dropout", type=float, default=0.0)
    ap.add_argument("--steps", type=int, default=2, help="profiled steps per model")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--top", type=int, default=12, help="rows per table")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = T5Config.preset(args.preset, dropout=args.dropout)
    batch = TRAIN_BATCH[args.preset]
    torch.manual_seed(0)
    ours = T5(cfg).train()
    theirs = hf_twin(ours).train()
    g = torch.Generator().manual_seed(0)
    x = torch.randint(2, cfg.vocab_size, (batch, ENC_LEN), generator=g)
    y = torch.randint(2, cfg.vocab_size, (batch, DEC_LEN), generator=g)
    steps = {"minitransformer": training_step(ours, x, y, hf=False),
             "transformers": training_step(theirs, x, y, hf=True)}
    for _ in range(2):  # warm-up: optimizer state, allocator
        for step in steps.values():
            step()

    print(f"{args.preset}, batch {batch}, encoder {ENC_LEN} + decoder {DEC_LEN} tokens, dropout {args.dropout}, "
          f"{args.threads} threads, torch {torch.__version__}")
    for name, step in steps.items():
        with profile(record_shapes=True) as prof:
            for _ in range(args.steps):
                step()
        events = prof.key_averages(group_by_input_shape=True)
        mms = sorted((e for e in events if e.key == "aten::mm"), key=lambda e: -e.self_cpu_time_total)
        total = sum(e.self_cpu_time_total for e in prof.key_averages()) / args.steps / 1000
        mm_total = sum(e.self_cpu_time_total for e in mms) / args.steps / 1000
        print(f"\n## {name}: {total:.0f} ms of operator time per step, {mm_total:.0f} ms in mm")
        print(f"{'mm input shapes':32s} {'calls':>5s} {'ms/call in step':>16s} {'alone, out=':>12s}")
        for e in mms[:args.top]:
            per_call = e.self_cpu_time_total / e.count / 1000
            print(f"{str(e.input_shapes[:2]):32s} {e.count // args.steps:5d} {per_call:16.2f} "
                  f"{isolated_mm_ms(e.input_shapes[:2]):12.2f}")
        with profile(profile_memory=True) as prof:
            step()
        allocs = sorted((e for e in prof.key_averages() if e.self_cpu_memory_usage > 0),
                        key=lambda e: -e.self_cpu_memory_usage)
        print(f"allocated in one step: {sum(e.self_cpu_memory_usage for e in allocs) / 2**20:.0f} MB; largest: "
              + ", ".join(f"{e.key.removeprefix('aten::')} {e.self_cpu_memory_usage / 2**20:.0f} MB"
                          for e in allocs[:6]))


if __name__ == "__main__":
    main()
