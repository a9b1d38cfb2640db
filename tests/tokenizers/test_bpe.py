"""Byte-level BPE: training, encoding and streaming against Hugging Face ``tokenizers`` as the reference."""
from __future__ import annotations

import itertools
import json
import pydoc_data.topics
import unicodedata
import warnings

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, models, pre_tokenizers, trainers

from minitransformer.tokenizers import bpe as bpe_module
from minitransformer.tokenizers.bpe import BPETokenizer, bytes_to_unicode, learn_bpe, pretokenize

EOT = "<|endoftext|>"
TOPICS = list(pydoc_data.topics.topics.values())  # the Python docs' help topics: technical English
TRAIN_TEXT = "".join(TOPICS[:40])                 # ~200 KB
HELD_OUT = "".join(TOPICS[60:])


def hf_trained(texts: list[str], vocab_size: int, special_tokens: list[str], min_frequency: int) -> HFTokenizer:
    """tokenizers' own byte-level BPE training, configured like ours."""
    hf = HFTokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=special_tokens,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    hf.train_from_iterator(texts, trainer=trainer)
    return hf


def hf_merges(hf: HFTokenizer) -> list[tuple[str, str]]:
    merges = json.loads(hf.to_str())["model"]["merges"]
    return [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in merges]


def hf_ids(hf: HFTokenizer, text: str) -> list[int]:
    return hf.encode(text, add_special_tokens=False).ids


@pytest.fixture(scope="module")
def trained() -> tuple[BPETokenizer, HFTokenizer]:
    """One mid-sized pair (ours, reference) shared by the property tests."""
    ours = BPETokenizer.train(TRAIN_TEXT, vocab_size=1200, special_tokens=[EOT, "<|pad|>"], min_frequency=2)
    return ours, hf_trained([TRAIN_TEXT], 1200, [EOT, "<|pad|>"], 2)


# ---- the byte table and the pre-tokenizer ---------------------------------------------------------

def test_byte_table_is_the_byte_level_alphabet_in_code_point_order():
    table = bytes_to_unicode()
    assert sorted(table) == list(range(256))
    assert set(table.values()) == set(pre_tokenizers.ByteLevel.alphabet())
    assert table[ord("a")] == "a" and table[ord(" ")] == "Ġ" and table[ord("\n")] == "Ċ"
    assert all(c.isprintable() and not c.isspace() for c in table.values())


def test_pretokenizer_matches_tokenizers_on_every_assigned_code_point():
    """Our stdlib-`re` spelling of GPT-2's regex puts every assigned code point (of Python's Unicode
    database) in the class tokenizers' ByteLevel pre-tokenizer puts it: letter, number, whitespace or
    other. All characters of one of our classes, written in a row, are one piece for both -- a
    character that tokenizers classes differently would cut the run. (Code points unassigned in
    Python's database are "other" for us; a newer Unicode table may call some of them letters.)"""
    by_class: dict[str, list[str]] = {"letter": [], "number": [], "space": [], "other": []}
    white_space = {chr(cp) for a, b in bpe_module.WHITE_SPACE for cp in range(a, b + 1)}
    for cp in range(0x110000):
        c = chr(cp)
        category = unicodedata.category(c)
        if category in ("Cn", "Cs"):
            continue
        if c in white_space:
            kind = "space"
        else:
            kind = {"L": "letter", "N": "number"}.get(category[0], "other")
        by_class[kind].append(c)
    hf = pre_tokenizers.ByteLevel(add_prefix_space=False)
    table = bytes_to_unicode()
    for kind, chars in by_class.items():
        text = "".join(chars)
        ours = ["".join(table[b] for b in piece.encode("utf-8")) for piece in pretokenize(text)]
        theirs = [piece for piece, _ in hf.pre_tokenize_str(text)]
        assert len(ours) == 1, f"our {kind} class is not one run"
        assert ours == theirs, f"{kind}: tokenizers cuts our run into {len(theirs)} pieces"


