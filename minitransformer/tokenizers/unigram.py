"""Unigram language-model tokenizer, SentencePiece-style, as T5 uses it (Kudo 2018; Kudo & Richardson 2018).

Every piece x of the vocabulary has a log-probability log p(x). A word is split into the sequence of
pieces with the highest total log-probability, found by Viterbi over the lattice of all pieces that
match somewhere in the word (Kudo 2018 §3.2). Pipeline, each step a plain function:

1. ``nfkc_normalize``: Unicode NFKC normalization (SentencePiece's default is NFKC-based).
2. ``metaspace_pre_tokenize``: spaces become the visible marker ``▁`` (U+2581), a ``▁`` is put in
   front of the text, and the text is cut before every ``▁``: "Hello world" -> "▁Hello", "▁world".
   Decoding turns ``▁`` back into spaces, so no information about word boundaries is lost.
3. ``UnigramTokenizer.word_to_ids``: Viterbi segmentation of each word. A character that no piece
   covers becomes ``<unk>`` (consecutive ones share a single ``<unk>``), or, with ``byte_fallback``,
   the pieces ``<0xNN>`` of its UTF-8 bytes, so any text can be encoded and decoded back.

Training (``UnigramTokenizer.train``) is Kudo 2018 §3.2: start from a large seed vocabulary
(characters and frequent substrings), fit the piece probabilities with EM (expected piece counts
from the forward-backward algorithm on each word's lattice), then repeatedly drop the pieces whose
removal costs the least likelihood, until the vocabulary has the requested size.
``backend="hf"`` trains and encodes through ``tokenizers`` instead.

Files are Hugging Face ``tokenizer.json`` (model "Unigram", Metaspace pre-tokenizer), loadable by
``tokenizers.Tokenizer.from_file`` with the same ids. NFKC uses Python's ``unicodedata`` (Unicode
14 on Python 3.11); ``tokenizers`` has older tables, which differ on ~70 recently assigned code points.
"""
from __future__ import annotations

import json
import math
import re
import unicodedata
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence

from minitransformer.tokenizers.base import (
    T5_SPECIAL_TOKENS,
    BackendName,
    Tokenizer,
    as_token_id,
    as_training_texts,
    cached_word_ids,
    check_backend,
    check_special_tokens,
    check_vocab_size,
    hf_model_section,
    is_white_space,
    special_token_pattern,
    split_added_tokens,
    split_on_special_tokens,
    with_added_token_flags,
)

SPACE = "\u2581"  # "▁", SentencePiece's visible word-boundary marker
BYTE_PIECES = [f"<0x{b:02X}>" for b in range(256)]  # byte-fallback pieces, one per byte value
UNK_PENALTY = 10.0  # an unknown character scores (lowest piece score - 10), as in SentencePiece
PREPEND_SCHEMES = ("first", "always", "never")
_BYTE_PIECE = re.compile(r"<0x([0-9A-Fa-f]{2})>")


