"""A tiny smoke version of the text-to-text recipe (benchmarks/t5_text_to_text.py runs the real one)."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from minitransformer.data.corpus import load_corpus
from minitransformer.data.span_corruption import reconstruct
from minitransformer.data.sql_task import make_sql_task
from minitransformer.data.tasks import TextPair
from minitransformer.models.config import T5Config
from minitransformer.models.t5 import T5
from minitransformer.text_to_text import (
    TrainSettings,
    encode_pairs,
    evaluate,
    finetune,
    predict,
    pretrain_span_corruption,
    shuffled_batches,
    span_corruption_examples,
    span_corruption_stream,
    special_ids,
    train,
    train_tokenizer,
    word_accuracy,
)


@pytest.fixture(scope="module")
def setup():
    task = make_sql_task()
    text = load_corpus("shakespeare")[:20_000]
    texts = text.splitlines() + [t for p in task.train for t in (p.source, p.target)] * 3
    tok = train_tokenizer(texts, vocab_size=400)
    return task, text, tok


def tiny_model(tok, seed=0) -> T5:
    torch.manual_seed(seed)
    return T5(T5Config(vocab_size=tok.vocab_size, d_model=32, d_kv=8, n_heads=4, d_ff=64, n_layers=2,
                       dropout=0.0, max_seq_len=128))


def test_tokenizer_has_t5_special_tokens(setup):
    _, _, tok = setup
    sp = special_ids(tok)
    assert (sp.pad, sp.eos) == (0, 1)
    assert len(sp.sentinels) == 100 and len(set(sp.sentinels)) == 100
    assert tok.decode(tok.encode("SELECT name FROM employees")) == "SELECT name FROM employees"


def test_sentinels_outside_the_model_vocabulary_are_refused(setup):
    _, _, tok = setup
    small = T5(T5Config(vocab_size=50, d_model=16, d_kv=4, n_heads=2, d_ff=16, n_layers=1))
    with pytest.raises(ValueError, match=r"sentinel <extra_id_\d+> has id \d+ outside the model's vocabulary"):
        special_ids(tok, small)
    with pytest.raises(ValueError, match="outside the model's vocabulary"):
        pretrain_span_corruption(small, tok, "some text " * 50, TrainSettings(steps=1), log=None)


def test_encode_pairs_pads_and_ends_with_eos(setup):
    _, _, tok = setup
    pairs = [TextPair("a b c d e f g h", "x"), TextPair("a", "long target " * 20)]
    b = encode_pairs(tok, pairs, max_source_len=5, max_target_len=6)
    assert b["input_ids"].shape[1] <= 5 and b["labels"].shape[1] == 6
    assert b["input_ids"][1, int(b["attention_mask"][1].sum()) - 1] == 1  # eos ends each source
    assert b["labels"][1, -1] == 1  # eos kept when the target is cut
    n0 = len(tok.encode("x")) + 1
    assert b["labels"][0, n0 - 1] == 1 and (b["labels"][0, n0:] == -100).all()
    assert ((b["input_ids"] == 0) == (b["attention_mask"] == 0)).all()


def test_span_corruption_rows_reconstruct_the_text(setup):
    _, text, tok = setup
    data = span_corruption_examples(tok, text[:3000], inputs_length=32, generator=torch.Generator().manual_seed(0))
    sp = special_ids(tok)
    ids = tok.encode(" ".join(text[:3000].split()))  # line breaks are read as spaces
    inputs = data["input_ids"][0].tolist()
    targets = [t for t in data["labels"][0].tolist() if t != -100]
    restored = reconstruct(inputs[: inputs.index(sp.eos) + 1], targets, sp.sentinels, sp.eos)
    assert restored == ids[: len(restored)]
    assert data["input_ids"].shape[1] == 32


def test_line_breaks_are_spaces_not_unknown_tokens(setup):
    """The tokenizer learned from lines, so it has no line-break piece: span corruption must not feed it one."""
    _, text, tok = setup
    assert tok.unk_id in tok.encode("But soft,\nwhat light")  # what a raw line break would cost
    verse = "\n".join(text.splitlines()[:200])
    data = span_corruption_examples(tok, verse, inputs_length=32, generator=torch.Generator().manual_seed(0))
    assert tok.unk_id not in tok.encode(" ".join(verse.split()))  # every character of this verse is known
    assert not (data["input_ids"] == tok.unk_id).any() and not (data["labels"] == tok.unk_id).any()


def test_span_corruption_stream_draws_new_spans_on_every_pass(setup):
    """Dynamic corruption: the second pass hides other spans of the same text (a fixed corruption is learnt by heart)."""
    _, text, tok = setup
    sp = special_ids(tok)
    ids = tok.encode(" ".join(text[:4000].split()))
    stream = span_corruption_stream(tok, text[:4000], batch_size=4, inputs_length=32, seed=0)
    passes = []
    for _ in range(2):
        rows = set()
        n_rows = span_corruption_examples(tok, text[:4000], inputs_length=32)["input_ids"].shape[0]
        for _ in range(n_rows // 4):
            b = stream()
            for inp, lab in zip(b["input_ids"].tolist(), b["labels"].tolist(), strict=True):
                inp = inp[: inp.index(sp.eos) + 1]
                restored = reconstruct(inp, [t for t in lab if t != -100], sp.sentinels, sp.eos)
                assert any(ids[k:k + len(restored)] == restored for k in range(len(ids)))  # a true piece of the text
                rows.add(tuple(inp))
        passes.append(rows)
    assert passes[0] and passes[1] and passes[0] != passes[1]


def test_pretrain_then_finetune_end_to_end(setup):
    """Pretraining runs and lowers the loss; fine-tuning on a few pairs reproduces them exactly."""
    task, text, tok = setup
    model = tiny_model(tok)
    losses = pretrain_span_corruption(model, tok, text[:6000], TrainSettings(steps=25, batch_size=8, lr=1e-2,
                                                                               warmup_steps=5), log=None)
    assert len(losses) == 25 and all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-5:]) < sum(losses[:5])
    pairs = task.train[:4]
    ft = TrainSettings(steps=150, batch_size=4, lr=1e-2, warmup_steps=10)
    finetune(model, tok, pairs, ft, log=None)
    result = evaluate(model, tok, pairs, database=task.database, max_new_tokens=64)
    assert result["n"] == 4
    assert result["exact_match"] == 1.0 and result["execution_accuracy"] == 1.0 and result["word_accuracy"] == 1.0
    # metrics on unseen questions are well-formed (a model this small gets few of them right)
    heldout = evaluate(model, tok, task.heldout[:3], database=task.database, max_new_tokens=8)
    # an exact match always executes to the gold rows, and has every word right
    assert 0.0 <= heldout["exact_match"] <= heldout["execution_accuracy"] <= 1.0
    assert heldout["exact_match"] <= heldout["word_accuracy"] <= 1.0
    preds, golds = [p for _, _, p in heldout["examples"]], [g for _, g, _ in heldout["examples"]]
    assert heldout["word_accuracy"] == word_accuracy(preds, golds)
    assert len(heldout["examples"]) == 3


def test_word_accuracy_by_hand():
    assert word_accuracy(["a b c"], ["a x c"]) == 2 / 3
    assert word_accuracy(["a b"], ["a b c d"]) == 2 / 4  # missing words count as wrong
    assert word_accuracy(["a b c d"], ["a b"]) == 2 / 4  # and so do extra ones
    assert word_accuracy(["b c", "x"], ["a b c", "x"]) == 1 / 4  # positions, not a bag of words; pooled over lines
    assert word_accuracy(["", "a  b"], ["", "a b"]) == 1.0  # whitespace is not a word
    with pytest.raises(ValueError, match="2 predictions for 1 targets"):
        word_accuracy(["a", "b"], ["a"])


@given(st.lists(st.tuples(st.text("ab ", max_size=12), st.text("ab ", max_size=12)), min_size=1, max_size=5))
def test_word_accuracy_is_one_exactly_when_every_line_has_the_targets_words(pairs):
    preds, golds = [p for p, _ in pairs], [g for _, g in pairs]
    score = word_accuracy(preds, golds)
    assert 0.0 <= score <= 1.0
    assert (score == 1.0) == all(p.split() == g.split() for p, g in pairs)


def test_train_settings():
    s = TrainSettings(steps=100, lr=1.0, warmup_steps=10)
    rates = [s.lr_at(i) for i in range(100)]
    assert rates[0] == pytest.approx(0.1) and rates[9] == pytest.approx(1.0)
    assert 0.95 < rates[10] < 1.0 and rates[-1] == pytest.approx(0.1, abs=1e-2)  # cosine over the whole run
    assert all(a >= b for a, b in zip(rates[10:], rates[11:], strict=False))
    timed = TrainSettings(steps=10_000, lr=1.0, warmup_steps=0, time_budget_s=10.0)
    assert timed.progress(5, 5.0) == pytest.approx(0.5) and timed.lr_at(5, 10.0) == pytest.approx(0.1)
    for bad in (dict(steps=0), dict(lr=0.0), dict(time_budget_s=0.0), dict(log_every=0), dict(steps=1.5),
                dict(lr=float("inf")), dict(lr="1e-3"), dict(weight_decay=float("nan")), dict(warmup_steps=-1),
                dict(batch_size=True), dict(time_budget_s=float("inf"))):
        with pytest.raises(ValueError, match=next(iter(bad))):
            TrainSettings(**bad)


def test_bad_arguments_to_the_text_helpers(setup):
    """A string where a list of strings belongs, and sizes below 1, are errors (they used to run)."""
    task, _, tok = setup
    model = tiny_model(tok)
    with pytest.raises(TypeError, match="list of strings"):
        predict(model, tok, "abc")  # would have made three predictions, for "a", "b" and "c"
    with pytest.raises(ValueError, match="batch_size"):
        predict(model, tok, ["abc"], batch_size=-1)
    with pytest.raises(TypeError, match="list of strings"):
        word_accuracy("abc", "abd")
    with pytest.raises(TypeError, match="hold strings"):
        word_accuracy([None], ["a"])
    with pytest.raises(ValueError, match="max_source_len"):
        encode_pairs(tok, task.train[:2], max_source_len=0)
    with pytest.raises(TypeError, match="TextPair"):
        encode_pairs(tok, [("a", "b")])
    with pytest.raises(ValueError, match="batch_size"):
        shuffled_batches(encode_pairs(tok, task.train[:2]), 0)


def test_batches_go_to_the_models_device(setup):
    """train and predict build their batches on the CPU and move them to wherever the model lives (a GPU).
    Emulated with a model on the meta device whose forward/generate only record what reaches them."""
    task, _, tok = setup
    model = tiny_model(tok).to("meta")
    seen = {}

    def spy(input_ids, attention_mask=None, **kw):
        seen.setdefault("devices", []).append((input_ids.device, attention_mask.device))
        raise KeyboardInterrupt  # stop before any computation

    model.forward = spy
    model.generate = spy
    batch = encode_pairs(tok, task.train[:2], 16, 16)
    with pytest.raises(KeyboardInterrupt):
        train(model, lambda: batch, TrainSettings(steps=1, batch_size=2, warmup_steps=0), log=None)
    with pytest.raises(KeyboardInterrupt):
        predict(model, tok, [task.train[0].source])
    assert seen["devices"] == [(torch.device("meta"), torch.device("meta"))] * 2
