"""WordPiece, BERT's subword tokenizer (Schuster & Nakajima 2012; Wu et al. 2016 §4.1; Devlin et al. 2019 §3).

Text becomes ids in three steps, each a plain function below so a tutorial can stop between them:

1. ``bert_normalize``: clean control characters, put spaces around CJK ideographs, strip accents, lowercase.
2. ``bert_pre_tokenize``: split on whitespace and isolate every punctuation character -> words.
3. ``WordPieceTokenizer.word_to_ids``: greedy longest-match-first over the vocabulary; pieces that
   continue a word carry the ``##`` prefix ("playing" -> "play", "##ing"). A word that cannot be
   covered, or is longer than 100 characters, becomes a single ``[UNK]``.

Training (``WordPieceTokenizer.train``) grows the vocabulary from characters by merging the pair of
adjacent pieces that most increases the likelihood of the training words under a unigram language
model over pieces, which is the WordPiece criterion of Schuster & Nakajima (2012); BPE
(Sennrich et al. 2016) would instead merge the most frequent pair. ``backend="hf"`` trains and
encodes through the ``tokenizers`` library instead (its WordPieceTrainer merges by frequency).

Files are Hugging Face ``tokenizer.json`` (model "WordPiece", BertNormalizer, BertPreTokenizer), so
``tokenizers.Tokenizer.from_file`` reads ours and gives the same ids, and BERT's published
``vocab.txt`` loads with ``WordPieceTokenizer.from_vocab``.

Unicode tables: character classes (control, punctuation, accents, case) come from Python's
``unicodedata``. ``tokenizers`` (0.23) carries older tables, so the two disagree on about a hundred
rare code points assigned in recent Unicode versions (e.g. U+2E43..U+2E5D punctuation, U+0890
format characters); ordinary text, including accents, CJK, Hangul and emoji, is identical.
"""
from __future__ import annotations

import heapq
import json
import math
import unicodedata
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from itertools import pairwise
from pathlib import Path

from minitransformer.tokenizers.base import (
    BERT_SPECIAL_TOKENS,
    BackendName,
    Tokenizer,
    as_token_id,
    as_training_texts,
    cached_word_ids,
    check_backend,
    check_special_tokens,
    check_vocab_size,
    hf_model_section,
    special_token_pattern,
    split_added_tokens,
    split_on_special_tokens,
    with_added_token_flags,
)

# Unicode's White_Space property (PropList.txt). Python's str.isspace() is wider (it also counts
# U+001C..U+001F), so BERT's splitting needs its own set.
WHITESPACE = frozenset(
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)

# Whitespace that always ends a word, with or without clean_text: streamed text can be cut there.
_CUTTABLE = " \t\n\r"

# The CJK ideograph blocks that BERT surrounds with spaces, so each ideograph is its own word
# (Devlin et al. 2019, multilingual README). The U+2B920 lower bound of the sixth range follows
# `tokenizers` (Google's original code has U+2B820) so that ids match the reference.
CJK_RANGES = (
    (0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F), (0x2B920, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F),
)


def is_control(ch: str) -> bool:
    """Characters BERT deletes: control, format, private-use (Unicode categories Cc, Cf, Co, Cs).

    Tab, newline and carriage return are whitespace instead. Unassigned code points (Cn) are kept,
    as ``tokenizers`` keeps them.
    """
    if ch in "\t\n\r":
        return False
    return unicodedata.category(ch) in ("Cc", "Cf", "Co", "Cs")


def is_punctuation(ch: str) -> bool:
    """ASCII symbols such as ``$`` and ``+`` count as punctuation too, as in BERT."""
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def is_cjk(ch: str) -> bool:
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in CJK_RANGES)


