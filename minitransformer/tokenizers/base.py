"""What every tokenizer in minitransformer can do, whatever its algorithm.

A tokenizer turns text into a list of integer ids and back. The four algorithms (char, byte-level
BPE, WordPiece, Unigram) differ only in how they split text; batching, padding, truncation,
special tokens and files are the same for all of them and live here, with the input checks they share.
"""
from __future__ import annotations

import json
import operator
import re
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
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
    ``add_tokens`` gives a trained tokenizer new words or markers, with the ids after its vocabulary.
    """

    # ---- what a subclass provides -----------------------------------------------------------
    @abstractmethod
    def encode(self, text: str) -> list[int]:
        """Text -> ids. Special tokens written in the text are kept whole (never split)."""

    @abstractmethod
    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        """Ids -> text."""

    # The model's own vocabulary: ids 0..n-1, what the algorithm splits text into (special tokens
    # given at construction included). Tokens added later follow it (see ``_tokens_after_model``).
    @property
    @abstractmethod
    def _model_size(self) -> int:
        """n, the number of ids of the model's own vocabulary."""

    @abstractmethod
    def _model_token_to_id(self, token: str) -> int | None:
        """The id of an entry of the model's own vocabulary, or None."""

    @abstractmethod
    def _model_id_to_token(self, idx: int) -> str:
        """The model's entry with id ``idx``, 0 <= idx < ``_model_size`` (the caller checks)."""

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

    # The added tokens that are no entry of the model's own vocabulary (what ``add_tokens`` gives a new
    # token; in a tokenizer.json, the ``added_tokens`` missing from ``model.vocab``). Their ids follow
    # the model's: the model's vocabulary size, then one more for each, in this order. The model never
    # produces them (WordPiece and Unigram look pieces up in their own vocabulary only), only the
    # added-token passes of ``split_on_added_tokens`` find them. Both are replaced, never changed in
    # place (the class-level empty values are shared by every instance; an instance gets a plain dict,
    # which pickles, for DataLoader workers).
    _tokens_after_model: tuple[str, ...] = ()
    _ids_after_model: Mapping[str, int] = MappingProxyType({})

    _hf: HFTokenizer | None = None  # built by hf_tokenizer() on first use, then reused
    _normalized_tokens: frozenset[str] = frozenset()  # see the normalized_tokens property
    _lstrip_tokens: frozenset[str] = frozenset()  # see the lstrip_tokens property
    _rstrip_tokens: frozenset[str] = frozenset()  # see the rstrip_tokens property
    _single_word_tokens: frozenset[str] = frozenset()  # see the single_word_tokens property
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
        tokens = self._checked_added_tokens(tokens, "normalized")
        old = self._normalized_tokens, self._added_patterns
        self._normalized_tokens, self._added_patterns = tokens, None
        try:
            self._added_token_patterns()  # refuses two tokens with one normalized spelling
        except ValueError:
            self._normalized_tokens, self._added_patterns = old
            raise
        self._flags_changed()

    @property
    def lstrip_tokens(self) -> frozenset[str]:
        """The added tokens that take the whitespace before them (``"lstrip": true``), such as RoBERTa's
        ``<mask>``. See ``find_added_tokens``; assigning a set checks that each is an added token."""
        return self._lstrip_tokens

    @lstrip_tokens.setter
    def lstrip_tokens(self, tokens: Iterable[str]) -> None:
        self._lstrip_tokens = self._checked_added_tokens(tokens, "lstrip")
        self._flags_changed()

    @property
    def rstrip_tokens(self) -> frozenset[str]:
        """The added tokens that take the whitespace after them (``"rstrip": true``). See ``find_added_tokens``."""
        return self._rstrip_tokens

    @rstrip_tokens.setter
    def rstrip_tokens(self, tokens: Iterable[str]) -> None:
        self._rstrip_tokens = self._checked_added_tokens(tokens, "rstrip")
        self._flags_changed()

    @property
    def single_word_tokens(self) -> frozenset[str]:
        """The added tokens found only as whole words (``"single_word": true``). See ``find_added_tokens``."""
        return self._single_word_tokens

    @single_word_tokens.setter
    def single_word_tokens(self, tokens: Iterable[str]) -> None:
        self._single_word_tokens = self._checked_added_tokens(tokens, "single_word")
        self._flags_changed()

    def _checked_added_tokens(self, tokens: Iterable[str], flag: str) -> frozenset[str]:
        """``tokens`` as a frozenset, ValueError unless each is one of ``special_tokens`` (the added tokens)."""
        if isinstance(tokens, str):
            raise TypeError(f"expected a set of added tokens, not a single str ({tokens!r}); wrap it in a set")
        tokens = frozenset(tokens)
        unknown = sorted(tokens - set(self.special_tokens))
        if unknown:
            raise ValueError(f"{unknown[0]!r} is not an added token of this tokenizer (one of its special_tokens), "
                             f"so it cannot be marked {flag}")
        return tokens

    def _flags_changed(self) -> None:
        """Forget the ``tokenizers`` twin built with the old flags or vocabulary (rebuilt now for ``backend="hf"``)."""
        if self._hf is not None:
            self._hf = None
            if getattr(self, "backend", "python") == "hf":
                self.hf_tokenizer()

    def _normalized_spellings(self, tokens: Iterable[str]) -> tuple[dict[str, str], dict[str, str]]:
        """``(spelling_of_token, token_of_spelling)`` for added tokens marked normalized.

        ValueError if two of them have one normalized spelling (tokenizers would pick one at random).
        A token that normalizes to nothing (e.g. only control characters) has no spelling to look for.
        """
        spellings = {t: self.normalize(t) for t in tokens}
        by_spelling: dict[str, str] = {}
        for token, spelling in spellings.items():
            if not spelling:  # normalizes to nothing: never found
                continue
            if spelling in by_spelling:
                raise ValueError(
                    f"added tokens {by_spelling[spelling]!r} and {token!r} are both marked normalized and both "
                    f"normalize to {spelling!r}, so text spelled {spelling!r} could be either (tokenizers "
                    "picks one at random); keep one of them, or mark one \"normalized\": false"
                )
            by_spelling[spelling] = token
        return spellings, by_spelling

    def _added_token_patterns(self) -> AddedTokenPatterns:
        """The two regexes of ``split_on_added_tokens`` and the normalized spellings, built once."""
        if self._added_patterns is None:
            raw = [t for t in self.special_tokens if t not in self._normalized_tokens]
            spellings, by_spelling = self._normalized_spellings(
                t for t in self.special_tokens if t in self._normalized_tokens)
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
        the second (with a raw ``b]`` and a normalized ``ab``, "ab]" is "a" + ``b]``). Each pass is one
        call of ``find_added_tokens``, which also applies the flags ``lstrip``, ``rstrip`` and
        ``single_word`` -- in the pass that finds the token, so for a normalized token on the normalized
        text. An added token comes back as itself (``NewWord``, however the text spelled it), with True;
        the whitespace it takes is in no piece. The other pieces come back normalized, ready for
        pre-tokenization, with False. Empty pieces are dropped.
        """
        patterns = self._added_token_patterns()
        pieces: list[tuple[str, bool]] = []
        for start, end, token in self._find(text, patterns.raw, None)[0]:
            if token is not None:
                pieces.append((token, True))
                continue
            normalized = self.normalize(text[start:end])
            for part_start, part_end, found in self._find(normalized, patterns.normalized,
                                                          patterns.token_of_spelling)[0]:
                pieces.append((found, True) if found is not None else (normalized[part_start:part_end], False))
        return [(piece, is_added) for piece, is_added in pieces if piece]

    def added_token_spans(self, text: str) -> AddedTokenSpans:
        """``split_on_added_tokens`` with the place of each piece in ``text``, and where it may be cut.

        Only for tokenizers without a normalizer (BPE, char), whose pieces are slices of the text;
        streaming encoders (``encode_iterable``) use it on the text read so far, which may go on.
        ``spans``: ``(start, end, piece, is_added)`` for each piece, in order; an added token's span
        includes the whitespace it takes (so it can be longer than the token). ``uncuttable``: where
        encoding ``text[:cut]`` and ``text[cut:]`` apart (and ``text`` may go on) could find other added
        tokens than encoding ``text`` whole: inside an added token's span; at or inside the spelling of a
        single_word token refused there (after a cut it could start or end a part, which counts as a
        word boundary); and after whitespace, or after a word character, where a token with lstrip, or
        with single_word, could start (it would not see the character before the cut). ``settled``:
        text still to come cannot change the added tokens found before it.
        The last ``longest token - 1`` characters may still become (part of) a token; a token at the
        very end may still take whitespace (rstrip) or be refused (single_word) by the character after
        it. And where a token is not settled, the text before it is not either if normalized tokens
        are looked for in it: if that token is refused, the text between tokens grows, and the
        second pass may find other tokens at its end.
        """
        patterns = self._added_token_patterns()
        spans: list[tuple[int, int, str, bool]] = []
        uncuttable: set[int] = set()
        raw_spans, raw_refused = self._find(text, patterns.raw, None)
        refused = list(raw_refused)
        for start, end, token in raw_spans:
            if token is not None:
                spans.append((start, end, token, True))
                continue
            found_spans, found_refused = self._find(text[start:end], patterns.normalized, patterns.token_of_spelling)
            for part_start, part_end, found in found_spans:
                piece = text[start + part_start:start + part_end] if found is None else found
                spans.append((start + part_start, start + part_end, piece, found is not None))
            refused += [(start + a, start + b) for a, b in found_refused]
        for start, end, _, is_added in spans:
            if is_added:
                uncuttable.update(range(start + 1, end))
        for start, end in refused:
            uncuttable.update(range(start, end + 1))
        # A token right after a cut, found now or in text still to come, would not see the character
        # before the cut: whitespace it should take (lstrip), a word character that refuses it (single_word).
        lstrip_starts = {t[0] for t in self._lstrip_tokens}
        single_word_starts = {t[0] for t in self._single_word_tokens}
        for cut in range(1, len(text) + 1) if lstrip_starts or single_word_starts else ():
            after = text[cut] if cut < len(text) else None  # None: not read yet, could be anything
            before = text[cut - 1]
            if lstrip_starts and is_white_space(before) and (
                    after is None or is_white_space(after) or after in lstrip_starts):
                uncuttable.add(cut)
            if single_word_starts and is_word_char(before) and (after is None or after in single_word_starts):
                uncuttable.add(cut)

        margin = max((len(t) for t in self.special_tokens), default=1) - 1
        settled = len(text) - margin
        boundary = len(text)  # where the text read so far ends, or the first token not settled starts
        looks_ahead = self._rstrip_tokens | self._single_word_tokens
        for start, end, piece, is_added in reversed(spans):
            if is_added and (end > settled or (end == boundary and piece in looks_ahead)):
                boundary = start
                settled = min(settled, start - (margin if self._normalized_tokens else 0))
        return AddedTokenSpans(spans, uncuttable, max(settled, 0))

    def _find(self, text: str, pattern: re.Pattern[str] | None, token_of: Mapping[str, str] | None):
        """``find_added_tokens`` with this tokenizer's flags."""
        return find_added_tokens(text, pattern, token_of, self._lstrip_tokens, self._rstrip_tokens,
                                 self._single_word_tokens)

    def _decoding_spellings(self) -> dict[str, str]:
        """token -> what ``decode`` writes for it, for the added tokens that are not written as they are.

        An added token marked normalized is decoded in its normalized spelling (``NewWord`` as
        "newword" by BERT-uncased), as recent ``tokenizers`` decodes it (0.23.3 does; older versions
        wrote the token as it is).
        """
        return self._added_token_patterns().spelling_of_token

    # ---- adding tokens ----------------------------------------------------------------------
    def add_tokens(self, tokens: Iterable[str], special: bool = False) -> int:
        """Add tokens to the vocabulary, as ``tokenizers``' ``add_tokens`` (``special=True``:
        ``add_special_tokens``) adds them; returns how many got a new id.

        A token the vocabulary lacks gets the next id: ``vocab_size``, then one more for each, in the
        order given (a token listed twice is added once). Grow the model's embedding table to the new
        ``vocab_size`` before training with them. From then on ``encode`` finds the token whole in the
        text before the model splits anything, and ``decode`` writes it, as for the other added tokens:

        - ``special=False`` (a new word, a domain term): the token is marked ``"normalized": true`` and
          ``"special": false``. It is looked for in the normalized text, so with a lowercasing
          normalizer (BERT-uncased) an added ``NewWord`` is found in "newword" and "NEWWORD" as well,
          and decoded as "newword". ``decode(skip_special_tokens=True)`` keeps it, and MLM may mask it.
        - ``special=True`` (a marker such as ``<sql>``): ``"normalized": false`` and ``"special": true``.
          It is found only as written, ``decode(skip_special_tokens=True)`` leaves it out, and it is
          one of ``special_token_ids()``, which MLM never masks.

        A token already in the vocabulary keeps its id and counts as not new. If it is an entry of the
        model's vocabulary that is not an added token yet ("hello" of a WordPiece vocabulary), it
        becomes one: found whole from now on, also inside other words ("othello" is "o", "##t",
        "hello"). An added token named again takes this call's flags, and loses lstrip, rstrip and
        single_word, exactly as in ``tokenizers``: ``add_tokens(["x"], special=True)`` makes an added
        "x" special, and ``add_tokens(["[CLS]"])`` makes ``[CLS]`` an ordinary added token (so do not
        name special tokens in a call without ``special=True``). (The number ``tokenizers`` returns
        also counts such tokens; this one counts new ids only.)

        ``tokens`` must be a list (any iterable) of non-empty strings: a single str, or an item that is
        not a str, is a TypeError; an empty string is a ValueError; so are two tokens marked normalized
        that normalize to the same spelling (text spelled so could be either). Nothing changes then.
        """
        tokens = check_tokens_to_add(tokens)
        if not isinstance(special, bool):
            raise TypeError(f"special must be True or False, got {type(special).__name__}: {special!r}")
        listed = frozenset(tokens)
        normalized = self._normalized_tokens - listed if special else self._normalized_tokens | listed
        self._normalized_spellings(t for t in self.special_tokens + tokens if t in normalized)  # may refuse
        before = self.vocab_size
        self._register_added_tokens(tokens)
        self.non_special_tokens = self.non_special_tokens - listed if special else self.non_special_tokens | listed
        self._normalized_tokens = normalized
        self._lstrip_tokens -= listed
        self._rstrip_tokens -= listed
        self._single_word_tokens -= listed
        self._added_patterns = None
        self._flags_changed()
        return self.vocab_size - before

    def add_special_tokens(self, tokens: Iterable[str]) -> int:
        """``add_tokens(tokens, special=True)``: markers found only as written and left out by
        ``decode(skip_special_tokens=True)``, as ``tokenizers``' ``add_special_tokens`` adds them."""
        return self.add_tokens(tokens, special=True)

    def _register_added_tokens(self, tokens: Sequence[str]) -> None:
        """Make each of ``tokens`` (distinct) an added token; the caller sets their flags.

        A token the vocabulary lacks gets the next id (see ``_tokens_after_model``); every one joins
        ``special_tokens``. What was computed from the old vocabulary is forgotten.
        """
        new = [t for t in tokens if self.token_to_id(t) is None]
        first = self.vocab_size
        self._tokens_after_model = (*self._tokens_after_model, *new)
        self._ids_after_model = {**self._ids_after_model, **{t: first + k for k, t in enumerate(new)}}
        known = set(self.special_tokens)
        self.special_tokens = [*self.special_tokens, *(t for t in tokens if t not in known)]
        self._vocabulary_changed()

    def _vocabulary_changed(self) -> None:
        """Forget what was computed from the old vocabulary: here the regexes of the added tokens;
        subclasses also drop their caches of ids and of the bytes of tokens."""
        self._added_patterns = None

    # ---- ids and tokens: the model's vocabulary, then the tokens added after it ---------------
    @property
    def vocab_size(self) -> int:
        """Number of ids: the model's vocabulary (special tokens included) and the tokens added after it."""
        return self._model_size + len(self._tokens_after_model)

    def token_to_id(self, token: str) -> int | None:
        """The id of a vocabulary entry, or None if it is not in the vocabulary."""
        idx = self._model_token_to_id(token)
        return idx if idx is not None else self._ids_after_model.get(token)

    def id_to_token(self, idx: int) -> str:
        """The vocabulary entry of an id (TypeError if it is no integer, ValueError if out of range)."""
        idx = as_token_id(idx)
        n = self._model_size
        if 0 <= idx < n:
            return self._model_id_to_token(idx)
        if n <= idx < self.vocab_size:
            return self._tokens_after_model[idx - n]
        raise ValueError(f"id {idx} is out of range: it is not in the vocabulary (0..{self.vocab_size - 1})")

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
        """The ``added_tokens`` of ``to_hf_dict``: every added token with its id and five flags, by id
        (as ``tokenizers`` writes them; the tokens after the model's vocabulary come last, in id order)."""
        return sorted((
            {"id": self.token_to_id(t), "content": t, "single_word": t in self._single_word_tokens,
             "lstrip": t in self._lstrip_tokens, "rstrip": t in self._rstrip_tokens,
             "normalized": t in self.normalized_tokens, "special": t not in self.non_special_tokens}
            for t in self.special_tokens
        ), key=lambda entry: entry["id"])


