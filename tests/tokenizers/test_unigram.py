"""Unigram (SentencePiece-style, T5) against the Hugging Face ``tokenizers`` reference.

Expected ids come from ``tokenizers``' Unigram model given the same pieces and scores; training
quality is compared with ``tokenizers``' UnigramTrainer on the same text.
"""
from __future__ import annotations

import json
import random
import unicodedata
import warnings

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, models, normalizers, pre_tokenizers, trainers

from minitransformer.data import load_corpus
from minitransformer.tokenizers.base import T5_SPECIAL_TOKENS
from minitransformer.tokenizers.unigram import BYTE_PIECES, SPACE, UnigramTokenizer, metaspace_pre_tokenize

SPECIALS = ["<pad>", "</s>", "<unk>", "<extra_id_0>", "<extra_id_1>"]
VOCAB_SIZE = 300


@pytest.fixture(scope="module")
def corpus() -> tuple[str, list[str]]:
    text = load_corpus("shakespeare")
    held_out = text[30_000:42_000]
    return text[:30_000], [line for line in held_out.split("\n") if line.strip()]


def _generated_lines(n: int, seed: int = 0) -> list[str]:
    """Text with characters the training corpus never had (accents, CJK, emoji, controls) and specials."""
    rng = random.Random(seed)
    pool = ["the", "king", "Lord", "thou", "art", "é", "naïve", "ﬁne", "中文", "한국어", "🤩", "👍🏽", "\x00", "\t",
            "x", "<0x41>", "  ", "3.14", "“quoted”", "<pad>", "</s>", "<extra_id_0>", "\u2581", "\u00a0", "Ⅻ"]
    return ["".join(rng.choice(pool) + rng.choice([" ", "", ",", "\n"]) for _ in range(rng.randint(1, 12)))
            for _ in range(n)]


def _reference_with(pieces, unk_id, byte_fallback=False, use_nfkc=True, prepend_scheme="first", specials=()):
    """A ``tokenizers`` Unigram tokenizer with exactly the given pieces and our pipeline around it."""
    ref = HFTokenizer(models.Unigram([tuple(p) for p in pieces], unk_id, byte_fallback))
    if use_nfkc:
        ref.normalizer = normalizers.NFKC()
    ref.pre_tokenizer = pre_tokenizers.Metaspace(replacement=SPACE, prepend_scheme=prepend_scheme, split=True)
    ref.add_special_tokens(list(specials))
    return ref


@pytest.fixture(scope="module")
def hf_trained(corpus) -> HFTokenizer:
    """The reference: tokenizers' own UnigramTrainer on the same text (NFKC, Metaspace)."""
    ref = HFTokenizer(models.Unigram())
    ref.normalizer = normalizers.NFKC()
    ref.pre_tokenizer = pre_tokenizers.Metaspace(replacement=SPACE, prepend_scheme="first", split=True)
    ref.decoder = decoders.Metaspace(replacement=SPACE, prepend_scheme="first", split=True)
    ref.train_from_iterator([corpus[0]], trainers.UnigramTrainer(vocab_size=VOCAB_SIZE, special_tokens=SPECIALS,
                                                                 unk_token="<unk>", show_progress=False))
    return ref


@pytest.fixture(scope="module")
def ours(corpus) -> UnigramTokenizer:
    return UnigramTokenizer.train(corpus[0], VOCAB_SIZE, special_tokens=SPECIALS)


# ---- Viterbi segmentation ---------------------------------------------------------------------
def test_viterbi_equals_reference_given_the_same_pieces(hf_trained, corpus):
    data = json.loads(hf_trained.to_str())["model"]
    tok = UnigramTokenizer([tuple(p) for p in data["vocab"]], unk_id=data["unk_id"], special_tokens=SPECIALS)
    lines = corpus[1] + _generated_lines(300)
    for line in lines:
        assert tok.encode(line) == hf_trained.encode(line).ids, line
    # unknown characters were met (one fused <unk> per run)
    assert sum(tok.unk_id in tok.encode(line) for line in lines) > 50