ASSIGNED_TEXT = st.text(st.characters(exclude_categories=("Cs", "Cn")), max_size=80)
# Text rich in what makes pre-tokenization and streaming hard: whitespace runs, contractions,
# special tokens and their fragments, digits, multi-byte characters.
PIECES = [" ", "  ", "\n", "\n\n", "\t", "\r\n", "a", "bc", "'", "s", "ll", "re", "1", "23", "!", "?.", "é",
          "한국", "中文", "😀", "\u3000", "\x00", EOT, "<|", "endoftext", "|>", "<|pad|>"]
TRICKY_TEXT = st.lists(st.sampled_from(PIECES), max_size=40).map("".join)


@given(ASSIGNED_TEXT)
def test_pretokenizer_matches_tokenizers_on_random_text(text):
    table = bytes_to_unicode()
    ours = ["".join(table[b] for b in piece.encode("utf-8")) for piece in pretokenize(text)]
    theirs = [piece for piece, _ in pre_tokenizers.ByteLevel(add_prefix_space=False).pre_tokenize_str(text)]
    assert ours == theirs


# ---- training: the same merges and vocabulary as tokenizers' BpeTrainer ------------------------------

@pytest.mark.parametrize("vocab_size,min_frequency,special_tokens", [
    (300, 0, []),
    (1000, 2, [EOT]),
    (2500, 2, [EOT, "<|pad|>"]),
    (800, 5, []),
])
def test_training_equals_tokenizers_bpe_trainer(vocab_size, min_frequency, special_tokens):
    ours = BPETokenizer.train(TRAIN_TEXT, vocab_size, special_tokens=special_tokens, min_frequency=min_frequency)
    ref = hf_trained([TRAIN_TEXT], vocab_size, special_tokens, min_frequency)
    assert ours.merges == hf_merges(ref)
    assert ours.vocab == ref.get_vocab()
    assert ours.vocab_size == vocab_size
    assert ours.encode(HELD_OUT) == hf_ids(ref, HELD_OUT)


def test_training_on_many_documents_equals_tokenizers():
    """An iterable is read once, each item a document of its own (as train_from_iterator does)."""
    docs = [line for topic in TOPICS[:30] for line in topic.splitlines(keepends=True)]
    ours = BPETokenizer.train(iter(docs), 700, special_tokens=[EOT], min_frequency=2)
    ref = hf_trained(docs, 700, [EOT], 2)
    assert ours.merges == hf_merges(ref)
    assert ours.vocab == ref.get_vocab()


def test_special_tokens_in_training_text_are_boundaries_not_merge_material():
    text = f"{EOT}".join(TOPICS[:20]) + EOT + EOT
    ours = BPETokenizer.train(text, 600, special_tokens=[EOT], min_frequency=2)
    # tokenizers trained on the text cut at the special token gives the same result
    ref = hf_trained(text.split(EOT), 600, [EOT], 2)
    assert ours.merges == hf_merges(ref)
    assert not any("endoftext" in a + b for a, b in ours.merges)
    assert ours.encode("x" + EOT + "y") == [ours.vocab["x"], ours.vocab[EOT], ours.vocab["y"]]


def test_hf_backend_trains_the_same_tokenizer():
    ours = BPETokenizer.train(TRAIN_TEXT, 900, special_tokens=[EOT], backend="python")
    fast = BPETokenizer.train(TRAIN_TEXT, 900, special_tokens=[EOT], backend="hf")
    assert fast.backend == "hf" and ours.backend == "python"
    assert (fast.merges, fast.vocab) == (ours.merges, ours.vocab)
    assert fast.encode(HELD_OUT) == ours.encode(HELD_OUT)


def test_tie_break_smallest_pair_ids():
    """Equal counts: the pair with the smaller (first id, second id) is merged first (ids follow
    byte order here: a < b < c < d), whatever order the words came in."""
    docs = ["dc", "cd", "ab"] * 3
    ours = BPETokenizer.train(docs, 256 + 3, special_tokens=[], min_frequency=0)
    assert ours.merges == [("a", "b"), ("c", "d"), ("d", "c")]
    assert ours.merges == hf_merges(hf_trained(docs, 256 + 3, [], 0))


