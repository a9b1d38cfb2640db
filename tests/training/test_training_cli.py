"""`minitransformer pretrain | generate | eval` end to end, and every bad input as one clear line."""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from minitransformer import cli
from minitransformer.training.metrics import read_metrics

REPO = Path(__file__).resolve().parents[2]


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main([str(a) for a in argv])
        except SystemExit as e:  # argparse's own errors
            code = e.code
    return code, out.getvalue(), err.getvalue()


def pretrain(family: str, out: Path, *extra: str) -> tuple[int, str, str]:
    return run_cli("pretrain", family, "--preset", "tiny", "--out", out, "--no-progress", *extra)


def fingerprint(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """``runs(family)``: a tiny pretraining run of that family on the embedded corpus, through the
    command line; made on first use (so parallel test workers only make the runs they need)."""
    root = tmp_path_factory.mktemp("runs")
    made: dict[str, Path] = {}

    def get(family: str) -> Path:
        if family not in made:
            code, stdout, stderr = pretrain(family, root / family)
            assert code == 0, stderr
            assert "done: step" in stdout
            made[family] = root / family
            get.printed[family] = stdout
        return made[family]

    get.printed = {}  # what each pretraining run printed
    return get


@pytest.mark.parametrize("family", ["gpt", "bert", "t5"])
def test_tiny_pretraining_runs_and_its_loss_falls(runs, family):
    run = runs(family)
    for name in ("config.json", "tokenizer.json", "model.safetensors", "run.json", "metrics.jsonl", "metrics.csv",
                 "loss.png"):
        assert (run / name).is_file(), name
    events = read_metrics(run)
    assert all({"step", "split", "loss"} <= e.keys() for e in events)
    val = [e for e in events if e["split"] == "val"]
    train = [e for e in events if e["split"] == "train"]
    assert val[0]["step"] == 0 and val[-1]["step"] == 40
    assert val[-1]["loss"] < val[0]["loss"] - 0.3
    assert train[-1]["loss"] < train[0]["loss"]
    if family == "bert":
        assert {"mlm_accuracy", "nsp_accuracy"} <= val[-1].keys()
    if family == "t5":
        assert val[-1]["token_accuracy"] > val[0]["token_accuracy"]
    csv_lines = (run / "metrics.csv").read_text().splitlines()
    assert len(csv_lines) == len(events) + 1 and csv_lines[0].startswith("step,split,loss")


@pytest.mark.parametrize("family", ["gpt", "bert", "t5"])
def test_eval_reproduces_the_last_validation_loss(runs, family):
    code, stdout, stderr = run_cli("eval", "--run", runs(family), "--json", "--device", "cpu")
    assert code == 0, stderr
    metrics = json.loads(stdout)
    last = [e for e in read_metrics(runs(family)) if e["split"] == "val"][-1]
    assert metrics["loss"] == pytest.approx(last["loss"], rel=1e-5)


@pytest.mark.parametrize("family", ["gpt", "bert", "t5"])
def test_eval_scores_another_text_and_writes_nothing(runs, family, tmp_path):
    """`eval --corpus FILE` scores any text with the run's model: Shakespeare (what it learned) scores
    better than the same characters shuffled, the same text twice gives the same numbers, and the
    run folder is left as it was."""
    import random

    from minitransformer.data.corpus import load_plays

    text = load_plays()["Hamlet"][:30000]
    chars = list(text)
    random.Random(0).shuffle(chars)
    real, shuffled = tmp_path / "hamlet.txt", tmp_path / "shuffled.txt"
    real.write_text(text, encoding="utf-8")
    # (BERT needs documents: blank lines, kept where they were)
    shuffled.write_text("\n\n".join("".join(chars[i:i + 3000]) for i in range(0, len(chars), 3000)), encoding="utf-8")
    before = fingerprint(runs(family))
    scores = {}
    for name in ("hamlet", "shuffled", "hamlet"):
        code, stdout, stderr = run_cli("eval", "--run", runs(family), "--corpus", tmp_path / f"{name}.txt", "--json",
                                       "--device", "cpu")
        assert code == 0, stderr
        metrics = json.loads(stdout)
        assert scores.setdefault(name, metrics) == metrics  # deterministic
    if family == "gpt":  # characters: both texts are as many tokens, so their losses compare
        assert scores["hamlet"]["loss"] < scores["shuffled"]["loss"]
    assert scores["hamlet"] != scores["shuffled"]
    assert fingerprint(runs(family)) == before
    code, stdout, _ = run_cli("eval", "--run", runs(family), "--corpus", real, "--device", "cpu")
    assert code == 0 and stdout.startswith(f"{real}: loss ")


@pytest.mark.parametrize("family", ["gpt", "bert", "t5"])
def test_eval_of_the_validation_text_as_a_file_gives_the_validation_metrics(family, tmp_path):
    """A run on a user's text file validates on the file's last 10%; given that tail as --corpus,
    eval draws the same examples from the same tokens, so the numbers are the run's own."""
    from minitransformer.data.corpus import load_plays
    from minitransformer.training.batches import split_corpus

    corpus = tmp_path / "text.txt"
    corpus.write_text(load_plays()["Hamlet"][:60000], encoding="utf-8")
    code, _, err = pretrain(family, tmp_path / "run", "--corpus", corpus, "--max-steps", "3")
    assert code == 0, err
    tail = tmp_path / "tail.txt"
    tail.write_text(split_corpus(str(corpus), 0.1)["val"][0], encoding="utf-8")
    results = []
    for extra in ((), ("--corpus", tail)):
        code, stdout, err = run_cli("eval", "--run", tmp_path / "run", "--json", "--device", "cpu", *extra)
        assert code == 0, err
        results.append(json.loads(stdout))
    assert results[0] == results[1]


def test_eval_of_another_text_refuses_what_it_cannot_score_in_one_line(runs, tmp_path):
    tiny, foreign = tmp_path / "tiny.txt", tmp_path / "foreign.txt"
    tiny.write_text("Hi there.", encoding="utf-8")
    # a character the character-level run never saw, far after the start the fast encoder is checked on
    foreign.write_text("To be, or not to be.\n" * 400 + "\u65e5\n", encoding="utf-8")
    code, _, err = run_cli("eval", "--run", runs("gpt"), "--corpus", tiny, "--device", "cpu")
    assert_one_line_error(code, err, "eval", "tiny.txt is too small to score", "seq_len + 1")
    code, _, err = run_cli("eval", "--run", runs("gpt"), "--corpus", foreign, "--device", "cpu")
    assert_one_line_error(code, err, "eval", "cannot encode", "U+65E5")
    code, _, err = run_cli("eval", "--run", runs("gpt"), "--corpus", tmp_path / "nowhere.txt", "--device", "cpu")
    assert_one_line_error(code, err, "eval", "not found")


def test_generate_from_each_family(runs):
    code, out, err = run_cli("generate", "--run", runs("gpt"), "--prompt", "ROMEO.", "--max-new-tokens", "30",
                             "--device", "cpu")
    assert code == 0, err
    assert out.startswith("ROMEO.") and len(out.rstrip("\n")) == len("ROMEO.") + 30  # char-level: 1 char a token
    code, out2, _ = run_cli("generate", "--run", runs("gpt"), "--prompt", "ROMEO.", "--max-new-tokens", "30",
                            "--device", "cpu")
    assert out2 == out  # seeded
    code, out, err = run_cli("generate", "--run", runs("t5"), "--prompt", "To be or <extra_id_0> to be",
                             "--max-new-tokens", "8", "--device", "cpu")
    assert code == 0 and out.strip(), err
    code, out, err = run_cli("generate", "--run", runs("bert"), "--prompt", "to be or [MASK] to be", "--device", "cpu")
    assert code == 0 and "[MASK] at" in out, err


def test_the_suggested_command_quotes_a_folder_with_a_space(tmp_path):
    code, out, err = pretrain("gpt", tmp_path / "my run", "--max-steps", "2", "--sample-every", "0")
    assert code == 0, err
    line = next(line for line in out.splitlines() if line.startswith("try: "))
    assert shlex.split(line)[4] == str(tmp_path / "my run")  # try: minitransformer generate --run DIR


@pytest.mark.parametrize("family", ["gpt", "bert", "t5"])
def test_the_command_a_run_suggests_at_the_end_works(runs, family):
    runs(family)
    suggestion = [line for line in runs.printed[family].splitlines() if line.startswith("try: minitransformer ")]
    assert len(suggestion) == 1
    argv = shlex.split(suggestion[0].removeprefix("try: minitransformer "))
    code, out, err = run_cli(*argv, "--max-new-tokens", "5", "--device", "cpu")
    assert code == 0 and out.strip(), err


def test_bad_generation_settings_print_only_the_error(runs):
    for flags, phrase in ((("--temperature", "-1"), "temperature"), (("--top-p", "2"), "top_p"),
                          (("--num-beams", "3"), "--num-beams applies to T5")):
        code, out, err = run_cli("generate", "--run", runs("gpt"), "--prompt", "ROMEO.", "--device", "cpu", *flags)
        assert_one_line_error(code, err, "generate", phrase)
        assert out == ""  # the prompt used to be printed before the error


def test_prompts_an_encoder_cannot_read_whole_are_refused(runs):
    """Cutting them used to drop the [MASK] or sentinel at the end without a word, and exit 0."""
    long = "to be or not to be " * 30
    code, _, err = run_cli("generate", "--run", runs("bert"), "--prompt", long + "[MASK]", "--device", "cpu")
    assert_one_line_error(code, err, "generate", "max_seq_len")
    code, _, err = run_cli("generate", "--run", runs("t5"), "--prompt", long + "<extra_id_0>", "--device", "cpu")
    assert_one_line_error(code, err, "generate", "max_seq_len")
    code, _, err = run_cli("generate", "--run", runs("t5"), "--prompt", "no sentinel here", "--device", "cpu")
    assert_one_line_error(code, err, "generate", "<extra_id_0>")


def assert_one_line_error(code: int, err: str, command: str, *needles: str) -> None:
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"minitransformer {command}: error:"), lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_bad_corpus_inputs(tmp_path):
    out = tmp_path / "out"
    code, _, err = pretrain("gpt", out, "--corpus", tmp_path / "missing.txt")
    assert_one_line_error(code, err, "pretrain", "corpus not found")
    (tmp_path / "empty.txt").write_text("")
    code, _, err = pretrain("gpt", out, "--corpus", tmp_path / "empty.txt")
    assert_one_line_error(code, err, "pretrain", "empty")
    (tmp_path / "latin1.txt").write_bytes("Fran\xe7ois said caf\xe9".encode("latin-1"))
    code, _, err = pretrain("gpt", out, "--corpus", tmp_path / "latin1.txt")
    assert_one_line_error(code, err, "pretrain", "UTF-8")
    (tmp_path / "nothing").mkdir()
    code, _, err = pretrain("gpt", out, "--corpus", tmp_path / "nothing")
    assert_one_line_error(code, err, "pretrain", "no .txt files")
    code, _, err = pretrain("gpt", out, "--corpus", tmp_path / "*.md")
    assert_one_line_error(code, err, "pretrain", "no files match")
    assert not out.exists()  # nothing was created


