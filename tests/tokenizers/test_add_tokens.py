"""Adding tokens to a trained tokenizer (``Tokenizer.add_tokens``) against the Hugging Face ``tokenizers`` reference.

Each of the four kinds is trained here on a small corpus. The reference is ``tokenizers`` built from
our own tokenizer.json (``to_hf_dict``) and given the same ``add_tokens``/``add_special_tokens`` calls,
in the same order: new words and markers, the kind's own special tokens, entries of its model's
vocabulary, a token listed twice, a token named again with the other kind of call. Both must then
agree on the vocabulary size, the ids of the tokens, the ids of any text containing them (in
several spellings, next to each other and to ordinary text), the decoded text with and without
``skip_special_tokens`` and the ``added_tokens`` of the saved file, flags included. Streaming, both
backends and a save/load round trip must see the added tokens too, and a BERT or T5-style file that
``tokenizers`` wrote after ``add_tokens`` (new ids after the model's vocabulary) must load.

The reference is compared as it saves and reloads itself. In memory, tokenizers 0.23.3 still decodes
a token added after the model's vocabulary whose flags a later call changed with its old flags (an
added "x" made special by ``add_special_tokens`` is kept by ``skip_special_tokens``), while it encodes,
saves and reloads it with the new ones.
"""
from __future__ import annotations

import functools
import json
import tempfile
import warnings
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, models, normalizers, pre_tokenizers, processors, trainers

from minitransformer.tokenizers import (
    BERT_SPECIAL_TOKENS,
    BPETokenizer,
    CharTokenizer,
    Tokenizer,
    UnigramTokenizer,
    WordPieceTokenizer,
    load_tokenizer,
)
from minitransformer.tokenizers.unigram import SPACE

CORPUS = [
    "the quick brown fox jumps over the lazy dog.",
    "Hello World! hello world, said the fox to the other fox.",
    "new words are added to a tokenizer when a model is fine-tuned",
    "Café, naïve and über are words with accents",
] * 3

CLASSES = {"char": CharTokenizer, "bpe": BPETokenizer, "wordpiece": WordPieceTokenizer, "unigram": UnigramTokenizer}
KIND_BACKENDS = [("char", "python"), ("bpe", "python"), ("bpe", "hf"), ("wordpiece", "python"),
                 ("wordpiece", "hf"), ("unigram", "python"), ("unigram", "hf")]

# Tokens a test may add, to every kind: new words (one with a space, ones with characters the
# corpus lacks or that a normalizer changes) and markers.
NEW = ["NewWord", "<sql>", "[X]", "Zed!", "a b", "naïve", "Ünï", "ab"]
# ...and to each kind, its own special tokens, and entries of its model's vocabulary that are not
# added tokens (characters, merges, word pieces, Unigram pieces; "Ġthe" and "▁the" are what GPT-2 and
# T5 make of " the").
OWN_SPECIALS = {"char": ["<pad>", "<unk>"], "bpe": ["<|endoftext|>"], "wordpiece": ["[CLS]", "[MASK]"],
                "unigram": ["</s>", "<pad>"]}
MODEL_ENTRIES = {"char": ["a", "x"], "bpe": ["the", "Ġthe", "he"], "wordpiece": ["the", "##s"],
                 "unigram": [f"{SPACE}the", "e"]}
# Ordinary text around them; "ＮｅｗＷｏｒｄ" is "NewWord" once NFKC (Unigram) has normalized it.
FILLERS = [" ", "  ", "\n", "x", "!", "the", " fox", "é", "ＮｅｗＷｏｒｄ"]


