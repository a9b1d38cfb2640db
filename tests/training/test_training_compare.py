"""`minitransformer compare`: a table of runs, whether their validation losses compare, one plot."""
from __future__ import annotations

import dataclasses

import pytest
from test_training_cli import assert_one_line_error, pretrain, run_cli  # (tests/training is on sys.path)

from minitransformer.training.compare import comparability, read_run
from minitransformer.training.metrics import read_metrics


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Four tiny runs: GPT with seed 1, seed 2 and a doubled batch, and a BERT."""
    root = tmp_path_factory.mktemp("compare")
    made = {}
    for name, family, extra in (("seed1", "gpt", ("--seed", "1")), ("seed2", "gpt", ("--seed", "2")),
                                ("batch16", "gpt", ("--seed", "1", "--batch-size", "16")),
                                ("bert", "bert", ())):
        code, _, err = pretrain(family, root / name, "--max-steps", "10", "--eval-every", "5", *extra)
        assert code == 0, err
        made[name] = root / name
    return made


def test_compare_tabulates_runs_that_compare_and_plots_them(runs, tmp_path):
    out = tmp_path / "plots" / "cmp.png"
    code, stdout, err = run_cli("compare", runs["seed1"], runs["seed2"], runs["batch16"], "--out", out)
    assert code == 0, err
    lines = stdout.splitlines()
    for name in ("seed1", "seed2", "batch16"):
        row = next(line for line in lines if line.startswith(f"| {runs[name]} |"))
        best = min((e["loss"], e["step"]) for e in read_metrics(runs[name]) if e["split"] == "val")
        assert f"| {best[0]:.4f} ({best[1]}) |" in row and "| gpt | char | 10 |" in row
    # the doubled batch counts twice the tokens
    assert "| 5,120 |" in next(line for line in lines if "batch16" in line)
    assert "validation losses compare" in stdout and "same first 16 examples" in stdout
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"plot: {out}" in stdout


def test_runs_that_measure_different_things_are_said_not_to_compare(runs, tmp_path):
    code, stdout, err = run_cli("compare", runs["seed1"], runs["bert"], "--out", tmp_path / "c.png", "--x", "tokens")
    assert code == 0, err
    assert "do not compare" in stdout and "family differs (gpt, bert)" in stdout and "tokenizers differ" in stdout
    one = read_run(runs["seed1"])
    other = dataclasses.replace(one, config=dataclasses.replace(one.config, corpus="my.txt"))
    assert comparability([one, one]) == [] and comparability([one, other]) == ["their corpus differs (shakespeare, my.txt)"]


def test_compare_refuses_what_is_no_run_and_a_run_named_twice(runs, tmp_path):
    code, _, err = run_cli("compare", runs["seed1"], tmp_path / "nowhere", "--out", tmp_path / "c.png")
    assert_one_line_error(code, err, "compare", "not a run folder")
    code, _, err = run_cli("compare", runs["seed1"], runs["seed1"], "--out", tmp_path / "c.png")
    assert_one_line_error(code, err, "compare", "named twice")
    assert not (tmp_path / "c.png").exists()


def test_fine_tuning_runs_compare_only_on_the_same_pairs_and_lengths(runs, tmp_path):
    one = read_run(runs["seed1"])
    longer = dataclasses.replace(one, config=dataclasses.replace(one.config, target_len=128))
    assert comparability([one, longer]) == ["their target length differs (64, 128)"]


def test_compare_another_metric_where_higher_is_better(runs, tmp_path):
    """Fine-tuning runs are compared by what they are for (accuracy, exact match): the best is the highest."""
    code, stdout, err = run_cli("compare", runs["bert"], "--metric", "mlm_accuracy", "--out", tmp_path / "c.png")
    assert code == 0, err
    best = max((e["mlm_accuracy"], e["step"]) for e in read_metrics(runs["bert"]) if e["split"] == "val")
    assert "best val mlm accuracy (step)" in stdout and f"| {best[0]:.4f} ({best[1]}) |" in stdout
    code, _, err = run_cli("compare", runs["seed1"], "--metric", "accuracy", "--out", tmp_path / "d.png")
    assert_one_line_error(code, err, "compare", "logged no validation 'accuracy'; it logged loss, perplexity")