class AddedTokenSpans(NamedTuple):
    """What ``Tokenizer.added_token_spans`` says about a text read so far."""

    spans: list[tuple[int, int, str, bool]]  # (start, end, piece, is_added) for each piece, in order
    uncuttable: set[int]  # where cutting the text in two would change the added tokens found
    settled: int  # the added tokens found before this position stay, whatever text comes after


class AddedTokenPatterns(NamedTuple):
    """What ``Tokenizer.split_on_added_tokens`` looks for (``special_token_pattern`` regexes, None if none)."""

    raw: re.Pattern[str] | None  # the tokens marked "normalized": false, as written
    normalized: re.Pattern[str] | None  # the tokens marked "normalized": true, in their normalized spelling
    token_of_spelling: dict[str, str]  # normalized spelling -> token
    spelling_of_token: dict[str, str]  # token -> normalized spelling


def with_added_token_flags(tok: Tokenizer, data: dict) -> Tokenizer:
    """``tok`` (just read from the tokenizer.json ``data``) given all its added tokens, and their flags.

    ``tok`` was built from the model's vocabulary, with the added tokens it can take at construction.
    Here the others join, in the file's order: those after the model's vocabulary get their ids (the
    ones ``split_added_tokens`` has checked the file gives them), and ``special_tokens`` becomes the
    file's list. Then the flags: which are ``"special": false``, and which set ``normalized``,
    ``lstrip``, ``rstrip`` or ``single_word`` (flags ``check_added_tokens`` has checked; a missing one
    is false, ``special`` true)."""
    added = data.get("added_tokens") or []
    contents = [a["content"] for a in added]
    tok._register_added_tokens(contents)
    tok.special_tokens = contents

    def flagged(flag: str) -> frozenset[str]:
        return frozenset(a["content"] for a in added if a.get(flag, False) is True)

    tok.non_special_tokens = frozenset(a["content"] for a in added if a.get("special", True) is False)
    tok.normalized_tokens = flagged("normalized")
    tok.lstrip_tokens = flagged("lstrip")
    tok.rstrip_tokens = flagged("rstrip")
    tok.single_word_tokens = flagged("single_word")
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
    model = data.get("model") if isinstance(data, dict) else None
    if isinstance(model, dict) and "type" not in model and "vocab" in model:
        model["type"] = legacy_model_type(model)  # a file from an old tokenizers version
    if not isinstance(model, dict) or "type" not in model:
        raise ValueError(f"{path} is not a Hugging Face tokenizer.json: no 'model' with a 'type'")
    return data