def bert_normalize(
    text: str,
    lowercase: bool = True,
    strip_accents: bool | None = None,
    clean_text: bool = True,
    handle_chinese_chars: bool = True,
) -> str:
    """BERT's text normalization, in the order ``tokenizers``' BertNormalizer applies it.

    ``strip_accents=None`` means "strip when lowercasing" (bert-base-uncased strips, -cased does not).
    """
    if clean_text:
        # delete NUL, U+FFFD and control characters; every remaining whitespace becomes " "
        text = "".join(
            " " if ch in WHITESPACE else ch
            for ch in text
            if not (ch == "\x00" or ch == "\ufffd" or is_control(ch))
        )
    if handle_chinese_chars:
        text = "".join(f" {ch} " if is_cjk(ch) else ch for ch in text)
    if strip_accents if strip_accents is not None else lowercase:
        # decompose "é" into "e" + U+0301 and drop the nonspacing mark
        text = "".join(ch for ch in unicodedata.normalize("NFD", text) if unicodedata.category(ch) != "Mn")
    if lowercase:
        # character by character: str.lower() would turn a word-final "Σ" into "ς", BERT gives "σ"
        text = text.lower() if "Σ" not in text else "".join(ch.lower() for ch in text)
    return text


def bert_pre_tokenize(text: str) -> list[str]:
    """Split on whitespace (dropped) and make every punctuation character a word of its own."""
    words: list[str] = []
    current: list[str] = []
    for ch in text:
        if ch in WHITESPACE or is_punctuation(ch):
            if current:
                words.append("".join(current))
                current = []
            if ch not in WHITESPACE:
                words.append(ch)
        else:
            current.append(ch)
    if current:
        words.append("".join(current))
    return words


