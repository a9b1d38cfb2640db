"""Added tokens marked ``"normalized": true`` against the Hugging Face ``tokenizers`` reference.

``tokenizers`` looks for the added tokens of a tokenizer.json in two passes: those marked
``"normalized": false`` in the raw text, then those marked ``"normalized": true``, in their normalized
spelling, in the normalized text between the first ones. Each tokenizer kind here gets a small
tokenizer.json built by ``tokenizers`` itself, with added tokens that combine the two flags
``normalized`` and ``special`` in every way; ours must load it and give the same ids, and the same
decoded text, for texts made of those tokens in several spellings, the characters around them,
punctuation and spaces. (The other three flags, ``lstrip``, ``rstrip`` and ``single_word``, are
tested in test_added_token_strip.py.)
"""
from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tokenizers import AddedToken, Regex, decoders, models, normalizers, pre_tokenizers, trainers
from tokenizers import Tokenizer as HFTokenizer

from minitransformer.tokenizers import (
    BPETokenizer,
    UnigramTokenizer,
    WordPieceTokenizer,
    load_tokenizer,
)
from minitransformer.tokenizers.unigram import SPACE

# (content, normalized, special) of the added tokens of each kind, and the pieces its test texts are
# made of. Every kind mixes the two passes: a token matched in the raw text that overlaps one matched
# in the normalized text ("b]" and "ab": in "ab]" the raw pass takes "b]" first).
KINDS = {
    # BERT uncased: lowercase + strip accents; "中国" normalizes to " 中  国 ", and "a\xa0b" (a no-break
    # space) to "a b", which "A\tB" does too
    "wordpiece": {
        "tokens": [("[CLS]", False, True), ("[SEP]", False, True), ("NewWord", True, False), ("Zed!", True, True),
                   ("b]", False, False), ("ab", True, False), ("a\xa0b", True, False), ("中国", True, False)],
        "pieces": ["a", "b", "A", "B", "e", "É", "é", "n", "w", "o", "r", "d", "z", "Z", "!", "[", "]", "中", "国",
                   " ", "\t", "\n", "\xa0", "NewWord", "NEWWORD", "newword", "nEwWóRd", "Zed!", "ZED!", "zéd!",
                   "[CLS]", "[cls]", "[SEP]", "b]", "B]", "ab", "AB", "áb", "a b", "A\tB", "a\xa0b", "中国"],
    },
    # BERT cased with accent stripping, and no added token that holds a space (so streaming cuts the text)
    "wordpiece_cased": {
        "tokens": [("[CLS]", False, True), ("NewWord", True, False), ("Café", True, True), ("b]", False, False),
                   ("ab", True, False)],
        "pieces": ["a", "b", "A", "B", "C", "f", "e", "é", "É", "N", "w", "W", "o", "r", "d", "!", "[", "]", " ",
                   "\t", "NewWord", "newword", "NéwWord", "Café", "Cafe", "CAFÉ", "Cafè", "[CLS]", "b]", "ab", "áb"],
    },
    # T5-style: NFKC (fullwidth letters become ASCII), Metaspace with a "▁" only at the start of the text
    "unigram": {
        "tokens": [("<unk>", False, True), ("</s>", False, True), ("NewWord", True, False), ("Ｚed", True, True),
                   ("b>", False, False), ("ab", True, False), ("a\xa0b", True, False)],
        "pieces": ["a", "b", "A", "ａ", "Ａ", "ｂ", "N", "e", "w", "W", "o", "r", "d", "Z", "z", "<", ">", "!", " ",
                   "\xa0", "NewWord", "ＮｅｗＷｏｒｄ", "newword", "Zed", "Ｚed", "ＺＥＤ", "</s>", "<unk>", "b>", "ab",
                   "ａｂ", "AB", "a b", "a\xa0b"],
    },
    # "▁" before every piece of text between added tokens; no token with a space (streaming cuts the text)
    "unigram_always": {
        "prepend_scheme": "always",
        "tokens": [("<unk>", False, True), ("NewWord", True, False), ("Ｚed", True, True), ("b>", False, False),
                   ("ab", True, False)],
        "pieces": ["a", "b", "A", "ａ", "ｂ", "N", "e", "w", "W", "o", "r", "d", "Z", "z", "<", ">", " ", "  ",
                   "NewWord", "ＮｅｗＷｏｒｄ", "Zed", "Ｚed", "<unk>", "b>", "ab", "ａｂ"],
    },
    # byte-level BPE has no normalizer: "normalized" changes only which pass finds the token
    "bpe": {
        "tokens": [("<|endoftext|>", False, True), ("NewWord", True, False), ("<Z>", True, True),
                   ("b!", False, False), ("ab", True, False), ("a b", True, False)],
        "pieces": ["a", "b", "A", "B", "!", " ", "  ", "\n", "é", "New", "Word", "NewWord", "newword", "<Z>", "<z>",
                   "b!", "ab", "AB", "a b", "<|endoftext|>", "'s"],
    },
    "bpe_prefix_space": {
        "add_prefix_space": True,
        "tokens": [("<|endoftext|>", False, True), ("NewWord", True, False), ("b!", False, False),
                   ("ab", True, False)],
        "pieces": ["a", "b", "A", "!", " ", "  ", "\n", "New", "Word", "NewWord", "b!", "ab", "<|endoftext|>", "'s"],
    },
    # only short added tokens: streaming holds back little text, so a "normalized" token at the end of
    # what has come may still lose to a raw one that the next piece completes ("ab" + "!": "a", "b!")
    "bpe_short": {
        "tokens": [("b!", False, False), ("ab", True, False), ("a!", True, True)],
        "pieces": ["a", "b", "!", " ", "ab", "b!", "AB", "A!"],
    },
    "char_short": {
        "tokens": [("b!", False, False), ("ab", True, False), ("a!", True, True)],
        "pieces": ["a", "b", "!", " ", "ab", "b!", "AB"],
    },
    "char": {
        "tokens": [("<pad>", False, True), ("NewWord", True, False), ("<Z>", True, True), ("b!", False, False),
                   ("ab", True, False)],
        "pieces": ["a", "b", "A", "B", "!", " ", "\n", "<", ">", "Z", "N", "e", "w", "W", "o", "r", "d", "NewWord",
                   "<Z>", "<pad>", "b!", "ab", "AB"],
    },
}