def legacy_model_type(model: dict) -> str:
    """The model type of a tokenizer.json written before ``tokenizers`` named it (roberta-base's and
    bert-base-uncased's files, for example, have no ``"type"``), told by its fields as ``tokenizers`` tells
    it: merges make a BPE, a list of [piece, score] a Unigram, a subword prefix or word length a WordPiece,
    anything else a WordLevel."""
    if "merges" in model:
        return "BPE"
    if isinstance(model.get("vocab"), list):
        return "Unigram"
    if "continuing_subword_prefix" in model or "max_input_chars_per_word" in model:
        return "WordPiece"
    return "WordLevel"


# The added-token flags of a tokenizer.json, all implemented (see Tokenizer.split_on_added_tokens).
ADDED_TOKEN_FLAGS = ("special", "normalized", "lstrip", "rstrip", "single_word")


def check_added_tokens(data: dict) -> list[dict]:
    """The ``added_tokens`` of a tokenizer.json, checked: each entry needs an int ``id`` and a str ``content``.

    Of its flags (``ADDED_TOKEN_FLAGS``), a flag that is there must be true or false; a missing one
    counts as false (``special``: true). ``with_added_token_flags`` then gives them to the tokenizer.
    """
    added = data.get("added_tokens") or []
    if not isinstance(added, list):
        raise ValueError(f"added_tokens must be a list, got {type(added).__name__}")
    for tok in added:
        if not isinstance(tok, dict) or not isinstance(tok.get("content"), str) or not isinstance(tok.get("id"), int):
            raise ValueError(f"added_tokens entries need 'id' (int) and 'content' (str), got {tok!r}")
        for flag in ADDED_TOKEN_FLAGS:
            if flag in tok and not isinstance(tok[flag], bool):
                raise ValueError(f"added token {tok['content']!r}: {flag!r} must be true or false, got {tok[flag]!r}")
    return added