@functools.cache
def _trained_json(kind: str) -> str:
    """The kind trained on ``CORPUS``, as tokenizer.json text (each test builds its own copy from it)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the small corpus supports fewer tokens than asked: fine here
        tok = {
            "char": lambda: CharTokenizer.train(CORPUS, special_tokens=["<pad>"], unk_token="<unk>"),
            "bpe": lambda: BPETokenizer.train(CORPUS, vocab_size=300),
            "wordpiece": lambda: WordPieceTokenizer.train(CORPUS, vocab_size=120),  # BERT-uncased
            "unigram": lambda: UnigramTokenizer.train(CORPUS, vocab_size=90, special_tokens=["<pad>", "</s>", "<unk>"]),
        }[kind]()
    return json.dumps(tok.to_hf_dict())


def _ours(kind: str, backend: str = "python") -> Tokenizer:
    """A fresh copy of the trained tokenizer of ``kind``, encoding with ``backend``."""
    data = json.loads(_trained_json(kind))
    if kind in ("wordpiece", "unigram"):
        return CLASSES[kind].from_hf_dict(data, backend=backend)
    tok = CLASSES[kind].from_hf_dict(data)
    if backend == "hf":
        tok.backend = "hf"
    return tok


def _reference(kind: str) -> HFTokenizer:
    return HFTokenizer.from_str(_trained_json(kind))


def _pool(kind: str) -> list[str]:
    return NEW + OWN_SPECIALS[kind] + MODEL_ENTRIES[kind]


def _calls(kind: str):
    """A few add calls: (tokens, special), tokens drawn from the kind's pool, repeats allowed."""
    tokens = st.lists(st.sampled_from(_pool(kind)), min_size=1, max_size=4)
    return st.lists(st.tuples(tokens, st.booleans()), min_size=1, max_size=3)


def _texts(kind: str):
    """Texts made of the pool's tokens in several spellings (as added, lower, upper, swapped case)
    and ordinary text, in any order."""
    spellings = sorted({s for t in _pool(kind) for s in (t, t.lower(), t.upper(), t.swapcase())})
    return st.lists(st.sampled_from(spellings + FILLERS), max_size=12).map("".join)


def _add_to_both(ours: Tokenizer, ref: HFTokenizer, calls) -> HFTokenizer:
    """Make the same calls on ours and on the reference; the reference as it saves and reloads itself.

    Two tokens marked normalized with one normalized spelling ("NewWord" and "NEWWORD" for
    BERT-uncased) are refused by ours (tokenizers would pick one at random): such examples are skipped.
    """
    for tokens, special in calls:
        before, ref_before = ours.vocab_size, ref.get_vocab_size()
        try:
            added = ours.add_tokens(tokens, special=special)
        except ValueError as e:
            assert "normalize to" in str(e)
            assume(False)
        if special:
            ref.add_special_tokens(tokens)
        else:
            ref.add_tokens(tokens)
        # new ids only (tokenizers' own count also has the tokens it only marked as added again)
        assert added == ours.vocab_size - before == ref.get_vocab_size() - ref_before
    return HFTokenizer.from_str(ref.to_str())


def _check_same_vocabulary(ours: Tokenizer, ref: HFTokenizer, kind: str) -> None:
    assert ours.vocab_size == ref.get_vocab_size()
    for token in _pool(kind):
        idx = ours.token_to_id(token)
        assert idx == ref.token_to_id(token), token
        if idx is not None:
            assert ours.id_to_token(idx) == token
    added = json.loads(ref.to_str())["added_tokens"]
    assert ours.to_hf_dict()["added_tokens"] == added  # ids, contents and all five flags, in id order
    assert sorted(ours.special_token_ids()) == sorted(a["id"] for a in added if a["special"])


def _reference_decodes_normalized_spelling() -> bool:
    """Recent tokenizers (0.23.3) decode an added token marked normalized in its normalized spelling,
    as ours does ("NewWord" as "newword" by BERT-uncased); older versions wrote it as added."""
    hf = HFTokenizer(models.WordLevel({"Up": 0, "<unk>": 1}, unk_token="<unk>"))
    hf.normalizer = normalizers.Lowercase()
    hf.add_tokens(["Up"])
    return hf.decode([0]) == "up"


SPELLED_AS_NORMALIZED = _reference_decodes_normalized_spelling()


def _check_same_text(ours: Tokenizer, ref: HFTokenizer, text: str) -> None:
    ids = ref.encode(text, add_special_tokens=False).ids
    assert ours.encode(text) == ids, (text, ours.tokenize(text), ref.encode(text, add_special_tokens=False).tokens)
    for skip in (False, True) if SPELLED_AS_NORMALIZED else ():
        assert ours.decode(ids, skip_special_tokens=skip) == ref.decode(ids, skip_special_tokens=skip), (text, skip)