def _reference(kind: str) -> HFTokenizer:
    """The kind's tokenizer, built and given its added tokens by ``tokenizers`` itself."""
    spec = KINDS[kind]
    contents = [content for content, _, _ in spec["tokens"]]
    if kind.startswith("wordpiece"):
        chars = sorted({ch for piece in spec["pieces"] for ch in piece} - set(" \t\n\xa0"))
        words = ["[UNK]", *chars, *(f"##{ch}" for ch in chars), "new", "##word", "ze", "##d"]
        vocab = {t: i for i, t in enumerate(dict.fromkeys(words + contents))}
        hf = HFTokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
        cased = kind == "wordpiece_cased"
        hf.normalizer = normalizers.BertNormalizer(lowercase=not cased, strip_accents=True if cased else None)
        hf.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        hf.decoder = decoders.WordPiece()
    elif kind.startswith("unigram"):
        chars = sorted({ch for piece in spec["pieces"] for ch in piece} - set(" \xa0"))
        learned = [(SPACE, -2.0), *((ch, -3.0 - i / 100) for i, ch in enumerate(chars)),
                   (SPACE + "a", -2.5), (SPACE + "N", -2.6), ("ew", -2.7), ("Word", -3.5)]
        pieces = list({p: (p, s) for p, s in [(c, 0.0) for c in contents] + learned}.values())
        scheme = spec.get("prepend_scheme", "first")
        hf = HFTokenizer(models.Unigram(pieces, unk_id=0))
        hf.normalizer = normalizers.NFKC()
        hf.pre_tokenizer = pre_tokenizers.Metaspace(replacement=SPACE, prepend_scheme=scheme, split=True)
        steps = [decoders.Replace(SPACE, " "), decoders.Fuse()]
        hf.decoder = decoders.Sequence(steps + ([decoders.Strip(" ", 1, 0)] if scheme != "never" else []))
    elif kind.startswith("bpe"):
        prefix = spec.get("add_prefix_space", False)
        hf = HFTokenizer(models.BPE())
        hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=prefix)
        hf.decoder = decoders.ByteLevel()
        hf.train_from_iterator(["the cat sat on the mat. New Word, new words!"] * 3, trainers.BpeTrainer(
            vocab_size=280, show_progress=False, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    else:  # our character tokenizer's format: one WordLevel entry per character, then the added tokens
        chars = sorted({ch for piece in spec["pieces"] for ch in piece})
        vocab = {t: i for i, t in enumerate(chars + contents)}
        hf = HFTokenizer(models.WordLevel(vocab, unk_token="<unk>"))
        hf.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), "isolated")
        hf.decoder = decoders.Fuse()
    hf.add_tokens([AddedToken(content, normalized=normalized, special=special)
                   for content, normalized, special in spec["tokens"]])
    return hf


