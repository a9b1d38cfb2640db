"""Byte-level BPE, the tokenizer of GPT-2 (Radford et al. 2019, §2.2 "Input Representation").

Byte Pair Encoding (Sennrich et al. 2016, §3.2) starts from single symbols and learns *merges*: it
repeatedly finds the most frequent adjacent pair of symbols in the training words and fuses the pair
into a new symbol. Encoding a word replays the learned merges, earliest-learned first.

GPT-2 runs BPE on the UTF-8 *bytes* of the text, so a base alphabet of 256 symbols encodes every
string and nothing is ever "unknown". Two details of GPT-2's release are kept exactly, so that GPT-2's
published files (``encoder.json``, ``vocab.bpe``) work here and our files work in Hugging Face
``tokenizers``:

- each byte is written as a printable character (``bytes_to_unicode``): a space is ``Ġ``, a newline
  ``Ċ``; a token is the string of those characters (``" world"`` is ``"Ġworld"``);
- the text is first cut into "words" by a regular expression (``pretokenize``), so that merges never
  cross a letter/digit/punctuation boundary and a space sticks to the start of the word after it.

The file reads top to bottom: byte table -> pre-tokenization -> training -> the tokenizer class.
"""
from __future__ import annotations

import functools
import heapq
import itertools
import json
import re
import unicodedata
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

from minitransformer.tokenizers.base import (
    BACKENDS,  # noqa: F401  (still importable as bpe.BACKENDS)
    GPT_SPECIAL_TOKENS,
    WHITE_SPACE,
    Tokenizer,
    as_token_id,
    check_backend,
    check_special_tokens,
    check_vocab_size,
    is_white_space,
    special_token_pattern,
    split_added_tokens,
    split_on_special_tokens,
    with_added_token_flags,
)

# ---- bytes as printable characters ----------------------------------------------------------------

@functools.cache
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's table from the 256 byte values to 256 printable characters.

    Bytes that are already printable (``!``..``~``, ``¡``..``¬``, ``®``..``ÿ``) stand for themselves;
    the other 68 (space, control bytes, ...) are given the characters from U+0100 on, in byte order.
    So every token is a readable string without spaces or control characters. Sorted by code point,
    the 256 characters come in GPT-2's order (ids 0-255 of its ``encoder.json``), which is also the
    order ``tokenizers`` gives them when it trains.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in printable}
    shifted = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + shifted)
            shifted += 1
    return dict(sorted(table.items()))


@functools.cache
def unicode_to_bytes() -> dict[str, int]:
    """The inverse of ``bytes_to_unicode``."""
    return {c: b for b, c in bytes_to_unicode().items()}


def to_byte_chars(text: str) -> str:
    """A string as GPT-2's byte characters: ``"héllo world"`` -> ``"hÃ©lloĠworld"``."""
    table = bytes_to_unicode()
    return "".join(table[b] for b in text.encode("utf-8"))


# ---- pre-tokenization -----------------------------------------------------------------------------
# GPT-2's pattern (its encoder.py, and tokenizers' ByteLevel pre-tokenizer) is
#     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
# i.e. English contractions, runs of letters, of digits, of anything else, each with at most one
# leading space, and runs of whitespace -- where a run followed by a word leaves its last space to it.
# The standard library's `re` has no \p{...} classes, so they are spelled out from `unicodedata`:
# L = every letter category, N = every number category, \s = the Unicode White_Space set (what the
# regex engine inside `tokenizers` uses; Python's own \s would also match \x1c-\x1f; the ranges,
# WHITE_SPACE, live in base.py, where they also say what added tokens with lstrip/rstrip take).
# tests/tokenizers/test_bpe.py checks every assigned code point against `tokenizers`.


def _char_class(ranges: Iterable[tuple[int, int]]) -> str:
    """The inside of a regex ``[...]`` for inclusive code point ranges."""
    return "".join(f"\\U{a:08x}" if a == b else f"\\U{a:08x}-\\U{b:08x}" for a, b in ranges)


