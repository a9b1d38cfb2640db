"""What every tokenizer in minitransformer can do, whatever its algorithm.

A tokenizer turns text into a list of integer ids and back. The four algorithms (char, byte-level
BPE, WordPiece, Unigram) differ only in how they split text; batching, padding, truncation,
special tokens and files are the same for all of them and live here, with the input checks they share.
"""
from __future__ import annotations

import json
import operator
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import torch

from minitransformer.checks import check_int

if TYPE_CHECKING:
    from tokenizers import Tokenizer as HFTokenizer

# Special-token sets of the three families (Devlin et al. 2019; Radford et al. 2019; Raffel et al. 2020).
BERT_SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
GPT_SPECIAL_TOKENS = ["<|endoftext|>"]
T5_SENTINELS = [f"<extra_id_{i}>" for i in range(100)]
T5_SPECIAL_TOKENS = ["<pad>", "</s>", "<unk>"] + T5_SENTINELS

# How a tokenizer with a choice encodes and trains: our readable Python ("python") or the Hugging
# Face ``tokenizers`` library ("hf"), which gives the same ids, much faster.
BACKENDS = ("python", "hf")
BackendName = str  # one of BACKENDS


class Tokenizer(ABC):
    """Base class: subclasses implement ``encode``/``decode``, the vocabulary and the JSON form.

    ``encode`` never adds special tokens by itself; ``encode_batch``/``encode_pair`` do the
    family-specific framing (``[CLS] A [SEP] B [SEP]`` for BERT, ``... </s>`` for T5).
    """

    # ---- what a subclass provides -----------------------------------------------------------
    @abstractmethod
    def encode(self, text: str) -> list[int]:
        """Text -> ids. Special tokens written in the text are kept whole (never split)."""

    @abstractmethod
    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        """Ids -> text."""

    @abstractmethod
    def token_to_id(self, token: str) -> int | None:
        """The id of a vocabulary entry, or None if it is not in the vocabulary."""

    @abstractmethod
    def id_to_token(self, idx: int) -> str:
        """The vocabulary entry of an id (ValueError if out of range)."""

    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """Number of ids, special tokens included."""

    @abstractmethod
    def to_hf_dict(self) -> dict:
        """This tokenizer in Hugging Face ``tokenizer.json`` form (loadable by ``tokenizers``)."""

    @classmethod
    @abstractmethod
    def from_hf_dict(cls, data: dict) -> Tokenizer:
        """Inverse of ``to_hf_dict``; also accepts files written by ``tokenizers`` itself."""

    # The *added tokens*: vocabulary entries found whole in the text before the model splits
    # anything ([CLS], <|endoftext|>, a word added to a trained tokenizer). Despite the name, not
    # all of them are special: see ``non_special_tokens``.
    special_tokens: list[str]

    # Added tokens that a tokenizer.json marks ``"special": false``: matched whole in the text like
    # the special tokens, but kept by ``decode(skip_special_tokens=True)``, as in ``tokenizers``.
    non_special_tokens: frozenset[str] = frozenset()

    _hf: HFTokenizer | None = None  # built by hf_tokenizer() on first use, then reused
    _normalized_tokens: frozenset[str] = frozenset()  # see the normalized_tokens property
    _added_patterns: AddedTokenPatterns | None = None  # built by _added_token_patterns() on first use

    # ---- added tokens, raw or normalized ----------------------------------------------------
    def normalize(self, text: str) -> str:
        """The tokenizer's normalizer, the first step of encoding. Without one (here), the text itself."""
        return text

    @property
    def normalized_tokens(self) -> frozenset[str]:
        """The added tokens looked for in the *normalized* text (``"normalized": true`` in a tokenizer.json).

        Before the model splits anything, ``tokenizers`` finds the added tokens in the text. Each one
        says where to look for it. ``"normalized": false`` (special tokens, usually): in the text as
        typed, character for character, so ``[CLS]`` is found before BERT-uncased's normalizer could
        lowercase it to ``[cls]``, and ``[cls]`` typed by a user is ordinary text. ``"normalized":
        true`` (what ``tokenizers`` gives a word a user adds): in the text after the normalizer has run,
        compared with the token's own normalized spelling. With that lowercasing normalizer an added
        word ``NewWord`` (spelled "newword" once normalized) is then found in "NEWWORD", "newword" and
        "NewWord" alike; with T5's NFKC, in "ＮｅｗＷｏｒｄ" too. ``split_on_added_tokens`` does both.

        Assigning a set checks it: every token must be one of ``special_tokens``, and no two of them
        may have the same normalized spelling (``tokenizers`` would pick one at random).
        """
        return self._normalized_tokens

    @normalized_tokens.setter
    def normalized_tokens(self, tokens: Iterable[str]) -> None:
        tokens = frozenset(tokens)
        unknown = sorted(tokens - set(self.special_tokens))
        if unknown:
            raise ValueError(f"{unknown[0]!r} is not an added token of this tokenizer (one of its special_tokens), "
                             "so it cannot be marked normalized")
        old = self._normalized_tokens, self._added_patterns
        self._normalized_tokens, self._added_patterns = tokens, None
        try:
            self._added_token_patterns()  # refuses two tokens with one normalized spelling
        except ValueError:
            self._normalized_tokens, self._added_patterns = old
            raise
        if self._hf is not None:  # built with the old flags
            self._hf = None
            if getattr(self, "backend", "python") == "hf":
                self.hf_tokenizer()

    def _added_token_patterns(self) -> AddedTokenPatterns:
        """The two regexes of ``split_on_added_tokens`` and the normalized spellings, built once."""
        if self._added_patterns is None:
            raw = [t for t in self.special_tokens if t not in self._normalized_tokens]
            spellings = {t: self.normalize(t) for t in self.special_tokens if t in self._normalized_tokens}
            by_spelling: dict[str, str] = {}
            for token, spelling in spellings.items():
                if not spelling:  # normalizes to nothing (e.g. only control characters): never found
                    continue
                if spelling in by_spelling:
                    raise ValueError(
                        f"added tokens {by_spelling[spelling]!r} and {token!r} are both marked normalized and both "
                        f"normalize to {spelling!r}, so text spelled {spelling!r} could be either (tokenizers "
                        "picks one at random); keep one of them, or mark one \"normalized\": false"
                    )
                by_spelling[spelling] = token
            self._added_patterns = AddedTokenPatterns(
                raw=special_token_pattern(raw),
                normalized=special_token_pattern(by_spelling),
                token_of_spelling=by_spelling,
                spelling_of_token=spellings,
            )
        return self._added_patterns

    def split_on_added_tokens(self, text: str) -> list[tuple[str, bool]]:
        """Find the added tokens in ``text`` and normalize the rest: [(piece, is_added_token), ...].

        Two passes, as in ``tokenizers`` (see ``normalized_tokens``):

        1. the tokens marked ``"normalized": false`` are cut out of the raw text;
        2. each piece of text left between them is normalized (``normalize``), and the tokens marked
           ``"normalized": true`` are cut out of it, found by their normalized spelling.

        In each pass the longest token wins where several start at one place; the first pass wins over
        the second (with a raw ``b]`` and a normalized ``ab``, "ab]" is "a" + ``b]``). An added token
        comes back as itself (``NewWord``, however the text spelled it), with True; the other pieces
        come back normalized, ready for pre-tokenization, with False. Empty pieces are dropped.
        """
        patterns = self._added_token_patterns()
        pieces: list[tuple[str, bool]] = []
        for piece, is_added in split_on_special_tokens(text, patterns.raw):
            if is_added:
                pieces.append((piece, True))
                continue
            for part, found in split_on_special_tokens(self.normalize(piece), patterns.normalized):
                pieces.append((patterns.token_of_spelling[part] if found else part, found))
        return pieces

    def _decoding_spellings(self) -> dict[str, str]:
        """token -> what ``decode`` writes for it, for the added tokens that are not written as they are.

        An added token marked normalized is decoded in its normalized spelling (``NewWord`` as
        "newword" by BERT-uncased), as recent ``tokenizers`` decodes it (0.23.3 does; older versions
        wrote the token as it is).
        """
        return self._added_token_patterns().spelling_of_token

    # ---- shared behaviour -------------------------------------------------------------------
    def tokenize(self, text: str) -> list[str]:
        """The tokens (as strings) that ``encode`` would give ids for."""
        return [self.id_to_token(i) for i in self.encode(text)]

    def encode_iterable(self, lines: Iterable[str]) -> Iterator[int]:
        """Encode a stream of text pieces (e.g. a file's lines) in bounded memory.

        Yields the same ids as ``encode("".join(lines))``. The default is correct for tokenizers
        whose pre-tokenization never joins text across a newline; subclasses override otherwise.
        """
        for line in lines:
            if not isinstance(line, str):
                raise TypeError(f"encode_iterable expects str pieces, got {type(line).__name__}")
            yield from self.encode(line)

    @property
    def pad_token_id(self) -> int | None:
        for tok in ("[PAD]", "<pad>", "<|pad|>"):
            idx = self.token_to_id(tok)
            if idx is not None:
                return idx
        return None

    def special_token_ids(self) -> list[int]:
        """Ids of the special tokens (not ``non_special_tokens``): what ``decode(skip_special_tokens=True)``
        leaves out, and what MLM masking must never select."""
        return [i for i in (self.token_to_id(t) for t in self.special_tokens if t not in self.non_special_tokens)
                if i is not None]

    def encode_batch(
        self,
        texts: Sequence[str] | Sequence[list[int]],
        max_length: int | None = None,
        truncation: bool = False,
        padding_side: str = "right",
        pad_token_id: int | None = None,
    ) -> dict[str, torch.Tensor]:
        """Encode several texts and pad them to the longest: ``input_ids`` and ``attention_mask`` (B, T).

        Items may be str (encoded here) or lists of ids (already encoded). Longer than
        ``max_length`` is an error unless ``truncation=True``. ``padding_side="left"`` is what
        batched GPT generation wants.
        """
        if isinstance(texts, str):
            raise TypeError("encode_batch expects a list of texts, not a single str")
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
        seqs = [self.encode(t) if isinstance(t, str) else [as_token_id(i) for i in t] for t in texts]
        if max_length is not None:
            check_int("max_length", max_length, 1)
            for i, s in enumerate(seqs):
                if len(s) > max_length:
                    if not truncation:
                        raise ValueError(
                            f"text {i} has {len(s)} tokens, more than max_length={max_length}; "
                            "pass truncation=True to cut it"
                        )
                    seqs[i] = s[:max_length]
        return pad_sequences(seqs, pad_token_id if pad_token_id is not None else (self.pad_token_id or 0),
                             padding_side)

    def encode_pair(self, text_a: str, text_b: str | None = None, max_length: int | None = None) -> dict:
        """BERT framing ``[CLS] A [SEP] B [SEP]`` with token-type ids (0 for A, 1 for B).

        If ``max_length`` is given, the longer segment is cut first ("longest first").
        """
        cls_id, sep_id = self.token_to_id("[CLS]"), self.token_to_id("[SEP]")
        if cls_id is None or sep_id is None:
            raise ValueError("encode_pair needs [CLS] and [SEP] in the vocabulary")
        a = self.encode(text_a)
        b = self.encode(text_b) if text_b is not None else []
        if max_length is not None:
            specials = 3 if text_b is not None else 2  # [CLS] a [SEP] (b [SEP])
            check_int("max_length", max_length, specials)  # room for [CLS] and [SEP] at least
            a, b = truncate_longest_first(a, b, max_length - specials)
        ids = [cls_id] + a + [sep_id]
        types = [0] * len(ids)
        if text_b is not None:
            ids += b + [sep_id]
            types += [1] * (len(b) + 1)
        return {"input_ids": ids, "token_type_ids": types, "attention_mask": [1] * len(ids)}

    # ---- files ------------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write Hugging Face ``tokenizer.json`` (atomically: temp file, then rename)."""
        path = Path(path)
        if path.is_dir():
            raise IsADirectoryError(f"{path} is a folder; give the tokenizer file's path, e.g. {path / 'tokenizer.json'}")
        text = json.dumps(self.to_hf_dict(), ensure_ascii=False, indent=1)  # fails (if it does) before any write
        tmp = path.with_name(path.name + ".tmp")
        try:
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(path)
        finally:
            tmp.unlink(missing_ok=True)

    @classmethod
    def load(cls, path: str | Path, **kwargs) -> Tokenizer:
        """Read a ``tokenizer.json`` (ours or one written by ``tokenizers``).

        Keyword arguments go to ``from_hf_dict`` (``backend="hf"`` for WordPiece and Unigram).
        A file this class cannot read (another model type, unsupported options, a broken
        vocabulary) is a ValueError that names the file.
        """
        data = read_tokenizer_json(path)
        try:
            return cls.from_hf_dict(data, **kwargs)
        except (KeyError, TypeError, ValueError, AttributeError) as e:  # a field of the wrong type
            raise ValueError(f"{path}: cannot load as {cls.__name__}: {e}") from e

    def hf_tokenizer(self) -> HFTokenizer:
        """This tokenizer as a ``tokenizers.Tokenizer`` (built from ``to_hf_dict`` on first use, then reused).

        It is what ``backend="hf"`` encodes with, and a reference to compare our own encoding with.
        """
        if self._hf is None:
            from tokenizers import Tokenizer as HFTokenizer

            self._hf = HFTokenizer.from_str(json.dumps(self.to_hf_dict()))
        return self._hf

    def _added_tokens_json(self) -> list[dict]:
        """The ``added_tokens`` of ``to_hf_dict``: every added token, matched whole, with its two flags."""
        return [
            {"id": self.token_to_id(t), "content": t, "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": t in self.normalized_tokens, "special": t not in self.non_special_tokens}
            for t in self.special_tokens
        ]