def test_viterbi_with_byte_fallback_equals_reference(hf_trained, corpus):
    vocab = json.loads(hf_trained.to_str())["model"]["vocab"]
    pieces = [tuple(p) for p in vocab[:3]] + [(b, -30.0) for b in BYTE_PIECES] + [tuple(p) for p in vocab[3:]]
    tok = UnigramTokenizer(pieces, unk_id=2, special_tokens=SPECIALS, byte_fallback=True)
    ref = _reference_with(pieces, 2, byte_fallback=True, specials=SPECIALS)
    lines = corpus[1][:100] + _generated_lines(300, seed=1)
    for line in lines:
        assert tok.encode(line) == ref.encode(line).ids, line
    assert any(tok.token_to_id("<0xF0>") in tok.encode(line) for line in lines)  # emoji went to bytes


@given(
    st.lists(st.text(alphabet="ab▁é<>", min_size=1, max_size=3), min_size=1, max_size=12, unique=True),
    st.data(),
)
def test_viterbi_ties_and_unknowns_match_reference(piece_strings, data):
    """Random small vocabularies with few distinct scores (many ties) and text with unknown characters."""
    score = st.sampled_from([-1.0, -2.0, -3.0, -1.5, -0.5])
    pieces = [("<unk>", 0.0)] + [(p, data.draw(score)) for p in piece_strings if p != "<unk>"]
    byte_fallback = data.draw(st.booleans())
    if byte_fallback:
        pieces += [(b, data.draw(score)) for b in BYTE_PIECES if b not in piece_strings]
    scheme = data.draw(st.sampled_from(["first", "always", "never"]))
    text = data.draw(st.text(alphabet="ab▁é< >x🤩", max_size=25))
    tok = UnigramTokenizer(pieces, unk_id=0, byte_fallback=byte_fallback, nfkc=False, prepend_scheme=scheme)
    ref = _reference_with(pieces, 0, byte_fallback=byte_fallback, use_nfkc=False, prepend_scheme=scheme)
    assert tok.encode(text) == ref.encode(text).ids


@pytest.mark.parametrize("scheme", ["first", "always", "never"])
def test_viterbi_breaks_ties_like_reference(scheme):
    """Equal-scoring segmentations ("ab" = "a" + "b") must be resolved as tokenizers does."""
    pieces = [("<unk>", 0.0), ("a", -1.0), ("b", -1.0), ("ab", -2.0), ("ba", -2.0), ("▁", -1.0), ("▁a", -2.0),
              ("aba", -3.0), ("bab", -3.0), ("▁ab", -3.0)]
    tok = UnigramTokenizer(pieces, unk_id=0, nfkc=False, prepend_scheme=scheme)
    ref = _reference_with(pieces, 0, use_nfkc=False, prepend_scheme=scheme)
    for text in ["ab", "ba", "abab", "babab", "aba ba", " ab", "abc", "xab", "ab ab", "aabb", "bbaa", "abc", "c"]:
        assert tok.encode(text) == ref.encode(text).ids, text


def test_unknown_character_score_matches_reference():
    """"c" and "q" have no piece, so they can only be <unk> (scored lowest piece score - 10 = -110).

    "▁abc": "▁ab" <unk> = -111 against "▁a" "bc" = -110, which wins by 1 (a smaller penalty flips it);
    "▁xyq": "▁xy" <unk> = -111 against "▁x" "yq" = -112, which loses by 1 (a larger penalty flips it).
    """
    pieces = [("<unk>", 0.0), ("▁ab", -1.0), ("▁a", -20.0), ("bc", -90.0), ("zz", -100.0),
              ("▁xy", -1.0), ("▁x", -20.0), ("yq", -92.0)]
    tok = UnigramTokenizer(pieces, unk_id=0, nfkc=False)
    ref = _reference_with(pieces, 0, use_nfkc=False)
    for text in ["abc", "abcc", "c abc", "ab", "xyq", "xyq abc"]:
        assert tok.encode(text) == ref.encode(text).ids, text
    assert tok.tokenize("abc") == ["▁a", "bc"]
    assert tok.tokenize("xyq") == ["▁xy", "<unk>"]


