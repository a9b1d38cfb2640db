"""DistributedDataParallel: two gloo processes (torchrun) train to the same weights as one process
with the same global batch, gradient accumulation and validation losses included. BERT too, whose
processes hold different numbers of masked tokens; GPT's and T5's rows all hold as many targets."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from minitransformer.data.corpus import load_corpus
from minitransformer.training import preset, train
from minitransformer.training.metrics import read_metrics

REPO = Path(__file__).resolve().parents[2]
SETTINGS = dict(max_steps=4, batch_size=8, grad_accum=2, save_every=4, eval_every=2, eval_batches=2, log_every=1,
                sample_every=0)


@pytest.mark.parametrize("family", ["gpt", "bert", "t5"])
def test_two_gloo_processes_match_one_process(tmp_path, family):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(load_corpus()[:30_000], encoding="utf-8")
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in SETTINGS.items()]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "minitransformer", "pretrain", family, "--preset", "tiny", "--corpus", str(corpus),
               "--out", str(tmp_path / "ddp"), "--device", "cpu", "--no-progress", *flags]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("done: step 4") == 1  # only rank 0 talks

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = preset(family, "tiny", corpus=str(corpus), device="cpu", progress=False, plot=False, **SETTINGS)
        train(cfg, tmp_path / "single", say=lambda _: None)
    finally:
        torch.set_num_threads(threads)

    ddp, single = load_file(str(tmp_path / "ddp" / "model.safetensors")), load_file(str(tmp_path / "single" /
                                                                                        "model.safetensors"))
    assert ddp.keys() == single.keys()
    for key in single:
        torch.testing.assert_close(ddp[key], single[key], rtol=1e-4, atol=1e-5, msg=key)
    losses = {name: [(e["step"], e["split"], e["loss"]) for e in read_metrics(tmp_path / name)]
              for name in ("ddp", "single")}
    assert [e[:2] for e in losses["ddp"]] == [e[:2] for e in losses["single"]]
    for (_, _, a), (_, _, b) in zip(losses["ddp"], losses["single"], strict=True):
        assert abs(a - b) < 1e-4
    assert losses["single"][-1][2] < losses["single"][0][2]


@pytest.mark.parametrize("family, data", [("t5", "sql"), ("bert", "plays"), ("gpt", "pairs.tsv")])
def test_fine_tuning_with_two_processes_matches_one(tmp_path, family, data):
    """T5's targets differ in length, so each process's loss is weighted by its share of the target
    tokens (``TextToTextObjective.batch``); without that the two runs would drift apart. A BERT
    classifier's processes hold as many examples each: a plain mean."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(load_corpus()[:30_000], encoding="utf-8")
    if data == "pairs.tsv":  # prompts and completions of different lengths, for the GPT
        words = load_corpus()[:3000].split()
        data = str(tmp_path / data)
        Path(data).write_text("".join(f"{w}:\t{w[::-1]}\n" for w in words[:200]), encoding="utf-8")
    start = tmp_path / "start"
    train(preset(family, "tiny", corpus=str(corpus), max_steps=2, device="cpu", progress=False, plot=False), start,
          say=lambda _: None)
    settings = dict(max_steps=4, batch_size=8, grad_accum=2, save_every=4, eval_every=2, eval_batches=2, log_every=1)
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in settings.items()]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "minitransformer", "finetune", family, "--from", str(start), "--data", data, "--preset", "tiny",
               "--out", str(tmp_path / "ddp"), "--device", "cpu", "--no-progress", *flags]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = preset(family, "tiny", finetune=True, corpus=data, init_from=str(start), device="cpu", progress=False,
                     plot=False, **settings)
        train(cfg, tmp_path / "single", say=lambda _: None)
    finally:
        torch.set_num_threads(threads)
    ddp, single = (load_file(str(tmp_path / name / "model.safetensors")) for name in ("ddp", "single"))
    assert ddp.keys() == single.keys()
    for key in single:
        torch.testing.assert_close(ddp[key], single[key], rtol=1e-4, atol=1e-5, msg=key)
    metrics = {name: [e for e in read_metrics(tmp_path / name)] for name in ("ddp", "single")}
    assert [(e["step"], e["split"]) for e in metrics["ddp"]] == [(e["step"], e["split"]) for e in metrics["single"]]
    for a, b in zip(metrics["ddp"], metrics["single"], strict=True):
        assert abs(a["loss"] - b["loss"]) < 1e-4
        for name in ("exact_match", "accuracy"):
            if name in a:
                assert a[name] == pytest.approx(b[name])