def test_eval_refuses_a_corpus_edited_since_training_and_leaves_the_run_intact(tmp_path):
    from minitransformer.data.corpus import load_corpus

    corpus, out = tmp_path / "c.txt", tmp_path / "run"
    text = load_corpus("shakespeare")[:60_000]
    corpus.write_text(text)
    code, _, err = pretrain("gpt", out, "--corpus", corpus, "--max-steps", "2")
    assert code == 0, err
    before = fingerprint(out)
    corpus.write_text(text.replace("e", "a"))  # the same characters, other text
    code, _, err = run_cli("eval", "--run", out, "--device", "cpu")
    assert_one_line_error(code, err, "eval", "corpus or tokenizer differs")
    assert fingerprint(out) == before  # the run's token cache was not rebuilt from the edited file
    corpus.write_text(text)
    code, _, err = run_cli("eval", "--run", out, "--device", "cpu")
    assert code == 0, err


def test_a_model_too_large_to_build_leaves_no_half_made_run(tmp_path, monkeypatch):
    """Before, the folder stayed behind, and the next run said "already holds a run; pass --resume"."""
    from minitransformer.training import trainer

    def too_large(family, config):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")

    monkeypatch.setattr(trainer, "build_model", too_large)
    code, _, err = pretrain("gpt", tmp_path / "run", "--max-steps", "2")
    assert_one_line_error(code, err, "pretrain", "could not build the gpt model", "too large")
    assert not (tmp_path / "run").exists()