# ---- training ---------------------------------------------------------------------------------
def _tokens_and_nll(tok: HFTokenizer, lines: list[str]) -> tuple[int, float]:
    """Tokens of the held-out lines and their negative log-likelihood (best segmentation) under the model."""
    scores = [s for _, s in json.loads(tok.to_str())["model"]["vocab"]]
    n_tokens, nll = 0, 0.0
    for line in lines:
        ids = tok.encode(line, add_special_tokens=False).ids
        n_tokens += len(ids)
        nll -= sum(scores[i] for i in ids)
    return n_tokens, nll


def test_training_loss_is_within_a_few_percent_of_reference(ours, hf_trained, corpus):
    held_out = corpus[1]
    assert ours.vocab_size == hf_trained.get_vocab_size() == VOCAB_SIZE
    our_tokens, our_nll = _tokens_and_nll(ours.hf_tokenizer(), held_out)
    ref_tokens, ref_nll = _tokens_and_nll(hf_trained, held_out)
    assert our_tokens <= 1.05 * ref_tokens, (our_tokens, ref_tokens)
    assert our_nll <= 1.05 * ref_nll, (our_nll, ref_nll)
    # and both are far better than characters
    assert our_tokens < 0.75 * sum(len(line) + 1 for line in held_out)


def test_trained_vocabulary_layout(ours, corpus):
    assert ours.vocab_size == VOCAB_SIZE
    assert [ours.id_to_token(i) for i in range(len(SPECIALS))] == SPECIALS
    assert ours.unk_id == SPECIALS.index("<unk>")
    learned = ours.pieces[len(SPECIALS):]
    assert [s for _, s in learned] == sorted((s for _, s in learned), reverse=True)
    assert all(s < 0 for _, s in learned)
    assert all(SPACE not in p[1:] for p, _ in learned)  # a piece never spans two words
    words = metaspace_pre_tokenize(unicodedata.normalize("NFKC", corpus[0]))
    assert {ch for w in words for ch in w} <= set(ours.vocab)  # every character is kept
    assert ours.unk_id not in ours.encode(corpus[0][:3000])


def test_reference_written_file_loads_and_encodes_identically(hf_trained, corpus, tmp_path):
    path = tmp_path / "tokenizer.json"
    hf_trained.save(str(path))
    tok = UnigramTokenizer.load(path)
    for line in corpus[1][:150] + _generated_lines(100, seed=2):
        ids = hf_trained.encode(line).ids
        assert tok.encode(line) == ids
        assert tok.decode(ids) == hf_trained.decode(ids, skip_special_tokens=False)


def test_hf_backend_training_agrees_with_python_encoding(corpus):
    fast = UnigramTokenizer.train(corpus[0][:10_000], 200, special_tokens=SPECIALS, backend="hf")
    assert fast.backend == "hf" and fast.vocab_size == 200
    slow = UnigramTokenizer.from_hf_dict(fast.to_hf_dict())
    for line in corpus[1][:100] + _generated_lines(100, seed=3):
        assert fast.encode(line) == slow.encode(line)


@pytest.fixture(scope="module", params=["python", "hf"])
def byte_level(request, corpus) -> UnigramTokenizer:
    return UnigramTokenizer.train(corpus[0][:6_000], 400, special_tokens=SPECIALS, byte_fallback=True,
                                  backend=request.param)