@pytest.fixture(scope="module", params=list(KINDS))
def pair(request, tmp_path_factory):
    """(kind, reference, ours loaded from the reference's own tokenizer.json)."""
    kind = request.param
    hf = _reference(kind)
    path = tmp_path_factory.mktemp(kind) / "tokenizer.json"
    hf.save(str(path))
    return kind, hf, load_tokenizer(path)


def _reference_decodes_normalized_spelling() -> bool:
    """Recent tokenizers (0.23.3) decode a "normalized" added token in its normalized spelling (older: as written)."""
    hf = HFTokenizer(models.WordLevel({"Up": 0, "<unk>": 1}, unk_token="<unk>"))
    hf.normalizer = normalizers.Lowercase()
    hf.add_tokens([AddedToken("Up", normalized=True)])
    return hf.decode([0], skip_special_tokens=False) == "up"


SPELLED_AS_NORMALIZED = _reference_decodes_normalized_spelling()
MAX_PIECES = 14


def _texts(kind: str):
    return st.lists(st.sampled_from(KINDS[kind]["pieces"]), max_size=MAX_PIECES).map("".join)


def _check_against_reference(kind, hf, ours, text):
    ids = hf.encode(text, add_special_tokens=False).ids
    assert ours.encode(text) == ids, (kind, text, ours.tokenize(text), hf.encode(text, add_special_tokens=False).tokens)
    if SPELLED_AS_NORMALIZED:
        assert ours.decode(ids) == hf.decode(ids, skip_special_tokens=False)
        # skip_special_tokens drops every special token. (tokenizers 0.23.3 keeps a special token whose
        # normalized spelling differs from its content, such as "Zed!" decoded as "zed!": it looks the
        # spelling up among the special tokens' contents.)
        kept = [i for i in ids if i not in set(ours.special_token_ids())]
        assert ours.decode(ids, skip_special_tokens=True) == hf.decode(kept, skip_special_tokens=False)


def _load(hf: HFTokenizer, tmp_path):
    path = tmp_path / "tokenizer.json"
    hf.save(str(path))
    return load_tokenizer(path)


# ---- the same ids as tokenizers, for any text ---------------------------------------------------
@given(data=st.data())
def test_ids_and_decoding_equal_tokenizers_for_any_text(pair, data):
    kind, hf, ours = pair
    _check_against_reference(kind, hf, ours, data.draw(_texts(kind)))


@given(data=st.data())
def test_streaming_equals_encoding_the_whole_text(pair, data):
    """``encode_iterable`` may get the text cut anywhere, also inside an added token's spelling."""
    kind, _, ours = pair
    text = data.draw(_texts(kind))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=6)))
    chunks = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    options = {"chunk_chars": data.draw(st.integers(1, 8))} if isinstance(ours, BPETokenizer) else {}
    assert list(ours.encode_iterable(chunks, **options)) == ours.encode(text)