# ---- the same vocabulary, ids and decoding as tokenizers -------------------------------------------
@pytest.mark.parametrize("kind", list(CLASSES))
def test_tokens_in_the_vocabulary_keep_their_ids_and_new_ones_follow_it(kind):
    """For every kind: the kind's special tokens and entries of its model's vocabulary (the pools of
    the properties below hold them) get no new id, each new token the next one, in the order given."""
    ours = _ours(kind)
    size = ours.vocab_size
    assert all(t in ours.special_tokens for t in OWN_SPECIALS[kind])
    known = {t: ours.token_to_id(t) for t in OWN_SPECIALS[kind] + MODEL_ENTRIES[kind]}
    assert all(i is not None for i in known.values()) and not set(MODEL_ENTRIES[kind]) & set(ours.special_tokens)
    assert ours.add_tokens(list(known)) == 0 and ours.vocab_size == size
    assert {t: ours.token_to_id(t) for t in known} == known and set(known) <= set(ours.special_tokens)
    assert all(ours.token_to_id(t) is None for t in NEW)
    assert ours.add_tokens(NEW + NEW[:2]) == len(NEW) and ours.vocab_size == size + len(NEW)
    assert [ours.token_to_id(t) for t in NEW] == list(range(size, size + len(NEW)))
    assert [ours.id_to_token(i) for i in range(size, size + len(NEW))] == NEW


@pytest.mark.parametrize("kind,backend", KIND_BACKENDS)
@settings(max_examples=20)
@given(data=st.data())
def test_added_tokens_give_the_ids_and_text_of_tokenizers(kind, backend, data):
    ours, ref = _ours(kind, backend), _reference(kind)
    text = data.draw(_texts(kind), label="text")
    ours.encode(text)  # fills the caches (added-token regexes, words, the tokenizers twin) before adding
    ref = _add_to_both(ours, ref, data.draw(_calls(kind), label="calls"))
    _check_same_vocabulary(ours, ref, kind)
    _check_same_text(ours, ref, text)


@pytest.mark.parametrize("kind", list(CLASSES))
@settings(max_examples=20)
@given(data=st.data())
def test_streaming_equals_encoding_the_whole_text(kind, data):
    """``encode_iterable`` with the text cut anywhere, also inside an added token."""
    ours = _ours(kind)
    _add_to_both(ours, _reference(kind), data.draw(_calls(kind), label="calls"))
    text = data.draw(_texts(kind), label="text")
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=5), label="cuts"))
    chunks = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    options = {"chunk_chars": data.draw(st.integers(1, 8))} if kind == "bpe" else {}
    assert list(ours.encode_iterable(chunks, **options)) == ours.encode(text)


@pytest.mark.parametrize("kind", list(CLASSES))
@settings(max_examples=15)
@given(data=st.data())
def test_save_and_load_keep_the_added_tokens(kind, data):
    """Our file has them where tokenizers' has them (model.vocab unchanged, added_tokens with the new
    ids and flags); we read it back the same, so does tokenizers, and so does the "hf" backend."""
    ours = _ours(kind)
    ref = _add_to_both(ours, _reference(kind), data.draw(_calls(kind), label="calls"))
    text = data.draw(_texts(kind), label="text")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "tokenizer.json"
        ours.save(path)
        written = json.loads(path.read_text(encoding="utf-8"))
        again, again_by_class = load_tokenizer(path), CLASSES[kind].load(path)
        theirs = HFTokenizer.from_file(str(path))
    model, ref_model = written["model"], json.loads(ref.to_str())["model"]
    if kind == "unigram":
        assert [p for p, _ in model["vocab"]] == [p for p, _ in ref_model["vocab"]]
    else:
        assert model["vocab"] == ref_model["vocab"]
    assert written["added_tokens"] == json.loads(ref.to_str())["added_tokens"]
    for loaded in (again, again_by_class):
        assert type(loaded) is type(ours)
        assert loaded.to_hf_dict() == ours.to_hf_dict()
        assert (set(loaded.special_tokens), loaded.normalized_tokens, loaded.non_special_tokens) == (
            set(ours.special_tokens), ours.normalized_tokens, ours.non_special_tokens)  # (read back in id order)
        _check_same_vocabulary(loaded, ref, kind)
        _check_same_text(loaded, ref, text)
    assert theirs.encode(text, add_special_tokens=False).ids == ours.encode(text)
    if kind != "char":
        fast = CLASSES[kind].from_hf_dict(written)
        fast.backend = "hf"
        assert fast.encode(text) == ours.encode(text)


