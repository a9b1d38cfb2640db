"""Starting from a trained model: `minitransformer finetune t5` (text pairs) and `pretrain --init-from`.

What a learner should be able to rely on: the run really starts from the trained weights (new
tokens get new rows, the rest is unchanged); every validation example is scored once, answers
included; the loss is the mean over target tokens however the rows are split among processes; a
resumed fine-tuning run is the same run; bad inputs are one line and leave nothing behind.
"""
from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_training_cli import run_cli  # (tests/training is on sys.path)

from minitransformer.models.t5 import T5
from minitransformer.tokenizers import CharTokenizer, UnigramTokenizer, load_tokenizer
from minitransformer.training import preset
from minitransformer.training.batches import IGNORE_INDEX, TRAIN, VAL, unknown_characters
from minitransformer.training.metrics import read_metrics
from minitransformer.training.trainer import Trainer


def quiet(_: str) -> None:
    pass


def write_pairs(path: Path, pairs: list[tuple[str, str]]) -> Path:
    path.write_text("".join(json.dumps({"input": s, "target": t}) + "\n" for s, t in pairs), encoding="utf-8")
    return path


# a task the embedded corpus's characters can write, and digits it cannot (they must be added)
WORDS = "the king queen lord lady good night sweet prince love war peace".split()
REVERSE = [(f"reverse: {' '.join(WORDS[(i + j) % 11] for j in range(3))} {i}",
            f"{i} {' '.join(WORDS[(i + j) % 11] for j in reversed(range(3)))}") for i in range(40)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Tiny pretraining runs on the embedded corpus, made through the command line on first use."""
    root = tmp_path_factory.mktemp("start")
    made: dict[str, Path] = {}

    def get(family: str) -> Path:
        if family not in made:
            code, _, err = run_cli("pretrain", family, "--preset", "tiny", "--out", root / family, "--no-progress")
            assert code == 0, err
            made[family] = root / family
        return made[family]

    return get


def finetune(start: Path, out: Path, *extra) -> tuple[int, str, str]:
    return run_cli("finetune", "t5", "--from", start, "--preset", "tiny", "--out", out, "--no-progress", *extra)


def test_finetune_on_the_sql_task_end_to_end(runs, tmp_path):
    start = runs("t5")
    code, out, err = finetune(start, tmp_path / "sql", "--data", "sql", "--max-steps", "10")
    assert code == 0, err
    assert "done: step 10" in out and "added 14 tokens" in out  # ( ) * 0 4-9 < = > _ are not in Shakespeare
    val = [e for e in read_metrics(tmp_path / "sql") if e["split"] == "val"]
    assert [e["step"] for e in val] == [0, 10]
    for e in val:
        assert 0.0 <= e["exact_match"] <= 1.0 and 0.0 <= e["execution_accuracy"] <= 1.0
    assert val[-1]["loss"] < val[0]["loss"]

    before, after = load_tokenizer(start / "tokenizer.json"), load_tokenizer(tmp_path / "sql" / "tokenizer.json")
    assert after.vocab_size == before.vocab_size + 14
    assert unknown_characters(after, ["SELECT COUNT(*) FROM t WHERE a_b >= 1987"]) == []
    weights = load_file(str(tmp_path / "sql" / "model.safetensors"))
    assert weights["shared.weight"].shape[0] == after.vocab_size

    # the suggested command works, and eval gives back the last validation metrics
    prompt = out.split("--prompt ", 1)[1].strip().strip("'")
    code, answer, err = run_cli("generate", "--run", tmp_path / "sql", "--prompt", prompt)
    assert code == 0, err
    code, shown, err = run_cli("eval", "--run", tmp_path / "sql", "--json")
    assert code == 0, err
    metrics = json.loads(shown)
    for name in ("loss", "exact_match", "execution_accuracy"):
        assert metrics[name] == pytest.approx(val[-1][name], abs=1e-5)


def test_the_run_starts_from_the_trained_weights_and_new_rows_are_the_mean(runs, tmp_path):
    start = runs("t5")
    cfg = preset("t5", "tiny", finetune=True, corpus="sql", init_from=str(start), progress=False, plot=False,
                 measure_mfu=False)
    trainer = Trainer(cfg, tmp_path / "ft", say=quiet)
    trainer.setup()
    trained = T5.from_pretrained(start).state_dict()
    now = trainer.model.state_dict()
    assert now.keys() == trained.keys()
    n_old = trained["shared.weight"].shape[0]
    for name, value in trained.items():
        if name == "shared.weight":
            assert torch.equal(now[name][:n_old], value)
            new_rows = now[name][n_old:]
            assert new_rows.shape[0] == 14
            torch.testing.assert_close(new_rows, value.mean(0).expand_as(new_rows))
        else:
            assert torch.equal(now[name], value), name


def small_pairs_run(tmp_path: Path, runs, **overrides) -> Trainer:
    train = write_pairs(tmp_path / "train.jsonl", REVERSE[:8])
    val = write_pairs(tmp_path / "val.jsonl", REVERSE[30:35])
    settings = dict(corpus=str(train), val_corpus=str(val), init_from=str(runs("t5")), batch_size=4,
                    progress=False, plot=False, measure_mfu=False)
    trainer = Trainer(preset("t5", "tiny", finetune=True, **{**settings, **overrides}), tmp_path / "ft", say=quiet)
    trainer.setup()
    return trainer


def test_batches_cover_each_example_once(runs, tmp_path):
    trainer = small_pairs_run(tmp_path, runs)
    objective, tok = trainer.objective, trainer.tokenizer
    eos, pad = tok.token_to_id("</s>"), tok.token_to_id("<pad>")

    def texts(batch, rows) -> list[tuple[str, str]]:
        out = []
        for r in rows:
            source = [t for t in batch["input_ids"][r].tolist() if t != pad]
            target = [t for t in batch["labels"][r].tolist() if t != IGNORE_INDEX]
            assert source[-1] == eos and target[-1] == eos  # both sides end in </s>
            assert batch["attention_mask"][r].tolist() == [1] * len(source) + [0] * (batch["input_ids"].shape[1]
                                                                                    - len(source))
            out.append((tok.decode(source[:-1]), tok.decode(target[:-1])))
        return out

    # validation: the 5 examples, each once, in two batches of 4; the 3 rows after the last have no targets
    assert objective.eval_batch_count(20) == 2
    first, second = objective.batch(VAL, 0, 0, slice(None)), objective.batch(VAL, 1, 0, slice(None))
    assert second["real"].tolist() == [True, False, False, False]
    assert (second["labels"][1:] == IGNORE_INDEX).all()
    assert sorted(texts(first, range(4)) + texts(second, range(1))) == sorted(REVERSE[30:35])
    # training: the first epoch (two batches of 4) is the 8 training pairs, each once, shuffled
    seen = texts(objective.batch(TRAIN, 0, 0, slice(None)), range(4)) + texts(objective.batch(TRAIN, 1, 0, slice(None)), range(4))
    assert sorted(seen) == sorted(REVERSE[:8]) and seen != REVERSE[:8]


def test_split_rows_weighted_by_their_targets_give_the_whole_batch_loss(runs, tmp_path):
    """What makes two DDP processes one run: each slice's mean loss times its weight, averaged over
    the slices, is the mean over all target tokens of the micro-batch (targets differ in length)."""
    trainer = small_pairs_run(tmp_path, runs)
    objective, model = trainer.objective, trainer.model.eval()
    whole = objective.loss(model, objective.batch(TRAIN, 0, 0, slice(None)))
    halves = [objective.loss(model, objective.batch(TRAIN, 0, 0, rows)) for rows in (slice(0, 2), slice(2, 4))]
    lengths = [(objective.batch(TRAIN, 0, 0, rows)["labels"] != IGNORE_INDEX).sum() for rows in (slice(0, 2), slice(2, 4))]
    assert lengths[0] != lengths[1]  # the test means something only if the halves differ
    torch.testing.assert_close(sum(halves) / 2, whole)


def test_a_resumed_finetuning_run_logs_the_same_losses(runs, tmp_path):
    common = ("--data", write_pairs(tmp_path / "train.jsonl", REVERSE), "--eval-every", "2", "--save-every", "2",
              "--log-every", "1", "--lr-decay-steps", "6", "--dropout", "0.1")
    assert finetune(runs("t5"), tmp_path / "whole", *common, "--max-steps", "6")[0] == 0
    assert finetune(runs("t5"), tmp_path / "parts", *common, "--max-steps", "4")[0] == 0
    code, out, err = finetune(runs("t5"), tmp_path / "parts", *common, "--max-steps", "6", "--resume")
    assert code == 0, err
    assert "resuming at step" in out and "added" not in out  # the run's own tokenizer, not made again

    def losses(run):
        return [(e["step"], e["split"], e["loss"]) for e in read_metrics(tmp_path / run)]

    assert losses("parts") == losses("whole")


def test_a_pairs_file_of_your_own_then_eval_on_another(runs, tmp_path):
    data = write_pairs(tmp_path / "train.jsonl", REVERSE[:30])
    other = tmp_path / "other.tsv"
    other.write_text("".join(f"{s}\t{t}\n" for s, t in REVERSE[30:]), encoding="utf-8")
    code, out, err = finetune(runs("t5"), tmp_path / "rev", "--data", data, "--max-steps", "4")
    assert code == 0, err
    before = sorted(p.name for p in (tmp_path / "rev").rglob("*"))
    code, shown, err = run_cli("eval", "--run", tmp_path / "rev", "--corpus", other, "--json")
    assert code == 0, err
    assert 0.0 <= json.loads(shown)["exact_match"] <= 1.0 and "execution_accuracy" not in json.loads(shown)
    assert sorted(p.name for p in (tmp_path / "rev").rglob("*")) == before  # eval wrote nothing
    code, _, err = run_cli("generate", "--run", tmp_path / "rev", "--prompt", "reverse: the good king 7",
                           "--num-beams", "2")
    assert code == 0, err


def test_pretraining_can_continue_from_a_run_on_new_text(runs, tmp_path):
    start = runs("gpt")
    corpus = tmp_path / "new.txt"
    corpus.write_text("Ünïcode text with glyphs: € and ½.\n" * 300, encoding="utf-8")
    code, out, err = run_cli("pretrain", "gpt", "--preset", "tiny", "--init-from", start, "--corpus", corpus,
                             "--out", tmp_path / "more", "--no-progress", "--max-steps", "4")
    assert code == 0, err
    assert "added 4 tokens" in out and "½ Ü ï €" in out
    old, new = load_file(str(start / "model.safetensors")), load_file(str(tmp_path / "more" / "model.safetensors"))
    assert new["tok_emb.weight"].shape[0] == old["tok_emb.weight"].shape[0] + 4
    assert json.loads((tmp_path / "more" / "run.json").read_text())["config"]["init_from"] == str(start)


@pytest.mark.parametrize("argv, needle", [
    (("finetune", "t5", "--from", "{missing}", "--data", "sql"), "does not exist"),
    (("finetune", "t5", "--from", "{gpt}", "--data", "sql"), "holds a gpt model; this run trains a t5"),
    (("finetune", "t5", "--from", "{t5}", "--data", "{broken}"), "line 2: not JSON"),
    (("finetune", "t5", "--from", "{t5}", "--data", "sql", "--tokenizer", "bpe"), "keeps its tokenizer"),
    (("finetune", "t5", "--from", "{t5}", "--data", "sql", "--val-data", "{broken}"), "brings its own validation"),
    (("pretrain", "gpt", "--init-from", "{gpt}", "--d-model", "64"), "--d-model cannot change"),
    (("pretrain", "gpt", "--init-from", "{gpt}", "--seq-len", "1000"), "max_seq_len=32"),
    (("finetune", "gpt", "--from", "{t5}", "--data", "sql"), "holds a t5 model; this run trains a gpt"),
    (("finetune", "gpt", "--from", "{gpt}", "--data", "sql", "--target-len", "32"), "less than seq_len"),
    (("finetune", "bert", "--from", "{gpt}", "--data", "plays", "--target-len", "8"), "--target-len applies to"),
    (("finetune", "t5", "--data", "sql"), "--from"),
])
def test_bad_starts_are_one_line_and_leave_nothing(runs, tmp_path, argv, needle):
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"input": "a", "target": "b"}\n{oops\n', encoding="utf-8")
    names = {"missing": tmp_path / "nothing", "broken": broken}
    argv = [a.format(**names, gpt=runs("gpt") if "{gpt}" in a else "", t5=runs("t5") if "{t5}" in a else "")
            if isinstance(a, str) and "{" in a else a for a in argv]
    code, out, err = run_cli(*argv, "--preset", "tiny", "--out", tmp_path / "out", "--no-progress")
    assert code == 2
    assert needle in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 or err.startswith("usage:")
    assert not (tmp_path / "out").exists()


def test_unknown_characters_of_each_kind_of_tokenizer():
    char = CharTokenizer.train(["abc"])
    assert unknown_characters(char, ["a b\tc\n", "cab€d"]) == ["d", "€"]
    unigram = UnigramTokenizer.train(["hello world"] * 20, vocab_size=12, special_tokens=["<pad>", "<unk>"],
                                     unk_token="<unk>", backend="python")
    assert unknown_characters(unigram, ["hello = world"]) == ["="]
    assert unknown_characters(unigram, []) == []


def test_a_hugging_face_folder_is_the_same_start_as_our_run_folder(runs, tmp_path):
    """The trained T5 exported as a Hugging Face folder (``T5ForConditionalGeneration.save_pretrained``)
    and the run folder it came from start the same fine-tuning run."""
    import shutil

    import minitransformer as mt

    start = runs("t5")
    mt.to_hf_model(T5.from_pretrained(start)).save_pretrained(tmp_path / "hf")
    shutil.copy(start / "tokenizer.json", tmp_path / "hf" / "tokenizer.json")
    for name, folder in (("ours", start), ("hf", tmp_path / "hf")):
        code, _, err = finetune(folder, tmp_path / f"ft-{name}", "--data", "sql", "--max-steps", "2",
                                "--eval-every", "2")
        assert code == 0, err
    ours, hf = (read_metrics(tmp_path / f"ft-{name}") for name in ("ours", "hf"))
    assert [(e["step"], e["split"]) for e in ours] == [(e["step"], e["split"]) for e in hf]
    for a, b in zip(ours, hf, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-5)


# ---- BERT: a classifier on the pretrained encoder --------------------------------------------------

def test_finetune_a_bert_classifier_on_the_plays_end_to_end(runs, tmp_path):
    code, out, err = run_cli("finetune", "bert", "--from", runs("bert"), "--data", "plays", "--preset", "tiny",
                             "--out", tmp_path / "plays", "--no-progress", "--max-steps", "10")
    assert code == 0, err
    assert "done: step 10" in out
    config = json.loads((tmp_path / "plays" / "config.json").read_text())
    assert config["task"] == "classify" and config["labels"] == sorted(config["labels"]) and len(config["labels"]) == 8
    assert not any(k.startswith(("encoder.mlm_head", "encoder.nsp_head"))
                   for k in load_file(str(tmp_path / "plays" / "model.safetensors")))  # pretraining heads dropped
    val = [e for e in read_metrics(tmp_path / "plays") if e["split"] == "val"]
    assert [e["step"] for e in val] == [0, 10] and all(0.0 <= e["accuracy"] <= 1.0 for e in val)
    assert all(0.0 <= e["macro_f1"] <= 1.0 for e in val)

    code, shown, err = run_cli("generate", "--run", tmp_path / "plays", "--prompt", "O Romeo, Romeo")
    assert code == 0, err
    lines = shown.strip().splitlines()
    assert len(lines) == 5 and all(line.rsplit("  ", 1)[0] in config["labels"] for line in lines)
    probs = [float(line.rsplit("  ", 1)[1]) for line in lines]
    assert probs == sorted(probs, reverse=True)
    code, shown, err = run_cli("eval", "--run", tmp_path / "plays", "--json")
    assert code == 0, err
    assert json.loads(shown)["accuracy"] == pytest.approx(val[-1]["accuracy"])
    assert json.loads(shown)["macro_f1"] == pytest.approx(val[-1]["macro_f1"])


def test_the_classifier_starts_from_the_trained_encoder(runs, tmp_path):
    from minitransformer.models.bert import Bert

    data = write_pairs(tmp_path / "moods.jsonl", [(f"{w} {w} night", "dark" if i % 2 else "light")
                                                 for i, w in enumerate(WORDS * 4)])
    cfg = preset("bert", "tiny", finetune=True, corpus=str(data), init_from=str(runs("bert")), progress=False,
                 plot=False, measure_mfu=False)
    trainer = Trainer(cfg, tmp_path / "ft", say=quiet)
    trainer.setup()
    trained = Bert.from_pretrained(runs("bert")).state_dict()
    encoder = trainer.model.encoder.state_dict()
    assert set(encoder) == {k for k in trained if not k.startswith(("mlm_head", "nsp_head"))}
    for name, value in encoder.items():
        assert torch.equal(value, trained[name]), name
    assert trainer.objective.labels == ["dark", "light"]
    batch = trainer.objective.batch(TRAIN, 0, 0, slice(None))
    assert set(batch["labels"].tolist()) <= {0, 1}
    assert (batch["input_ids"][:, 0] == trainer.tokenizer.token_to_id("[CLS]")).all()


def test_macro_f1_is_the_mean_of_the_classes_f1_scores(runs, tmp_path):
    """Validation's macro F1 against one computed here from the model's predictions, class by class."""
    from minitransformer.training.trainer import evaluate_objective

    rows = [(f"{w} {w} night", "dark") for w in WORDS * 3] + [(f"{w} morning", "light") for w in WORDS[:4]] + \
           [(f"{w} noon {w}", "grey") for w in WORDS[4:7]]
    data = write_pairs(tmp_path / "skies.jsonl", rows)  # unbalanced: 36 dark, 4 light, 3 grey
    cfg = preset("bert", "tiny", finetune=True, corpus=str(data), init_from=str(runs("bert")), progress=False,
                 plot=False, measure_mfu=False, eval_batches=50)
    trainer = Trainer(cfg, tmp_path / "ft", say=quiet)
    trainer.setup()
    objective, model = trainer.objective, trainer.model.eval()
    n_batches = objective.eval_batch_count(cfg.eval_batches)
    metrics = evaluate_objective(objective, model, model, n_batches, slice(None), torch.device("cpu"),
                                 contextlib.nullcontext)
    labels, predicted = [], []
    with torch.no_grad():
        for i in range(n_batches):
            batch = objective.batch(VAL, i, 0, slice(None))
            logits = model(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"]).logits
            labels += batch["labels"][batch["real"]].tolist()
            predicted += logits.argmax(-1)[batch["real"]].tolist()
    scores = []
    for c in set(labels) | set(predicted):
        tp = sum(p == c and t == c for p, t in zip(predicted, labels, strict=True))
        fp = sum(p == c and t != c for p, t in zip(predicted, labels, strict=True))
        fn = sum(p != c and t == c for p, t in zip(predicted, labels, strict=True))
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        scores.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    assert metrics["macro_f1"] == pytest.approx(sum(scores) / len(scores))
    assert metrics["accuracy"] == pytest.approx(sum(p == t for p, t in zip(predicted, labels, strict=True)) / len(labels))
    assert not any(k.startswith("f1/") for k in metrics)


def test_a_class_the_training_data_never_shows_is_refused(runs, tmp_path):
    train = tmp_path / "train.tsv"
    train.write_text("".join(f"{w} night\t{'a' if i % 2 else 'b'}\n" for i, w in enumerate(WORDS)), encoding="utf-8")
    val = tmp_path / "val.tsv"
    val.write_text("good night\tc\n", encoding="utf-8")
    code, _, err = run_cli("finetune", "bert", "--from", runs("bert"), "--data", train, "--val-data", val,
                           "--preset", "tiny", "--out", tmp_path / "out", "--no-progress")
    assert code == 2 and "the val split has classes the classifier does not know: 'c'" in err


def test_a_resumed_classifier_run_logs_the_same_losses(runs, tmp_path):
    common = ("--from", runs("bert"), "--data", "plays", "--preset", "tiny", "--eval-every", "2", "--save-every", "2",
              "--log-every", "1", "--lr-decay-steps", "6", "--dropout", "0.1", "--no-progress")
    assert run_cli("finetune", "bert", *common, "--out", tmp_path / "whole", "--max-steps", "6")[0] == 0
    assert run_cli("finetune", "bert", *common, "--out", tmp_path / "parts", "--max-steps", "4")[0] == 0
    code, out, err = run_cli("finetune", "bert", *common, "--out", tmp_path / "parts", "--max-steps", "6", "--resume")
    assert code == 0, err
    assert "resuming at step 4" in out

    def losses(run):
        return [(e["step"], e["split"], e["loss"]) for e in read_metrics(tmp_path / run)]

    assert losses("parts") == losses("whole")


def test_the_real_pretrained_minilm_fine_tunes_and_is_no_pretraining_start(tmp_path):
    """all-MiniLM-L6-v2 (a bare encoder from a pip package): a classifier can start from it; masked-LM
    pretraining cannot (it has no MLM head), and says so."""
    code, out, err = run_cli("finetune", "bert", "--from", "minilm", "--data", "plays", "--preset", "tiny",
                             "--out", tmp_path / "minilm", "--no-progress", "--max-steps", "2")
    assert code == 0, err
    assert json.loads((tmp_path / "minilm" / "config.json").read_text())["encoder"]["d_model"] == 384
    code, _, err = run_cli("pretrain", "bert", "--init-from", "minilm", "--preset", "tiny", "--out", tmp_path / "p",
                           "--no-progress")
    assert code == 2 and "without its masked-LM and next-sentence heads" in err


# ---- GPT: prompt and completion in one sequence -----------------------------------------------------

def test_finetune_a_gpt_on_prompts_and_completions_end_to_end(runs, tmp_path):
    start = runs("gpt")
    pairs = [(f"{w}? ", w[::-1]) for w in WORDS] * 4  # spell the word backwards: prompts of 4-7 characters
    code, out, err = run_cli("finetune", "gpt", "--from", start, "--data", write_pairs(tmp_path / "rev.jsonl", pairs),
                             "--val-data", write_pairs(tmp_path / "val.jsonl", pairs[:5]), "--preset", "tiny",
                             "--out", tmp_path / "rev", "--no-progress", "--max-steps", "10")
    assert code == 0, err
    assert "added 1 token to the tokenizer" in out and "<|endoftext|>" in out  # the char GPT had no end marker
    val = [e for e in read_metrics(tmp_path / "rev") if e["split"] == "val"]
    assert [e["step"] for e in val] == [0, 10] and val[-1]["loss"] < val[0]["loss"]
    assert all(0.0 <= e["exact_match"] <= 1.0 for e in val)
    code, answer, err = run_cli("generate", "--run", tmp_path / "rev", "--prompt", "king? ")
    assert code == 0, err
    code, shown, err = run_cli("eval", "--run", tmp_path / "rev", "--json")
    assert code == 0, err
    assert json.loads(shown)["exact_match"] == pytest.approx(val[-1]["exact_match"])


def test_only_the_completion_is_scored_and_the_prompt_keeps_its_last_tokens(runs, tmp_path):
    pairs = [("a long prompt of many words " + w, w) for w in WORDS]
    cfg = preset("gpt", "tiny", finetune=True, corpus=str(write_pairs(tmp_path / "p.jsonl", pairs)),
                 val_corpus=str(write_pairs(tmp_path / "v.jsonl", pairs[:3])), init_from=str(runs("gpt")),
                 batch_size=4, progress=False, plot=False, measure_mfu=False)
    trainer = Trainer(cfg, tmp_path / "ft", say=quiet)
    trainer.setup()
    objective, tok = trainer.objective, trainer.tokenizer
    eos = tok.token_to_id("<|endoftext|>")
    batch = objective.batch(VAL, 0, 0, slice(None))
    for row, example in enumerate(batch["example"][:3].tolist()):
        prompt, target = pairs[example]
        n = int(batch["attention_mask"][row].sum())
        ids, labels = batch["input_ids"][row, :n].tolist(), batch["labels"][row, :n].tolist()
        answer = tok.encode(target) + [eos]
        assert ids[n - len(answer):] == answer  # the sequence ends with the completion and the end marker
        assert labels == [IGNORE_INDEX] * (n - len(answer)) + answer  # and only they are scored
        kept = tok.decode(ids[: n - len(answer)])
        assert len(kept) == cfg.seq_len - cfg.target_len and prompt.endswith(kept)  # the prompt's last tokens
    assert "prompts (their first tokens are dropped)" in " ".join(objective.notes())


def test_a_classifier_of_text_pairs(runs, tmp_path):
    """``text_pair``: BERT reads ``[CLS] a [SEP] b [SEP]`` with token types 0 then 1; a pair too long
    loses tokens from its longer text first; generate takes the second text with --text-pair."""
    pairs = [(f"{WORDS[i % 11]} night", f"{WORDS[i % 11] if i % 2 else WORDS[(i + 3) % 11]} night",
              "same" if i % 2 else "different") for i in range(44)]
    data, val = tmp_path / "pairs.tsv", tmp_path / "val.tsv"
    data.write_text("".join(f"{a}\t{b}\t{c}\n" for a, b, c in pairs), encoding="utf-8")
    val.write_text("".join(f"{a}\t{b}\t{c}\n" for a, b, c in pairs[:6]), encoding="utf-8")
    cfg = preset("bert", "tiny", finetune=True, corpus=str(data), val_corpus=str(val), init_from=str(runs("bert")),
                 progress=False, plot=False, measure_mfu=False, seq_len=12)
    trainer = Trainer(cfg, tmp_path / "ft", say=quiet)
    trainer.setup()
    tok, objective = trainer.tokenizer, trainer.objective
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    batch = objective.batch(TRAIN, 0, 0, slice(None))
    for ids, types, mask in zip(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"], strict=True):
        ids, types = ids[: int(mask.sum())].tolist(), types[: int(mask.sum())].tolist()
        first_sep = ids.index(sep_id)
        assert ids[0] == cls_id and ids[-1] == sep_id and ids.count(sep_id) == 2
        assert types == [0] * (first_sep + 1) + [1] * (len(ids) - first_sep - 1)
    long = objective._frame([list(range(100, 120)), list(range(200, 204))])[0]  # 20 + 4 tokens into 12
    assert long == [cls_id, *range(100, 105), sep_id, *range(200, 204), sep_id]  # the longer text lost its tail

    code, out, err = run_cli("finetune", "bert", "--from", runs("bert"), "--data", data, "--val-data", val,
                             "--preset", "tiny", "--out", tmp_path / "run", "--no-progress", "--max-steps", "4")
    assert code == 0, err
    code, shown, err = run_cli("generate", "--run", tmp_path / "run", "--prompt", "good night",
                               "--text-pair", "good night")
    assert code == 0, err
    assert {line.rsplit("  ", 1)[0] for line in shown.strip().splitlines()} == {"same", "different"}
    code, _, err = run_cli("generate", "--run", runs("t5"), "--prompt", "a <extra_id_0>", "--text-pair", "b")
    assert code == 2 and "--text-pair is the second text for a classifier" in err
    code, _, err = run_cli("finetune", "t5", "--from", runs("t5"), "--data", data, "--val-data", val,
                           "--preset", "tiny", "--out", tmp_path / "t5", "--no-progress")
    assert code == 2 and "text_pair (a second input text) is for classifying pairs with BERT" in err


def test_from_python_a_preset_with_init_from_takes_the_starting_models_shape(runs, tmp_path):
    from minitransformer.training import train

    cfg = preset("gpt", "tiny", init_from=str(runs("gpt")), max_steps=2, progress=False, plot=False,
                 model={"dropout": 0.1})
    assert cfg.model == {"dropout": 0.1} and cfg.vocab_size is None  # the preset's shape is not the model's
    result = train(cfg, tmp_path / "more", say=quiet)
    assert result.step == 2
    assert load_file(str(tmp_path / "more" / "model.safetensors")).keys() == \
        load_file(str(runs("gpt") / "model.safetensors")).keys()


def test_fine_tuning_without_a_starting_model_is_refused_at_once():
    with pytest.raises(ValueError, match="fine-tuning starts from a trained model: set init_from"):
        preset("t5", "tiny", finetune=True, corpus="sql")