class AddedTokenPatterns(NamedTuple):
    """What ``Tokenizer.split_on_added_tokens`` looks for (``special_token_pattern`` regexes, None if none)."""

    raw: re.Pattern[str] | None  # the tokens marked "normalized": false, as written
    normalized: re.Pattern[str] | None  # the tokens marked "normalized": true, in their normalized spelling
    token_of_spelling: dict[str, str]  # normalized spelling -> token
    spelling_of_token: dict[str, str]  # token -> normalized spelling


def with_added_token_flags(tok: Tokenizer, data: dict) -> Tokenizer:
    """``tok`` (just read from the tokenizer.json ``data``) told which added tokens are ``"special": false``
    and which are ``"normalized": true`` (flags ``check_added_tokens`` has checked)."""
    added = data.get("added_tokens") or []
    tok.non_special_tokens = frozenset(a["content"] for a in added if a.get("special", True) is False)
    tok.normalized_tokens = frozenset(a["content"] for a in added if a.get("normalized", False) is True)
    return tok


def read_tokenizer_json(path: str | Path) -> dict:
    """Read and sanity-check a tokenizer.json, with errors that name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"tokenizer file not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path} is not a valid tokenizer.json (not UTF-8 JSON): {e}") from None
    if not isinstance(data, dict) or not isinstance(data.get("model"), dict) or "type" not in data["model"]:
        raise ValueError(f"{path} is not a Hugging Face tokenizer.json: no 'model' with a 'type'")
    return data


# The added-token flags of a tokenizer.json that minitransformer implements, and those it refuses.
ADDED_TOKEN_FLAGS = ("special", "normalized")
UNSUPPORTED_ADDED_TOKEN_FLAGS = ("single_word", "lstrip", "rstrip")


def check_added_tokens(data: dict) -> list[dict]:
    """The ``added_tokens`` of a tokenizer.json, checked for the features minitransformer implements.

    Each entry needs an int ``id`` and a str ``content``. Of its flags, ``special`` and ``normalized``
    are implemented (``Tokenizer.non_special_tokens``, ``Tokenizer.normalized_tokens``); the three
    that change how much text a match takes (``single_word``: only a whole word; ``lstrip``/``rstrip``:
    the spaces before/after go with the token) are a ValueError when true. A flag that is there must
    be true or false; a missing one counts as false (``special``: true).
    """
    added = data.get("added_tokens") or []
    if not isinstance(added, list):
        raise ValueError(f"added_tokens must be a list, got {type(added).__name__}")
    for tok in added:
        if not isinstance(tok, dict) or not isinstance(tok.get("content"), str) or not isinstance(tok.get("id"), int):
            raise ValueError(f"added_tokens entries need 'id' (int) and 'content' (str), got {tok!r}")
        for flag in ADDED_TOKEN_FLAGS + UNSUPPORTED_ADDED_TOKEN_FLAGS:
            if flag in tok and not isinstance(tok[flag], bool):
                raise ValueError(f"added token {tok['content']!r}: {flag!r} must be true or false, got {tok[flag]!r}")
        for flag in UNSUPPORTED_ADDED_TOKEN_FLAGS:
            if tok.get(flag, False):
                raise ValueError(
                    f"added token {tok['content']!r} sets {flag}=true, which minitransformer does not implement; "
                    "supported: added tokens matched whole, in the raw text (\"normalized\": false) or in the "
                    "normalized text (\"normalized\": true), \"special\" true or false, with single_word, "
                    "lstrip and rstrip false"
                )
    return added


def hf_model_section(data: dict, model_type: str) -> dict:
    """The ``model`` object of a tokenizer.json dict, which must be of type ``model_type`` (ValueError if not)."""
    if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
        raise ValueError("not a tokenizer.json dict: no 'model' object")
    model = data["model"]
    if model.get("type") != model_type:
        raise ValueError(f"expected a {model_type} model, got model type {model.get('type')!r}")
    return model


def check_backend(backend: str) -> None:
    """ValueError unless ``backend`` is one of ``BACKENDS``."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be 'python' or 'hf', got {backend!r}")


