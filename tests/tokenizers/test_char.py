"""Character tokenizer: nanoGPT-style vocabulary, special tokens, and tokenizer.json parity with ``tokenizers``."""
from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tokenizers import Tokenizer as HFTokenizer

from minitransformer.tokenizers.char import CharTokenizer

TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak. é 😀 한\t\r\n x<y |z"
EOT = "<|endoftext|>"


@pytest.fixture(scope="module")
def tok() -> CharTokenizer:
    return CharTokenizer.train(TEXT, special_tokens=[EOT, "<pad>"])


def test_vocabulary_is_the_sorted_characters_then_specials(tok):
    chars = sorted(set(TEXT))  # nanoGPT's shakespeare_char: stoi = {ch: i for i, ch in enumerate(chars)}
    assert tok.chars == chars
    assert [tok.token_to_id(c) for c in chars] == list(range(len(chars)))
    assert tok.token_to_id(EOT) == len(chars) and tok.token_to_id("<pad>") == len(chars) + 1
    assert tok.vocab_size == len(chars) + 2
    assert tok.encode("hear") == [chars.index(c) for c in "hear"]
    assert tok.pad_token_id == len(chars) + 1


def test_training_on_several_texts_and_special_tokens_in_them():
    tok = CharTokenizer.train(iter(["ab", "c" + EOT + "d"]), special_tokens=[EOT])
    assert tok.chars == ["a", "b", "c", "d"]  # the special token's characters are not counted
    assert tok.encode("d" + EOT + "a") == [3, 4, 0]


SAMPLE = st.lists(st.sampled_from(sorted(set(TEXT)) + [EOT, "<pad>", "<|"]), max_size=60).map("".join)


@given(SAMPLE)
def test_round_trip_and_special_tokens_whole(tok, text):
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert ids.count(tok.token_to_id(EOT)) == text.count(EOT)
    assert tok.decode(ids, skip_special_tokens=True) == text.replace(EOT, "").replace("<pad>", "")


@given(SAMPLE)
def test_saved_file_gives_the_same_ids_in_tokenizers(tok, tmp_path_factory, text):
    path = tmp_path_factory.mktemp("char") / "tokenizer.json"
    tok.save(path)
    hf = HFTokenizer.from_file(str(path))
    assert hf.encode(text, add_special_tokens=False).ids == tok.encode(text)
    assert hf.decode(tok.encode(text), skip_special_tokens=False) == text
    again = CharTokenizer.load(path)
    assert (again.chars, again.special_tokens) == (tok.chars, tok.special_tokens)
    assert again.encode(text) == tok.encode(text)


def test_unknown_characters():
    tok = CharTokenizer.train("abc")
    with pytest.raises(ValueError, match=r"'z' \(U\+007A\) is not in the vocabulary"):
        tok.encode("abz")
    # tokenizers refuses them too (the file names an unk token that is not in the vocabulary)
    hf = HFTokenizer.from_str(json.dumps(tok.to_hf_dict()))
    with pytest.raises(Exception, match="UNK|unk"):
        hf.encode("abz")
    with_unk = CharTokenizer.train("abc", unk_token="<unk>")
    unk = with_unk.token_to_id("<unk>")
    assert with_unk.encode("azb") == [0, unk, 1]
    hf = HFTokenizer.from_str(json.dumps(with_unk.to_hf_dict()))
    assert hf.encode("azb", add_special_tokens=False).ids == [0, unk, 1]
    assert CharTokenizer.from_hf_dict(with_unk.to_hf_dict()).encode("azb") == [0, unk, 1]


def test_bad_input():
    with pytest.raises(TypeError, match="str"):
        CharTokenizer.train(b"abc")
    with pytest.raises(TypeError, match="item 1"):
        CharTokenizer.train(["abc", 5])
    tok = CharTokenizer.train("abc")
    with pytest.raises(TypeError, match="str"):
        tok.encode(["a"])
    with pytest.raises(ValueError, match="not in the vocabulary"):
        tok.decode([3])
    with pytest.raises(ValueError, match="not in the vocabulary"):
        tok.id_to_token(-1)
    with pytest.raises(ValueError, match="ordinary character"):
        CharTokenizer(["a", "b"], special_tokens=["a"])
    with pytest.raises(ValueError, match="single characters"):
        CharTokenizer(["ab"])


def test_foreign_word_level_file_is_refused():
    data = CharTokenizer.train("abc").to_hf_dict()
    data["pre_tokenizer"] = {"type": "Whitespace"}
    with pytest.raises(ValueError, match="not a character tokenizer"):
        CharTokenizer.from_hf_dict(data)


@pytest.mark.parametrize("vocab", [["a", "b"], {"a": "0", "b": 1}, {"a": 0, "b": True}, None])
def test_malformed_vocab_is_refused(vocab):
    """A list or string ids used to fail with AttributeError or a '<' between str and int."""
    data = CharTokenizer.train("ab").to_hf_dict()
    data["model"]["vocab"] = vocab
    with pytest.raises(ValueError, match="model.vocab must map"):
        CharTokenizer.from_hf_dict(data)


def test_empty_training_text_and_skipped_bad_ids():
    with pytest.raises(ValueError, match="no text to train on"):
        CharTokenizer.train([])
    with pytest.raises(ValueError, match="no text to train on"):
        CharTokenizer.train("<s>", special_tokens=["<s>"])
    tok = CharTokenizer.train("abc", special_tokens=["<s>"])
    with pytest.raises(ValueError, match="not in the vocabulary"):  # used to vanish with skip_special_tokens
        tok.decode([1, 99, 2], skip_special_tokens=True)
    assert tok.decode([1, 3, 2], skip_special_tokens=True) == "bc"


@given(st.lists(st.sampled_from(["a", "b", " ", "[SEP]", "[CLS]", "<s>", "[", "S"]), max_size=30),
       st.lists(st.integers(0, 200), max_size=8))
def test_streaming_equals_encoding_the_whole_text_even_across_special_tokens(parts, cuts):
    """Pieces cut anywhere, through special tokens too ("[SE" + "P]"), give encode's ids."""
    tok = CharTokenizer.train("ab [S]EPCL<>s", special_tokens=["[SEP]", "[CLS]", "<s>"])
    text = "".join(parts)
    bounds = sorted({min(c, len(text)) for c in cuts} | {0, len(text)})
    pieces = [text[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    assert list(tok.encode_iterable(pieces)) == tok.encode(text)
