"""GPT-2 124M training throughput on one GPU: minitransformer vs transformers, eager and torch.compile.

    python benchmarks/gpu_gpt2.py                 # on a CUDA GPU (H100/H200): about 2-3 minutes
    python benchmarks/gpu_gpt2.py --smoke         # CPU, tiny shape: checks the script itself
    python benchmarks/gpu_gpt2.py --out gpt2.md   # also write the markdown table to a file
    python benchmarks/gpu_gpt2.py --profile 3     # eager: the kernels that take the time, device idle share
    python benchmarks/gpu_gpt2.py --padded-vocab  # also ours with the vocabulary padded to 50,304
    python benchmarks/gpu_gpt2.py --unaligned-head  # also ours with the LM head's rows 50,257 long (eager)

Setup: batch 16 x 1024 tokens, bf16 autocast, fused AdamW (same settings for both models), dropout
0 (as in nanoGPT's GPT-2 pretraining), random tokens. Each model is timed in alternating rounds in
one process (ours, HF, ours, HF, ...) after warm-up (and compilation); figures are medians.
MFU = tokens/s x (6N + 12·L·T·d) / peak, with the bf16 matmul peak measured on this card in this
run (``minitransformer.flops.measure_matmul_peak``), never a datasheet number.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time
import traceback
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import torch  # noqa: E402

from minitransformer.flops import gpt_flops_per_token, measure_matmul_peak, mfu  # noqa: E402
from minitransformer.interop import gpt2 as gpt2_interop  # noqa: E402
from minitransformer.models.config import GPTConfig  # noqa: E402
from minitransformer.models.gpt import GPT  # noqa: E402
from minitransformer.optim import make_adamw  # noqa: E402


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Runner:
    """One model + optimizer + a training step; ``rate(steps)`` gives tokens/s."""

    def __init__(self, name: str, model: torch.nn.Module, opt: torch.optim.Optimizer, is_ours: bool,
                 batch: int, seq: int, vocab: int, device: torch.device, dtype: torch.dtype,
                 compile_backend: str | None) -> None:
        self.name, self.model, self.opt, self.is_ours = name, model, opt, is_ours
        self.device, self.dtype = device, dtype
        self.fn = torch.compile(model, backend=compile_backend) if compile_backend else model
        gen = torch.Generator().manual_seed(0)
        self.data = [torch.randint(0, vocab, (batch, seq), generator=gen).to(device) for _ in range(2)]
        self.tokens = batch * seq
        self.error: str | None = None
        self.rates: list[float] = []

    def step(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(self.device.type, dtype=self.dtype):
            out = self.fn(x, labels=x) if self.is_ours else self.fn(input_ids=x, labels=x)
        out.loss.backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        return out.loss

    def warm_up(self, steps: int) -> None:
        try:
            for i in range(steps):
                loss = self.step(self.data[i % 2])
            sync(self.device)
            if not torch.isfinite(loss):
                raise RuntimeError(f"loss is {loss.item()}")
        except Exception as e:  # report and go on with the other runs
            self.error = f"{type(e).__name__}: {str(e).splitlines()[0][:150] if str(e) else ''}"
            traceback.print_exc()

    def timed_round(self, steps: int) -> None:
        if self.error:
            return
        sync(self.device)
        t0 = time.perf_counter()
        for i in range(steps):
            self.step(self.data[i % 2])
        sync(self.device)
        self.rates.append(steps * self.tokens / (time.perf_counter() - t0))


def build(cfg: GPTConfig, device: torch.device):
    """Our GPT and a transformers GPT2LMHeadModel with identical weights, both float32 on ``device``."""
    import transformers

    torch.manual_seed(0)
    ours = GPT(cfg).to(device).train()
    hf_cfg = transformers.GPT2Config(**gpt2_interop.config_to_hf(cfg), attn_implementation="sdpa")
    hf = transformers.GPT2LMHeadModel(hf_cfg)
    hf.load_state_dict(gpt2_interop.state_dict_to_hf(ours.state_dict(), cfg))
    return ours, hf.to(device).train()


def make_runners(cfg: GPTConfig, device: torch.device, dtype: torch.dtype, args,
                 backend: str | None) -> list[Runner]:
    """Ours and transformers' GPT-2 with the same weights, and the diagnostic variants asked for.

    ``--unaligned-head``: our GPT with the plain LM head (no padding for the GPU; eager only).
    ``--padded-vocab``: the vocabulary itself padded to a multiple of 64 (nanoGPT's 50,304 for GPT-2):
    the data still uses the real vocabulary, the extra rows are never-seen classes.
    ``--nanogpt-config``: that, and no biases (nanoGPT train.py's defaults). MFU keeps counting the
    unpadded model's FLOPs, so these rows show what each change buys in useful work.
    """
    ours, hf = build(cfg, device)
    models = [("minitransformer GPT", ours, make_adamw(ours, lr=6e-4, weight_decay=0.1, fused=True), True),
              ("transformers GPT2LMHeadModel", hf,
               torch.optim.AdamW(hf.parameters(), lr=6e-4, weight_decay=0.1, fused=True), False)]

    def variant(name: str, config: GPTConfig, logits_multiple_of: int | None = None) -> None:
        torch.manual_seed(0)  # the same initial weights as ours wherever the shapes agree
        model = GPT(config).to(device).train()
        model.logits_multiple_of = logits_multiple_of
        models.append((f"minitransformer GPT, {name} (diagnostic)", model,
                       make_adamw(model, lr=6e-4, weight_decay=0.1, fused=True), True))

    padded = -(-cfg.vocab_size // 64) * 64  # nanoGPT's 50,304 for GPT-2
    if args.unaligned_head and backend is None:  # under torch.compile inductor pads such products itself
        # the plain F.linear LM head: output rows 50,257 elements long
        variant("LM head not 8-aligned", cfg, logits_multiple_of=1)
    if args.padded_vocab:
        variant(f"vocab padded to {padded}", dataclasses.replace(cfg, vocab_size=padded))
    if args.nanogpt_config:  # nanoGPT train.py's own defaults for GPT-2 124M
        variant(f"nanoGPT's defaults: vocab {padded}, no biases", dataclasses.replace(cfg, vocab_size=padded, bias=False))
    return [Runner(name, model, opt, is_ours, args.batch, args.seq, cfg.vocab_size, device, dtype, backend)
            for name, model, opt, is_ours in models]


def profile_eager(cfg: GPTConfig, device: torch.device, dtype: torch.dtype, args) -> None:
    """Where an eager step's time goes: the top kernels by device time, and device busy vs wall time."""
    from torch.profiler import ProfilerActivity, profile

    runners = make_runners(cfg, device, dtype, args, None)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    report = []
    for r in runners:
        r.warm_up(max(2, args.warmup))
        sync(device)
        t0 = time.perf_counter()
        with profile(activities=activities) as prof:
            for i in range(args.profile):
                r.step(r.data[i % 2])
            sync(device)
        wall = (time.perf_counter() - t0) / args.profile
        events = prof.key_averages()
        key = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
        busy = sum(getattr(e, key) for e in events) / 1e6 / args.profile  # seconds of kernels per step
        report += [f"\n## {r.name}: {1000 * wall:.1f} ms/step under the profiler, kernels {1000 * busy:.1f} ms/step "
                   f"({busy / wall:.0%} busy)", events.table(sort_by=key, row_limit=25)]
        print("\n".join(report[-2:]), flush=True)
    if args.out:  # the tables are long: a remote run's captured output may keep only their end
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(report) + "\n", encoding="utf-8")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="tiny shape on CPU: check that the script runs")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seq", type=int, default=1024)
    p.add_argument("--steps", type=int, default=10, help="timed steps per round")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds per model")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps (compilation happens here)")
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile runs")
    p.add_argument("--only-compile", action="store_true", help="skip the eager runs")
    p.add_argument("--out", type=Path, default=None, help="also write the markdown table (or the profile) here")
    p.add_argument("--profile", type=int, default=0, metavar="STEPS",
                   help="instead of timing: profile STEPS eager steps of each model and print the kernels "
                        "that take the most device time, and how much of the step the device sat idle")
    p.add_argument("--unaligned-head", action="store_true",
                   help="also time (eager) our GPT with a plain F.linear LM head, without vocab_logits' 8-alignment")
    p.add_argument("--nanogpt-config", action="store_true",
                   help="also time our GPT at nanoGPT train.py's defaults (vocab 50,304, bias=False)")
    p.add_argument("--padded-vocab", action="store_true",
                   help="also time our GPT with the vocabulary padded to a multiple of 64 (nanoGPT's trick)")
    args = p.parse_args()

    if args.smoke:
        device, dtype = torch.device("cpu"), torch.bfloat16
        cfg = GPTConfig(vocab_size=257, max_seq_len=32, d_model=64, n_layers=2, n_heads=4, dropout=0.0)
        args.batch, args.seq, args.steps, args.rounds, args.warmup = 2, 32, 2, 2, 2
        compile_backend = "aot_eager"  # traces like inductor would, without compiling kernels
    else:
        if not torch.cuda.is_available():
            sys.exit("no CUDA GPU found: run on a GPU, or use --smoke for a CPU check of the script")
        device, dtype = torch.device("cuda"), torch.bfloat16
        cfg = GPTConfig.preset("gpt2-117m", dropout=0.0, max_seq_len=max(1024, args.seq))
        compile_backend = "inductor"
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (smoke test)"
    print(f"device: {name}; torch {torch.__version__}", flush=True)
    t_start = time.perf_counter()

    peak = measure_matmul_peak(device, dtype, size=256 if args.smoke else None)
    print(f"measured {dtype} matmul peak: {peak / 1e12:.2f} TFLOP/s", flush=True)

    fpt = gpt_flops_per_token(cfg, seq_len=args.seq)
    if args.profile:
        profile_eager(cfg, device, dtype, args)
        return
    rows = []
    for compiled in ([False] if args.no_compile else [True] if args.only_compile else [False, True]):
        backend = compile_backend if compiled else None
        runners = make_runners(cfg, device, dtype, args, backend)
        for r in runners:
            t0 = time.perf_counter()
            r.warm_up(args.warmup)
            print(f"{r.name} ({'compiled' if compiled else 'eager'}): warm-up {time.perf_counter() - t0:.1f} s"
                  f"{' FAILED ' + r.error if r.error else ''}", flush=True)
        for _ in range(args.rounds):
            for r in runners:
                r.timed_round(args.steps)
        mem = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
        for r in runners:
            mode = f"torch.compile ({backend})" if compiled else "eager"
            if r.error:
                rows.append(f"| {r.name} | {mode} | failed: {r.error} | | |")
                continue
            tps = statistics.median(r.rates)
            rows.append(f"| {r.name} | {mode} | {tps:,.0f} | {1000 * r.tokens / tps:.1f} | {100 * mfu(tps, fpt, peak):.1f}% |")
        rates = [statistics.median(r.rates) if r.rates else float("nan") for r in runners]
        rows.append(f"| ours / HF | {'compiled' if compiled else 'eager'} | {rates[0] / rates[1]:.2f}x | | |")
        print(f"peak memory so far: {mem:.1f} GiB", flush=True)
        del runners
        if device.type == "cuda":
            torch.cuda.empty_cache()

    table = [
        f"{'tiny smoke-test GPT' if args.smoke else 'GPT-2 124M'} training step (forward + backward + fused AdamW), "
        f"batch {args.batch} x {args.seq}, "
        f"{dtype} autocast, on {name}, torch {torch.__version__}.",
        f"Measured {dtype} matmul peak: {peak / 1e12:.2f} TFLOP/s; FLOPs/token = 6N + 12·L·T·d = {fpt / 1e6:.0f} M.",
        "",
        "| model | mode | tokens/s (median) | ms/step | MFU |",
        "|---|---|---|---|---|",
        *rows,
        "",
        f"total script time: {time.perf_counter() - t_start:.0f} s",
    ]
    text = "\n".join(table)
    print("\n" + text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
