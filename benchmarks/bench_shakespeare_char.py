"""nanoGPT's CPU recipe on tiny Shakespeare, with minitransformer: do we reach its ~1.88 validation loss?

nanoGPT's README trains a character-level GPT on a laptop CPU with

    python train.py config/train_shakespeare_char.py --device=cpu --compile=False --eval_iters=20 \\
        --log_interval=1 --block_size=64 --batch_size=12 --n_layer=4 --n_head=4 --n_embd=128 \\
        --max_iters=2000 --lr_decay_iters=2000 --dropout=0.0

and reports a validation loss of about 1.88. The config file adds: learning rate 1e-3 decaying to
1e-4 (cosine), 100 warm-up steps, AdamW with beta2 = 0.99 and weight decay 0.1, gradient clipping
at 1.0, no biases. Our ``nanogpt-cpu`` preset is the same recipe (same data split: the first 90% of
the characters train, the rest validates). With it we land at 1.89-1.90, a hair above; the only
change this benchmark makes by default is a 3x higher learning rate (3e-3 decaying to 3e-4), same
model, same batches, same number of steps, which gives about 1.77:

    python benchmarks/bench_shakespeare_char.py                         # ours: lr 3e-3, ~2-4 min on 2 cores
    python benchmarks/bench_shakespeare_char.py --lr 1e-3 --min-lr 1e-4 --tag shakespeare_char_lr1e-3  # exact
    python benchmarks/bench_shakespeare_char.py --max-steps 200         # a quick look

The data file is read from ``../shared/data/tinyshakespeare.txt`` beside the repository (never
copied into it), or ``--data PATH``. Results (JSON and the loss plot) go to ``benchmarks/results/``.
The final validation loss is reported twice: over the 20 fixed batches the run logs (nanoGPT's
``eval_iters=20``) and over 200 batches (nanoGPT's default ``eval_iters``: less noise).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "tinyshakespeare.txt"
RESULTS = REPO / "benchmarks" / "results"
NANOGPT_VAL_LOSS = 1.88


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--max-steps", type=int, default=2000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--out", type=Path, default=None, help="run folder (default: a temporary one)")
    parser.add_argument("--tag", default="shakespeare_char_lr3e-3", help="name of the result files")
    parser.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (nanoGPT's recipe: 1e-3)")
    parser.add_argument("--min-lr", type=float, default=3e-4, help="final learning rate (nanoGPT's recipe: 1e-4)")
    args = parser.parse_args(argv)
    if not args.data.is_file():
        raise SystemExit(f"tiny Shakespeare not found at {args.data} (give --data PATH)")
    if args.threads:
        torch.set_num_threads(args.threads)

    from minitransformer.training import preset
    from minitransformer.training.trainer import Trainer, evaluate_objective

    cfg = preset("gpt", "nanogpt-cpu", corpus=str(args.data), max_steps=args.max_steps, lr=args.lr, min_lr=args.min_lr,
                 lr_decay_steps=max(args.max_steps, 1), device=args.device, progress=True, save_every=args.max_steps)
    run_dir = args.out or Path(tempfile.mkdtemp(prefix="bench-shakespeare-char-")) / "run"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    t0 = time.perf_counter()
    trainer = Trainer(cfg, run_dir)
    result = trainer.run()
    wall = time.perf_counter() - t0
    events = trainer.metrics.events
    train_events = [e for e in events if e["split"] == "train"]
    train_time = result.train_seconds
    val200 = evaluate_objective(trainer.objective, trainer.model, trainer.model, 200, slice(None), trainer.device,
                                trainer.autocast)
    mfus = [e["mfu"] for e in train_events if "mfu" in e]
    summary = {
        "recipe": "nanoGPT README CPU command (4 layers, 4 heads, 128 wide, context 64, batch 12, 2000 steps)",
        "lr": [cfg.lr, cfg.min_lr],
        "data": str(args.data.name),
        "steps": result.step,
        "val_loss_20_batches": result.val["loss"],
        "val_loss_200_batches": val200["loss"],
        "nanogpt_reported_val_loss": NANOGPT_VAL_LOSS,
        "reaches_nanogpt": val200["loss"] <= NANOGPT_VAL_LOSS and result.val["loss"] <= NANOGPT_VAL_LOSS,
        "wall_time_s": wall,
        "train_time_s": train_time,
        "tokens": result.step * cfg.tokens_per_step,
        "tokens_per_s": result.step * cfg.tokens_per_step / train_time,
        "median_mfu": sorted(mfus)[len(mfus) // 2] if mfus else None,
        "parameters": trainer.n_params,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, "
                   f"{torch.get_num_threads()} threads, device {args.device}",
        "sample": result.samples[-1] if result.samples else "",
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.tag}.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    shutil.copyfile(run_dir / "loss.png", RESULTS / f"{args.tag}_loss.png")
    print(json.dumps({k: v for k, v in summary.items() if k != "sample"}, indent=2))
    print(f"sample:\n{summary['sample']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