MAX_VOCAB_SIZE = 2**20  # the tokenizers trainer allocates in proportion: 2**31 would want ~141 GB and abort


def check_vocab_size(vocab_size: int) -> None:
    """TypeError unless ``vocab_size`` is an int (a bool is not), ValueError above ``MAX_VOCAB_SIZE``;
    each trainer checks the lower end itself."""
    if not isinstance(vocab_size, int) or isinstance(vocab_size, bool):
        raise TypeError(f"vocab_size must be an int, got {type(vocab_size).__name__}")
    if vocab_size > MAX_VOCAB_SIZE:
        raise ValueError(f"vocab_size={vocab_size:,} is above the {MAX_VOCAB_SIZE:,} this library trains "
                         "(the trainer would try to allocate memory in proportion, and abort the process)")


def as_token_id(idx) -> int:
    """An id as a Python int: ints, numpy integers and 0-d integer tensors pass, floats do not (TypeError)."""
    try:
        return operator.index(idx)
    except TypeError:
        raise TypeError(f"token ids must be integers, got {type(idx).__name__}: {idx!r}") from None


def as_training_texts(texts: str | Iterable[str]) -> list[str]:
    """Training input as a list: one str, or an iterable of str (a list of documents, an open file...).

    A non-str item is a TypeError naming its index; no text at all (or only whitespace) is a ValueError.
    """
    if isinstance(texts, str):
        texts = [texts]
    elif not isinstance(texts, Iterable):
        raise TypeError(f"texts must be a str or an iterable of str, got {type(texts).__name__}")
    out = list(texts)
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise TypeError(f"texts[{i}] is {type(t).__name__}, expected str")
    if not any(t.strip() for t in out):
        raise ValueError("no text to train on: texts is empty or only whitespace")
    return out