def split_added_tokens(data: dict, model_vocab: Mapping[str, int]) -> tuple[list[str], list[str]]:
    """The ``added_tokens`` of a tokenizer.json (checked): ``(in_model, after_model)`` contents, in file order.

    ``model_vocab`` is the model's own vocabulary (token -> id, ids 0..n-1). An added token that is one
    of its entries must have that entry's id. One that is not must have the next id after the model's
    vocabulary and the added tokens before it in the list: n, then n + 1, ... -- what ``add_tokens``
    (ours or ``tokenizers``') writes. Any other id is a ValueError naming the token: a gap, a clash
    with an id the model gives another token, ids out of order. (``tokenizers`` reads such files but
    gives those tokens the next ids anyway, whatever the file says, so a model trained with the
    file's ids would see other ids.) A token listed twice is a ValueError too.
    """
    model_size = len(model_vocab)
    in_model: list[str] = []
    after_model: list[str] = []
    seen: set[str] = set()
    for entry in check_added_tokens(data):
        content, idx = entry["content"], entry["id"]
        if content in seen:
            raise ValueError(f"added token {content!r} is listed twice in added_tokens")
        seen.add(content)
        model_id = model_vocab.get(content)
        if model_id is not None:
            if idx != model_id:
                raise ValueError(f"added token {content!r} has id {idx}, but the model's vocabulary gives it "
                                 f"id {model_id}")
            in_model.append(content)
            continue
        expected = model_size + len(after_model)
        if idx != expected:
            owner = next((t for t, i in model_vocab.items() if i == idx), None) if 0 <= idx < model_size else None
            clash = f" (the model's vocabulary gives id {idx} to {owner!r})" if owner is not None else ""
            raise ValueError(
                f"added token {content!r} has id {idx}{clash}; an added token that is not in the model's "
                f"vocabulary (ids 0..{model_size - 1}) must have the next id after it and the added tokens "
                f"listed before it, here {expected}"
            )
        after_model.append(content)
    return in_model, after_model


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