# ---- examples ---------------------------------------------------------------------------------------
def test_new_ids_follow_the_vocabulary_in_the_order_given():
    ours = _ours("wordpiece")
    size = ours.vocab_size
    assert ours.add_tokens(["NewWord", "<sql>", "NewWord", "covid"]) == 3  # listed twice: added once
    assert [ours.token_to_id(t) for t in ("NewWord", "<sql>", "covid")] == [size, size + 1, size + 2]
    assert ours.vocab_size == size + 3 and ours.id_to_token(size + 2) == "covid"
    assert ours.add_tokens(["covid", "the", "[CLS]"], special=True) == 0  # all in the vocabulary already
    assert ours.token_to_id("the") < size and ours.vocab_size == size + 3
    assert ours.add_special_tokens(["</sql>"]) == 1 and ours.token_to_id("</sql>") == size + 3
    with pytest.raises(ValueError, match=f"id {size + 4} is out of range"):
        ours.id_to_token(size + 4)


def test_a_new_word_is_found_whatever_its_case_and_a_marker_only_as_written():
    """With BERT-uncased, an added word is found in the lowercased text (and decoded lowercased); an
    added special token only in the text as typed, and left out by skip_special_tokens."""
    ours, ref = _ours("wordpiece"), _reference("wordpiece")
    ours.add_tokens(["NewWord"])
    ours.add_special_tokens(["<SQL>"])
    ref.add_tokens(["NewWord"])
    ref.add_special_tokens(["<SQL>"])
    text = "NEWWORD newword NewWord <SQL> <sql>"
    assert ours.tokenize(text)[:4] == ["NewWord", "NewWord", "NewWord", "<SQL>"]
    assert "<SQL>" not in ours.tokenize(text)[4:]  # "<sql>" is ordinary text
    ids = ours.encode(text)[:4]
    assert ours.decode(ids) == "newword newword newword <SQL>"
    assert ours.decode(ids, skip_special_tokens=True) == "newword newword newword"
    assert ours.token_to_id("<SQL>") in ours.special_token_ids()
    assert ours.token_to_id("NewWord") not in ours.special_token_ids()  # MLM may mask it
    _check_same_text(ours, HFTokenizer.from_str(ref.to_str()), text)


def test_naming_an_added_token_again_gives_it_the_new_call_s_flags():
    """As in tokenizers: add_special_tokens makes an added word special (found only as written), and
    add_tokens makes a special token an ordinary added one (found in the normalized text, kept when
    decoding skips special tokens)."""
    ours, ref = _ours("wordpiece"), _reference("wordpiece")
    for tokens, special in [(["NewWord"], False), (["NewWord", "[CLS]"], True), (["[MASK]"], False)]:
        assert ours.add_tokens(tokens, special=special) == (1 if tokens == ["NewWord"] else 0)
        (ref.add_special_tokens if special else ref.add_tokens)(tokens)
    ref = HFTokenizer.from_str(ref.to_str())
    assert ours.token_to_id("NewWord") in ours.special_token_ids()
    assert ours.token_to_id("[MASK]") not in ours.special_token_ids()
    assert ours.normalized_tokens == {"[MASK]"}
    assert "NewWord" not in ours.tokenize("newword") and ours.tokenize("NewWord") == ["NewWord"]
    assert ours.tokenize("[mask] [MASK]") == ["[MASK]", "[MASK]"]
    _check_same_vocabulary(ours, ref, "wordpiece")
    _check_same_text(ours, ref, "newword NewWord [mask] [MASK] [CLS]")


