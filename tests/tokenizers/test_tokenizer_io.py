"""``load_tokenizer``: the right class for each tokenizer.json, and clear errors naming the file."""
from __future__ import annotations

import json

import pytest
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import models, normalizers, pre_tokenizers, trainers

from minitransformer.tokenizers import (
    BPETokenizer,
    CharTokenizer,
    UnigramTokenizer,
    WordPieceTokenizer,
    load_tokenizer,
)
from minitransformer.tokenizers import unigram as unigram_module
from minitransformer.tokenizers import wordpiece as wordpiece_module

TEXT = "the quick brown fox jumps over the lazy dog. " * 20 + "To be, or not to be: that is the question.\n" * 10


@pytest.fixture(scope="module")
def bpe() -> BPETokenizer:
    return BPETokenizer.train(TEXT, vocab_size=300, special_tokens=["<|endoftext|>"], min_frequency=2)


def test_our_files_come_back_as_their_class(bpe, tmp_path):
    char = CharTokenizer.train(TEXT)
    for tok in (bpe, char):
        path = tmp_path / f"{type(tok).__name__}.json"
        tok.save(path)
        loaded = load_tokenizer(path)
        assert type(loaded) is type(tok)
        assert loaded.encode(TEXT) == tok.encode(TEXT)


def test_byte_level_bpe_written_by_tokenizers(tmp_path):
    hf = HFTokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.ByteLevel()  # tokenizers' default: add_prefix_space=True
    hf.train_from_iterator([TEXT], trainers.BpeTrainer(vocab_size=300, show_progress=False,
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    path = tmp_path / "hf.json"
    hf.save(str(path))
    tok = load_tokenizer(path)
    assert isinstance(tok, BPETokenizer) and tok.add_prefix_space
    sample = "over the lazy question, not to be"
    assert tok.encode(sample) == hf.encode(sample).ids


def test_files_from_old_tokenizers_versions_without_a_model_type(bpe, tmp_path):
    """roberta-base's and bert-base-uncased's tokenizer.json were written before ``tokenizers`` named the
    model's type; it tells it by the fields (merges: BPE, a [piece, score] list: Unigram, a subword
    prefix: WordPiece, else WordLevel), and so do we."""
    wordpiece = WordPieceTokenizer.train(TEXT, vocab_size=60)
    unigram = UnigramTokenizer.train(TEXT, vocab_size=45, special_tokens=["<unk>"])
    for tok in (bpe, CharTokenizer.train(TEXT), wordpiece, unigram):
        data = tok.to_hf_dict()
        kind = data["model"].pop("type")
        path = tmp_path / f"{kind}.json"
        path.write_text(json.dumps(data), encoding="utf-8")
        loaded = load_tokenizer(path)
        assert type(loaded) is type(tok)
        hf = HFTokenizer.from_file(str(path))
        assert type(hf.model).__name__ == kind
        assert loaded.encode(TEXT) == tok.encode(TEXT) == hf.encode(TEXT, add_special_tokens=False).ids
        assert type(tok).load(path).encode(TEXT) == tok.encode(TEXT)


@pytest.mark.parametrize("model_type,module,class_name", [
    ("WordPiece", wordpiece_module, "WordPieceTokenizer"),
    ("Unigram", unigram_module, "UnigramTokenizer"),
])
def test_wordpiece_and_unigram_files_go_to_their_classes(tmp_path, monkeypatch, model_type, module, class_name):
    """Dispatch only: the classes themselves are tested in their own files."""
    seen = []
    cls = getattr(module, class_name)
    monkeypatch.setattr(cls, "from_hf_dict", classmethod(lambda c, data: seen.append((c, data)) or "loaded"))
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"model": {"type": model_type, "vocab": {}}}), encoding="utf-8")
    assert load_tokenizer(path) == "loaded"
    assert seen[0][0] is cls and seen[0][1]["model"]["type"] == model_type


def test_missing_file():
    with pytest.raises(FileNotFoundError, match="no-such-tokenizer.json"):
        load_tokenizer("no-such-tokenizer.json")


@pytest.mark.parametrize("content,message", [
    (b'{"model": {"type": "BPE", "vocab": {', "not a valid tokenizer.json"),       # truncated JSON
    (b"\x89PNG\r\n\x1a\n\x00\x00", "not a valid tokenizer.json"),                  # binary garbage
    (b'{"vocab_size": 5}', "no 'model' with a 'type'"),                             # some other JSON
    (b'[1, 2, 3]', "no 'model' with a 'type'"),
    (b'{"model": {"type": "WordLevelPlus"}}', "'WordLevelPlus' is not supported"),   # unknown model type
    (b'{"pre_tokenizer": {"type": "ByteLevel"}, "model": {"type": "BPE"}}', "missing field 'vocab'"),
    (b'{"pre_tokenizer": {"type": "ByteLevel"}, "model": {"type": "BPE", "vocab": {"a": "x"}, "merges": []}}',
     "ids must be distinct non-negative integers"),
])
def test_corrupt_or_foreign_files_name_the_file(tmp_path, content, message):
    path = tmp_path / "broken-tokenizer.json"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as info:
        load_tokenizer(path)
    assert "broken-tokenizer.json" in str(info.value)


