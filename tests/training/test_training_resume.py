"""Resume is exact: a run stopped at step k and resumed logs the same losses, bit for bit on a CPU,
as the same run never stopped (API.md: "--resume continues it exactly")."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from minitransformer.data.corpus import load_corpus
from minitransformer.training import preset, train
from minitransformer.training.metrics import read_metrics


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "plays.txt"
    path.write_text(load_corpus()[:40_000], encoding="utf-8")
    return path


def quiet(_: str) -> None:
    pass


def losses(run_dir: Path) -> list[tuple[int, str, float]]:
    return [(e["step"], e["split"], e["loss"]) for e in read_metrics(run_dir)]


SMALL_MODEL = {
    "gpt": dict(d_model=16, n_layers=1, n_heads=2, dropout=0.1),
    "bert": dict(d_model=16, n_layers=1, n_heads=2, d_ff=32, dropout=0.1),
    "t5": dict(d_model=16, d_kv=8, n_heads=2, d_ff=32, n_layers=1, dropout=0.1),
}


def config(family: str, corpus: Path, max_steps: int, **overrides):
    settings = dict(corpus=str(corpus), max_steps=max_steps, lr_decay_steps=8, warmup_steps=2, save_every=2,
                    eval_every=2, eval_batches=1, log_every=1, sample_every=0, sample_tokens=4, progress=False, plot=False,
                    model=SMALL_MODEL[family], seq_len=24, batch_size=4, grad_accum=2)
    if family != "gpt":
        settings["vocab_size"] = 200
    settings.update(overrides)
    return preset(family, "tiny", **settings)


@pytest.mark.parametrize("family", ["gpt", "bert", "t5"])
def test_stopped_and_resumed_run_logs_the_same_losses_bitwise(family, corpus, tmp_path):
    # dropout > 0 and gradient accumulation: the random streams and the data position must both resume
    full, parts = tmp_path / "full", tmp_path / "parts"
    train(config(family, corpus, 8), full, say=quiet)
    train(config(family, corpus, 4), parts, say=quiet)      # "killed" after the step-4 checkpoint
    assert max(e[0] for e in losses(parts)) == 4
    train(config(family, corpus, 8), parts, resume=True, say=quiet)

    expected, got = losses(full), losses(parts)
    assert [e[:2] for e in got] == [e[:2] for e in expected]
    assert got == expected  # exact float equality, train and validation
    # the weights themselves are identical too
    from safetensors.torch import load_file

    a, b = load_file(str(full / "model.safetensors")), load_file(str(parts / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_same_seed_same_run_other_seed_other_run(corpus, tmp_path):
    train(config("gpt", corpus, 2), tmp_path / "a", say=quiet)
    train(config("gpt", corpus, 2), tmp_path / "b", say=quiet)
    train(config("gpt", corpus, 2, seed=7), tmp_path / "c", say=quiet)
    assert losses(tmp_path / "a") == losses(tmp_path / "b")
    train_a = [e for e in losses(tmp_path / "a") if e[1] == "train"]
    train_c = [e for e in losses(tmp_path / "c") if e[1] == "train"]
    assert train_a != train_c


def test_resume_after_the_end_is_a_no_op_and_resume_can_extend(corpus, tmp_path):
    run = tmp_path / "run"
    train(config("gpt", corpus, 2, lr_decay_steps=None), run, say=quiet)
    before = losses(run)
    said: list[str] = []
    result = train(config("gpt", corpus, 2, lr_decay_steps=None), run, resume=True, say=said.append)
    assert result.step == 2 and losses(run) == before
    assert any(line.startswith("nothing to train: the run is at step 2") for line in said), said
    said: list[str] = []
    result = train(config("gpt", corpus, 4, lr_decay_steps=None), run, resume=True, say=said.append)   # --max-steps may grow
    assert result.step == 4 and losses(run)[: len(before)] == before
    # the schedule was planned at the first launch, for 2 steps: the extension runs at min_lr, and says so
    assert any("cosine decay ends at step 2" in line and "steps 2-4" in line for line in said), said


def test_a_best_checkpoint_is_kept_even_when_the_untrained_model_scored_best(corpus, tmp_path):
    """Step 0's evaluation is never a checkpoint: "best" is the best of the checkpoints written."""
    run = tmp_path / "run"
    cfg = config("gpt", corpus, 6, lr=3.0, min_lr=3.0, warmup_steps=0, grad_clip=0.0, save_every=2, eval_every=2,
                 keep_last=1, lr_decay_steps=None)  # a learning rate that makes every step worse
    train(cfg, run, say=quiet)
    val = {step: loss for step, split, loss in losses(run) if split == "val"}
    assert val[0] < min(val[s] for s in (2, 4, 6))  # the untrained model did score best
    best = (run / "checkpoints" / "best").read_text().strip()
    assert best == f"ckpt-{min((2, 4, 6), key=val.get):06d}" and (run / "checkpoints" / best).is_dir()