def test_naming_a_token_again_drops_lstrip_rstrip_and_single_word_as_tokenizers_does():
    """RoBERTa's <mask> takes the space before it (lstrip), an "<r>" the space after it (rstrip), a "ab"
    is found only as a whole word (single_word); naming them again in add_special_tokens gives them
    the plain flags of that call, in tokenizers too."""
    ours = _ours("bpe")
    ours.add_special_tokens(["<mask>", "<r>", "ab"])
    ours.lstrip_tokens, ours.rstrip_tokens, ours.single_word_tokens = {"<mask>"}, {"<r>"}, {"ab"}
    ref = HFTokenizer.from_str(json.dumps(ours.to_hf_dict()))
    text = "Hello <mask>! <r> x cab"

    def around(tokens: list[str]) -> tuple[str, str, bool]:
        """The token before <mask>, the token after <r>, and whether "ab" was found in "cab"."""
        return tokens[tokens.index("<mask>") - 1], tokens[tokens.index("<r>") + 1], tokens[-1] == "ab"

    before_mask, after_r, found_ab = around(ours.tokenize(text))
    assert before_mask != "Ġ" and (after_r, found_ab) == ("x", False)  # <mask> and <r> took the spaces
    assert ours.add_special_tokens(["<mask>", "<r>", "ab"]) == 0
    ref.add_special_tokens(["<mask>", "<r>", "ab"])
    assert ours.lstrip_tokens == ours.rstrip_tokens == ours.single_word_tokens == set()
    assert around(ours.tokenize(text)) == ("Ġ", "Ġ", True)
    _check_same_text(ours, HFTokenizer.from_str(ref.to_str()), text + "  <mask> <r>  ab")


def test_an_entry_of_the_model_becomes_an_added_token_with_its_id():
    """"the" of the WordPiece vocabulary, added: no new id, but found whole from now on, also inside a word."""
    ours, ref = _ours("wordpiece"), _reference("wordpiece")
    the, size = ours.token_to_id("the"), ours.vocab_size
    assert ours.tokenize("bathe")[-1] != "the"  # "the" is no "##the": not at the end of a word
    assert ours.add_tokens(["the"]) == 0 and ref.add_tokens(["the"]) == 1  # tokenizers counts it
    assert (ours.token_to_id("the"), ours.vocab_size) == (the, size)
    assert ours.tokenize("bathe")[-1] == "the" and "the" in ours.special_tokens
    _check_same_text(ours, HFTokenizer.from_str(ref.to_str()), "bathe THE other")


@pytest.mark.parametrize("kind,text", [("wordpiece", "AB"), ("unigram", "ａｂ")])
def test_tokens_after_the_model_are_never_pieces_of_a_word(kind, text):
    """A special "ab" (found only as written) is not in the model's vocabulary: "AB" (lowercased by
    BERT) and "ａｂ" (made "ab" by NFKC) are split by the model, as tokenizers splits them."""
    ours, ref = _ours(kind), _reference(kind)
    assert ours.token_to_id("ab") is None
    ours.add_special_tokens(["ab"])
    ref.add_special_tokens(["ab"])
    assert ours.token_to_id("ab") not in ours.encode(text)
    _check_same_text(ours, HFTokenizer.from_str(ref.to_str()), text + " ab")


@pytest.mark.parametrize("kind,backend", KIND_BACKENDS)
def test_every_way_of_encoding_sees_tokens_added_after_it_was_used(kind, backend):
    """Caches built before adding (regexes, words, the tokenizers twin of backend="hf") are not stale."""
    ours = _ours(kind, backend)
    text = "the NewWord <sql> fox"
    before = ours.encode(text)
    assert list(ours.encode_iterable([text[:7], text[7:]])) == before
    ours.decode(before)  # (BPE keeps the bytes of each id once decoding has needed them)
    ours.add_tokens(["NewWord"])
    ours.add_special_tokens(["<sql>"])
    new_word, sql = ours.token_to_id("NewWord"), ours.token_to_id("<sql>")
    ids = ours.encode(text)
    assert new_word in ids and sql in ids and ids != before
    assert list(ours.encode_iterable([text[:7], text[7:]])) == ids
    assert ours.encode_batch([text, "x"])["input_ids"][0].tolist() == ids
    assert ours.tokenize(text).count("<sql>") == 1
    assert ours.decode(ids, skip_special_tokens=True) == ours.decode([i for i in ids if i != sql])


# ---- bad input ------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", list(CLASSES))
@pytest.mark.parametrize("tokens,special,error,message", [
    (["<ok>", 3], False, TypeError, r"must be str, got int at index 1"),
    (["<ok>", None], True, TypeError, r"must be str, got NoneType"),
    (["<ok>", b"<b>"], False, TypeError, r"must be str, got bytes"),
    ("<ok>", False, TypeError, r"not a single str.*wrap it in a list"),
    (5, False, TypeError, r"expects a list of str, got int"),
    (["<ok>", ""], False, ValueError, r"non-empty strings, got the empty string at index 1"),
    (["<ok>"], "yes", TypeError, r"special must be True or False"),
])
def test_bad_tokens_are_refused_and_change_nothing(kind, tokens, special, error, message):
    ours = _ours(kind)
    before = ours.to_hf_dict()
    with pytest.raises(error, match=message):
        ours.add_tokens(tokens, special=special)
    assert ours.to_hf_dict() == before and ours.token_to_id("<ok>") is None