def _edited(bpe: BPETokenizer, tmp_path, edit) -> str:
    data = bpe.to_hf_dict()
    edit(data)
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("edit,message", [
    (lambda d: d.update(normalizer=json.loads(normalizers.NFKC().__getstate__())), "normalizer"),
    (lambda d: d.update(pre_tokenizer={"type": "Whitespace"}), "ByteLevel"),
    (lambda d: d["model"].update(dropout=0.1), "dropout"),
    (lambda d: d["model"].update(continuing_subword_prefix="##"), "continuing_subword_prefix"),
    (lambda d: d["model"]["vocab"].pop("Ġ"), "byte characters"),
    (lambda d: d["model"]["merges"].append("Ġ zzzqqq"), "'zzzqqq' is not in the vocabulary"),
    (lambda d: d["added_tokens"][0].update(lstrip="yes"), "'lstrip' must be true or false"),
])
def test_unsupported_or_broken_bpe_files(bpe, tmp_path, edit, message):
    path = _edited(bpe, tmp_path, edit)
    with pytest.raises(ValueError, match=message) as info:
        load_tokenizer(path)
    assert "edited.json" in str(info.value)
    with pytest.raises(ValueError, match="edited.json"):  # the class's own load names the file too
        BPETokenizer.load(path)


def test_loading_with_the_wrong_class_is_a_clear_error(bpe, tmp_path):
    path = tmp_path / "bpe.json"
    bpe.save(path)
    with pytest.raises(ValueError, match=r"bpe\.json.*CharTokenizer.*WordLevel"):
        CharTokenizer.load(path)


def test_saving_onto_a_folder_or_failing_midway_leaves_no_temp_file(tmp_path):
    tok = CharTokenizer.train("abc")
    with pytest.raises(IsADirectoryError, match="tokenizer.json"):
        tok.save(tmp_path)
    assert list(tmp_path.iterdir()) == []
    bad = CharTokenizer.train("ab\ud800")  # a lone surrogate cannot be written as UTF-8
    with pytest.raises(UnicodeEncodeError):
        bad.save(tmp_path / "t.json")
    assert list(tmp_path.iterdir()) == []  # no t.json.tmp left behind


def test_vocab_sizes_the_trainer_cannot_allocate_are_refused():
    """2**31 - 1 made the tokenizers trainer try to allocate ~141 GB and abort the process."""
    for cls in (BPETokenizer, WordPieceTokenizer, UnigramTokenizer):
        with pytest.raises(ValueError, match="above the 1,048,576"):
            cls.train(["the cat sat"] * 5, vocab_size=2**31 - 1)


def _with_one_non_special(tok) -> dict:
    """tok's tokenizer.json with its last added token marked "special": false."""
    data = tok.to_hf_dict()
    data["added_tokens"][-1]["special"] = False
    return data


@pytest.mark.parametrize("kind", ["bpe", "char", "wordpiece", "unigram"])
def test_added_tokens_marked_not_special_are_kept_when_decoding_skips_specials(bpe, tmp_path, kind):
    """tokenizers matches every added token whole, but skip_special_tokens drops only the special ones."""
    tok = {
        "bpe": lambda: BPETokenizer.train(TEXT, vocab_size=300, special_tokens=["<|endoftext|>", "<keep>"]),
        "char": lambda: CharTokenizer.train(TEXT, special_tokens=["[PAD]", "<keep>"]),
        "wordpiece": lambda: WordPieceTokenizer.train(TEXT, vocab_size=70),
        "unigram": lambda: UnigramTokenizer.train(TEXT, vocab_size=50, special_tokens=["<unk>", "<keep>"]),
    }[kind]()
    data = _with_one_non_special(tok)
    kept = data["added_tokens"][-1]["content"]
    dropped = data["added_tokens"][0]["content"]
    ref = HFTokenizer.from_str(json.dumps(data))
    path = tmp_path / "t.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    loaded = load_tokenizer(path)
    assert loaded.non_special_tokens == {kept}
    assert loaded.token_to_id(kept) not in loaded.special_token_ids()  # MLM may mask it, as in transformers
    text = f"the lazy {dropped} dog{kept} over"
    ids = loaded.encode(text)
    assert ids == ref.encode(text, add_special_tokens=False).ids
    for skip in (False, True):
        assert loaded.decode(ids, skip_special_tokens=skip) == ref.decode(ids, skip_special_tokens=skip)
    assert kept in loaded.decode(ids, skip_special_tokens=True)
    assert dropped not in loaded.decode(ids, skip_special_tokens=True)
    loaded.save(tmp_path / "again.json")  # the flag survives a round trip
    assert load_tokenizer(tmp_path / "again.json").non_special_tokens == {kept}