def test_training_touches_only_words_with_the_merged_pair(monkeypatch):
    """Incremental counting: across all merges, words are visited far fewer times than a full recount
    (every word, every merge) would visit them."""
    calls = 0
    original = bpe_module._merge_in_word

    def counting(*args):
        nonlocal calls
        calls += 1
        return original(*args)

    monkeypatch.setattr(bpe_module, "_merge_in_word", counting)
    from collections import Counter
    word_counts = Counter(pretokenize(TRAIN_TEXT))
    _, merges = learn_bpe(word_counts, 1500, min_frequency=2)
    full_recount = len(word_counts) * len(merges)
    assert 0 < calls < full_recount / 50


# ---- bad input ---------------------------------------------------------------------------------------

def test_bad_training_input():
    with pytest.raises(TypeError, match="str"):
        BPETokenizer.train(b"bytes", 300)
    for backend in ("python", "hf"):
        with pytest.raises(TypeError, match="item 1"):
            BPETokenizer.train(["ok", 3], 300, backend=backend)
    with pytest.raises(TypeError, match="int"):
        BPETokenizer.train("text", 300.0)
    with pytest.raises(ValueError, match="below the base alphabet.*257"):
        BPETokenizer.train("text", 256, special_tokens=[EOT])
    with pytest.raises(ValueError, match="backend"):
        BPETokenizer.train("text", 300, backend="rust")
    with pytest.raises(ValueError, match="empty"):
        BPETokenizer.train("text", 300, special_tokens=[""])
    with pytest.raises(ValueError, match="twice"):
        BPETokenizer.train("text", 300, special_tokens=[EOT, EOT])
    with pytest.raises(TypeError, match="list"):
        BPETokenizer.train("text", 300, special_tokens=EOT)


def test_vocab_size_beyond_the_corpus_warns_and_stops():
    sizes = []
    for backend in ("python", "hf"):
        with pytest.warns(UserWarning, match="stopped at") as record:
            tok = BPETokenizer.train("abab abab abab cdcd", 5000, special_tokens=[], backend=backend)
        assert f"stopped at {tok.vocab_size} tokens" in str(record[0].message)
        assert tok.decode(tok.encode("abab")) == "abab"
        sizes.append(tok.vocab_size)
    assert 256 < sizes[0] == sizes[1] < 5000


def test_bad_encode_and_decode_input(trained):
    ours, _ = trained
    with pytest.raises(TypeError, match="str"):
        ours.encode(b"bytes")
    with pytest.raises(TypeError, match="str"):
        ours.encode(None)
    with pytest.raises(TypeError):
        list(ours.encode_iterable(["ok", b"bytes"]))
    with pytest.raises(ValueError, match="not in the vocabulary"):
        ours.decode([ours.vocab_size])
    with pytest.raises(ValueError, match="not in the vocabulary"):
        ours.id_to_token(-1)
    with pytest.raises(TypeError):
        ours.decode(["5"])
    assert ours.token_to_id("<|not-a-token|>") is None


def test_constructor_rejects_broken_vocabularies():
    vocab = {c: i for i, c in enumerate(bytes_to_unicode().values())}
    with pytest.raises(ValueError, match="byte characters"):
        BPETokenizer({k: v for k, v in vocab.items() if k != "a"}, [])
    with pytest.raises(ValueError, match="not in the vocabulary"):
        BPETokenizer(vocab, [("a", "b")])
    with pytest.raises(ValueError, match="special token"):
        BPETokenizer(vocab, [], special_tokens=[EOT])


# ---- encoding properties -----------------------------------------------------------------------------

@given(st.text(max_size=200))
def test_round_trip_any_text(trained, text):
    ours, _ = trained
    assert ours.decode(ours.encode(text)) == text


@pytest.mark.parametrize("text", ["", " ", "   \n\n\t  ", "\x00\x01\x1f\x7f", "😀👍🏽🇩🇪", "中文字符", "한국어 텍스트",
                                  "e\u0301", "\u200b\ufeff", " \r\n \r\n"])
def test_round_trip_edge_cases_and_same_ids_as_tokenizers(trained, text):
    ours, ref = trained
    assert ours.encode(text) == hf_ids(ref, text)
    assert ours.decode(ours.encode(text)) == text


@given(ASSIGNED_TEXT)
def test_same_ids_as_tokenizers_on_random_text(trained, text):
    ours, ref = trained
    assert ours.encode(text) == hf_ids(ref, text)