# ---- examples -----------------------------------------------------------------------------------
@pytest.mark.parametrize("kind,text,tokens", [
    # a user-added word, matched in the lowercased text whatever its case; at the start and the end,
    # next to punctuation, repeated, with its accents stripped
    ("wordpiece", "NEWWORD", ["NewWord"]),
    ("wordpiece", "newword!NewWord", ["NewWord", "!", "NewWord"]),
    ("wordpiece", "NewWordnewwordNEWWORD", ["NewWord", "NewWord", "NewWord"]),
    ("wordpiece", "nÉwWórd zed!", ["NewWord", "Zed!"]),
    # "[CLS]" is matched in the raw text only: "[cls]" is ordinary text
    ("wordpiece", "[CLS][cls]", ["[CLS]", "[", "c", "##l", "##s", "]"]),
    # the raw pass comes first: in "ab]" it takes "b]", and "ab" is left no "b"
    ("wordpiece", "ab]", ["a", "b]"]),
    ("wordpiece", "AB]", ["ab", "]"]),
    # normalization can put spaces in: BertNormalizer makes the tab a space, and "中国" " 中  国 "
    ("wordpiece", "A\tB", ["a\xa0b"]),
    ("wordpiece", "a中国b", ["a", "中国", "b"]),
    # cased: accents stripped but not lowercased ("CAFÉ" is "CAFE", a word without a vocabulary piece for "F")
    ("wordpiece_cased", "Cafe CAFÉ Café", ["Café", "[UNK]", "Café"]),
    ("wordpiece_cased", "newword NéwWord", ["new", "##word", "NewWord"]),
    # NFKC makes fullwidth letters ASCII
    ("unigram", "ＮｅｗＷｏｒｄNewWord", ["NewWord", "NewWord"]),
    # "ｂ>" is not "b>" in the raw text; once normalized it is, and the model has "b>" as a piece
    ("unigram", "ｂ>ａｂ>", ["▁", "b>", "ab", ">"]),
    ("unigram", "ab>", ["▁a", "b>"]),
    ("unigram", "NewWord ab", ["NewWord", "▁", "ab"]),
    ("unigram", "a b", ["a\xa0b"]),  # NFKC spells the token's no-break space as a space
    ("unigram_always", "ab>ab", ["▁a", "b>", "ab"]),
    # no normalizer: "normalized" only decides the pass
    ("bpe", "ab!ab", ["a", "b!", "ab"]),
    ("bpe", "ab ab", ["ab", "Ġ", "ab"]),
    ("bpe_prefix_space", "ab!NewWord", ["Ġ", "a", "b!", "NewWord"]),
    ("char", "ab!ab<Z>", ["a", "b!", "ab", "<Z>"]),
])
def test_examples(kind, text, tokens, tmp_path):
    hf = _reference(kind)
    ours = _load(hf, tmp_path)
    assert ours.tokenize(text) == tokens
    _check_against_reference(kind, hf, ours, text)


def test_decoding_writes_the_normalized_spelling_and_skips_every_special_token(tmp_path):
    ours = _load(_reference("wordpiece"), tmp_path)
    ids = ours.encode("[CLS] NEWWORD ZED! b a")
    assert ours.tokenize("[CLS] NEWWORD ZED! b a") == ["[CLS]", "NewWord", "Zed!", "b", "a"]
    assert ours.decode(ids) == "[CLS] newword zed! b a"  # as tokenizers 0.23.3 decodes them
    assert ours.decode(ids, skip_special_tokens=True) == "newword b a"
    assert ours.token_to_id("Zed!") in ours.special_token_ids()  # MLM never masks it
    assert ours.token_to_id("NewWord") not in ours.special_token_ids()