def check_special_tokens(tokens: Iterable[str] | None) -> list[str]:
    """Validate a list of special tokens: non-empty strings, no duplicates (order is kept)."""
    if tokens is None:
        return []
    if isinstance(tokens, str):
        raise TypeError(f"special_tokens must be a list of str, not a single str ({tokens!r}); wrap it in a list")
    out: list[str] = []
    for tok in tokens:
        if not isinstance(tok, str):
            raise TypeError(f"special tokens must be str, got {type(tok).__name__}: {tok!r}")
        if not tok:
            raise ValueError("a special token cannot be the empty string")
        if tok in out:
            raise ValueError(f"special token {tok!r} is listed twice")
        out.append(tok)
    return out


def special_token_pattern(tokens: Iterable[str]) -> re.Pattern[str] | None:
    """A regex that finds special tokens in text, the longest first where several start at one place.

    With ``<|endoftext|>`` and ``<|endoftext|><|endoftext|>`` both special, the text
    ``<|endoftext|><|endoftext|>`` is one token (leftmost-longest, as ``tokenizers`` matches them).
    The pattern has one capturing group, so ``pattern.split(text)`` alternates plain text (even
    indices) and special tokens (odd indices). None if there are no special tokens.
    """
    tokens = sorted(set(tokens), key=len, reverse=True)
    if not tokens:
        return None
    return re.compile("(" + "|".join(re.escape(t) for t in tokens) + ")")