@given(TRICKY_TEXT)
def test_special_tokens_are_never_split_and_backends_agree(trained, text):
    ours, ref = trained
    ids = ours.encode(text)
    assert ids == hf_ids(ref, text)
    special_ids = [ours.vocab[EOT], ours.vocab["<|pad|>"]]
    assert sum(i in special_ids for i in ids) == text.count(EOT) + text.count("<|pad|>")
    assert ours.decode(ids) == text
    assert ours.decode(ids, skip_special_tokens=True) == text.replace(EOT, "").replace("<|pad|>", "")
    assert ours.encode(text) == ids  # deterministic (and the word cache changes nothing)


def test_overlapping_special_tokens_longest_wins():
    vocab = {c: i for i, c in enumerate(bytes_to_unicode().values())}
    double = EOT + EOT
    vocab.update({EOT: 256, double: 257})
    tok = BPETokenizer(vocab, [], special_tokens=[EOT, double])
    text = f"a{EOT}{EOT}{EOT}b{EOT}"
    assert tok.tokenize(text) == ["a", double, EOT, "b", EOT]
    hf = HFTokenizer.from_str(json.dumps(tok.to_hf_dict()))
    assert tok.encode(text) == hf_ids(hf, text)


@given(ids=st.lists(st.integers(0, 1199), max_size=30))
def test_decode_of_any_ids_equals_tokenizers(trained, ids):
    """Ids that cut a character in half decode to U+FFFD exactly where tokenizers puts it."""
    ours, ref = trained
    assert ours.decode(ids) == ref.decode(ids, skip_special_tokens=False)


# ---- streaming -----------------------------------------------------------------------------------------

@given(text=TRICKY_TEXT, cuts=st.lists(st.integers(0, 400), max_size=8), chunk_chars=st.integers(1, 12))
def test_encode_iterable_equals_encode_for_any_split(trained, text, cuts, chunk_chars):
    ours, _ = trained
    bounds = sorted({0, len(text), *(c % (len(text) + 1) for c in cuts)})
    parts = [text[a:b] for a, b in itertools.pairwise(bounds)]
    assert list(ours.encode_iterable(iter(parts), chunk_chars=chunk_chars)) == ours.encode(text)


def test_encode_iterable_carries_whitespace_across_lines(trained):
    """Per-line encoding is wrong for GPT-2's regex; the stream must match the whole text."""
    ours, _ = trained
    text = "def f():\n    return 1\n\n\n    \n  x = 'it''s'\n" * 50 + "中文" * 300 + "\n" + "end"
    lines = text.splitlines(keepends=True)
    per_line = [i for line in lines for i in ours.encode(line)]
    assert per_line != ours.encode(text)  # the trap is real
    for chunk_chars in (1, 7, 64, 1 << 16):
        assert list(ours.encode_iterable(lines, chunk_chars=chunk_chars)) == ours.encode(text)


def test_encode_iterable_hf_backend_and_prefix_space(trained):
    ours, _ = trained
    text = TOPICS[50][:3000] + EOT + "  tail"
    lines = text.splitlines(keepends=True)
    fast = BPETokenizer.from_hf_dict(ours.to_hf_dict())
    fast.backend = "hf"
    assert list(fast.encode_iterable(lines, chunk_chars=100)) == ours.encode(text)
    # add_prefix_space: only real segment starts get the space, not the chunks in between
    data = ours.to_hf_dict()
    data["pre_tokenizer"]["add_prefix_space"] = True
    spaced = BPETokenizer.from_hf_dict(data)
    ref = HFTokenizer.from_str(json.dumps(data))
    assert spaced.encode(text) == hf_ids(ref, text)
    for backend in ("python", "hf"):
        spaced.backend = backend
        assert list(spaced.encode_iterable(lines, chunk_chars=50)) == hf_ids(ref, text)


PREFIX_TEXT = st.lists(st.sampled_from(["'s", "'", "s", "end", "e", " ", "  ", "\n", "x", "中", EOT, EOT[:5]]),
                       max_size=40).map("".join)