def test_streaming_waits_for_text_that_can_change_an_added_token(tmp_path):
    """"ab" (normalized) is complete at the end of "!! ab", but a "!" to come makes the raw "b!" win."""
    for kind, options in [("bpe_short", {"chunk_chars": 1}), ("char_short", {})]:
        hf = _reference(kind)
        ours = _load(hf, tmp_path)
        for chunks in (["!! ab", "!"], ["ab", "!"], ["a", "b", "!", "ab"], ["a!", "b", "ab", "!"]):
            text = "".join(chunks)
            assert list(ours.encode_iterable(chunks, **options)) == hf.encode(text, add_special_tokens=False).ids


def test_streaming_never_cuts_where_an_added_token_can_span_the_cut(tmp_path):
    """"a\\xa0b" (normalized "a b") matches "A\\tB" (WordPiece) and "a b": a cut at the space would split it."""
    for kind, chunks in [("wordpiece", ["A\t", "B"]), ("wordpiece", ["A ", "B a", " b"]), ("unigram", ["a", " b"]),
                         ("unigram", ["ab a", " b"])]:
        hf = _reference(kind)
        ours = _load(hf, tmp_path)
        text = "".join(chunks)
        assert list(ours.encode_iterable(chunks)) == hf.encode(text, add_special_tokens=False).ids


# ---- files --------------------------------------------------------------------------------------
def _flags(data: dict) -> dict[str, tuple[bool, bool]]:
    return {t["content"]: (t["normalized"], t["special"]) for t in data["added_tokens"]}


def test_save_and_load_keep_the_flags(pair, tmp_path):
    kind, hf, ours = pair
    spec = KINDS[kind]
    assert ours.normalized_tokens == {content for content, normalized, _ in spec["tokens"] if normalized}
    assert ours.non_special_tokens == {content for content, _, special in spec["tokens"] if not special}
    path = tmp_path / "ours.json"
    ours.save(path)
    written = json.loads(path.read_text(encoding="utf-8"))
    assert _flags(written) == _flags(json.loads(hf.to_str()))
    again = load_tokenizer(path)
    assert again.normalized_tokens == ours.normalized_tokens
    assert again.non_special_tokens == ours.non_special_tokens
    reread = HFTokenizer.from_file(str(path))  # tokenizers reads the flags back from our file
    texts = ["".join(spec["pieces"]), " ".join(spec["pieces"]), "".join(reversed(spec["pieces"]))]
    for text in texts:
        ids = hf.encode(text, add_special_tokens=False).ids
        assert again.encode(text) == reread.encode(text, add_special_tokens=False).ids == ids
    if isinstance(ours, (WordPieceTokenizer, UnigramTokenizer)):  # and so does the "hf" backend
        fast = type(ours).from_hf_dict(written, backend="hf")
        assert [fast.encode(t) for t in texts] == [ours.encode(t) for t in texts]


def test_two_normalized_tokens_with_one_spelling_are_refused(tmp_path):
    """tokenizers would pick one of "NewWord" and "NEWWORD" at random (it differs from run to run)."""
    data = json.loads(_reference("wordpiece").to_str())
    new_id = len(data["model"]["vocab"])
    data["model"]["vocab"]["NEWWORD"] = new_id
    data["added_tokens"].append({"id": new_id, "content": "NEWWORD", "single_word": False, "lstrip": False,
                                 "rstrip": False, "normalized": True, "special": False})
    path = tmp_path / "t.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ValueError, match="both normalize to 'newword'"):
        load_tokenizer(path)


def test_bad_flag_values_and_unknown_normalized_tokens_are_refused(tmp_path):
    data = json.loads(_reference("unigram").to_str())
    data["added_tokens"][-1]["normalized"] = "yes"
    path = tmp_path / "t.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ValueError, match="normalized"):
        load_tokenizer(path)
    ours = _load(_reference("unigram"), tmp_path)
    with pytest.raises(ValueError, match="not an added token"):
        ours.normalized_tokens = {"nope"}