def _letter_and_number_ranges() -> dict[str, list[tuple[int, int]]]:
    """Code point ranges of the letters ("L": Lu, Ll, Lt, Lm, Lo) and numbers ("N": Nd, Nl, No)."""
    ranges: dict[str, list[tuple[int, int]]] = {"L": [], "N": []}
    start = 0
    categories = map(unicodedata.category, map(chr, range(0x110000)))
    for major, run in itertools.groupby(categories, key=lambda category: category[0]):
        length = sum(1 for _ in run)
        if major in ranges:
            ranges[major].append((start, start + length - 1))
        start += length
    return ranges


@functools.cache
def gpt2_pattern() -> re.Pattern[str]:
    """GPT-2's pre-tokenization regex, compiled once (a fraction of a second) on first use."""
    classes = _letter_and_number_ranges()
    s, l, n = _char_class(WHITE_SPACE), _char_class(classes["L"]), _char_class(classes["N"])
    return re.compile(
        rf"'s|'t|'re|'ve|'m|'ll|'d| ?[{l}]+| ?[{n}]+| ?[^{s}{l}{n}]+|[{s}]+(?![^{s}])|[{s}]+"
    )


def pretokenize(text: str) -> list[str]:
    """Cut text into GPT-2's "words": ``"Hello  world!"`` -> ``["Hello", " ", " world", "!"]``."""
    return gpt2_pattern().findall(text)


# ---- training -------------------------------------------------------------------------------------

def _merge_in_word(word: list[int], a: int, b: int, new_id: int) -> list[tuple[tuple[int, int], int]]:
    """Replace every ``a b`` in ``word`` (in place, left to right) by ``new_id``.

    Returns the changes to the pair counts of this word: ``(x, a)`` becomes ``(x, new_id)`` before
    each merge, ``(b, y)`` becomes ``(new_id, y)`` after it. The count of ``(a, b)`` itself is left
    alone, exactly as ``tokenizers`` does (it matters only for which queue entries look stale).
    """
    changes = []
    i = 0
    while i < len(word) - 1:
        if word[i] == a and word[i + 1] == b:
            if i > 0:
                changes += [((word[i - 1], a), -1), ((word[i - 1], new_id), +1)]
            word[i:i + 2] = [new_id]
            if i < len(word) - 1:
                changes += [((b, word[i + 1]), -1), ((new_id, word[i + 1]), +1)]
        i += 1
    return changes


