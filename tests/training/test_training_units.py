"""The pieces of pretraining: token cache, corpus split, schedule, batches, NaN guard."""
from __future__ import annotations

import contextlib
import io
import itertools

import numpy as np
import pytest
import torch

from minitransformer import cli
from minitransformer.data.corpus import load_corpus
from minitransformer.data.span_corruption import reconstruct
from minitransformer.tokenizers import BPETokenizer, CharTokenizer
from minitransformer.training import batches, preset, tokens
from minitransformer.training import checkpoint as ckpt
from minitransformer.training.metrics import read_metrics
from minitransformer.training.trainer import lr_at

TEXT = load_corpus()[:20_000]


# ---- token cache -------------------------------------------------------------------------------

def test_token_dtype_is_the_smallest_that_fits():
    assert tokens.token_dtype(65) == np.uint16 and tokens.token_dtype(65536) == np.uint16
    assert tokens.token_dtype(65537) == np.uint32 and tokens.token_dtype(50257) == np.uint16


def test_array_file_round_trip_and_damage_detection(tmp_path):
    ids = np.arange(1000, dtype=np.uint16)
    tokens.write_array(tmp_path / "a.bin", ids, fingerprint="x")
    back = tokens.read_array(tmp_path / "a.bin")
    assert isinstance(back, np.memmap) and np.array_equal(back, ids)
    assert (tmp_path / "a.bin").stat().st_size == 2000  # raw uint16, nanoGPT-style
    with open(tmp_path / "a.bin", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ValueError, match="damaged"):
        tokens.read_array(tmp_path / "a.bin")
    with pytest.raises(FileNotFoundError):
        tokens.read_array(tmp_path / "missing.bin")
    # the right size but other bytes (overwritten in place): the checksum in the header catches it
    tokens.write_array(tmp_path / "a.bin", ids, fingerprint="x")
    (tmp_path / "a.bin").write_bytes(bytes(2000))
    with pytest.raises(ValueError, match="checksum"):
        tokens.read_array(tmp_path / "a.bin")


@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_fast_encoder_gives_the_tokenizers_ids(kind):
    tok = CharTokenizer.train(TEXT) if kind == "char" else BPETokenizer.train(TEXT, vocab_size=300, backend="hf")
    encode = tokens.fast_encoder(tok, TEXT[:2000])
    pieces = [TEXT[:7000], TEXT[7000:]]
    assert encode(pieces) == [tok.encode(p) for p in pieces]


def test_cache_is_reused_rebuilt_when_stale_and_strict_on_resume(tmp_path):
    tok = CharTokenizer.train(TEXT)
    docs = {"train": [[TEXT[:15000]]], "val": [[TEXT[15000:]]]}
    first = tokens.load_or_build_cache(tmp_path, docs, tok)
    assert np.array_equal(first["train"].tokens, tok.encode(TEXT[:15000]))
    stamp = (tmp_path / "train.tokens.bin").stat().st_mtime_ns
    again = tokens.load_or_build_cache(tmp_path, docs, tok)
    assert (tmp_path / "train.tokens.bin").stat().st_mtime_ns == stamp
    assert np.array_equal(again["val"].tokens, first["val"].tokens)
    changed = {"train": [[TEXT[:14000]]], "val": [[TEXT[15000:]]]}
    with pytest.raises(ValueError, match="differs"):
        tokens.load_or_build_cache(tmp_path, changed, tok, must_match=True)
    rebuilt = tokens.load_or_build_cache(tmp_path, changed, tok)
    assert len(rebuilt["train"]) == len(tok.encode(TEXT[:14000]))


def test_segments_and_documents_keep_sentences():
    tok = CharTokenizer.train(TEXT)
    docs = [["To be.", "Or not."], ["Ay."]]
    split = tokens.tokenize_documents(docs, tokens.fast_encoder(tok), tok.vocab_size)
    assert split.document_sentences() == [[tok.encode(s) for s in d] for d in docs]


# ---- corpus split, schedule --------------------------------------------------------------------