@given(text=PREFIX_TEXT, cuts=st.lists(st.integers(0, 200), max_size=6), chunk_chars=st.integers(1, 8))
@example(text="'sendingtheehence", cuts=[5], chunk_chars=1)
@example(text="'s" + "end" * 200, cuts=[], chunk_chars=64)
def test_encode_iterable_with_prefix_space_equals_tokenizers_for_any_split(trained, text, cuts, chunk_chars):
    """With add_prefix_space the regex splits a segment's start differently (" 'send" is " '", "send";
    "'send" is "'s", "end"), so a safe cut must be found on the text as encoding will see it."""
    ours, _ = trained
    data = ours.to_hf_dict()
    data["pre_tokenizer"]["add_prefix_space"] = True
    spaced = BPETokenizer.from_hf_dict(data)
    ref = HFTokenizer.from_str(json.dumps(data))
    bounds = sorted({0, len(text), *(c % (len(text) + 1) for c in cuts)})
    parts = [text[a:b] for a, b in itertools.pairwise(bounds)]
    assert list(spaced.encode_iterable(iter(parts), chunk_chars=chunk_chars)) == hf_ids(ref, text)


# ---- files ---------------------------------------------------------------------------------------------

@given(text=ASSIGNED_TEXT)
def test_save_load_same_ids_in_ours_and_tokenizers(trained, tmp_path_factory, text):
    ours, _ = trained
    path = tmp_path_factory.mktemp("bpe") / "tokenizer.json"
    ours.save(path)
    again = BPETokenizer.load(path)
    assert (again.vocab, again.merges, again.special_tokens) == (ours.vocab, ours.merges, ours.special_tokens)
    assert again.encode(text) == ours.encode(text) == hf_ids(HFTokenizer.from_file(str(path)), text)


def test_file_written_by_tokenizers_loads_in_ours(tmp_path):
    ref = hf_trained([TRAIN_TEXT], 700, [EOT], 2)
    path = tmp_path / "hf.json"
    ref.save(str(path))
    ours = BPETokenizer.load(path)
    assert ours.vocab == ref.get_vocab()
    assert ours.encode(HELD_OUT) == hf_ids(ref, HELD_OUT)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ours.decode(ours.encode(HELD_OUT)) == HELD_OUT


@pytest.mark.parametrize("special", ["Ġ", "Ġthe"])
def test_special_tokens_that_text_can_produce_are_refused(special):
    """'Ġ' or a merge like 'Ġthe' as a special token shared its id with ordinary text: decode(encode("a  b"))
    gave 'aĠĠb', and skip_special_tokens dropped real spaces."""
    with pytest.raises(ValueError, match="also an ordinary token"):
        BPETokenizer.train("the cat the dog " * 20, 270, special_tokens=[special])


def test_vocab_ids_with_gaps_are_refused():
    tok = BPETokenizer.train("the cat the dog " * 20, 262)
    vocab = tok.vocab
    vocab["<|far|>"] = 99_999  # vocab_size would have been 100,000
    with pytest.raises(ValueError, match="without gaps"):
        BPETokenizer(vocab, tok.merges, ["<|far|>"])


@pytest.mark.parametrize("texts", [[], "", "   \n", "<|endoftext|>"])
def test_no_text_to_train_on_is_an_error(texts):
    for backend in ("python", "hf"):
        with pytest.raises(ValueError, match="no text to train on"):
            BPETokenizer.train(texts, 300, special_tokens=["<|endoftext|>"], backend=backend)


def test_added_tokens_decode_as_tokenizers_decodes_them():
    """Every token goes through the byte-level decoder, special ones too: "ükeep" is written in the
    byte alphabet, so it stands for the bytes FC 'keep' (invalid UTF-8 -> U+FFFD), exactly as in
    tokenizers; "<|中|>" is not, so it stays as written."""
    text = "the quick brown fox jumps over the lazy dog. " * 20
    tok = BPETokenizer.train(text, vocab_size=280, special_tokens=[EOT, "ükeep", "<|中|>", "[a b]"])
    data = tok.to_hf_dict()
    data["added_tokens"][2]["special"] = False
    ours, ref = BPETokenizer.from_hf_dict(data), HFTokenizer.from_str(json.dumps(data))
    ids = ours.encode(f"a ükeep b <|中|> c [a b]{EOT}")
    for skip in (False, True):
        assert ours.decode(ids, skip_special_tokens=skip) == ref.decode(ids, skip_special_tokens=skip)
    assert "\ufffdkeep" in ours.decode(ids)