def nfkc_normalize(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def metaspace_pre_tokenize(text: str, prepend: bool = True) -> list[str]:
    """Spaces -> ``▁``, a leading ``▁`` if there is none, then cut before every ``▁``.

    "Hello  world" -> ["▁Hello", "▁", "▁world"]: a piece never spans two words.
    """
    text = text.replace(" ", SPACE)
    if prepend and text and not text.startswith(SPACE):
        text = SPACE + text
    return [w for w in re.split(f"(?={SPACE})", text) if w]


def pre_tokenize(text: str, use_nfkc: bool = True, prepend_scheme: str = "first", at_start: bool = True) -> list[str]:
    """Normalize and cut a piece of text (no special tokens in it) into ``▁`` words.

    ``at_start``: the piece begins the whole text (for ``prepend_scheme="first"``).
    """
    if use_nfkc:
        text = nfkc_normalize(text)
    prepend = prepend_scheme == "always" or (prepend_scheme == "first" and at_start)
    return metaspace_pre_tokenize(text, prepend)


def _logaddexp(x: float, y: float) -> float:
    """log(exp(x) + exp(y)) without overflow."""
    if x < y:
        x, y = y, x
    if y == -math.inf:
        return x
    return x + math.log1p(math.exp(y - x))


def digamma(x: float) -> float:
    """psi(x) = d/dx log Gamma(x), for x > 0: recurrence up to x >= 6, then the asymptotic series."""
    result = 0.0
    while x < 6.0:
        result -= 1.0 / x
        x += 1.0
    f = 1.0 / (x * x)
    return result + math.log(x) - 0.5 / x - f * (1.0 / 12 - f * (1.0 / 120 - f / 252))


class UnigramTokenizer(Tokenizer):
    """SentencePiece-style unigram tokenizer: ``nfkc_normalize`` -> ``metaspace_pre_tokenize`` -> Viterbi.

    ``pieces`` is the vocabulary in id order, each ``(piece, log-probability)``. ``unk_id`` is the
    id of ``<unk>`` (None: there is none, and text it cannot cover is an error). ``special_tokens`` are kept whole when they
    appear in the text (in the raw text, or for ``normalized_tokens`` in the normalized text).
    ``byte_fallback`` needs the 256 pieces ``<0x00>``..``<0xFF>``.
    ``prepend_scheme`` says where a ``▁`` is put in front: "first" (start of the text only, not
    after a special token), "always" (every piece of text between special tokens) or "never".
    Tokens added after the pieces (``add_tokens``, or a tokenizer.json's added tokens missing from its
    ``model.vocab``) have the ids that follow them; Viterbi never uses them, only the added-token
    passes find them.
    """

    def __init__(
        self,
        pieces: Sequence[tuple[str, float]],
        unk_id: int | None = None,
        special_tokens: Sequence[str] = (),
        byte_fallback: bool = False,
        nfkc: bool = True,
        prepend_scheme: str = "first",
        backend: BackendName = "python",
    ):
        check_backend(backend)
        if prepend_scheme not in PREPEND_SCHEMES:
            raise ValueError(f"prepend_scheme must be one of {PREPEND_SCHEMES}, got {prepend_scheme!r}")
        if isinstance(pieces, (str, dict)) or not isinstance(pieces, Sequence) or not pieces:
            raise TypeError("pieces must be a non-empty list of (piece, score) pairs")
        checked: list[tuple[str, float]] = []
        for i, item in enumerate(pieces):
            if not (isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], str) and item[0]
                    and isinstance(item[1], (int, float)) and not isinstance(item[1], bool)
                    and math.isfinite(item[1])):
                raise ValueError(f"pieces[{i}] must be (non-empty str, finite float), got {item!r}")
            checked.append((item[0], float(item[1])))
        self.pieces = checked
        self.piece_to_id: dict[str, int] = {}
        for i, (piece, _) in enumerate(checked):
            if piece in self.piece_to_id:
                raise ValueError(f"piece {piece!r} appears twice (ids {self.piece_to_id[piece]} and {i})")
            self.piece_to_id[piece] = i
        if unk_id is not None and (not isinstance(unk_id, int) or not 0 <= unk_id < len(checked)):
            raise ValueError(f"unk_id={unk_id!r} is not an id of the {len(checked)} pieces")
        self.unk_id = unk_id
        special_tokens = check_special_tokens(special_tokens)
        missing = [t for t in special_tokens if t not in self.piece_to_id]
        if missing:
            raise ValueError(f"special tokens {missing} are not in the pieces")
        if byte_fallback and any(b not in self.piece_to_id for b in BYTE_PIECES):
            raise ValueError("byte_fallback needs the 256 pieces <0x00> .. <0xFF> in the vocabulary")
        self.special_tokens = special_tokens
        self.byte_fallback = byte_fallback
        self.nfkc = nfkc
        self.prepend_scheme = prepend_scheme
        self.backend = backend
        self.min_score = min(score for _, score in checked)
        self._max_piece_chars = max(len(p) for p, _ in checked)
        self._word_cache: dict[str, list[int]] = {}
        self._hf = None  # tokenizers.Tokenizer, built by hf_tokenizer() on first use (backend == "hf")

    # ---- vocabulary -------------------------------------------------------------------------
    @property
    def _model_size(self) -> int:
        return len(self.pieces)

    @property
    def vocab(self) -> dict[str, int]:
        """piece -> id of the model's pieces (the tokenizer's own dict: read it, do not change it).
        Tokens added after them are not in it; ``token_to_id`` finds those too."""
        return self.piece_to_id

    def _model_token_to_id(self, token: str) -> int | None:
        return self.piece_to_id.get(token)

    def _model_id_to_token(self, idx: int) -> str:
        return self.pieces[idx][0]

    def _vocabulary_changed(self) -> None:
        super()._vocabulary_changed()
        self._word_cache.clear()  # (only model ids, which adding tokens never changes; cleared all the same)

    # ---- encoding ---------------------------------------------------------------------------
    def normalize(self, text: str) -> str:
        """NFKC, or the text as it is for a tokenizer without a normalizer (``nfkc=False``)."""
        return nfkc_normalize(text) if self.nfkc else text

    def pre_tokenize(self, text: str, at_start: bool = True) -> list[str]:
        """Normalize and cut a piece of text (no special tokens in it) into ``▁`` words."""
        return pre_tokenize(text, self.nfkc, self.prepend_scheme, at_start)

    def viterbi(self, word: str) -> list[tuple[str, int]]:
        """Best segmentation of ``word``: [(substring, id), ...] (Kudo 2018 §3.2).

        best[end] is the highest total score of a segmentation of word[:end]. Positions are visited
        left to right and candidates shortest first; a later candidate must be strictly better, so
        ties go to the first one found, as in SentencePiece and ``tokenizers``. Where no one-character
        piece exists, an ``<unk>`` node scoring ``min_score - 10`` covers the character; neighbouring
        ``<unk>`` nodes are then fused into one substring.
        """
        n = len(word)
        best_score = [0.0] * (n + 1)
        best_start: list[int | None] = [None] * (n + 1)
        best_id = [0] * (n + 1)
        unk_score = self.min_score - UNK_PENALTY
        for start in range(n):
            here = best_score[start]
            has_single_char_piece = False
            for end in range(start + 1, min(n, start + self._max_piece_chars) + 1):
                pid = self.piece_to_id.get(word[start:end])
                if pid is None:
                    continue
                score = self.pieces[pid][1] + here
                if best_start[end] is None or score > best_score[end]:
                    best_score[end], best_start[end], best_id[end] = score, start, pid
                if end == start + 1:
                    has_single_char_piece = True
            if not has_single_char_piece:
                score = unk_score + here
                if best_start[start + 1] is None or score > best_score[start + 1]:
                    if self.unk_id is None:
                        raise ValueError(f"cannot encode {word[start]!r}: not in the vocabulary and no <unk> piece")
                    best_score[start + 1], best_start[start + 1], best_id[start + 1] = score, start, self.unk_id
        # walk back from the end, fusing runs of <unk> into one substring (kept as positions, cut
        # once at the end: prepending strings would make a long run of unknown characters quadratic)
        spans: list[tuple[int, int, int]] = []  # (start, end, piece id), last piece first
        end = n
        while end > 0:
            start = best_start[end]
            if best_id[end] == self.unk_id and spans and spans[-1][2] == self.unk_id:
                spans[-1] = (start, spans[-1][1], self.unk_id)  # the <unk> run grows leftwards
            else:
                spans.append((start, end, best_id[end]))
            end = start
        return [(word[a:b], pid) for a, b, pid in reversed(spans)]

    def word_to_ids(self, word: str) -> list[int]:
        ids: list[int] = []
        for substring, pid in self.viterbi(word):
            known = self.piece_to_id.get(substring)
            if known is not None:
                ids.append(known)
            elif self.byte_fallback:  # an unknown substring becomes its UTF-8 bytes
                ids.extend(self.piece_to_id[BYTE_PIECES[b]] for b in substring.encode("utf-8"))
            else:
                ids.append(pid)
        return ids

    def encode(self, text: str) -> list[int]:
        if not isinstance(text, str):
            raise TypeError(f"encode expects str, got {type(text).__name__}")
        if self.backend == "hf":
            return self.hf_tokenizer().encode(text, add_special_tokens=False).ids
        ids: list[int] = []
        for k, (piece, is_added) in enumerate(self.split_on_added_tokens(text)):  # pieces come back normalized
            if is_added:
                ids.append(self.token_to_id(piece))
                continue
            # "first" puts a ▁ only before text that starts the whole text. (tokenizers decides by
            # the position in the raw text, so where NFKC turns the first character into several,
            # e.g. "ﬁ" into "fi", and a normalized added token takes only the "f", it also puts one
            # before the "i"; here it does not.)
            prepend = self.prepend_scheme == "always" or (self.prepend_scheme == "first" and k == 0)
            for word in metaspace_pre_tokenize(piece, prepend):
                ids.extend(cached_word_ids(self._word_cache, word, self.word_to_ids))
        return ids

    def encode_iterable(self, lines: Iterable[str]) -> Iterator[int]:
        """Same ids as ``encode("".join(lines))``, holding only the text since the last space.

        Cutting the text just before a space is safe: the next chunk starts with ``▁`` (so nothing
        is prepended) and no piece spans a ``▁``. Without a space, text accumulates; so it does when an
        added token could span the cut (it has a space, or its normalized spelling has one). Added
        tokens that take whitespace (see ``find_added_tokens``) need two more things: with an lstrip
        token, the character before the cut must not be whitespace (a token after the cut would take
        the whitespace before it too); and the text before the cut must not end with an rstrip token
        (it would take the space). A single_word token needs nothing: a space is a word boundary.
        """
        spellings = self._decoding_spellings().values()  # the normalized tokens' normalized spellings
        safe = not any(" " in t for t in [*self.special_tokens, *spellings])
        buffer = ""
        for line in lines:
            if not isinstance(line, str):
                raise TypeError(f"encode_iterable expects str pieces, got {type(line).__name__}")
            buffer += line
            cut = self._last_safe_space(buffer) if safe else -1
            if cut > 0:
                yield from self.encode(buffer[:cut])
                buffer = buffer[cut:]
        if buffer:
            yield from self.encode(buffer)

    def _last_safe_space(self, text: str) -> int:
        """Where ``encode_iterable`` may cut ``text``: before its last space that allows it (-1: none)."""
        cut = text.rfind(" ")
        if self.lstrip_tokens:
            while cut > 0 and is_white_space(text[cut - 1]):
                cut = text.rfind(" ", 0, cut)
        if cut > 0 and self.rstrip_tokens:
            pieces = self.split_on_added_tokens(text[:cut])
            if pieces and pieces[-1][1] and pieces[-1][0] in self.rstrip_tokens:
                return -1  # wait for a later space
        return cut

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        """Concatenate pieces, ``▁`` -> space, bytes pieces -> UTF-8 text, drop one leading space.

        A run of byte pieces that is not valid UTF-8 gives one U+FFFD per byte, as ``tokenizers``.
        An added token marked normalized is written in its normalized spelling, as recent
        ``tokenizers`` decodes it (see ``WordPieceTokenizer.decode``).
        """
        skip = set(self.special_token_ids()) if skip_special_tokens else set()
        spelling = self._decoding_spellings()
        parts: list[str] = []
        pending = bytearray()  # consecutive byte pieces
        for i in map(as_token_id, ids):
            if i in skip:
                continue
            piece = self.id_to_token(i)
            piece = spelling.get(piece, piece)
            m = _BYTE_PIECE.fullmatch(piece) if self.byte_fallback else None
            if m:
                pending.append(int(m.group(1), 16))
                continue
            if pending:
                parts.append(_bytes_to_text(pending))
                pending = bytearray()
            parts.append(piece.replace(SPACE, " "))
        if pending:
            parts.append(_bytes_to_text(pending))
        text = "".join(parts)
        return text[1:] if text.startswith(" ") and self.prepend_scheme != "never" else text

    # ---- Hugging Face tokenizer.json --------------------------------------------------------
    def to_hf_dict(self) -> dict:
        eos_id = self.token_to_id("</s>")
        post_processor = None
        if eos_id is not None and "</s>" in self.special_tokens:  # T5 ends every sequence with </s>
            post_processor = {
                "type": "TemplateProcessing",
                "single": [{"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}}],
                "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}},
                         {"Sequence": {"id": "B", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}}],
                "special_tokens": {"</s>": {"id": "</s>", "ids": [eos_id], "tokens": ["</s>"]}},
            }
        decoders = [{"type": "Replace", "pattern": {"String": SPACE}, "content": " "}]
        if self.byte_fallback:
            decoders.append({"type": "ByteFallback"})
        decoders.append({"type": "Fuse"})
        if self.prepend_scheme != "never":
            decoders.append({"type": "Strip", "content": " ", "start": 1, "stop": 0})
        return {
            "version": "1.0",
            "truncation": None,
            "padding": None,
            "added_tokens": self._added_tokens_json(),
            "normalizer": {"type": "NFKC"} if self.nfkc else None,
            "pre_tokenizer": {"type": "Metaspace", "replacement": SPACE, "prepend_scheme": self.prepend_scheme,
                              "split": True},
            "post_processor": post_processor,
            "decoder": {"type": "Sequence", "decoders": decoders},
            "model": {"type": "Unigram", "unk_id": self.unk_id, "vocab": [[p, s] for p, s in self.pieces],
                      "byte_fallback": self.byte_fallback},
        }

    @classmethod
    def from_hf_dict(cls, data: dict, backend: BackendName = "python") -> UnigramTokenizer:
        model = hf_model_section(data, "Unigram")
        vocab = model.get("vocab")
        if not isinstance(vocab, list) or not vocab:
            raise ValueError("Unigram model 'vocab' must be a non-empty list of [piece, score]")
        normalizer = data.get("normalizer")
        if normalizer is None:
            use_nfkc = False
        elif isinstance(normalizer, dict) and normalizer.get("type") == "NFKC":
            use_nfkc = True
        else:
            kind = normalizer.get("type") if isinstance(normalizer, dict) else normalizer
            raise ValueError(f"unsupported normalizer {kind!r} for Unigram; supported: NFKC or null")
        pre = data.get("pre_tokenizer")
        if not (isinstance(pre, dict) and pre.get("type") == "Metaspace" and pre.get("replacement", SPACE) == SPACE
                and pre.get("split", True)):
            raise ValueError("unsupported pre_tokenizer for Unigram; supported: Metaspace with replacement '▁' "
                             f"and split=true, got {pre!r}")
        if "prepend_scheme" in pre:
            scheme = pre["prepend_scheme"]
        else:  # files from older tokenizers versions
            scheme = "always" if pre.get("add_prefix_space", True) else "never"
        tok = cls(
            [tuple(p) if isinstance(p, list) else p for p in vocab],
            unk_id=model.get("unk_id"),
            byte_fallback=bool(model.get("byte_fallback", False)),
            nfkc=use_nfkc,
            prepend_scheme=scheme,
            backend=backend,
        )
        split_added_tokens(data, tok.piece_to_id)  # each at its model id, or right after the model's pieces
        return with_added_token_flags(tok, data)

    # ---- training ---------------------------------------------------------------------------
    @classmethod
    def train(
        cls,
        texts: str | Iterable[str],
        vocab_size: int,
        special_tokens: Sequence[str] = T5_SPECIAL_TOKENS,
        backend: BackendName = "python",
        unk_token: str = "<unk>",
        byte_fallback: bool = False,
        nfkc: bool = True,
        prepend_scheme: str = "first",
        max_piece_length: int = 16,
        shrinking_factor: float = 0.75,
        n_sub_iterations: int = 2,
    ) -> UnigramTokenizer:
        """Learn ``vocab_size`` pieces (special tokens and byte pieces included) from ``texts``.

        Every character of the corpus stays in the vocabulary. With ``byte_fallback`` the 256 byte
        pieces follow the special tokens; they score below any other segmentation, so text such as
        "<0x41>" typed by a user is never read as a byte (the characters ``<>x0-9A-F`` are kept).
        """
        check_backend(backend)
        check_vocab_size(vocab_size)
        if prepend_scheme not in PREPEND_SCHEMES:
            raise ValueError(f"prepend_scheme must be one of {PREPEND_SCHEMES}, got {prepend_scheme!r}")
        if not 0.0 < shrinking_factor < 1.0:
            raise ValueError(f"shrinking_factor must be in (0, 1), got {shrinking_factor}")
        texts = as_training_texts(texts)
        special_tokens = check_special_tokens(special_tokens)
        check_special_tokens([unk_token])  # a str, not empty: "" would make every unknown word vanish
        if unk_token not in special_tokens:
            special_tokens.append(unk_token)
        n_fixed = len(special_tokens) + (len(BYTE_PIECES) if byte_fallback else 0)
        settings = {"byte_fallback": byte_fallback, "nfkc": nfkc, "prepend_scheme": prepend_scheme}
        if backend == "hf":
            return cls._train_hf(texts, vocab_size, special_tokens, unk_token, n_fixed, max_piece_length,
                                 shrinking_factor, n_sub_iterations, settings)

        # words with their counts, pre-tokenized exactly as encode() will see them
        word_counts: Counter[str] = Counter()
        pattern = special_token_pattern(special_tokens)
        for text in texts:
            position = 0
            for piece, is_special in split_on_special_tokens(text, pattern):
                if not is_special:
                    word_counts.update(pre_tokenize(piece, nfkc, prepend_scheme, at_start=position == 0))
                position += len(piece)
        chars = {ch for w in word_counts for ch in w}
        if byte_fallback:
            chars |= set("<>x0123456789ABCDEF")
        if vocab_size < n_fixed + len(chars):
            raise ValueError(
                f"vocab_size={vocab_size} is too small: {len(special_tokens)} special tokens"
                f"{' + 256 byte pieces' if byte_fallback else ''} + the {len(chars)} characters of the corpus "
                f"need {n_fixed + len(chars)}"
            )
        scores = train_unigram_pieces(word_counts, vocab_size - n_fixed, chars, max_piece_length,
                                      shrinking_factor, n_sub_iterations)
        if len(scores) < vocab_size - n_fixed:
            warnings.warn(f"the corpus supports only {n_fixed + len(scores)} Unigram pieces, fewer than "
                          f"vocab_size={vocab_size}", stacklevel=2)
        learned = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
        return cls._assemble(special_tokens, unk_token, learned, settings)

    @classmethod
    def _assemble(cls, special_tokens, unk_token, learned, settings, backend="python") -> UnigramTokenizer:
        """Final vocabulary: special tokens (score 0), byte pieces if any, learned pieces by score."""
        pieces = [(t, 0.0) for t in special_tokens]
        if settings["byte_fallback"]:
            # below 6 x the lowest piece: "<0x41>" written in text always has a better segmentation
            byte_score = 6 * min(s for _, s in learned) - 1.0
            pieces += [(b, byte_score) for b in BYTE_PIECES]
        pieces += learned
        return cls(pieces, unk_id=special_tokens.index(unk_token), special_tokens=special_tokens,
                   backend=backend, **settings)

    @classmethod
    def _train_hf(cls, texts, vocab_size, special_tokens, unk_token, n_fixed, max_piece_length,
                  shrinking_factor, n_sub_iterations, settings) -> UnigramTokenizer:
        from tokenizers import Tokenizer as HFTokenizer
        from tokenizers import models, normalizers, pre_tokenizers, trainers

        hf = HFTokenizer(models.Unigram())
        if settings["nfkc"]:
            hf.normalizer = normalizers.NFKC()
        hf.pre_tokenizer = pre_tokenizers.Metaspace(replacement=SPACE, prepend_scheme=settings["prepend_scheme"],
                                                    split=True)
        n_learned = vocab_size - n_fixed
        if n_learned < 1:
            raise ValueError(f"vocab_size={vocab_size} is too small: the special tokens"
                             f"{' and 256 byte pieces' if settings['byte_fallback'] else ''} alone need {n_fixed}")
        trainer = trainers.UnigramTrainer(
            vocab_size=n_learned + len(special_tokens), special_tokens=special_tokens, unk_token=unk_token,
            initial_alphabet=list("<>x0123456789ABCDEF") if settings["byte_fallback"] else [],
            max_piece_length=max_piece_length, shrinking_factor=shrinking_factor,
            n_sub_iterations=n_sub_iterations, show_progress=False,
        )
        try:
            hf.train_from_iterator(texts, trainer)
        except Exception as e:  # tokenizers raises a bare Exception for this
            if "not large enough" not in str(e):
                raise
            raise ValueError(f"vocab_size={vocab_size} is too small for the special tokens"
                             f"{', 256 byte pieces' if settings['byte_fallback'] else ''} and the characters of "
                             f"the corpus ({e})") from None
        vocab = json.loads(hf.to_str())["model"]["vocab"]
        learned = [(p, s) for p, s in vocab if p not in special_tokens]
        if len(learned) > n_learned:  # tokenizers keeps every character whatever vocab_size says
            raise ValueError(f"vocab_size={vocab_size} is too small: the special tokens"
                             f"{', 256 byte pieces' if settings['byte_fallback'] else ''} and the characters of "
                             f"the corpus need {n_fixed + len(learned)}")
        if len(learned) < n_learned:
            warnings.warn(f"the corpus supports only {n_fixed + len(learned)} Unigram pieces, fewer than "
                          f"vocab_size={vocab_size}", stacklevel=3)
        return cls._assemble(special_tokens, unk_token, learned, settings, backend="hf")


def _bytes_to_text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return "\ufffd" * len(data)


# ---- training (Kudo 2018 §3.2) --------------------------------------------------------------
def _matches(word: str, scores: dict[str, float], max_len: int) -> list[tuple[int, int, str, float]]:
    """The lattice of a word: every (start, end, piece, score) with word[start:end] in the vocabulary."""
    n = len(word)
    return [
        (start, end, piece, scores[piece])
        for start in range(n)
        for end in range(start + 1, min(n, start + max_len) + 1)
        if (piece := word[start:end]) in scores
    ]


def _best_segmentation(word: str, scores: dict[str, float], max_len: int, banned: str | None = None) -> list[str]:
    """Viterbi with the current scores; ``banned`` is left out (to find a piece's alternative)."""
    n = len(word)
    best = [-math.inf] * (n + 1)
    back: list[tuple[int, str] | None] = [None] * (n + 1)
    best[0] = 0.0
    for start, end, piece, score in _matches(word, scores, max_len):
        if piece != banned and best[start] + score > best[end]:
            best[end], back[end] = best[start] + score, (start, piece)
    out = []
    end = n
    while end > 0:
        start, piece = back[end]
        out.append(piece)
        end = start
    return out[::-1]


def _expected_counts(word_counts: Counter[str], scores: dict[str, float], max_len: int) -> tuple[Counter, float]:
    """E-step: expected number of times each piece is used, over all segmentations of all words.

    For one word, alpha[i] = log of the summed probability of all segmentations of word[:i]
    (forward), beta[i] the same for word[i:] (backward). A piece spanning (s, e) is used with
    posterior probability exp(alpha[s] + log p(piece) + beta[e] - alpha[n]). Also returns the
    corpus log-likelihood sum_w count(w) * alpha_w[n].
    """
    expected: Counter[str] = Counter()
    log_likelihood = 0.0
    for word, count in word_counts.items():
        n = len(word)
        lattice = _matches(word, scores, max_len)
        alpha = [-math.inf] * (n + 1)
        alpha[0] = 0.0
        for start, end, _, score in lattice:  # ordered by start, so alpha[start] is complete
            alpha[end] = _logaddexp(alpha[end], alpha[start] + score)
        beta = [-math.inf] * (n + 1)
        beta[n] = 0.0
        for start, end, _, score in reversed(lattice):
            beta[start] = _logaddexp(beta[start], score + beta[end])
        z = alpha[n]
        for start, end, piece, score in lattice:
            expected[piece] += count * math.exp(alpha[start] + score + beta[end] - z)
        log_likelihood += count * z
    return expected, log_likelihood


def _m_step(expected: Counter[str], chars: set[str]) -> dict[str, float]:
    """M-step with the sparse (Bayesian / variational) update that SentencePiece uses.

    log p(x) = digamma(c_x) - digamma(sum c): rare pieces are pushed down more than by plain
    c_x / sum c, and pieces expected fewer than 0.5 times are dropped (characters always stay).
    """
    counts = {p: max(c, 0.5) if p in chars else c for p, c in expected.items() if c >= 0.5 or p in chars}
    for ch in chars - counts.keys():
        counts[ch] = 0.5
    log_total = digamma(sum(counts.values()))
    return {p: digamma(c) - log_total for p, c in counts.items()}


def _prune(
    word_counts: Counter[str], scores: dict[str, float], chars: set[str], keep: int, max_len: int
) -> dict[str, float]:
    """Keep the ``keep`` pieces whose removal would lose the most likelihood (Kudo 2018 §3.2, step 4).

    With f(x) the number of times piece x is in the best segmentations, removing x sends its
    occurrences to its own best segmentation without it, x -> y1 y2 ...; the lost log-likelihood is
    f(x) * (log p(x) - sum_i log p'(y_i)), where p' counts f(x) more uses of each y_i.
    Characters are always kept; pieces used by no best segmentation go first.
    """
    used: Counter[str] = Counter()
    for word, count in word_counts.items():
        for piece in _best_segmentation(word, scores, max_len):
            used[piece] += count
    total = sum(used.values())
    losses: list[tuple[float, str]] = []
    for piece in scores:
        if piece in chars or used[piece] == 0:
            continue
        f = used[piece]
        alternative = _best_segmentation(piece, scores, max_len, banned=piece)
        new_total = total + f * (len(alternative) - 1)
        log_p_alternative = sum(math.log(used[y] + f) - math.log(new_total) for y in alternative)
        losses.append((f * (math.log(f / total) - log_p_alternative), piece))
    losses.sort(key=lambda lp: (-lp[0], lp[1]))
    kept = [p for _, p in losses[: max(keep - len(chars), 0)]]
    return {p: scores[p] for p in list(chars) + kept}


def train_unigram_pieces(
    word_counts: Counter[str],
    n_pieces: int,
    chars: set[str],
    max_piece_length: int = 16,
    shrinking_factor: float = 0.75,
    n_sub_iterations: int = 2,
    seed_size: int = 1_000_000,
) -> dict[str, float]:
    """EM + pruning (Kudo 2018 §3.2): ``n_pieces`` pieces with their log-probabilities.

    1. Seed: every character, plus the substrings (up to ``max_piece_length`` characters) seen at
       least twice, ranked by frequency x length; initial scores are log of those numbers, normalized.
    2. Repeat: ``n_sub_iterations`` of EM, then keep the best ``shrinking_factor`` share of the pieces
       by ``_prune``'s loss, until at most 1.1 x ``n_pieces`` remain.
    3. Keep every character and the highest-scoring other pieces, ``n_pieces`` in all.
    """
    substring_counts: Counter[str] = Counter()
    char_counts: Counter[str] = Counter()
    for word, count in word_counts.items():
        for start in range(len(word)):
            char_counts[word[start]] += count
            for end in range(start + 2, min(len(word), start + max_piece_length) + 1):
                substring_counts[word[start:end]] += count
    frequent = sorted(((c * len(s), s) for s, c in substring_counts.items() if c >= 2), key=lambda cs: (-cs[0], cs[1]))
    seed = {ch: float(char_counts.get(ch, 1)) for ch in chars}
    for weight, piece in frequent[: max(seed_size - len(seed), 0)]:
        seed[piece] = float(weight)
    log_total = math.log(sum(seed.values()))
    scores = {p: math.log(w) - log_total for p, w in seed.items()}

    target = n_pieces + n_pieces // 10  # stop pruning at 1.1 x the final size, as SentencePiece
    while True:
        for _ in range(n_sub_iterations):
            expected, _ = _expected_counts(word_counts, scores, max_piece_length)
            scores = _m_step(expected, chars)
        if len(scores) <= target:
            break
        scores = _prune(word_counts, scores, chars, max(target, int(len(scores) * shrinking_factor)),
                        max_piece_length)

    others = sorted((p for p in scores if p not in chars), key=lambda p: (-scores[p], p))
    return {p: scores[p] for p in list(chars) + others[: max(n_pieces - len(chars), 0)]}
