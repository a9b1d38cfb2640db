"""``minitransformer tokenizer train|encode``: files written, output printed, user errors as exit code 2."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from minitransformer.cli import main
from minitransformer.tokenizers import BPETokenizer, CharTokenizer, load_tokenizer
from minitransformer.tokenizers import unigram as unigram_module
from minitransformer.tokenizers import wordpiece as wordpiece_module

CORPUS = "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n" * 30


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(CORPUS, encoding="utf-8")
    return path


def test_train_char_and_encode(corpus, tmp_path, capsys):
    out = tmp_path / "char.json"
    assert main(["tokenizer", "train", "--kind", "char", "--corpus", str(corpus), "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    tok = load_tokenizer(out)
    assert isinstance(tok, CharTokenizer) and tok.chars == sorted(set(CORPUS))
    assert main(["tokenizer", "encode", "--tokenizer", str(out), "to be"]) == 0
    printed = capsys.readouterr().out
    assert f"ids: {tok.encode('to be')}" in printed
    assert "tokens: ['t', 'o', ' ', 'b', 'e']" in printed


def test_train_bpe_both_backends_write_the_same_file(corpus, tmp_path, capsys):
    files = []
    for backend in ("python", "hf"):
        out = tmp_path / f"bpe-{backend}.json"
        argv = ["tokenizer", "train", "--kind", "bpe", "--vocab-size", "300", "--corpus", str(corpus),
                "--out", str(out), "--backend", backend]
        assert main(argv) == 0
        files.append(json.loads(out.read_text(encoding="utf-8")))
    assert files[0] == files[1]
    tok = load_tokenizer(tmp_path / "bpe-hf.json")
    assert isinstance(tok, BPETokenizer) and tok.vocab_size == 300
    expected = BPETokenizer.train(CORPUS, 300)
    assert tok.merges == expected.merges


@pytest.mark.parametrize("kind,module,class_name", [
    ("wordpiece", wordpiece_module, "WordPieceTokenizer"),
    ("unigram", unigram_module, "UnigramTokenizer"),
])
def test_wordpiece_and_unigram_are_trained_with_their_classes(corpus, tmp_path, monkeypatch, kind, module, class_name):
    """Wiring only (the algorithms are tested in their own files): train(lines, vocab_size=N, backend) is called."""
    calls = []

    def fake_train(cls, texts, vocab_size, backend):
        calls.append((list(texts), vocab_size, backend))
        return CharTokenizer.train(CORPUS)

    monkeypatch.setattr(getattr(module, class_name), "train", classmethod(fake_train))
    out = tmp_path / f"{kind}.json"
    argv = ["tokenizer", "train", "--kind", kind, "--vocab-size", "500", "--corpus", str(corpus), "--out", str(out)]
    assert main(argv) == 0
    assert calls == [([line for line in CORPUS.splitlines() if line], 500, "hf")]  # fast backend by default
    assert out.is_file()


@pytest.mark.parametrize("argv,message", [
    (["tokenizer", "train", "--kind", "bpe", "--vocab-size", "100", "--out", "{tmp}/t.json"], "below the base alphabet"),
    (["tokenizer", "train", "--kind", "bpe", "--out", "{tmp}/t.json"], "needs --vocab-size"),
    (["tokenizer", "train", "--kind", "char", "--vocab-size", "64", "--out", "{tmp}/t.json"], "does not apply"),
    (["tokenizer", "train", "--kind", "char", "--corpus", "{tmp}/missing.txt", "--out", "{tmp}/t.json"],
     "missing.txt"),
    (["tokenizer", "train", "--kind", "char", "--out", "{tmp}"], "is a folder"),
    (["tokenizer", "encode", "--tokenizer", "{tmp}/nothing.json", "hi"], "nothing.json"),
    (["tokenizer", "encode", "--tokenizer", "{tmp}/garbage.json", "hi"], "garbage.json.*not a valid tokenizer.json"),
    (["tokenizer", "encode", "--tokenizer", "{tmp}/char.json", "unknown ß"], "'ß'"),
    (["tokenizer", "add", "--tokenizer", "{tmp}/char.json", "", "--out", "{tmp}/t.json"], "empty string"),
    (["tokenizer", "add", "--tokenizer", "{tmp}/nothing.json", "x", "--out", "{tmp}/t.json"], "nothing.json"),
    (["tokenizer", "add", "--tokenizer", "{tmp}/char.json", "x", "--out", "{tmp}"], "is a folder"),
])
def test_user_errors_are_one_line_and_exit_2(tmp_path, capsys, argv, message):
    (tmp_path / "garbage.json").write_text("{not json", encoding="utf-8")
    CharTokenizer.train("unknown ").save(tmp_path / "char.json")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("minitransformer tokenizer: error:")
    assert re.search(message, err), err


def test_add_tokens_writes_a_tokenizer_that_finds_them(corpus, tmp_path, capsys):
    base, out = tmp_path / "bpe.json", tmp_path / "bpe-sql.json"
    assert main(["tokenizer", "train", "--kind", "bpe", "--vocab-size", "300", "--corpus", str(corpus),
                 "--out", str(base)]) == 0
    size = load_tokenizer(base).vocab_size
    capsys.readouterr()
    assert main(["tokenizer", "add", "--tokenizer", str(base), "--special", "<sql>", "</sql>", "--out", str(out)]) == 0
    assert f"2 new special tokens (ids {size}..{size + 1}), {size + 2} tokens in all" in capsys.readouterr().out
    assert main(["tokenizer", "add", "--tokenizer", str(out), "question", "<sql>", "--out", str(out)]) == 0
    assert f"1 new token (id {size + 2})" in capsys.readouterr().out  # <sql> was there already
    tok = load_tokenizer(out)
    assert tok.vocab_size == size + 3 and load_tokenizer(base).vocab_size == size  # the input file is untouched
    ids = tok.encode("<sql>the question</sql>")
    assert ids[0] == size and ids[-1] == size + 1 and tok.token_to_id("question") == size + 2 in ids


def test_python_dash_m_exit_code(tmp_path):
    """The real entry point: one subprocess (importing torch takes seconds), for the exit code and stderr."""
    bad = subprocess.run([sys.executable, "-m", "minitransformer", "tokenizer", "encode", "--tokenizer",
                          str(tmp_path / "missing.json"), "hello"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
    assert bad.stderr.strip() == f"minitransformer tokenizer: error: tokenizer file not found: {tmp_path / 'missing.json'}"