def test_two_added_words_with_one_normalized_spelling_are_refused():
    """"NewWord" and "NEWWORD" are both "newword" for BERT-uncased: tokenizers would pick either at random."""
    ours = _ours("wordpiece")
    ours.add_tokens(["NewWord"])
    before = ours.to_hf_dict()
    with pytest.raises(ValueError, match="both normalize to 'newword'"):
        ours.add_tokens(["other", "NEWWORD"])
    assert ours.to_hf_dict() == before
    assert ours.add_special_tokens(["NEWWORD"]) == 1  # special: found only as written, no clash


# ---- files that tokenizers wrote after add_tokens ----------------------------------------------------
def _bert_from_tokenizers() -> HFTokenizer:
    """A BERT-uncased tokenizer trained by tokenizers itself, with BERT's [CLS] A [SEP] framing."""
    hf = HFTokenizer(models.WordPiece(unk_token="[UNK]"))
    hf.normalizer = normalizers.BertNormalizer(lowercase=True)
    hf.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    hf.decoder = decoders.WordPiece()
    hf.train_from_iterator(CORPUS, trainers.WordPieceTrainer(vocab_size=150, special_tokens=BERT_SPECIAL_TOKENS,
                                                             show_progress=False))
    cls_id, sep_id = hf.token_to_id("[CLS]"), hf.token_to_id("[SEP]")
    hf.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)])
    return hf


def _t5_from_tokenizers() -> HFTokenizer:
    """A T5-style Unigram tokenizer (NFKC, Metaspace) trained by tokenizers itself."""
    hf = HFTokenizer(models.Unigram())
    hf.normalizer = normalizers.NFKC()
    hf.pre_tokenizer = pre_tokenizers.Metaspace(replacement=SPACE, prepend_scheme="first", split=True)
    hf.decoder = decoders.Metaspace(replacement=SPACE, prepend_scheme="first", split=True)
    hf.train_from_iterator(CORPUS, trainers.UnigramTrainer(vocab_size=80, special_tokens=["<pad>", "</s>", "<unk>"],
                                                           unk_token="<unk>", show_progress=False))
    return hf


@pytest.mark.parametrize("build,cls", [(_bert_from_tokenizers, WordPieceTokenizer),
                                       (_t5_from_tokenizers, UnigramTokenizer)])
def test_a_file_tokenizers_wrote_after_add_tokens_loads(build, cls, tmp_path):
    """The ids tokenizers gave the new tokens (after model.vocab) are theirs here too, and stay so
    through our own save, and further additions on both sides."""
    hf = build()
    size = hf.get_vocab_size()
    hf.add_tokens(["NewWord", "covid19", "the"])
    hf.add_special_tokens(["<sql>", "</sql>"])
    path = tmp_path / "tokenizer.json"
    hf.save(str(path))
    assert json.loads(path.read_text(encoding="utf-8"))["added_tokens"][-1]["id"] == size + 3
    ours = load_tokenizer(path)
    assert isinstance(ours, cls) and ours.vocab_size == size + 4
    assert [ours.token_to_id(t) for t in ("NewWord", "covid19", "<sql>", "</sql>")] == list(range(size, size + 4))
    texts = ["SELECT the NEWWORD from <sql>x</sql> covid19", "Hello <sql> naïve newword!", "bathe thE"]
    for text in texts:
        _check_same_text(ours, hf, text)
    ours.save(tmp_path / "ours.json")
    assert json.loads((tmp_path / "ours.json").read_text(encoding="utf-8"))["added_tokens"] == json.loads(
        hf.to_str())["added_tokens"]
    again = HFTokenizer.from_file(str(tmp_path / "ours.json"))
    assert [again.encode(t, add_special_tokens=False).ids for t in texts] == [ours.encode(t) for t in texts]
    assert ours.add_tokens(["later", "NewWord"]) == 1
    hf.add_tokens(["later", "NewWord"])
    assert ours.token_to_id("later") == hf.token_to_id("later") == size + 4
    _check_same_text(ours, hf, "later LATER NewWord <sql>")
    fast = cls.from_hf_dict(json.loads(hf.to_str()), backend="hf")
    assert [fast.encode(t) for t in texts] == [ours.encode(t) for t in texts]