def test_byte_fallback_encodes_anything_and_matches_tokenizers(byte_level, tmp_path):
    text = "Naïve 🤩 中文 <0x41> ok\x00\tend ▁x"
    ids = byte_level.encode(text)
    assert byte_level.unk_id not in ids
    assert byte_level.token_to_id("<0xF0>") in ids
    assert byte_level.decode(ids) == text.replace("▁", " ")
    path = tmp_path / "tokenizer.json"
    byte_level.save(path)
    theirs = HFTokenizer.from_file(str(path))
    for line in _generated_lines(100, seed=4) + [text]:
        assert theirs.encode(line, add_special_tokens=False).ids == byte_level.encode(line)
        ids = byte_level.encode(line)
        assert theirs.decode(ids, skip_special_tokens=False) == byte_level.decode(ids)
        assert theirs.decode(ids) == byte_level.decode(ids, skip_special_tokens=True)
    assert theirs.encode("hi").ids == byte_level.encode("hi") + [byte_level.token_to_id("</s>")]  # T5's framing
    # byte runs that are not valid UTF-8 (a cut character, a stray 0xFF) decode as tokenizers does
    b = [byte_level.token_to_id(f"<0x{v:02X}>") for v in (0xE4, 0xB8, 0x41, 0xFF, 0xC3, 0xA9)]
    for ids in ([b[0], b[1]], b[:3], [b[3]], [b[4], b[5]], [b[0], byte_level.token_to_id("▁"), b[1], b[2]]):
        assert byte_level.decode(ids) == theirs.decode(ids, skip_special_tokens=False)


def test_training_is_deterministic(corpus):
    a = UnigramTokenizer.train(corpus[0][:5_000], 150, special_tokens=SPECIALS)
    b = UnigramTokenizer.train(corpus[0][:5_000], 150, special_tokens=SPECIALS)
    assert a.pieces == b.pieces


def test_default_special_tokens_are_t5s(corpus):
    tok = UnigramTokenizer.train(corpus[0][:3_000], 250)
    assert tok.special_tokens == T5_SPECIAL_TOKENS
    assert [tok.id_to_token(i) for i in range(len(T5_SPECIAL_TOKENS))] == T5_SPECIAL_TOKENS
    assert tok.encode("a<extra_id_7>b").count(tok.token_to_id("<extra_id_7>")) == 1


# ---- properties -------------------------------------------------------------------------------
def _normalized(text: str) -> str:
    """What a round trip gives back: NFKC, "▁" read as a space, and no leading space."""
    text = unicodedata.normalize("NFKC", text).replace(SPACE, " ")
    return text[1:] if text.startswith(" ") else text


@given(st.text(max_size=40))
def test_byte_fallback_round_trips_any_text(byte_level, text):
    assert byte_level.decode(byte_level.encode(text)) == _normalized(text)


@given(st.text(alphabet="abcdefghi ,.'\n!?", max_size=40), st.sampled_from(SPECIALS), st.text(alphabet="abcd ,", max_size=20))
def test_special_tokens_are_never_split(ours, left, special, right):
    ids = ours.encode(left + special + right)
    sid = ours.token_to_id(special)
    assert ids.count(sid) == 1
    assert ids == ours.encode(left) + ours.encode(special + right)
    assert ours.encode(special + right)[0] == sid
    assert ids == ours.hf_tokenizer().encode(left + special + right, add_special_tokens=False).ids


@given(st.text(max_size=50))
def test_encode_is_deterministic_and_survives_save_load(ours, tmp_path_factory, text):
    path = tmp_path_factory.mktemp("ug") / "tokenizer.json"
    ours.save(path)
    again = UnigramTokenizer.load(path)
    assert again.encode(text) == ours.encode(text) == ours.encode(text)
    assert HFTokenizer.from_file(str(path)).encode(text, add_special_tokens=False).ids == again.encode(text)


@given(st.lists(st.text(alphabet="ab ▁\n<pad>", max_size=8), max_size=8))
def test_encode_iterable_equals_encode_of_the_joined_text(ours, chunks):
    assert list(ours.encode_iterable(chunks)) == ours.encode("".join(chunks))


def test_encode_iterable_on_lines(ours, corpus):
    lines = [line + "\n" for line in corpus[1][:200]]
    assert list(ours.encode_iterable(lines)) == ours.encode("".join(lines))


# ---- bad input --------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [None, 7, b"bytes", ["list"]])
def test_encode_rejects_non_str(ours, bad):
    with pytest.raises(TypeError, match="str"):
        ours.encode(bad)