def test_a_model_of_another_family_in_a_run_folder_is_named(runs, tmp_path):
    import shutil

    mixed = tmp_path / "mixed"
    shutil.copytree(runs("gpt"), mixed)
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        shutil.copy(runs("bert") / name, mixed / name)
    for command in (("eval", "--run", mixed, "--device", "cpu"), ("generate", "--run", mixed, "--prompt", "a")):
        code, _, err = run_cli(*command)
        assert_one_line_error(code, err, command[0], "is a gpt run but config.json holds a bert model")


@pytest.mark.parametrize("family", ["gpt", "t5", "bert"])
def test_corpus_smaller_than_one_context_window(tmp_path, family):
    small = tmp_path / "small.txt"
    small.write_text("To be, or not to be.\nThat is the question.\n" * 2)
    extra = ["--tokenizer", "char"]
    code, _, err = pretrain(family, tmp_path / "out", "--corpus", small, *extra)
    assert_one_line_error(code, err, "pretrain", "too small")
    assert not (tmp_path / "out").exists()  # a failed fresh run leaves nothing behind


def test_existing_runs_are_never_overwritten(runs, tmp_path):
    run = runs("gpt")
    before = fingerprint(run)
    code, _, err = pretrain("gpt", run)  # no --resume
    assert_one_line_error(code, err, "pretrain", "already holds a run", "--resume")
    code, _, err = pretrain("gpt", run, "--resume", "--seq-len", "16")
    assert_one_line_error(code, err, "pretrain", "different run", "seq_len")
    code, _, err = pretrain("bert", run, "--resume")
    assert_one_line_error(code, err, "pretrain", "different run", "family")
    code, _, err = pretrain("gpt", run, "--resume", "--corpus", runs("gpt") / "config.json")
    assert_one_line_error(code, err, "pretrain", "different run", "corpus")
    code, _, err = run_cli("pretrain", "gpt", "--out", run, "--no-progress", "--resume")  # forgot --preset tiny
    assert_one_line_error(code, err, "pretrain", "different run", "started with --preset tiny")
    assert fingerprint(run) == before
    other = tmp_path / "not-empty"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    code, _, err = pretrain("gpt", other)
    assert_one_line_error(code, err, "pretrain", "not empty")
    assert (other / "notes.txt").read_text() == "mine" and len(list(other.iterdir())) == 1


