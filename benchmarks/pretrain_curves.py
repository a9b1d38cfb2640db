"""Pretraining curves for BERT (MLM + NSP accuracy) and T5 (span-corruption loss) on the embedded corpus.

    python benchmarks/pretrain_curves.py                  # both, the `cpu` presets (~10 minutes on 2 cores)
    python benchmarks/pretrain_curves.py --family bert --max-steps 300   # shorter

Each run is ``minitransformer pretrain <family> --preset cpu`` through the library; its loss plot
(``loss.png``: train/validation loss, and validation accuracies for BERT and T5) and a JSON summary
are copied to ``benchmarks/results/pretrain_<family>.{png,json}``.
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
RESULTS = REPO / "benchmarks" / "results"


def run_family(family: str, preset_name: str, max_steps: int | None, device: str) -> dict:
    from minitransformer.training import preset
    from minitransformer.training.trainer import Trainer

    cfg = preset(family, preset_name, max_steps=max_steps, device=device)
    run_dir = Path(tempfile.mkdtemp(prefix=f"curves-{family}-")) / "run"
    t0 = time.perf_counter()
    trainer = Trainer(cfg, run_dir)
    result = trainer.run()
    wall = time.perf_counter() - t0
    val = [e for e in trainer.metrics.events if e["split"] == "val"]
    summary = {
        "family": family, "preset": preset_name, "steps": result.step, "parameters": trainer.n_params,
        "tokenizer": f"{cfg.tokenizer} ({trainer.tokenizer.vocab_size} tokens)",
        "first_val": val[0], "last_val": val[-1], "wall_time_s": wall, "train_time_s": result.train_seconds,
        "tokens_per_s": result.step * cfg.tokens_per_step / max(result.train_seconds, 1e-9),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, "
                   f"{torch.get_num_threads()} threads, device {trainer.device}",
        "sample": result.samples[-1] if result.samples else "",
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run_dir / "loss.png", RESULTS / f"pretrain_{family}.png")
    (RESULTS / f"pretrain_{family}.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", choices=("bert", "t5", "both"), default="both")
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--max-steps", type=int, default=None, help="default: the preset's")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    for family in (("bert", "t5") if args.family == "both" else (args.family,)):
        summary = run_family(family, args.preset, args.max_steps, args.device)
        print(json.dumps({k: v for k, v in summary.items() if k != "sample"}, indent=2))
        print(summary["sample"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