@pytest.mark.parametrize("kind", list(CLASSES))
def test_a_file_tokenizers_wrote_after_add_tokens_loads_for_every_kind(kind, tmp_path):
    """Our tokenizer.json, given new tokens by tokenizers itself, and read back: the new ids are the
    ones tokenizers gave, and our own save writes them where tokenizers writes them (not in model.vocab)."""
    hf = _reference(kind)
    hf.add_tokens(["NewWord", "a b", "the"])
    hf.add_special_tokens(["<sql>", "[X]"])
    path = tmp_path / "tokenizer.json"
    hf.save(str(path))
    ours = load_tokenizer(path)
    assert ours.vocab_size == hf.get_vocab_size()
    _check_same_vocabulary(ours, hf, kind)
    for text in ["NewWord <sql>the fox a b [X]!", "newword NEWWORD <SQL> bathe"]:
        _check_same_text(ours, hf, text)
    model, ref_model = ours.to_hf_dict()["model"], json.loads(hf.to_str())["model"]
    if kind == "unigram":
        assert [p for p, _ in model["vocab"]] == [p for p, _ in ref_model["vocab"]]
    else:
        assert model["vocab"] == ref_model["vocab"]


# ---- files with added-token ids that mean something else ---------------------------------------------
def _file_with(kind: str, edit) -> dict:
    """The kind's tokenizer.json with two added tokens after its vocabulary, "<a>" and "<b>" (written as
    tokenizers writes them), and ``edit(added_tokens, model_size)`` applied."""
    data = json.loads(_trained_json(kind))
    size = HFTokenizer.from_str(_trained_json(kind)).get_vocab_size()
    for k, content in enumerate(["<a>", "<b>"]):
        data["added_tokens"].append({"id": size + k, "content": content, "single_word": False, "lstrip": False,
                                     "rstrip": False, "normalized": False, "special": True})
    edit(data["added_tokens"], size)
    return data


def _set_ids(a: int, b: int):
    def edit(added: list[dict], size: int) -> None:
        added[-2]["id"], added[-1]["id"] = size + a, size + b
    return edit


def _clash(added: list[dict], size: int) -> None:
    added[-2]["id"] = 1  # an id the model gives another token


def _twice(added: list[dict], size: int) -> None:
    added.append(dict(added[-1], id=size + 2))


def _moved_model_token(added: list[dict], size: int) -> None:
    added[0]["id"] = size + 5  # an added token of the model's vocabulary, with another id


@pytest.mark.parametrize("kind", list(CLASSES))
@pytest.mark.parametrize("edit,message", [
    (_set_ids(1, 2), r"added token '<a>' has id {size_1}; .*must have the next id .*here {size}"),  # a gap
    (_set_ids(1, 0), r"added token '<a>' has id {size_1}; .*here {size}"),  # out of order
    (_clash, r"added token '<a>' has id 1 \(the model's vocabulary gives id 1 to '.+'\)"),
    (_twice, r"added token '<b>' is listed twice"),
    (_moved_model_token, r"has id {size_5}, but the model's vocabulary gives it id \d+"),
])
def test_added_token_ids_other_than_the_next_ones_are_refused(kind, edit, message, tmp_path):
    """tokenizers would give such tokens the next ids anyway, not the ids the file says: refused,
    naming the token and the id."""
    size = HFTokenizer.from_str(_trained_json(kind)).get_vocab_size()
    unedited = CLASSES[kind].from_hf_dict(_file_with(kind, lambda added, size: None))
    assert [unedited.token_to_id("<a>"), unedited.token_to_id("<b>")] == [size, size + 1]
    path = tmp_path / "t.json"
    path.write_text(json.dumps(_file_with(kind, edit)), encoding="utf-8")
    expected = message.format(size=size, size_1=size + 1, size_5=size + 5)
    for read in (load_tokenizer, CLASSES[kind].load):
        with pytest.raises(ValueError, match=expected):
            read(path)
