"""Crash safety: SIGKILL a training process at random moments while it writes a checkpoint every
step; the latest checkpoint is always loadable, and resuming after every kill ends with exactly
the losses of a run that was never interrupted."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from minitransformer.data.corpus import load_corpus
from minitransformer.models.config import GPTConfig
from minitransformer.models.gpt import GPT
from minitransformer.optim import make_adamw
from minitransformer.training import checkpoint as ckpt
from minitransformer.training import preset, train
from minitransformer.training.metrics import read_metrics

REPO = Path(__file__).resolve().parents[2]
MAX_STEPS = 30


def latest_step(run: Path) -> int:
    found = ckpt.list_checkpoints(run)
    return found[-1][0] if found else -1


def assert_loadable(run: Path) -> None:
    latest = ckpt.latest_checkpoint(run)
    assert latest is not None
    config = GPTConfig.from_dict(__import__("json").loads((latest / "config.json").read_text()))
    model = GPT(config)
    state, _ = ckpt.load_checkpoint(latest, model, make_adamw(model, lr=1e-3), restore_rng=False)
    assert state["step"] == int(latest.name.split("-")[1])
    # the run folder's own copy of the latest model is whole too
    assert load_file(str(run / "model.safetensors"))
    GPT.from_pretrained(run)


def test_sigkill_at_random_moments_never_corrupts_the_latest_checkpoint(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(load_corpus()[:30_000], encoding="utf-8")
    run = tmp_path / "run"
    command = [sys.executable, "-m", "minitransformer", "pretrain", "gpt", "--preset", "tiny", "--corpus", str(corpus),
               "--out", str(run), "--no-progress", "--max-steps", str(MAX_STEPS), "--save-every", "1",
               "--eval-every", "10", "--log-every", "1", "--sample-every", "0", "--keep-last", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    rng = random.Random(0)
    kills = 0
    for attempt in range(3):
        before = latest_step(run)
        proc = subprocess.Popen(command + (["--resume"] if attempt else []), env=env, cwd=tmp_path,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 120
        while latest_step(run) <= before and proc.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.3))  # now somewhere in the middle of steps and checkpoint writes
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        proc.stderr.close()
        assert_loadable(run)
    assert kills >= 2

    # finish the interrupted run, and the same run without interruptions (both in this process,
    # on one thread like the subprocesses)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = dict(corpus=str(corpus), max_steps=MAX_STEPS, save_every=1, eval_every=10, log_every=1, sample_every=0,
                   keep_last=2, progress=False, plot=False)
        train(preset("gpt", "tiny", **cfg), run, resume=True, say=lambda _: None)
        train(preset("gpt", "tiny", **cfg), tmp_path / "reference", say=lambda _: None)
    finally:
        torch.set_num_threads(threads)
    assert latest_step(run) == MAX_STEPS
    expected = [(e["step"], e["split"], e["loss"]) for e in read_metrics(tmp_path / "reference")]
    got = [(e["step"], e["split"], e["loss"]) for e in read_metrics(run)]
    assert got == expected