def learn_bpe(
    word_counts: Mapping[str, int],
    vocab_size: int,
    special_tokens: Sequence[str] = (),
    min_frequency: int = 0,
) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Learn byte-level BPE merges from pre-tokenized words and their counts.

    The vocabulary is: the special tokens, the 256 byte characters sorted by code point, then one
    token per merge, until ``vocab_size`` entries (or no pair occurs ``min_frequency`` times).

    Each step merges the most frequent adjacent pair; equal counts go to the pair whose ids are
    smallest, ``(first id, second id)`` compared as a tuple -- the rule of ``tokenizers``' BpeTrainer,
    whose merges and vocabulary this reproduces exactly. Counting is incremental (the heart of a fast
    trainer): pair counts are computed once, and a merge only visits the words that contain the
    merged pair, adding and subtracting the counts of the pairs it creates and destroys. The most
    frequent pair comes from a heap whose entries may be stale: a popped entry whose count no longer
    matches is pushed back with the current count ("lazy invalidation").
    """
    id_to_token = list(special_tokens)
    id_to_token += [c for c in sorted(bytes_to_unicode().values()) if c not in special_tokens]
    token_to_id = {t: i for i, t in enumerate(id_to_token)}
    byte_ids = [token_to_id[c] for c in bytes_to_unicode().values()]

    # Words as lists of symbol ids, and how often each word occurs.
    words = [[byte_ids[b] for b in word.encode("utf-8")] for word in word_counts]
    counts = list(word_counts.values())

    # Every adjacent pair: its count, and the words it occurs in.
    pair_counts: dict[tuple[int, int], int] = defaultdict(int)
    where: dict[tuple[int, int], set[int]] = defaultdict(set)
    for i, word in enumerate(words):
        for pair in itertools.pairwise(word):
            pair_counts[pair] += counts[i]
            where[pair].add(i)

    # Max-heap by count via negated counts; ties pop the smallest pair. The serial number only keeps
    # heapq from ever comparing two sets of word indices.
    serial = itertools.count()
    heap = [(-pair_counts[pair], pair, next(serial), pos) for pair, pos in where.items()]
    heapq.heapify(heap)

    merges: list[tuple[int, int]] = []
    while len(token_to_id) < vocab_size and heap:
        neg_count, pair, _, pos = heapq.heappop(heap)
        if -neg_count != pair_counts[pair]:  # stale: re-queue with the current count
            heapq.heappush(heap, (-pair_counts[pair], pair, next(serial), pos))
            continue
        if -neg_count < max(1, min_frequency):
            break
        a, b = pair
        new_token = id_to_token[a] + id_to_token[b]
        if new_token not in token_to_id:  # two different merges can spell the same string
            token_to_id[new_token] = len(id_to_token)
            id_to_token.append(new_token)
        new_id = token_to_id[new_token]
        merges.append(pair)

        # Merge in the words that hold the pair; collect the words where a new pair appeared.
        grown: dict[tuple[int, int], set[int]] = defaultdict(set)
        for i in pos:
            for changed, delta in _merge_in_word(words[i], a, b, new_id):
                pair_counts[changed] += delta * counts[i]
                if delta > 0:
                    grown[changed].add(i)
        for changed, changed_pos in grown.items():
            if pair_counts[changed] > 0:
                heapq.heappush(heap, (-pair_counts[changed], changed, next(serial), changed_pos))

    # A pair merged twice (possible after the same string was spelled two ways) keeps its last rank.
    rank = {pair: r for r, pair in enumerate(merges)}
    ordered = sorted(rank, key=rank.__getitem__)
    return token_to_id, [(id_to_token[a], id_to_token[b]) for a, b in ordered]


def _documents(texts: str | Iterable[str], special: re.Pattern[str] | None) -> Iterator[str]:
    """The pieces of text training sees: each item of ``texts`` (one document each), cut at special tokens.

    Special tokens in training text are boundaries, never material for merges.
    """
    if isinstance(texts, str):
        texts = [texts]
    elif isinstance(texts, (bytes, bytearray)) or not isinstance(texts, Iterable):
        raise TypeError(f"texts must be a str or an iterable of str, got {type(texts).__name__}")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts must contain only str, item {i} is {type(text).__name__}")
        yield from (piece for piece, is_special in split_on_special_tokens(text, special) if not is_special)


# ---- the tokenizer --------------------------------------------------------------------------------

class BPETokenizer(Tokenizer):
    """Byte-level BPE with GPT-2's pre-tokenization; the same ids as Hugging Face ``tokenizers``.

    ``vocab`` maps token strings (in byte characters, ``"Ġworld"``) to ids and must hold all 256 byte
    characters; ``merges`` lists the learned pairs in the order they were learned (their rank).
    Special tokens (``<|endoftext|>``) are found in the text first and never split; where several
    overlap, the longest wins. ``backend="hf"`` encodes through ``tokenizers`` (fast, same ids).
    Tokens added after the vocabulary (``add_tokens``, or a tokenizer.json's added tokens missing from
    its ``model.vocab``) take the ids after it; the file keeps them out of ``model.vocab``.
    """

    def __init__(
        self,
        vocab: Mapping[str, int],
        merges: Iterable[tuple[str, str]],
        special_tokens: Iterable[str] | None = None,
        *,
        backend: str = "python",
        add_prefix_space: bool = False,
        ignore_merges: bool = False,
    ):
        self.special_tokens = check_special_tokens(special_tokens)
        self._vocab = dict(vocab)
        self._id_to_token = {i: t for t, i in self._vocab.items()}
        if len(self._id_to_token) != len(self._vocab) or any(
            not isinstance(i, int) or isinstance(i, bool) or i < 0 for i in self._id_to_token
        ):
            raise ValueError("vocab ids must be distinct non-negative integers")
        missing = [c for c in bytes_to_unicode().values() if c not in self._vocab]
        if missing:
            raise ValueError(f"vocab lacks {len(missing)} of the 256 byte characters (e.g. {missing[0]!r}); "
                             "a byte-level BPE vocabulary must contain them all")
        for tok in self.special_tokens:
            if tok not in self._vocab:
                raise ValueError(f"special token {tok!r} is not in the vocabulary")
        byte_symbols = set(bytes_to_unicode().values())
        ids = sorted(self._id_to_token)
        if ids != list(range(len(ids))):  # a gap would make vocab_size count ids that do not exist
            raise ValueError(f"vocab ids must be 0..{len(ids) - 1} without gaps, got up to {ids[-1] if ids else None}")
        self._merges: list[tuple[str, str]] = []
        self._merge_ranks: dict[tuple[int, int], tuple[int, int]] = {}  # (id, id) -> (rank, merged id)
        for rank, pair in enumerate(merges):
            if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and all(isinstance(p, str) for p in pair)):
                raise ValueError(f"merge {rank} must be a pair of str, got {pair!r}")
            a, b = pair
            for part in (a, b, a + b):
                if part not in self._vocab:
                    raise ValueError(f"merge {rank} ({a!r}, {b!r}): {part!r} is not in the vocabulary")
            self._merges.append((a, b))
            self._merge_ranks[self._vocab[a], self._vocab[b]] = (rank, self._vocab[a + b])
        # A special token that ordinary text can also produce (a byte's symbol such as "Ġ", or a merge
        # such as "Ġthe") would share its id with that text: decoding could not tell them apart.
        ordinary = byte_symbols | {a + b for a, b in self._merges}
        clash = [t for t in self.special_tokens if t in ordinary]
        if clash:
            raise ValueError(f"special token {clash[0]!r} is also an ordinary token of the vocabulary "
                             "(a byte's symbol or a merge); choose a string text cannot produce, such as '<|x|>'")
        self.add_prefix_space = bool(add_prefix_space)
        self.ignore_merges = bool(ignore_merges)

        self._byte_ids = [self._vocab[c] for c in bytes_to_unicode().values()]  # byte value -> id
        self._cache: dict[str, list[int]] = {}
        self._token_bytes: dict[int, bytes] | None = None
        self._hf = None
        self.backend = backend

    # ---- construction ---------------------------------------------------------------------------
    @classmethod
    def train(
        cls,
        texts: str | Iterable[str],
        vocab_size: int,
        special_tokens: Iterable[str] | None = tuple(GPT_SPECIAL_TOKENS),
        backend: str = "python",
        min_frequency: int = 2,
    ) -> BPETokenizer:
        """Learn a vocabulary of ``vocab_size`` tokens (specials and the 256 bytes included).

        ``texts``: one str, or an iterable of str read once (each item is a separate document; a
        file object gives one document per line). Special tokens in the text are cut out before
        counting. Pairs seen fewer than ``min_frequency`` times are never merged; if the text runs
        out of such pairs first, training stops early with a warning.

        ``backend="python"`` runs ``learn_bpe`` above; ``backend="hf"`` runs the same algorithm in
        ``tokenizers`` (BpeTrainer, byte-level) -- same merges, many times faster -- and the
        tokenizer then also encodes through ``tokenizers``.
        """
        specials = check_special_tokens(special_tokens)
        check_backend(backend)
        check_vocab_size(vocab_size)
        base = 256 + sum(1 for t in specials if t not in bytes_to_unicode().values())
        if vocab_size < base:
            raise ValueError(f"vocab_size={vocab_size} is below the base alphabet: 256 bytes + "
                             f"{len(specials)} special tokens = {base}")
        if not isinstance(min_frequency, int) or min_frequency < 0:
            raise ValueError(f"min_frequency must be a non-negative int, got {min_frequency!r}")
        documents = list(_documents(texts, special_token_pattern(specials)))
        if not any(doc.strip() for doc in documents):  # would only warn, and give the bare 256 bytes
            raise ValueError("no text to train on (empty, whitespace or special tokens only)")

        if backend == "python":
            word_counts: Counter[str] = Counter()
            for doc in documents:
                word_counts.update(pretokenize(doc))
            vocab, merges = learn_bpe(word_counts, vocab_size, specials, min_frequency)
            tok = cls(vocab, merges, specials)
        else:
            from tokenizers import Tokenizer as HFTokenizer
            from tokenizers import models, pre_tokenizers, trainers

            hf = HFTokenizer(models.BPE())
            hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
            trainer = trainers.BpeTrainer(
                vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=specials,
                initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
            )
            hf.train_from_iterator(documents, trainer=trainer)
            tok = cls.from_hf_dict(json.loads(hf.to_str()))
            tok._hf = hf  # already set up for encoding (pre-tokenizer, model, special tokens)
            tok.backend = "hf"
        if tok.vocab_size < vocab_size:
            warnings.warn(f"BPE training stopped at {tok.vocab_size} tokens, below vocab_size={vocab_size}: "
                          f"no pair left that occurs at least {max(1, min_frequency)} times", stacklevel=2)
        return tok

    @classmethod
    def from_gpt2(
        cls,
        encoder_json: str | Path,
        vocab_bpe: str | Path,
        special_tokens: Iterable[str] | None = None,
        backend: str = "python",
    ) -> BPETokenizer:
        """GPT-2's published tokenizer: ``encoder.json`` (token -> id) and ``vocab.bpe`` (the merges).

        ``special_tokens=None`` means GPT-2's own ``["<|endoftext|>"]``; a list replaces it, and tokens
        in it that are not in the vocabulary are appended with the next free ids.
        """
        encoder_json, vocab_bpe = Path(encoder_json), Path(vocab_bpe)
        for path in (encoder_json, vocab_bpe):
            if not path.is_file():
                raise FileNotFoundError(f"GPT-2 tokenizer file not found: {path}")
        try:
            vocab = json.loads(encoder_json.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{encoder_json} is not GPT-2's encoder.json (not UTF-8 JSON): {e}") from None
        if not isinstance(vocab, dict) or not all(isinstance(i, int) for i in vocab.values()):
            raise ValueError(f"{encoder_json} is not GPT-2's encoder.json: expected an object of token -> id")
        try:
            lines = vocab_bpe.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as e:
            raise ValueError(f"{vocab_bpe} is not GPT-2's vocab.bpe (not UTF-8): {e}") from None
        merges = []
        for lineno, line in enumerate(lines, 1):
            if not line or (lineno == 1 and line.startswith("#version")):
                continue
            parts = line.split(" ")
            if len(parts) != 2:
                raise ValueError(f"{vocab_bpe}, line {lineno}: expected two tokens separated by a space, got {line!r}")
            merges.append((parts[0], parts[1]))
        specials = GPT_SPECIAL_TOKENS if special_tokens is None else check_special_tokens(special_tokens)
        for tok in specials:
            if tok not in vocab:
                vocab[tok] = max(vocab.values(), default=-1) + 1
        try:
            return cls(vocab, merges, specials, backend=backend)
        except ValueError as e:
            raise ValueError(f"{encoder_json} / {vocab_bpe}: {e}") from None

    # ---- the backend ----------------------------------------------------------------------------
    @property
    def backend(self) -> str:
        """"python" (the readable reference) or "hf" (encode through ``tokenizers``; same ids)."""
        return self._backend

    @backend.setter
    def backend(self, value: str) -> None:
        check_backend(value)
        self._backend = value
        if value == "hf":
            self.hf_tokenizer()  # build it now, so that encode can use self._hf directly

    # ---- vocabulary -----------------------------------------------------------------------------
    @property
    def _model_size(self) -> int:
        return len(self._id_to_token)  # ids 0..n-1, no gaps (checked in __init__)

    @property
    def vocab(self) -> dict[str, int]:
        """Token string (byte characters) -> id, special tokens and tokens added after the model's
        vocabulary included (as ``tokenizers``' ``get_vocab()``). A copy."""
        return {**self._vocab, **self._ids_after_model}

    @property
    def merges(self) -> list[tuple[str, str]]:
        """The learned pairs, earliest (highest priority) first. A copy."""
        return list(self._merges)

    def _model_token_to_id(self, token: str) -> int | None:
        return self._vocab.get(token)

    def _model_id_to_token(self, idx: int) -> str:
        return self._id_to_token[idx]

    def _vocabulary_changed(self) -> None:
        super()._vocabulary_changed()
        self._token_bytes = None  # new ids to give bytes
        self._cache.clear()  # (only model ids, which adding tokens never changes; cleared all the same)

    # ---- encoding -------------------------------------------------------------------------------
    def _bpe(self, word: str) -> list[int]:
        """The ids of one pre-tokenized word: start from its bytes, apply merges by rank."""
        ids = self._cache.get(word)
        if ids is not None:
            return ids
        if self.ignore_merges and (whole := self._vocab.get(to_byte_chars(word))) is not None:
            ids = [whole]
        else:
            ids = [self._byte_ids[b] for b in word.encode("utf-8")]
        ranks = self._merge_ranks
        no_merge = (len(ranks), -1)
        while len(ids) > 1:
            # The adjacent pair learned earliest is merged first, everywhere in the word.
            pair = min(itertools.pairwise(ids), key=lambda p: ranks.get(p, no_merge))
            if pair not in ranks:
                break
            merged_id = ranks[pair][1]
            out, i = [], 0
            while i < len(ids):
                if i < len(ids) - 1 and (ids[i], ids[i + 1]) == pair:
                    out.append(merged_id)
                    i += 2
                else:
                    out.append(ids[i])
                    i += 1
            ids = out
        if len(self._cache) >= 100_000:  # keep memory bounded on endless streams
            self._cache.clear()
        self._cache[word] = ids
        return ids

    def _encode_python(self, text: str, continues_segment: bool = False) -> list[int]:
        ids: list[int] = []
        # No normalizer: "normalized" added tokens differ from the others only in being looked for
        # second, in the text the first pass left (see Tokenizer.split_on_added_tokens).
        for k, (piece, is_special) in enumerate(self.split_on_added_tokens(text)):
            if is_special:
                ids.append(self.token_to_id(piece))
                continue
            if self.add_prefix_space and not piece.startswith(" ") and not (k == 0 and continues_segment):
                piece = " " + piece
            for word in pretokenize(piece):
                ids.extend(self._bpe(word))
        return ids

    def encode(self, text: str) -> list[int]:
        """Text -> ids. Special tokens written in the text become their ids, never split."""
        if not isinstance(text, str):
            raise TypeError(f"encode expects a str, got {type(text).__name__}")
        if self._backend == "hf":
            return self._hf.encode(text, add_special_tokens=False).ids
        return self._encode_python(text)

    def _encode_chunk(self, text: str, continues_segment: bool) -> list[int]:
        if self._backend == "hf" and not (continues_segment and self.add_prefix_space):
            return self._hf.encode(text, add_special_tokens=False).ids
        return self._encode_python(text, continues_segment)

    def _safe_cut(self, text: str, continues_segment: bool = False) -> tuple[int, bool]:
        """A place to cut ``text`` so that no text appended later changes the ids before the cut.

        Returns ``(cut, ends_with_special)``; ``cut`` is 0 if there is none yet. Two things can
        reach across a cut. Added tokens: one may be incomplete, text still to come may change which
        token matches (it may complete a longer one, or one that the first pass of
        ``split_on_added_tokens`` takes before a "normalized" one it overlaps), whether one that looks
        at the character after it matches (single_word) or how much whitespace it takes (rstrip). So
        only the added tokens before ``added_token_spans``' ``settled`` position are trusted (the
        longest added token's length, less one, before the end), no cut is made at or after one that is not,
        nor where ``added_token_spans`` says cutting would change the tokens found (inside a token's
        whitespace, at a single_word spelling refused inside a word). And GPT-2's regex decides
        where a word ends by looking at what follows (``"hello   "`` + ``"world"`` splits as
        ``"hello", "  ", " world"``). A cut right after a word that does not end in whitespace is safe
        (the regex never looks further than 3 characters ahead, so only such words that end 3
        characters before the trusted end are known to be final); the quickest to find is a
        non-space character followed by a whitespace character. Such a cut also keeps whole the
        whitespace that a token after it takes (lstrip): all of it comes after the cut. With
        ``add_prefix_space`` the regex must see the space that encoding will put before a segment
        (``"'send"`` is ``"'s", "end"`` but ``" 'send"`` is ``" '", "send"``); ``continues_segment``
        says the text has none.
        """
        spans, uncuttable, trusted_end = self.added_token_spans(text)
        # text[:start] ends with a trusted added token (or start is 0)
        start = max((end for _, end, _, is_added in spans if is_added and end <= trusted_end), default=0)
        for cut in range(trusted_end - 1, start, -1):
            if is_white_space(text[cut]) and not is_white_space(text[cut - 1]) and cut not in uncuttable:
                return cut, False
        # No whitespace boundary (e.g. a long line of CJK text): ask the regex itself.
        cut = start
        segment = text[start:]
        shift = start  # where ``segment`` sits in ``text``
        if self.add_prefix_space and not segment.startswith(" ") and not (start == 0 and continues_segment):
            segment, shift = " " + segment, start - 1  # as _encode_python will see it
        for word in gpt2_pattern().finditer(segment):
            end = word.end() + shift
            if end + 3 > trusted_end:
                break
            if end > start and not is_white_space(text[end - 1]) and end not in uncuttable:
                cut = end
        if cut in uncuttable:  # (cut == start: right after a trusted token, but a cut there is not safe)
            return 0, False
        return cut, cut == start and start > 0

    def encode_iterable(self, lines: Iterable[str], chunk_chars: int = 1 << 16) -> Iterator[int]:
        """Encode a stream of text pieces (a file's lines, any cut of a text) in bounded memory.

        Yields exactly ``encode("".join(lines))``. Encoding piece by piece would not: GPT-2's regex
        joins whitespace across newlines, and a special token may straddle two pieces. So pieces are
        collected until about ``chunk_chars`` characters, encoded up to the last safe cut
        (``_safe_cut``), and the unfinished tail is carried into the next round. Memory stays
        bounded unless the text has no safe cut at all for a long stretch (megabytes without a
        single word boundary), which is then held until one comes.
        """
        if isinstance(lines, str):
            lines = [lines]
        buffer = ""
        continues_segment = False  # True when the buffer starts in the middle of a text segment
        next_try = chunk_chars
        for piece in lines:
            if not isinstance(piece, str):
                raise TypeError(f"encode_iterable expects str pieces, got {type(piece).__name__}")
            buffer += piece
            if len(buffer) < next_try:
                continue
            cut, ends_with_special = self._safe_cut(buffer, continues_segment)
            if cut == 0:  # nothing safe yet: wait for twice as much text (keeps the work linear)
                next_try = 2 * len(buffer)
                continue
            yield from self._encode_chunk(buffer[:cut], continues_segment)
            continues_segment = not ends_with_special
            buffer = buffer[cut:]
            next_try = chunk_chars
        if buffer:
            yield from self._encode_chunk(buffer, continues_segment)

    # ---- decoding -------------------------------------------------------------------------------
    def _bytes_of(self, idx: int) -> bytes:
        """The bytes an id stands for.

        As in ``tokenizers``' ByteLevel decoder, the same rule for every entry, special tokens too:
        a token written entirely in the byte alphabet stands for those bytes (``"<|endoftext|>"`` is
        its own text, ``"Ġ"`` a space); any other stays as written (its UTF-8 text).
        """
        if self._token_bytes is None:
            table = unicode_to_bytes()
            self._token_bytes = {}
            for i, token in enumerate(map(self.id_to_token, range(self.vocab_size))):
                if not all(c in table for c in token):  # e.g. "<|中|>", or "[a b]" (a space is "Ġ")
                    self._token_bytes[i] = token.encode("utf-8")
                else:
                    self._token_bytes[i] = bytes(table[c] for c in token)
        try:
            return self._token_bytes[idx]
        except KeyError:
            raise ValueError(f"id {idx} is not in the vocabulary (0..{self.vocab_size - 1})") from None

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        """Ids -> text. Byte sequences that are not valid UTF-8 (a character cut between tokens)
        become U+FFFD, as in ``tokenizers``."""
        if isinstance(ids, (str, bytes)):
            raise TypeError(f"decode expects a sequence of ids, got {type(ids).__name__}")
        skip = set(self.special_token_ids()) if skip_special_tokens else set()
        out = bytearray()
        for idx in ids:
            idx = as_token_id(idx)
            if idx not in skip:
                out += self._bytes_of(idx)
        return out.decode("utf-8", errors="replace")

    # ---- files ----------------------------------------------------------------------------------
    def to_hf_dict(self) -> dict:
        byte_level = {"type": "ByteLevel", "add_prefix_space": self.add_prefix_space, "trim_offsets": True,
                      "use_regex": True}
        return {
            "version": "1.0",
            "truncation": None,
            "padding": None,
            "added_tokens": self._added_tokens_json(),
            "normalizer": None,
            "pre_tokenizer": byte_level,
            "post_processor": {**byte_level, "trim_offsets": False},
            "decoder": byte_level,
            "model": {
                "type": "BPE",
                "dropout": None,
                "unk_token": None,
                "continuing_subword_prefix": None,
                "end_of_word_suffix": None,
                "fuse_unk": False,
                "byte_fallback": False,
                "ignore_merges": self.ignore_merges,
                "vocab": dict(sorted(self._vocab.items(), key=lambda kv: kv[1])),
                # "a b" strings: readable by every tokenizers version (byte-level tokens have no spaces)
                "merges": [f"{a} {b}" for a, b in self._merges],
            },
        }

    @classmethod
    def from_hf_dict(cls, data: dict) -> BPETokenizer:
        """Read a byte-level BPE ``tokenizer.json`` (ours, GPT-2's or RoBERTa's, or one written by
        ``tokenizers``). Options that would change the ids and that we do not implement (normalizers,
        dropout, subword prefixes, ...) are a ValueError, never ignored. All the flags of added tokens
        are implemented (``normalized_tokens``, ``lstrip_tokens`` as RoBERTa's ``<mask>`` has it, ...).
        A post-processor (RoBERTa's ``<s> A </s>``) is not read: ``encode`` never adds special tokens."""
        model = data["model"]
        if model.get("type") != "BPE":
            raise ValueError(f"model type is {model.get('type')!r}, expected 'BPE'")
        if data.get("normalizer") is not None:
            raise ValueError(f"normalizer {data['normalizer'].get('type')!r} is not supported by BPETokenizer")
        pre = data.get("pre_tokenizer")
        if not isinstance(pre, dict) or pre.get("type") != "ByteLevel" or not pre.get("use_regex", True):
            raise ValueError("BPETokenizer reads byte-level BPE only: the pre_tokenizer must be ByteLevel "
                             f"with use_regex=true, got {pre!r}")
        for option in ("dropout", "continuing_subword_prefix", "end_of_word_suffix", "byte_fallback"):
            if model.get(option):
                raise ValueError(f"BPE option {option}={model[option]!r} is not supported")
        vocab = dict(model["vocab"])
        merges = []
        for m in model["merges"]:
            if isinstance(m, str):
                parts = m.split(" ")
                if len(parts) != 2:
                    raise ValueError(f"merge {m!r} is not two tokens separated by one space")
                merges.append((parts[0], parts[1]))
            else:
                merges.append(tuple(m))
        tok = cls(vocab, merges, [], add_prefix_space=bool(pre.get("add_prefix_space", False)),
                  ignore_merges=bool(model.get("ignore_merges", False)))
        # The added tokens: each at its model id, or right after the model's vocabulary (add_tokens).
        # One that ordinary text also produces ("Ġ", a merge) is read as tokenizers reads it, though
        # BPETokenizer(...) and train refuse it as a special token.
        split_added_tokens(data, tok._vocab)
        return with_added_token_flags(tok, data)

    def __repr__(self) -> str:
        return (f"BPETokenizer(vocab_size={self.vocab_size}, merges={len(self._merges)}, "
                f"special_tokens={self.special_tokens}, backend={self._backend!r})")
