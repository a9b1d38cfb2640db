"""`pretrain gpt --position ...` and `eval --seq-len N`: position schemes from the command line."""
from __future__ import annotations

import json

import pytest
from test_training_cli import (  # (tests/training is on sys.path)
    assert_one_line_error,
    fingerprint,
    pretrain,
    run_cli,
)

from minitransformer.training.metrics import read_metrics


@pytest.fixture(scope="module")
def rope_and_learned(tmp_path_factory):
    root = tmp_path_factory.mktemp("positions")
    for position in ("rope", "learned"):
        code, _, stderr = pretrain("gpt", root / position, "--position", position)
        assert code == 0, stderr
    return root / "rope", root / "learned"


def test_the_run_keeps_its_scheme_and_scores_longer_windows(rope_and_learned):
    rope, _ = rope_and_learned
    config = json.loads((rope / "config.json").read_text())
    assert config["position"] == "rope" and config["max_seq_len"] == 32
    before = fingerprint(rope)
    scores = {}
    for seq_len in (32, 96):
        code, stdout, stderr = run_cli("eval", "--run", rope, "--seq-len", seq_len, "--json", "--device", "cpu")
        assert code == 0, stderr
        scores[seq_len] = json.loads(stdout)["loss"]
    last = [e for e in read_metrics(rope) if e["split"] == "val"][-1]
    assert scores[32] == pytest.approx(last["loss"], rel=1e-5)  # the run's own length: its own validation
    assert scores[96] != pytest.approx(scores[32], rel=1e-4)  # other windows, another figure
    assert scores[96] < 10
    assert fingerprint(rope) == before  # nothing written


def test_learned_positions_refuse_a_longer_window_in_one_line(rope_and_learned):
    _, learned = rope_and_learned
    code, stdout, stderr = run_cli("eval", "--run", learned, "--seq-len", 64, "--device", "cpu")
    assert stdout == ""
    assert_one_line_error(code, stderr, "eval", "32 positions", "rope")
    code, _, stderr = run_cli("eval", "--run", learned, "--seq-len", 16, "--json", "--device", "cpu")
    assert code == 0, stderr  # shorter windows fit any scheme


def test_position_flag_is_for_gpt_only(tmp_path):
    code, _, stderr = pretrain("bert", tmp_path / "bert", "--position", "rope")
    assert_one_line_error(code, stderr, "pretrain", "--position applies to gpt")
    assert not (tmp_path / "bert").exists()
    code, _, stderr = pretrain("gpt", tmp_path / "gpt", "--position", "absolute")
    assert code != 0 and "invalid choice" in stderr


def test_seq_len_is_for_a_pretrained_gpt():
    from minitransformer.models.bert import Bert
    from minitransformer.models.config import BertConfig
    from minitransformer.training.config import TrainConfig
    from minitransformer.training.trainer import _for_seq_len

    bert = Bert(BertConfig.preset("tiny"))
    with pytest.raises(ValueError, match="bert pretrain run"):
        _for_seq_len(TrainConfig(family="bert"), bert, 64)
    with pytest.raises(ValueError, match="seq_len must be an integer >= 2"):
        _for_seq_len(TrainConfig(family="gpt"), bert, 1)


def test_continued_pretraining_reads_longer_text_without_a_position_table(rope_and_learned, tmp_path):
    """`pretrain --init-from RUN --seq-len N` past the run's context: a RoPE GPT grows (no weight depends on
    the length) and starts from the run's weights; a learned table cannot, and says so in one line."""
    rope, learned = rope_and_learned
    code, _, stderr = pretrain("gpt", tmp_path / "longer", "--init-from", rope, "--seq-len", 64, "--max-steps", 1)
    assert code == 0, stderr
    config = json.loads((tmp_path / "longer" / "config.json").read_text())
    assert config["max_seq_len"] == 64 and config["position"] == "rope"
    before = [e for e in read_metrics(tmp_path / "longer") if e["split"] == "val"][0]["loss"]
    code, stdout, _ = run_cli("eval", "--run", rope, "--seq-len", 64, "--json", "--device", "cpu")
    assert before == pytest.approx(json.loads(stdout)["loss"], rel=1e-5)  # the same weights, the same windows
    code, _, stderr = pretrain("gpt", tmp_path / "no", "--init-from", learned, "--seq-len", 64)
    assert_one_line_error(code, stderr, "pretrain", "learned position table", "rope")