def split_on_special_tokens(text: str, pattern: re.Pattern[str] | None) -> list[tuple[str, bool]]:
    """Cut ``text`` around the special tokens written in it: [(piece, is_special), ...].

    ``pattern`` is ``special_token_pattern(special_tokens)``: the longest special token wins where
    several start at one place, so a special token is never split by the subword model. Empty pieces
    are dropped. (Encoding uses ``Tokenizer.split_on_added_tokens``, which calls this twice: on the
    raw text, then on the normalized text between the tokens found.)
    """
    if pattern is None:
        return [(text, False)] if text else []
    # split() with one capturing group alternates: text, special, text, special, ...
    return [(piece, i % 2 == 1) for i, piece in enumerate(pattern.split(text)) if piece]


def piece_spans(pieces: Iterable[tuple[str, bool]]) -> Iterator[tuple[int, int, str, bool]]:
    """``(start, end, piece, is_added)`` for the pieces of ``split_on_added_tokens``, positions in the text.

    Only for tokenizers without a normalizer (BPE, char), whose pieces put together are the text.
    """
    start = 0
    for piece, is_added in pieces:
        yield start, start + len(piece), piece, is_added
        start += len(piece)


def cached_word_ids(cache: dict[str, list[int]], word: str, word_to_ids: Callable[[str], list[int]]) -> list[int]:
    """``word_to_ids(word)``, remembered in ``cache``: text repeats its words, so most are looked up once.

    The cache stops growing at 100,000 words, which bounds memory on endless streams.
    """
    ids = cache.get(word)
    if ids is None:
        ids = word_to_ids(word)
        if len(cache) < 100_000:
            cache[word] = ids
    return ids


def pad_sequences(seqs: Sequence[Sequence[int]], pad_id: int, padding_side: str = "right") -> dict[str, torch.Tensor]:
    """Pad lists of ids to the longest; returns ``input_ids`` and ``attention_mask`` (B, T) long."""
    width = max((len(s) for s in seqs), default=0)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        if not s:
            continue
        sl = slice(width - len(s), width) if padding_side == "left" else slice(0, len(s))
        ids[i, sl] = torch.tensor(list(s), dtype=torch.long)
        mask[i, sl] = 1
    return {"input_ids": ids, "attention_mask": mask}


def truncate_longest_first(a: list[int], b: list[int], budget: int) -> tuple[list[int], list[int]]:
    """Cut tokens from the end of the longer of two segments until both fit ``budget`` together."""
    a, b = list(a), list(b)
    budget = max(budget, 0)
    while len(a) + len(b) > budget:
        if len(a) >= len(b):
            a.pop()
        else:
            b.pop()
    return a, b