def test_unwritable_or_missing_folders(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    code, _, err = pretrain("gpt", blocker / "run")
    assert_one_line_error(code, err, "pretrain", "cannot write")
    code, _, err = pretrain("gpt", blocker)
    assert_one_line_error(code, err, "pretrain", "is a file")
    code, _, err = pretrain("gpt", tmp_path / "nothing-here", "--resume")
    assert_one_line_error(code, err, "pretrain", "no run to resume")
    code, _, err = run_cli("generate", "--run", tmp_path / "nowhere", "--prompt", "hi")
    assert_one_line_error(code, err, "generate", "not found")
    code, _, err = run_cli("eval", "--run", tmp_path / "nowhere")
    assert_one_line_error(code, err, "eval", "not found")
    assert blocker.read_text() == "x"


def test_bad_settings(runs, tmp_path):
    out = tmp_path / "out"
    code, _, err = pretrain("gpt", out, "--dtype", "float16", "--device", "cpu")
    assert_one_line_error(code, err, "pretrain", "float16", "CUDA")
    code, _, err = pretrain("gpt", out, "--device", "cuda:99")
    assert_one_line_error(code, err, "pretrain", "cuda:99")
    code, _, err = pretrain("gpt", out, "--preset", "huge")
    assert_one_line_error(code, err, "pretrain", "unknown gpt preset", "tiny")
    code, _, err = pretrain("gpt", out, "--tokenizer", "bpe")
    assert_one_line_error(code, err, "pretrain", "--vocab-size")
    code, _, err = pretrain("gpt", out, "--tokenizer", tmp_path / "tok.json")
    assert_one_line_error(code, err, "pretrain", "tok.json")
    code, _, err = pretrain("t5", out, "--tokenizer", runs("gpt") / "tokenizer.json")
    assert_one_line_error(code, err, "pretrain", "lacks the special tokens")
    code, _, err = run_cli("generate", "--run", runs("bert"), "--prompt", "no mask here")
    assert_one_line_error(code, err, "generate", "[MASK]")
    code, _, err = pretrain("gpt", out, "--max-steps", "-3")  # argparse's own message, also exit 2
    assert code == 2 and "--max-steps" in err
    # NaN passes every comparison: --grad-clip nan used to train without clipping and exit 0
    for flag, value, phrase in (("--grad-clip", "nan", "grad_clip must be a finite number"),
                                ("--weight-decay", "inf", "weight_decay must be a finite number"),
                                ("--lr", "inf", "lr must be a finite number"),
                                ("--max-steps", "0", "max_steps must be an integer >= 1"),
                                ("--seed", str(10**23), "seed must be an integer in [0, 9223372036854775807]"),
                                ("--threads", "100000", "threads must be an integer in [1, 1024]")):
        code, _, err = pretrain("gpt", out, flag, value)
        assert_one_line_error(code, err, "pretrain", phrase)
    assert not out.exists()


def test_vocab_size_with_a_tokenizer_file_is_refused(tmp_path):
    tok = tmp_path / "tok.json"
    code, _, err = run_cli("tokenizer", "train", "--kind", "char", "--corpus", str(_small_corpus(tmp_path)), "--out", tok)
    assert code == 0, err
    code, _, err = pretrain("gpt", tmp_path / "run", "--tokenizer", tok, "--vocab-size", "300")
    assert_one_line_error(code, err, "pretrain", "--vocab-size does not apply", "brings its own vocabulary")


def _small_corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("to be or not to be, that is the question\n" * 50, encoding="utf-8")
    return path


@pytest.mark.parametrize("argv,command,needle", [
    (("pretrain", "gpt", "--max-steps", "-3"), "pretrain", "--max-steps"),
    (("pretrain", "llama"), "pretrain", "invalid choice: 'llama'"),
    (("generate", "--run", "r", "--prompt", "x", "--max-new-tokens", "-1"), "generate", "--max-new-tokens"),
    (("tokenizer", "train", "--kind", "zzz", "--out", "t.json"), "tokenizer train", "invalid choice: 'zzz'"),
    (("bench", "nope"), "bench", "invalid choice: 'nope'"),
    (("exercises", "check"), "exercises check", "required: N"),
    (("nonsense",), "", "invalid choice: 'nonsense'"),
    (("pretrain", "gpt", "--bogus-flag"), "", "--bogus-flag"),
])
def test_argument_errors_are_one_line_too(argv, command, needle):
    """argparse's own errors (before any of our code runs) print one line, not the usage text."""
    code, out, err = run_cli(*argv)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"minitransformer {command}".rstrip() + ": error: ") and needle in lines[0]


def test_a_closed_output_pipe_ends_quietly(runs):
    """`minitransformer generate ... | head -3`: the reader leaves early; no traceback, exit 141 like cat."""
    command = [sys.executable, "-m", "minitransformer", "generate", "--run", str(runs("gpt")), "--prompt", "ROMEO.",
               "--max-new-tokens", "2000", "--device", "cpu"]
    reader = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    reader.stdout.read(20)
    reader.stdout.close()  # what `head` does once it has its lines
    stderr = reader.stderr.read().decode()
    assert reader.wait(timeout=120) == 141 and "Traceback" not in stderr, stderr