def test_user_corpus_split_is_nanogpts_first_90_percent(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text(TEXT, encoding="utf-8")
    split = batches.split_corpus(str(path), 0.1)
    (train,), (val,) = split["train"], split["val"]
    assert train + val == TEXT and train.endswith("\n")
    assert abs(len(val) / len(TEXT) - 0.1) < 0.01
    assert batches.split_corpus(str(path), 0.1) == split


def test_embedded_corpus_split_cuts_every_play():
    from minitransformer.data.corpus import load_plays

    split = batches.split_corpus("shakespeare", 0.1)
    plays = list(load_plays().values())
    assert len(split["train"]) == len(split["val"]) == len(plays)
    assert all(a + b == p for a, b, p in zip(split["train"], split["val"], plays, strict=True))


def test_learning_rate_warms_up_linearly_then_follows_a_cosine_to_min_lr():
    cfg = preset("gpt", "tiny", lr=1e-3, min_lr=1e-4, warmup_steps=10, lr_decay_steps=110)
    warm = [lr_at(s, cfg) for s in range(10)]
    assert all(b - a == pytest.approx(1e-3 / 11) for a, b in itertools.pairwise(warm))
    assert lr_at(10, cfg) == pytest.approx(1e-3)
    assert lr_at(60, cfg) == pytest.approx((1e-3 + 1e-4) / 2)  # half way down the cosine
    decay = [lr_at(s, cfg) for s in range(10, 111)]
    assert all(b <= a for a, b in itertools.pairwise(decay))
    assert lr_at(110, cfg) == lr_at(500, cfg) == pytest.approx(1e-4)


# ---- batches -----------------------------------------------------------------------------------

def objective_for(family: str, **overrides):
    cfg = preset(family, "tiny", corpus="my-text.txt", **overrides)  # a user corpus: blank lines cut documents
    splits = {"train": [TEXT[:15000]], "val": [TEXT[15000:]]}
    tok = batches.build_tokenizer(cfg, splits)
    data = {name: tokens.tokenize_documents(docs, tokens.fast_encoder(tok), tok.vocab_size)
            for name, docs in batches.documents_for_cache(cfg, splits).items()}
    return batches.make_objective(cfg, data, tok)


@pytest.mark.parametrize("family", ["gpt", "bert", "t5"])
def test_batches_depend_only_on_the_step_and_split_evenly_over_processes(family):
    obj = objective_for(family, batch_size=6)
    whole = obj.batch(batches.TRAIN, 5, 1, slice(None))
    again = obj.batch(batches.TRAIN, 5, 1, slice(None))
    other = obj.batch(batches.TRAIN, 6, 1, slice(None))
    key = "input_ids"
    assert torch.equal(whole[key], again[key]) and not torch.equal(whole[key], other[key])
    parts = [obj.batch(batches.TRAIN, 5, 1, slice(r * 2, r * 2 + 2)) for r in range(3)]  # 3 "processes"
    for name in whole:
        if whole[name].dim():  # per-row tensors; BERT also carries a scalar loss weight per slice
            assert torch.equal(torch.cat([p[name] for p in parts]), whole[name])


LABELS = {"gpt": "targets", "bert": "mlm_labels", "t5": "labels"}  # -100: a position the loss ignores


@pytest.mark.parametrize("family", ["gpt", "bert", "t5"])
def test_validation_examples_do_not_depend_on_seed_batch_size_or_grad_accum(family):
    """Runs that differ in --seed, --batch-size or --grad-accum are measured on the same validation
    examples (the first eval_batches x batch_size of one fixed sequence); training batches do differ."""
    def examples(n, **overrides):  # the first n validation examples, row by row
        obj = objective_for(family, **overrides)
        B = obj.cfg.batch_size
        rows = []
        for i in range(-(-n // B)):
            b = obj.batch(batches.VAL, i, 0, slice(None))
            rows += [{k: v[r] for k, v in b.items() if v.dim()} for r in range(B)]
        return obj, rows[:n]

    base_obj, base = examples(12, batch_size=4, seed=1)
    for overrides in (dict(batch_size=4, seed=2), dict(batch_size=6, seed=1), dict(batch_size=3, seed=7, grad_accum=2)):
        _, other = examples(12, **overrides)
        for a, b in zip(base, other, strict=True):
            assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), overrides
    assert len({tuple(r["input_ids"].tolist()) for r in base}) > 6  # the examples are not all alike
    seeded = objective_for(family, batch_size=4, seed=2)
    assert not torch.equal(base_obj.batch(batches.TRAIN, 0, 0, slice(None))["input_ids"],
                           seeded.batch(batches.TRAIN, 0, 0, slice(None))["input_ids"])


@pytest.mark.parametrize("family, overrides", [
    ("gpt", {}), ("bert", {}), ("t5", {}),
    ("t5", dict(seq_len=11, noise_density=0.5)),  # targets one shorter than their row: padded with -100
], ids=["gpt", "bert", "t5", "t5-padded-targets"])
def test_slices_average_to_the_whole_batch_loss(family, overrides):
    """DDP averages the processes' gradients with equal weights, so the slices' losses must average
    to the whole batch's loss. GPT's and T5's rows all hold the same number of counted targets (a
    T5 target's length is fixed by its window's), so their plain means already do; BERT's slices
    hold different numbers of masked tokens, and its per-slice weight makes up for it."""
    from minitransformer.accounting import build_model

    obj = objective_for(family, batch_size=6, **overrides)
    torch.manual_seed(0)
    model = build_model(obj.model_config()).eval()
    whole = obj.batch(batches.TRAIN, 5, 1, slice(None))
    parts = [obj.batch(batches.TRAIN, 5, 1, slice(r * 2, r * 2 + 2)) for r in range(3)]
    counted = whole[LABELS[family]] != -100
    if family == "bert":
        counts = [int((p["mlm_labels"] != -100).sum()) for p in parts]
        assert len(set(counts)) > 1  # the slices really differ
        assert float(whole["mlm_weight"]) == 1.0
    else:
        assert len(set(counted.sum(1).tolist())) == 1  # every row counts as many targets
        assert bool(counted.all()) == (not overrides)
    with torch.no_grad():
        expected = obj.loss(model, whole)
        got = sum(obj.loss(model, p) for p in parts) / 3
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_gpt_targets_are_the_inputs_shifted_by_one():
    obj = objective_for("gpt")
    b = obj.batch(batches.TRAIN, 0, 0, slice(None))
    assert b["input_ids"].shape == (8, 32) and torch.equal(b["input_ids"][:, 1:], b["targets"][:, :-1])
    stream = torch.from_numpy(np.asarray(obj.data["train"].tokens, dtype=np.int64))
    row = b["input_ids"][0]
    starts = [s for s in range(len(stream) - 32) if torch.equal(stream[s:s + 32], row)]
    assert starts and torch.equal(stream[starts[0] + 1:starts[0] + 33], b["targets"][0])


def test_bert_batches_frame_mask_and_label_pairs():
    obj = objective_for("bert")
    b = obj.batch(batches.TRAIN, 0, 0, slice(None))
    assert b["input_ids"].shape == (8, 48)  # padded to seq_len: fixed shapes
    assert bool((b["input_ids"][:, 0] == obj.cls_id).all())
    selected = b["mlm_labels"] != -100
    assert selected.any() and not bool(selected[b["attention_mask"] == 0].any())
    assert set(b["nsp_labels"].tolist()) <= {0, 1}
    assert not bool(torch.isin(b["mlm_labels"][selected], torch.tensor([obj.cls_id, obj.sep_id, obj.pad_id])).any())


def test_bert_masking_leaves_every_special_token_of_the_tokenizer_alone():
    """A user's tokenizer.json may carry markers of its own (``add_special_tokens``): MLM must never
    select them, as it never selects [CLS] or [SEP]; added ordinary words may be masked."""
    cfg = preset("bert", "tiny", corpus="my-text.txt")
    text = TEXT[:18000].replace(" the ", " <scene> the ")
    splits = {"train": [text[:15000]], "val": [text[15000:]]}
    tok = batches.build_tokenizer(cfg, splits)
    tok.add_special_tokens(["<scene>"])
    tok.add_tokens(["the"])  # already a piece: becomes an added, ordinary word
    data = {name: tokens.tokenize_documents(docs, tokens.fast_encoder(tok), tok.vocab_size)
            for name, docs in batches.documents_for_cache(cfg, splits).items()}
    obj = batches.make_objective(cfg, data, tok)
    scene, the = tok.token_to_id("<scene>"), tok.token_to_id("the")
    seen = masked = masked_the = 0
    for step in range(20):
        b = obj.batch(batches.TRAIN, step, 0, slice(None))
        original = torch.where(b["mlm_labels"] != -100, b["mlm_labels"], b["input_ids"])
        seen += int((original == scene).sum())
        masked += int((b["mlm_labels"] == scene).sum())
        masked_the += int((b["mlm_labels"] == the).sum())
    assert seen > 30 and masked == 0 and masked_the > 0


def test_t5_batches_reconstruct_their_window():
    obj = objective_for("t5")
    b = obj.batch(batches.TRAIN, 3, 0, slice(None))
    assert b["input_ids"].shape == (8, 48) and b["labels"].shape == (8, obj.targets_length)
    stream = np.asarray(obj.data["train"].tokens, dtype=np.int64).tolist()
    for row in range(2):
        inputs = [t for t in b["input_ids"][row].tolist() if t != obj.pad_id]
        targets = [t for t in b["labels"][row].tolist() if t != -100]
        original = reconstruct(inputs, targets, obj.sentinels, obj.eos_id)
        assert len(original) == obj.tokens_length
        assert any(stream[s:s + len(original)] == original for s in range(len(stream) - len(original) + 1))


def test_wordpiece_training_gives_the_same_ids_every_time():
    cfg = preset("bert", "tiny")
    splits = {"train": [TEXT], "val": [""]}
    a = batches.build_tokenizer(cfg, splits).to_hf_dict()
    b = batches.build_tokenizer(cfg, splits).to_hf_dict()
    assert a["model"]["vocab"] == b["model"]["vocab"]


# ---- the NaN guard -----------------------------------------------------------------------------

def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    corpus = tmp_path / "c.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    calls = {"n": 0}
    real_loss = batches.CausalLMObjective.loss

    def poisoned(self, model, batch):
        calls["n"] += 1
        loss = real_loss(self, model, batch)
        return loss * float("nan") if calls["n"] == 7 else loss  # the 7th forward: step 7

    monkeypatch.setattr(batches.CausalLMObjective, "loss", poisoned)
    run = tmp_path / "run"
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = cli.main(["pretrain", "gpt", "--preset", "tiny", "--corpus", str(corpus), "--out", str(run),
                         "--no-progress", "--save-every", "5", "--eval-every", "5", "--max-steps", "10"])
    assert code == 3
    message = err.getvalue().strip()
    assert len(message.splitlines()) == 1 and "nan" in message and "step 7" in message and "ckpt-000005" in message
    assert ckpt.latest_checkpoint(run).name == "ckpt-000005"
    assert max(e["step"] for e in read_metrics(run)) <= 6
    from safetensors.torch import load_file

    top, kept = load_file(str(run / "model.safetensors")), load_file(str(run / "checkpoints/ckpt-000005/model.safetensors"))
    assert all(torch.equal(top[k], kept[k]) for k in kept)


def test_t5_samples_respect_sample_tokens():
    from minitransformer.accounting import build_model

    obj = objective_for("t5", sample_tokens=3)
    torch.manual_seed(0)
    model = build_model(obj.model_config()).eval()
    calls = []
    generate = model.generate
    model.generate = lambda *a, **k: calls.append(k["max_new_tokens"]) or generate(*a, **k)
    text = obj.sample(model, torch.device("cpu"))
    assert calls == [3] and text.startswith("input:")
