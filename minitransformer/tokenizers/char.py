"""Character-level tokenizer: one id per character, for tiny runs such as character-level Shakespeare.

The vocabulary is the sorted set of characters seen in training (as in nanoGPT's
``shakespeare_char``), so ids 0..n-1 are the characters in code point order; special tokens, if any,
come after them. It is the simplest tokenizer that works: no merges, no unknown words -- only unknown
*characters*, which are an error unless an ``unk_token`` is given.

On disk it is a Hugging Face ``tokenizer.json`` with a WordLevel model whose pre-tokenizer isolates
every character (``Split`` on the regex ``[\\s\\S]``) and a ``Fuse`` decoder that joins the
characters back without spaces, so ``tokenizers.Tokenizer.from_file`` gives the same ids.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from minitransformer.tokenizers.base import (
    Tokenizer,
    as_token_id,
    check_special_tokens,
    special_token_pattern,
    split_added_tokens,
    split_on_special_tokens,
    with_added_token_flags,
)

# The regex of the Split pre-tokenizer in our tokenizer.json: any single character.
ONE_CHARACTER = r"[\s\S]"


class CharTokenizer(Tokenizer):
    """One id per character: ``chars[i]`` has id ``i``, special tokens follow.

    ``unk_token`` (optional, made a special token) is what characters outside the vocabulary
    become; without it they are a ValueError. Tokens added later (``add_tokens``) take the ids after
    the special tokens; the file lists them in ``added_tokens`` only, as ``tokenizers`` writes them.
    """

    def __init__(self, chars: Iterable[str], special_tokens: Iterable[str] | None = None,
                 unk_token: str | None = None):
        chars = list(chars)
        for c in chars:
            if not isinstance(c, str) or len(c) != 1:
                raise ValueError(f"CharTokenizer entries must be single characters, got {c!r}")
        if len(set(chars)) != len(chars):
            raise ValueError("CharTokenizer characters must be distinct")
        specials = check_special_tokens(special_tokens)
        if unk_token is not None and unk_token not in specials:
            specials = [*check_special_tokens([unk_token]), *specials]
        clash = [t for t in specials if t in chars]
        if clash:
            raise ValueError(f"special token {clash[0]!r} is also an ordinary character of the vocabulary")
        self.chars = chars
        self.special_tokens = specials
        self.unk_token = unk_token
        self._id_to_token = chars + specials
        self._vocab = {t: i for i, t in enumerate(self._id_to_token)}

    @classmethod
    def train(cls, texts_or_text: str | Iterable[str], special_tokens: Iterable[str] | None = None,
              unk_token: str | None = None) -> CharTokenizer:
        """The sorted set of characters in the text(s); special tokens in the text are not counted."""
        specials = check_special_tokens(special_tokens)
        pattern = special_token_pattern(specials + ([unk_token] if unk_token else []))
        if isinstance(texts_or_text, str):
            texts_or_text = [texts_or_text]
        elif isinstance(texts_or_text, (bytes, bytearray)) or not isinstance(texts_or_text, Iterable):
            raise TypeError(f"expected a str or an iterable of str, got {type(texts_or_text).__name__}")
        seen: set[str] = set()
        for i, text in enumerate(texts_or_text):
            if not isinstance(text, str):
                raise TypeError(f"texts must contain only str, item {i} is {type(text).__name__}")
            for piece, is_special in split_on_special_tokens(text, pattern):
                if not is_special:
                    seen.update(piece)
        if not seen:  # an empty vocabulary would save and load, and encode nothing
            raise ValueError("no text to train on: the texts hold no characters (besides special tokens)")
        return cls(sorted(seen), specials, unk_token)

    # ---- vocabulary -----------------------------------------------------------------------------
    @property
    def _model_size(self) -> int:
        return len(self._id_to_token)  # the characters, then the special tokens

    def _model_token_to_id(self, token: str) -> int | None:
        return self._vocab.get(token)

    def _model_id_to_token(self, idx: int) -> str:
        return self._id_to_token[idx]

    # ---- encoding -------------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        """One id per character; special tokens written in the text are one id each."""
        if not isinstance(text, str):
            raise TypeError(f"encode expects a str, got {type(text).__name__}")
        ids: list[int] = []
        unk_id = self._vocab.get(self.unk_token) if self.unk_token is not None else None
        for piece, is_special in self.split_on_added_tokens(text):  # no normalizer: pieces as they are
            if is_special:
                ids.append(self.token_to_id(piece))
                continue
            for c in piece:
                idx = self._vocab.get(c)
                if idx is None or (idx >= len(self.chars)):  # not a character of the vocabulary
                    if unk_id is None:
                        raise ValueError(f"character {c!r} (U+{ord(c):04X}) is not in the vocabulary "
                                         "and the tokenizer has no unk_token")
                    idx = unk_id
                ids.append(idx)
        return ids

    def encode_iterable(self, lines: Iterable[str]) -> Iterator[int]:
        """``encode("".join(lines))`` in bounded memory, even when a special token is split between pieces.

        Characters are encoded as they come, except a short tail that text still to come could change:
        the start of a special token, and more (``added_token_spans``' ``settled``). A cut is never made
        through an added token found in the text so far (nor through the whitespace it takes, nor where
        a ``single_word`` spelling was refused, nor where a token still to come would not see the
        character before it: ``uncuttable``); if text still to come makes it a different token, or
        none (a raw ``b!`` completed in "ab" + "!" wins over a "normalized" ``ab``), the text before it
        is unchanged.
        """
        if not self.special_tokens:
            for line in lines:
                yield from self.encode(line)
            return
        buffer = ""
        for line in lines:
            if not isinstance(line, str):
                raise TypeError(f"encode_iterable expects str pieces, got {type(line).__name__}")
            buffer += line
            _, uncuttable, cut = self.added_token_spans(buffer)
            while cut > 0 and cut in uncuttable:
                cut -= 1
            yield from self.encode(buffer[:cut])
            buffer = buffer[cut:]
        yield from self.encode(buffer)

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        if isinstance(ids, (str, bytes)):
            raise TypeError(f"decode expects a sequence of ids, got {type(ids).__name__}")
        skip = set(self.special_token_ids()) if skip_special_tokens else set()
        tokens = [self.id_to_token(i) for i in ids]  # every id is checked, skipped or not (99 is an error)
        return "".join(t for i, t in zip(ids, tokens, strict=True) if as_token_id(i) not in skip)

    # ---- files ----------------------------------------------------------------------------------
    def to_hf_dict(self) -> dict:
        # WordLevel needs an unk_token string; if we have none, name one that is not in the
        # vocabulary, so that `tokenizers` fails on unknown characters just as we do.
        unk = self.unk_token
        if unk is None:
            unk = next(u for u in ("<unk>", "[UNK]", *(f"<unk{i}>" for i in range(self.vocab_size + 1)))
                       if self.token_to_id(u) is None)
        return {
            "version": "1.0",
            "truncation": None,
            "padding": None,
            "added_tokens": self._added_tokens_json(),
            "normalizer": None,
            "pre_tokenizer": {"type": "Split", "pattern": {"Regex": ONE_CHARACTER}, "behavior": "Isolated",
                              "invert": False},
            "post_processor": None,
            "decoder": {"type": "Fuse"},
            "model": {"type": "WordLevel", "vocab": dict(self._vocab), "unk_token": unk},
        }

    @classmethod
    def from_hf_dict(cls, data: dict) -> CharTokenizer:
        """Inverse of ``to_hf_dict``: a WordLevel model over single characters."""
        model = data["model"]
        if model.get("type") != "WordLevel":
            raise ValueError(f"model type is {model.get('type')!r}, expected 'WordLevel' (a character tokenizer)")
        pre = data.get("pre_tokenizer") or {}
        if pre.get("type") != "Split" or pre.get("pattern") != {"Regex": ONE_CHARACTER} or pre.get("invert"):
            raise ValueError("not a character tokenizer: the pre_tokenizer must split every character "
                             f"(Split on {ONE_CHARACTER!r}), got {pre!r}")
        if data.get("normalizer") is not None:
            raise ValueError("a character tokenizer has no normalizer")
        vocab = model.get("vocab")
        if not isinstance(vocab, dict) or not all(isinstance(t, str) and isinstance(i, int) and not isinstance(i, bool)
                                                  for t, i in vocab.items()):
            raise ValueError("a character tokenizer's model.vocab must map each token (a string) to its id (an integer)")
        by_id = sorted(vocab.items(), key=lambda kv: kv[1])
        if [i for _, i in by_id] != list(range(len(by_id))):
            raise ValueError("vocabulary ids must be 0..n-1")
        in_model, _ = split_added_tokens(data, vocab)
        # model.vocab is the characters, then the special tokens (added tokens). A character may be an
        # added token too (add_tokens(["a"]) makes it one): the characters run up to the last entry
        # that is no added token. The added tokens not in model.vocab come after it (add_tokens).
        tokens = [t for t, _ in by_id]
        added_here = set(in_model)
        n_chars = max((i + 1 for i, t in enumerate(tokens) if t not in added_here), default=0)
        chars, specials = tokens[:n_chars], tokens[n_chars:]
        if any(len(c) != 1 for c in chars):
            raise ValueError("character ids must come first, then the special tokens, got "
                             f"{next(c for c in chars if len(c) != 1)!r} among the characters")
        unk = model.get("unk_token")
        return with_added_token_flags(cls(chars, specials, unk if unk in specials else None), data)

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size}, special_tokens={self.special_tokens})"