class WordPieceTokenizer(Tokenizer):
    """BERT's tokenizer: ``bert_normalize`` -> ``bert_pre_tokenize`` -> greedy longest-match-first.

    ``vocab`` maps each piece to its id (ids 0..V-1): the model's vocabulary, which greedy matching
    looks pieces up in. ``special_tokens`` are kept whole when they appear in the text and are
    matched before normalization, except those in ``normalized_tokens`` (set by the loader from a
    tokenizer.json, or by ``add_tokens``), which are matched in the normalized text. Tokens added
    after the model's vocabulary (``add_tokens``, or a BERT tokenizer.json that ``tokenizers`` gave
    new tokens) have the ids V, V+1, ...; they are not in ``vocab``, so no word is split into them.
    ``cleanup`` is the WordPiece decoder's option that glues " ." / " ," etc. back together when
    decoding (BERT's tokenizer.json sets it).
    """

    def __init__(
        self,
        vocab: dict[str, int] | Sequence[str],
        unk_token: str = "[UNK]",
        special_tokens: Sequence[str] | None = None,
        lowercase: bool = True,
        strip_accents: bool | None = None,
        clean_text: bool = True,
        handle_chinese_chars: bool = True,
        max_input_chars_per_word: int = 100,
        continuing_subword_prefix: str = "##",
        cleanup: bool = False,
        backend: BackendName = "python",
    ):
        check_backend(backend)
        if isinstance(vocab, dict):
            vocab = dict(vocab)
        elif isinstance(vocab, Sequence) and not isinstance(vocab, str):
            if len(set(vocab)) != len(vocab):
                dup = next(t for t, n in Counter(vocab).items() if n > 1)
                raise ValueError(f"vocabulary lists {dup!r} twice")
            vocab = {tok: i for i, tok in enumerate(vocab)}
        else:
            raise TypeError(f"vocab must be a dict token->id or a list of tokens, got {type(vocab).__name__}")
        if sorted(vocab.values()) != list(range(len(vocab))):
            raise ValueError("vocabulary ids must be exactly 0..V-1, each used once")
        if unk_token not in vocab:
            raise ValueError(f"unk_token {unk_token!r} is not in the vocabulary")
        if special_tokens is None:
            special_tokens = [t for t in BERT_SPECIAL_TOKENS if t in vocab]
        special_tokens = check_special_tokens(special_tokens)
        missing = [t for t in special_tokens if t not in vocab]
        if missing:
            raise ValueError(f"special tokens {missing} are not in the vocabulary")
        if not isinstance(max_input_chars_per_word, int) or max_input_chars_per_word < 1:
            raise ValueError(f"max_input_chars_per_word must be a positive int, got {max_input_chars_per_word!r}")
        self.vocab: dict[str, int] = vocab
        self.id_to_piece: list[str] = [""] * len(vocab)
        for tok, i in vocab.items():
            self.id_to_piece[i] = tok
        self.unk_token = unk_token
        self.unk_id = vocab[unk_token]
        self.special_tokens = special_tokens
        self.lowercase = lowercase
        self.strip_accents = strip_accents
        self.clean_text = clean_text
        self.handle_chinese_chars = handle_chinese_chars
        self.max_input_chars_per_word = max_input_chars_per_word
        self.prefix = continuing_subword_prefix
        self.cleanup = cleanup
        self.backend = backend
        self._max_piece_chars = max(len(t) for t in vocab)  # no match can be longer than this
        self._word_cache: dict[str, list[int]] = {}
        self._hf = None  # tokenizers.Tokenizer, built by hf_tokenizer() on first use (backend == "hf")

    # ---- vocabulary -------------------------------------------------------------------------
    @property
    def _model_size(self) -> int:
        return len(self.id_to_piece)

    def _model_token_to_id(self, token: str) -> int | None:
        return self.vocab.get(token)

    def _model_id_to_token(self, idx: int) -> str:
        return self.id_to_piece[idx]

    def _vocabulary_changed(self) -> None:
        super()._vocabulary_changed()
        self._word_cache.clear()  # (only model ids, which adding tokens never changes; cleared all the same)

    # ---- encoding ---------------------------------------------------------------------------
    def normalize(self, text: str) -> str:
        return bert_normalize(text, self.lowercase, self.strip_accents, self.clean_text, self.handle_chinese_chars)

    def word_to_ids(self, word: str) -> list[int]:
        """Greedy longest-match-first: take the longest vocabulary piece at the start of what is left.

        Pieces after the first are looked up with the ``##`` prefix. If at some point no piece
        matches, the whole word is ``[UNK]`` (not just the uncovered part), as in BERT.
        """
        if len(word) > self.max_input_chars_per_word:
            return [self.unk_id]
        ids = []
        start = 0
        while start < len(word):
            end = min(len(word), start + self._max_piece_chars)
            while end > start:
                piece = word[start:end] if start == 0 else self.prefix + word[start:end]
                if piece in self.vocab:
                    break
                end -= 1
            if end == start:  # nothing in the vocabulary covers word[start]
                return [self.unk_id]
            ids.append(self.vocab[piece])
            start = end
        return ids

    def encode(self, text: str) -> list[int]:
        if not isinstance(text, str):
            raise TypeError(f"encode expects str, got {type(text).__name__}")
        if self.backend == "hf":
            return self.hf_tokenizer().encode(text, add_special_tokens=False).ids
        ids: list[int] = []
        for piece, is_added in self.split_on_added_tokens(text):  # the other pieces come back normalized
            if is_added:
                ids.append(self.token_to_id(piece))
                continue
            for word in bert_pre_tokenize(piece):
                ids.extend(cached_word_ids(self._word_cache, word, self.word_to_ids))
        return ids

    def encode_iterable(self, lines: Iterable[str]) -> Iterator[int]:
        """Same ids as ``encode("".join(lines))``, holding only the text since the last whitespace.

        The pieces may be cut anywhere (not only after newlines): the text is encoded up to the last
        space, tab or line break seen, which always ends a word, and the rest waits for more text.
        That is unsafe if an added token could match across such a character: one written with it, or
        one marked normalized whose normalized spelling has a space (the normalizer turns every
        whitespace into one, and puts spaces around CJK characters). Then the text is held whole.
        The flags that make a token take whitespace or only whole words (``find_added_tokens``) need no
        care here: whitespace gives no ids in WordPiece, taken by a token or not, and a token found just
        after the cut has whitespace before it, a word boundary, in the whole text too.
        """
        spellings = self._decoding_spellings().values()  # the normalized tokens' normalized spellings
        safe = not any(ch in t for t in [*self.special_tokens, *spellings] for ch in _CUTTABLE)
        buffer = ""
        for line in lines:
            if not isinstance(line, str):
                raise TypeError(f"encode_iterable expects str pieces, got {type(line).__name__}")
            buffer += line
            cut = max(buffer.rfind(ch) for ch in _CUTTABLE) if safe else -1
            if cut >= 0:
                yield from self.encode(buffer[: cut + 1])
                buffer = buffer[cut + 1:]
        if buffer:
            yield from self.encode(buffer)

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        """Join the pieces: a ``##`` piece glues onto the previous one, others get a space before.

        An added token marked normalized is written in its normalized spelling (``NewWord`` as
        "newword"), as recent ``tokenizers`` (0.23.3) decodes it. ``skip_special_tokens`` leaves out
        every special token; ``tokenizers`` 0.23.3 keeps a special one whose normalized spelling differs
        from the token (it looks the spelling up among the special tokens).
        """
        skip = set(self.special_token_ids()) if skip_special_tokens else set()
        spelling = self._decoding_spellings()
        tokens = [self.id_to_token(i) for i in map(as_token_id, ids) if i not in skip]
        tokens = [spelling.get(tok, tok) for tok in tokens]
        out = []
        for i, tok in enumerate(tokens):
            if i > 0:
                tok = tok[len(self.prefix):] if tok.startswith(self.prefix) else " " + tok
            if self.cleanup:
                tok = _cleanup_spaces(tok)
            out.append(tok)
        return "".join(out)

    # ---- Hugging Face tokenizer.json --------------------------------------------------------
    def to_hf_dict(self) -> dict:
        cls_id, sep_id = self.token_to_id("[CLS]"), self.token_to_id("[SEP]")
        post_processor = None
        if cls_id is not None and sep_id is not None:  # BERT's "[CLS] A [SEP] B [SEP]" framing
            post_processor = {
                "type": "TemplateProcessing",
                "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                           {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
                "pair": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                         {"SpecialToken": {"id": "[SEP]", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}},
                         {"SpecialToken": {"id": "[SEP]", "type_id": 1}}],
                "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [cls_id], "tokens": ["[CLS]"]},
                                   "[SEP]": {"id": "[SEP]", "ids": [sep_id], "tokens": ["[SEP]"]}},
            }
        return {
            "version": "1.0",
            "truncation": None,
            "padding": None,
            "added_tokens": self._added_tokens_json(),
            "normalizer": {"type": "BertNormalizer", "clean_text": self.clean_text,
                           "handle_chinese_chars": self.handle_chinese_chars, "strip_accents": self.strip_accents,
                           "lowercase": self.lowercase},
            "pre_tokenizer": {"type": "BertPreTokenizer"},
            "post_processor": post_processor,
            "decoder": {"type": "WordPiece", "prefix": self.prefix, "cleanup": self.cleanup},
            "model": {"type": "WordPiece", "unk_token": self.unk_token, "continuing_subword_prefix": self.prefix,
                      "max_input_chars_per_word": self.max_input_chars_per_word, "vocab": dict(self.vocab)},
        }

    @classmethod
    def from_hf_dict(cls, data: dict, backend: BackendName = "python") -> WordPieceTokenizer:
        model = hf_model_section(data, "WordPiece")
        vocab = model.get("vocab")
        if not isinstance(vocab, dict) or not vocab or not all(
            isinstance(k, str) and isinstance(v, int) for k, v in vocab.items()
        ):
            raise ValueError("WordPiece model 'vocab' must be a non-empty object token -> int id")
        normalizer = data.get("normalizer")
        if normalizer is None:
            norm = {"lowercase": False, "strip_accents": False, "clean_text": False, "handle_chinese_chars": False}
        elif isinstance(normalizer, dict) and normalizer.get("type") == "BertNormalizer":
            norm = {"lowercase": bool(normalizer.get("lowercase", True)),
                    "strip_accents": normalizer.get("strip_accents"),
                    "clean_text": bool(normalizer.get("clean_text", True)),
                    "handle_chinese_chars": bool(normalizer.get("handle_chinese_chars", True))}
        else:
            kind = normalizer.get("type") if isinstance(normalizer, dict) else normalizer
            raise ValueError(f"unsupported normalizer {kind!r} for WordPiece; supported: BertNormalizer or null")
        pre = data.get("pre_tokenizer")
        if not (isinstance(pre, dict) and pre.get("type") == "BertPreTokenizer"):
            kind = pre.get("type") if isinstance(pre, dict) else pre
            raise ValueError(f"unsupported pre_tokenizer {kind!r} for WordPiece; supported: BertPreTokenizer")
        decoder = data.get("decoder")
        if decoder is not None and not (isinstance(decoder, dict) and decoder.get("type") == "WordPiece"):
            raise ValueError(f"unsupported decoder {decoder.get('type') if isinstance(decoder, dict) else decoder!r}; "
                             "supported: WordPiece or null")
        prefix = model.get("continuing_subword_prefix", "##")
        if decoder is not None and decoder.get("prefix", "##") != prefix:
            raise ValueError("the WordPiece decoder's prefix differs from the model's continuing_subword_prefix")
        tok = cls(
            vocab,
            unk_token=model.get("unk_token", "[UNK]"),
            special_tokens=[],  # the added tokens join in with_added_token_flags
            max_input_chars_per_word=model.get("max_input_chars_per_word", 100),
            continuing_subword_prefix=prefix,
            cleanup=bool(decoder.get("cleanup", True)) if decoder is not None else False,
            backend=backend,
            **norm,
        )
        split_added_tokens(data, tok.vocab)  # each at its model id, or right after the model's vocabulary
        return with_added_token_flags(tok, data)

    # ---- BERT's published vocabularies ------------------------------------------------------
    @classmethod
    def from_vocab(
        cls,
        path: str | Path,
        lowercase: bool = True,
        strip_accents: bool | None = None,
        backend: BackendName = "python",
    ) -> WordPieceTokenizer:
        """Load a BERT ``vocab.txt`` (one piece per line, the line number is the id).

        ``lowercase=True`` for the "uncased" checkpoints, False for "cased" ones.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"vocabulary file not found: {path}")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(f"{path} is not a UTF-8 vocab.txt: {e}") from None
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        tokens = [line.rstrip("\r") for line in lines]
        if not tokens:
            raise ValueError(f"{path} is empty; a vocab.txt has one token per line")
        seen: dict[str, int] = {}
        for i, tok in enumerate(tokens):
            if tok in seen:
                raise ValueError(f"{path}: token {tok!r} appears on lines {seen[tok] + 1} and {i + 1}")
            seen[tok] = i
        if "[UNK]" not in seen:
            raise ValueError(f"{path} has no [UNK] token; is it a BERT vocab.txt?")
        return cls(tokens, lowercase=lowercase, strip_accents=strip_accents, backend=backend)

    # ---- training ---------------------------------------------------------------------------
    @classmethod
    def train(
        cls,
        texts: str | Iterable[str],
        vocab_size: int,
        special_tokens: Sequence[str] = BERT_SPECIAL_TOKENS,
        lowercase: bool = True,
        strip_accents: bool | None = None,
        unk_token: str = "[UNK]",
        backend: BackendName = "python",
    ) -> WordPieceTokenizer:
        """Learn a vocabulary of ``vocab_size`` pieces (special tokens included) from ``texts``.

        The vocabulary starts as the special tokens and every character seen, both as a word start
        ("a") and as a continuation ("##a"); pairs of adjacent pieces are then merged, best
        likelihood gain first (see ``likelihood_gain``), until ``vocab_size`` pieces exist.
        ``backend="hf"`` uses ``tokenizers``' WordPieceTrainer instead (frequency-based merges).
        """
        check_backend(backend)
        check_vocab_size(vocab_size)
        texts = as_training_texts(texts)
        check_special_tokens([unk_token])  # a str, not empty: "" would make every unknown word vanish
        special_tokens = check_special_tokens(special_tokens)
        if unk_token not in special_tokens:
            special_tokens.insert(0, unk_token)
        settings = {"lowercase": lowercase, "strip_accents": strip_accents}
        if backend == "hf":
            return cls._train_hf(texts, vocab_size, special_tokens, unk_token, settings)

        word_counts: Counter[str] = Counter()
        pattern = special_token_pattern(special_tokens)
        for text in texts:
            for piece, is_special in split_on_special_tokens(text, pattern):
                if not is_special:
                    word_counts.update(bert_pre_tokenize(bert_normalize(piece, lowercase, strip_accents)))
        alphabet = sorted({w[0] for w in word_counts}) + sorted({"##" + ch for w in word_counts for ch in w[1:]})
        needed = len(special_tokens) + len(alphabet)
        if vocab_size < needed:
            raise ValueError(
                f"vocab_size={vocab_size} is too small: the {len(special_tokens)} special tokens and the "
                f"{len(alphabet)} characters of the corpus (as word starts and ## continuations) need {needed}"
            )
        merged = _learn_merges(word_counts, vocab_size - needed, set(special_tokens) | set(alphabet))
        vocab = special_tokens + alphabet + merged
        if len(vocab) < vocab_size:
            warnings.warn(
                f"the corpus supports only {len(vocab)} WordPiece tokens, fewer than vocab_size={vocab_size}",
                stacklevel=2,
            )
        return cls(vocab, unk_token=unk_token, special_tokens=special_tokens, **settings)

    @classmethod
    def _train_hf(cls, texts, vocab_size, special_tokens, unk_token, settings) -> WordPieceTokenizer:
        from tokenizers import Tokenizer as HFTokenizer
        from tokenizers import decoders, models, normalizers, pre_tokenizers, trainers

        hf = HFTokenizer(models.WordPiece(unk_token=unk_token))
        hf.normalizer = normalizers.BertNormalizer(lowercase=settings["lowercase"],
                                                   strip_accents=settings["strip_accents"])
        hf.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        hf.decoder = decoders.WordPiece(cleanup=False)
        trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=special_tokens, show_progress=False)
        hf.train_from_iterator(texts, trainer)
        tok = cls.from_hf_dict(json.loads(hf.to_str()), backend="hf")
        if tok.vocab_size > vocab_size:  # tokenizers keeps the whole alphabet whatever vocab_size says
            raise ValueError(
                f"vocab_size={vocab_size} is too small: the special tokens and the characters of the corpus "
                f"(as word starts and ## continuations) need {tok.vocab_size}"
            )
        if tok.vocab_size < vocab_size:
            warnings.warn(
                f"the corpus supports only {tok.vocab_size} WordPiece tokens, fewer than vocab_size={vocab_size}",
                stacklevel=3,
            )
        return tok


def _cleanup_spaces(token: str) -> str:
    """The WordPiece decoder's ``cleanup``: undo the spaces that tokenization put before punctuation."""
    for dirty, clean in ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                         (" 'm", "'m"), (" do not", " don't"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")):
        token = token.replace(dirty, clean)
    return token


def _plogp(x: float) -> float:
    return x * math.log(x) if x > 0 else 0.0


def likelihood_gain(n_ab: int, n_a: int, n_b: int, n_total: int, same: bool = False) -> float:
    """How much merging pieces a and b into ab raises the training words' log-likelihood.

    The model is a unigram LM over pieces with maximum-likelihood probabilities n_x / N, whose
    log-likelihood is sum_x n_x log(n_x / N) = sum_x n_x log n_x - N log N. Merging the n_ab
    adjacent occurrences turns them into one piece: n_a and n_b drop by n_ab, a new count n_ab
    appears and the total drops to N - n_ab. (``same`` is the case a == b, e.g. "##l" "##l".)
    """
    if same:
        before = _plogp(n_a)
        after = _plogp(n_ab) + _plogp(n_a - 2 * n_ab)
    else:
        before = _plogp(n_a) + _plogp(n_b)
        after = _plogp(n_ab) + _plogp(n_a - n_ab) + _plogp(n_b - n_ab)
    return after - before - _plogp(n_total - n_ab) + _plogp(n_total)


def _learn_merges(word_counts: Counter[str], n_merges: int, taken: set[str]) -> list[str]:
    """Merge adjacent pieces, best ``likelihood_gain`` first, until ``n_merges`` new tokens exist.

    Each word is a list of pieces, first ["p", "##l", "##a", "##y"]. Counts are kept incrementally:
    only the words that contain the merged pair are rewritten. The best pair is found with a heap
    of upper bounds: merging only ever lowers the gain of pairs that do not touch a, b or ab (the
    total N shrinks), so those entries stay valid bounds; pairs that do are re-scored and pushed.
    """
    words = [[w[0]] + ["##" + ch for ch in w[1:]] for w in word_counts]
    freqs = list(word_counts.values())
    piece_count: Counter[str] = Counter()
    pair_count: Counter[tuple[str, str]] = Counter()
    pair_words: dict[tuple[str, str], set[int]] = defaultdict(set)  # pair -> words containing it
    pairs_of: dict[str, set[tuple[str, str]]] = defaultdict(set)  # piece -> live pairs containing it
    for i, (pieces, f) in enumerate(zip(words, freqs, strict=True)):
        for p in pieces:
            piece_count[p] += f
        for pair in pairwise(pieces):
            pair_count[pair] += f
            pair_words[pair].add(i)
            pairs_of[pair[0]].add(pair)
            pairs_of[pair[1]].add(pair)
    n_total = sum(piece_count.values())

    def gain(pair: tuple[str, str]) -> float:
        a, b = pair
        return likelihood_gain(pair_count[pair], piece_count[a], piece_count[b], n_total, same=a == b)

    bound = {pair: gain(pair) for pair in pair_count}  # the score each pair has in the heap
    heap = [(-g, pair) for pair, g in bound.items()]
    heapq.heapify(heap)
    new_tokens: list[str] = []
    while len(new_tokens) < n_merges and heap:
        neg, pair = heapq.heappop(heap)
        if bound.get(pair) != -neg:  # an outdated entry: the pair was re-scored or merged since
            continue
        g = gain(pair)
        if g < -neg:  # the bound was loose: put the exact score back and look again
            bound[pair] = g
            heapq.heappush(heap, (-g, pair))
            continue
        a, b = pair
        ab = a + b[2:] if b.startswith("##") else a + b
        if ab not in taken:
            taken.add(ab)
            new_tokens.append(ab)

        touched: set[tuple[str, str]] = set()
        for i in list(pair_words[pair]):
            old, f = words[i], freqs[i]
            new, j = [], 0
            while j < len(old):
                if j + 1 < len(old) and old[j] == a and old[j + 1] == b:
                    new.append(ab)
                    j += 2
                else:
                    new.append(old[j])
                    j += 1
            for p in old:
                piece_count[p] -= f
            for p in new:
                piece_count[p] += f
            n_total -= f * (len(old) - len(new))
            for q in pairwise(old):
                pair_count[q] -= f
                pair_words[q].discard(i)
                touched.add(q)
            for q in pairwise(new):
                pair_count[q] += f
                pair_words[q].add(i)
                touched.add(q)
            words[i] = new
        touched |= pairs_of[a] | pairs_of[b]  # their gain depends on the counts of a and b
        for q in touched:
            if pair_count[q] > 0:
                pairs_of[q[0]].add(q)
                pairs_of[q[1]].add(q)
                bound[q] = gain(q)
                heapq.heappush(heap, (-bound[q], q))
            else:
                pairs_of[q[0]].discard(q)
                pairs_of[q[1]].discard(q)
                bound.pop(q, None)
                pair_count.pop(q, None)
                pair_words.pop(q, None)
    return new_tokens