def test_train_rejects_bad_input_and_sizes():
    for empty in ([], "", ["  ", "\n"]):
        with pytest.raises(ValueError, match="no text"):
            UnigramTokenizer.train(empty, 100)
    with pytest.raises(TypeError, match="texts"):
        UnigramTokenizer.train(3.5, 100)
    with pytest.raises(TypeError, match=r"texts\[0\]"):
        UnigramTokenizer.train([None], 100)
    text = "to be or not to be, that is the question: whether tis nobler in the mind"
    for backend in ("python", "hf"):
        with pytest.raises(ValueError, match="too small"):
            UnigramTokenizer.train(text, 10, special_tokens=["<unk>"], backend=backend)
        with pytest.raises(ValueError, match="too small"):
            UnigramTokenizer.train(text, 200, special_tokens=["<unk>"], byte_fallback=True, backend=backend)
        with pytest.warns(UserWarning, match="supports only"):
            tok = UnigramTokenizer.train(text, 1000, special_tokens=["<unk>"], backend=backend)
        assert tok.vocab_size < 1000


def test_constructor_rejects_bad_pieces():
    with pytest.raises(ValueError, match="twice"):
        UnigramTokenizer([("<unk>", 0.0), ("a", -1.0), ("a", -2.0)])
    with pytest.raises(ValueError, match="pieces\\[1\\]"):
        UnigramTokenizer([("<unk>", 0.0), ("a", float("nan"))])
    with pytest.raises(ValueError, match="byte_fallback"):
        UnigramTokenizer([("<unk>", 0.0), ("a", -1.0)], byte_fallback=True)
    with pytest.raises(ValueError, match="unk_id"):
        UnigramTokenizer([("<unk>", 0.0), ("a", -1.0)], unk_id=5)
    with pytest.raises(ValueError, match="not in the vocabulary and no <unk>"):
        UnigramTokenizer([("a", -1.0), (SPACE, -1.0)]).encode("ab")


def test_missing_or_corrupt_tokenizer_json_names_the_file(ours, tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.json"):
        UnigramTokenizer.load(tmp_path / "missing.json")
    garbage = tmp_path / "garbage.json"
    garbage.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    with pytest.raises(ValueError, match="garbage.json"):
        UnigramTokenizer.load(garbage)
    data = ours.to_hf_dict()
    for name, edit in [("wordpiece.json", lambda d: d["model"].update(type="WordPiece")),
                       ("novocab.json", lambda d: d["model"].update(vocab=[])),
                       ("badpiece.json", lambda d: d["model"]["vocab"].append(["x", "high"])),
                       ("t5precompiled.json", lambda d: d.update(normalizer={"type": "Precompiled"})),
                       ("bytelevel.json", lambda d: d.update(pre_tokenizer={"type": "ByteLevel"})),
                       ("lstrip.json", lambda d: d["added_tokens"][0].update(lstrip=1))]:
        d = json.loads(json.dumps(data))
        edit(d)
        path = tmp_path / name
        path.write_text(json.dumps(d), encoding="utf-8")
        with pytest.raises(ValueError, match=name):
            UnigramTokenizer.load(path)


def test_train_accepts_a_single_string_or_lines():
    text = "the cat sat on the mat. the dog sat on the log."
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = UnigramTokenizer.train(text, 40, special_tokens=["<unk>"])
        b = UnigramTokenizer.train(iter([text]), 40, special_tokens=["<unk>"])
    assert a.pieces == b.pieces
    assert a.decode(a.encode("the cat sat")) == "the cat sat"


@pytest.mark.parametrize("unk, error", [("", ValueError), (None, TypeError)])
def test_a_bad_unk_token_is_refused_by_both_trainers(unk, error):
    """unk_token="" made WordPiece's hf backend turn every unknown word into nothing."""
    from minitransformer.tokenizers import WordPieceTokenizer

    for cls in (WordPieceTokenizer, UnigramTokenizer):
        for backend in ("python", "hf"):
            with pytest.raises(error):
                cls.train(["hello world the cat"] * 20, 60, backend=backend, unk_token=unk)
