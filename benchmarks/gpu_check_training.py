"""Pretraining on a CUDA GPU: the checks a CPU cannot make, and throughput figures.

    python benchmarks/gpu_check_training.py --out /tmp/gpu-check     # ~5 minutes on one GPU

Checks (each one prints PASS/FAIL and what it measured):
1. bf16 autocast (the CUDA default) for GPT, BERT and T5 tiny runs: the loss falls.
2. fp16 with a GradScaler: trains, its checkpoint holds the scaler's state, ``--resume`` continues.
3. ``--compile``: trains, and no checkpoint key carries torch.compile's ``_orig_mod.`` prefix.
4. float32 resume on CUDA: how close the resumed losses are to an uninterrupted run's.
5. ``generate`` streams from a GPU run.
6. Throughput of the ``gpu`` preset (nanoGPT's shakespeare_char model), eager and compiled:
   tokens/s and MFU against the peak measured on this GPU.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def cli(*argv) -> tuple[int, str, str]:
    from minitransformer import cli as mcli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = mcli.main([str(a) for a in argv])
        except SystemExit as e:
            code = e.code
    return code, out.getvalue(), err.getvalue()


def losses(run: Path, split: str = "val") -> list[float]:
    from minitransformer.training.metrics import read_metrics

    return [e["loss"] for e in read_metrics(run) if e["split"] == split]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("/tmp/gpu-check"))
    parser.add_argument("--results", type=Path, default=None, help="folder for the JSON summary and plots")
    parser.add_argument("--throughput-steps", type=int, default=300)
    args = parser.parse_args()
    import torch

    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    results: dict[str, object] = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__}

    def check(name, fn):
        t0 = time.perf_counter()
        try:
            detail = fn()
            results[name] = {"ok": True, "seconds": round(time.perf_counter() - t0, 1), **(detail or {})}
            print(f"PASS {name}: {results[name]}", flush=True)
        except Exception as e:  # noqa: BLE001 - report and go on
            results[name] = {"ok": False, "error": f"{type(e).__name__}: {e}"}
            print(f"FAIL {name}: {e}\n{traceback.format_exc()}", flush=True)

    tiny = ["--preset", "tiny", "--no-progress", "--device", "cuda"]

    def bf16(family):
        def run():
            code, out, err = cli("pretrain", family, "--out", args.out / f"{family}-bf16", *tiny)
            assert code == 0, err
            v = losses(args.out / f"{family}-bf16")
            assert "bfloat16" in out and v[-1] < v[0] - 0.3, (v, out[-500:])
            return {"val_loss_first_last": [round(v[0], 3), round(v[-1], 3)]}
        return run

    for family in ("gpt", "bert", "t5"):
        check(f"bf16_{family}", bf16(family))

    def fp16():
        run = args.out / "gpt-fp16"
        code, _, err = cli("pretrain", "gpt", "--out", run, *tiny, "--dtype", "float16", "--max-steps", "20")
        assert code == 0, err
        state = json.loads(sorted((run / "checkpoints").glob("ckpt-*"))[-1].joinpath("state.json").read_text())
        assert state["scaler"] and state["scaler"]["scale"] > 0, state.get("scaler")
        code, _, err = cli("pretrain", "gpt", "--out", run, *tiny, "--dtype", "float16", "--max-steps", "40",
                           "--resume")
        assert code == 0, err
        v = losses(run)
        assert v[-1] < v[0] - 0.3, v
        return {"scaler": state["scaler"], "val_loss_first_last": [round(v[0], 3), round(v[-1], 3)]}

    check("fp16_gradscaler_resume", fp16)

    def compiled():
        from safetensors.torch import load_file

        run = args.out / "gpt-compile"
        code, _, err = cli("pretrain", "gpt", "--out", run, *tiny, "--compile")
        assert code == 0, err
        keys = list(load_file(str(run / "model.safetensors")))
        keys += [k for c in (run / "checkpoints").glob("ckpt-*") for k in load_file(str(c / "model.safetensors"))]
        assert not any("_orig_mod" in k for k in keys)
        v = losses(run)
        assert v[-1] < v[0] - 0.3, v
        return {"val_loss_first_last": [round(v[0], 3), round(v[-1], 3)]}

    check("compile_checkpoint_keys", compiled)

    def resume_fp32():
        a, b = args.out / "fp32-full", args.out / "fp32-parts"
        common = [*tiny, "--dtype", "float32", "--eval-every", "10", "--save-every", "10", "--lr-decay-steps", "40"]
        assert cli("pretrain", "gpt", "--out", a, *common, "--max-steps", "40")[0] == 0
        assert cli("pretrain", "gpt", "--out", b, *common, "--max-steps", "20")[0] == 0
        assert cli("pretrain", "gpt", "--out", b, *common, "--max-steps", "40", "--resume")[0] == 0
        la, lb = losses(a, "train"), losses(b, "train")
        diff = max(abs(x - y) for x, y in zip(la, lb, strict=True))
        assert diff < 1e-3, diff
        return {"max_train_loss_difference": diff, "bitwise": la == lb}

    check("resume_fp32_cuda", resume_fp32)

    def generate():
        code, out, err = cli("generate", "--run", args.out / "gpt-bf16", "--prompt", "ROMEO.", "--max-new-tokens", "40")
        assert code == 0 and out.startswith("ROMEO."), err
        return {"text": out}

    check("generate_gpu", generate)

    def throughput(compile_flag):
        def run():
            name = "gpu-compiled" if compile_flag else "gpu-eager"
            extra = ["--compile"] if compile_flag else []
            code, out, err = cli("pretrain", "gpt", "--preset", "gpu", "--out", args.out / name, "--no-progress",
                                 "--max-steps", str(args.throughput_steps), "--eval-every", str(args.throughput_steps),
                                 "--sample-every", "0", "--log-every", str(max(1, args.throughput_steps // 6)), *extra)
            assert code == 0, err
            from minitransformer.training.metrics import read_metrics

            ev = [e for e in read_metrics(args.out / name) if e["split"] == "train"][2:]  # skip warm-up/compile
            if not ev:
                raise ValueError(f"--throughput-steps {args.throughput_steps} logged too few steps to time")
            return {"tokens_per_s": round(sum(e["tokens_per_s"] for e in ev) / len(ev)),
                    "mfu": round(sum(e["mfu"] for e in ev) / len(ev), 4),
                    "val_loss": round(losses(args.out / name)[-1], 4)}
        return run

    check("throughput_gpu_preset_eager", throughput(False))
    check("throughput_gpu_preset_compiled", throughput(True))

    text = json.dumps(results, indent=2)
    print(text)
    if args.results:
        args.results.mkdir(parents=True, exist_ok=True)
        (args.results / "gpu_check_training.json").write_text(text + "\n")
        for name in ("gpt-bf16", "bert-bf16", "t5-bf16", "gpu-compiled"):
            if (args.out / name / "loss.png").is_file():
                shutil.copyfile(args.out / name / "loss.png", args.results / f"gpu_{name}_loss.png")
    return 0 if all(isinstance(v, dict) and v.get("ok") for k, v in results.items() if isinstance(v, dict)) else 1


if __name__ == "__main__":
    raise SystemExit(main())