def check_tokens_to_add(tokens: Iterable[str]) -> list[str]:
    """The tokens of an ``add_tokens`` call as a list, each once (first place kept), all checked first.

    TypeError for a single str (not a list of them), something not iterable, or an item that is not a
    str; ValueError for the empty string.
    """
    if isinstance(tokens, (str, bytes)):
        raise TypeError(f"add_tokens expects a list of str, not a single {type(tokens).__name__} ({tokens!r}); "
                        "wrap it in a list")
    if not isinstance(tokens, Iterable):
        raise TypeError(f"add_tokens expects a list of str, got {type(tokens).__name__}")
    out: list[str] = []
    for i, tok in enumerate(tokens):
        if not isinstance(tok, str):
            raise TypeError(f"tokens to add must be str, got {type(tok).__name__} at index {i}: {tok!r}")
        if not tok:
            raise ValueError(f"tokens to add must be non-empty strings, got the empty string at index {i}")
        out.append(tok)
    return list(dict.fromkeys(out))


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
    are dropped. (Encoding uses ``Tokenizer.split_on_added_tokens``, which cuts with ``find_added_tokens``
    twice, on the raw text and on the normalized text between the tokens found, and applies the flags
    that make a token take whitespace or only whole words; training cuts with this.)
    """
    if pattern is None:
        return [(text, False)] if text else []
    # split() with one capturing group alternates: text, special, text, special, ...
    return [(piece, i % 2 == 1) for i, piece in enumerate(pattern.split(text)) if piece]


# Unicode's White_Space property (PropList.txt): what ``\s`` means in the regex engine of ``tokenizers``,
# so what lstrip/rstrip take (and where GPT-2's regex cuts, see bpe.py). Python's str.isspace() is
# wider: it also counts U+001C..U+001F.
WHITE_SPACE = [(0x09, 0x0D), (0x20, 0x20), (0x85, 0x85), (0xA0, 0xA0), (0x1680, 0x1680), (0x2000, 0x200A),
               (0x2028, 0x2029), (0x202F, 0x202F), (0x205F, 0x205F), (0x3000, 0x3000)]
_WHITE_SPACE_CHARS = frozenset(chr(cp) for a, b in WHITE_SPACE for cp in range(a, b + 1))

# Symbols (category So) that Unicode counts as alphabetic, so as word characters: circled and
# squared Latin letters ("Ⓐ", "🄰").
_ALPHABETIC_SYMBOLS = ((0x24B6, 0x24E9), (0x1F130, 0x1F149), (0x1F150, 0x1F169), (0x1F170, 0x1F189))


def is_white_space(char: str) -> bool:
    """Whether a character is Unicode White_Space: spaces (also no-break, ideographic), tabs, line breaks.
    Zero-width spaces are not."""
    return char in _WHITE_SPACE_CHARS


def is_word_char(char: str) -> bool:
    """Whether a character is a word character as ``\\w`` of the regex engine of ``tokenizers`` has it.

    That is Unicode's definition (UTS #18): letters (categories L*), marks (M*: accents, vowel signs),
    decimal digits (Nd), letter numbers (Nl: "Ⅷ"), connector punctuation (Pc: "_", "‿"), the zero-width
    (non-)joiners U+200C and U+200D, and the few alphabetic symbols above. Not other numbers (No: "²",
    "½"), other punctuation, symbols, whitespace. Python's own ``\\w`` differs (it counts "²", not marks).
    ``tokenizers`` has newer Unicode tables: characters assigned after Python's ``unicodedata`` version
    are no word characters here and may be there.
    """
    category = unicodedata.category(char)
    if category[0] in "LM" or category in ("Nd", "Nl", "Pc") or char in "\u200c\u200d":
        return True
    return any(a <= ord(char) <= b for a, b in _ALPHABETIC_SYMBOLS)


def find_added_tokens(
    text: str,
    pattern: re.Pattern[str] | None,
    token_of: Mapping[str, str] | None = None,
    lstrip: frozenset[str] = frozenset(),
    rstrip: frozenset[str] = frozenset(),
    single_word: frozenset[str] = frozenset(),
) -> tuple[list[tuple[int, int, str | None]], list[tuple[int, int]]]:
    """Cut ``text`` at the added tokens that ``pattern`` finds in it: ``(spans, refused)``.

    ``spans`` covers the text in order: ``(start, end, token)`` for an added token, ``(start, end, None)``
    for the text between tokens. ``pattern`` (``special_token_pattern``) finds spellings left to right,
    the longest where several start at one place, never two that overlap; ``token_of`` maps a spelling
    to its token (None: the spelling is the token). Three flags of a tokenizer.json change what a
    token takes, exactly as in ``tokenizers``; each is a set of the tokens that have it:

    - ``lstrip``: the token also takes the whitespace right before it. RoBERTa's ``<mask>`` has it, and
      this is why: GPT-2-style BPE spells a word together with the space before it (" world" is the one
      token ``Ġworld``), so in "Hello <mask>!" the mask stands for " world", space included. Without
      lstrip the space would be left over as a token of its own ("Hello", "Ġ", "<mask>", "!"), a sequence
      the model never saw in pre-training; with it, the text is "Hello", "<mask>", "!", just as "Hello
      world!" is "Hello", "Ġworld", "!".
    - ``rstrip``: the token takes the whitespace right after it ("<mask>  is" -> "<mask>", "is").
    - ``single_word``: the token is found only as a whole word: not where a word character (a letter,
      digit, mark or "_", see ``is_word_char``) stands right before or right after it. An added "ab" is
      found in "ab", "ab!" and "(ab)", not in "abc", "cab", "ab_" or "1ab". A spelling refused is left
      as ordinary text and listed in ``refused`` as ``(start, end)``.

    The details, all as ``tokenizers`` does them: whitespace is Unicode's White_Space (``is_white_space``:
    spaces, tabs, newlines, no-break and ideographic spaces; not zero-width spaces), and a token takes the
    whole run of it, but never text an earlier token took (in "<a> <m>" with rstrip ``<a>`` and lstrip
    ``<m>``, ``<a>`` has the space). The whitespace a token takes belongs to no piece of text, so it is
    gone: ``decode`` writes the token alone ("Hello<mask>!"). single_word is decided first, on the spelling
    as found, and only the text next to it counts: at the start or end of ``text`` is a word boundary
    (in the second pass of ``Tokenizer.split_on_added_tokens`` that includes next to a token of the first).
    The search goes on after each spelling found, taken or refused: with a single_word "ab" and a plain
    "b", "xab" is all text (the "b" inside the refused "ab" is not looked at again). And a token may be
    found inside whitespace that an rstrip token before it took (if it starts with whitespace itself):
    the two spans then overlap, as they do in ``tokenizers``; unless the token has lstrip, which leaves
    it nothing (``tokenizers`` drops it, or, if it ends before that whitespace does, fails with "bad
    split"; here it is dropped too).
    """
    spans: list[tuple[int, int, str | None]] = []
    refused: list[tuple[int, int]] = []
    done = 0  # the end of the last token taken: text before it is settled
    for match in pattern.finditer(text) if pattern is not None else ():
        start, end = match.span()
        token = match.group() if token_of is None else token_of[match.group()]
        if token in single_word and (
            (start > 0 and is_word_char(text[start - 1])) or (end < len(text) and is_word_char(text[end]))
        ):
            refused.append((start, end))
            continue
        if token in lstrip:
            while start > done and is_white_space(text[start - 1]):
                start -= 1
            start = max(start, done)  # (only after an rstrip token that took the whitespace this one starts with)
        if token in rstrip:
            while end < len(text) and is_white_space(text[end]):
                end += 1
        if end <= start:  # all inside whitespace an rstrip token took (see the docstring)
            continue
        if done < start:
            spans.append((done, start, None))
        spans.append((start, end, token))
        done = end
    if done < len(text):
        spans.append((done, len(text), None))
    return spans, refused


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
