"""A rule-based "translation" task: English lines of Shakespeare -> Pig Latin.

A stand-in for T5's WMT translation tasks (Raffel et al. 2020, §2.3) that needs no download: the
target is a deterministic rewrite of the source, so a model that learns the rule scores 100%, and
exact match on held-out lines measures whether it learned the rule or memorised lines.

Pig Latin rules used here, word by word (a word is letters with inner apostrophes, ``reliev'd``):
a word starting with a vowel (a, e, i, o, u) gets ``way``: ``and -> andway``; otherwise its leading
consonants (``y`` counts as a consonant only at the start) move to the end, then ``ay``:
``there -> erethay``, ``my -> ymay``; a word without vowels just gets ``ay``. A capitalised word
stays capitalised (``Romeo -> Omeoray``); an all-capitals word of two or more letters stays in capitals.
Everything that is not a word (spaces, punctuation) is copied.
"""
from __future__ import annotations

import re

from minitransformer.data.corpus import dialogue_lines, load_plays
from minitransformer.data.tasks import TextPair, TextToTextTask, is_heldout

PIG_LATIN_PREFIX = "translate English to Pig Latin: "
_WORD_RE = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)*")
_VOWELS = "aeiouAEIOU"


def _pig_latin_word(word: str) -> str:
    if word[0] in _VOWELS:
        out = word + "way"
    else:
        # leading consonants; "y" after the first letter acts as a vowel ("rhythm" -> "ythmrhay")
        k = 1
        while k < len(word) and word[k] not in _VOWELS + "yY":
            k += 1
        out = word[k:] + word[:k] + "ay"
    if len(word) > 1 and word.isupper():
        return out.upper()
    if word[0].isupper():
        return out[0].upper() + out[1:].lower()
    return out


def pig_latin(text: str) -> str:
    """Rewrite every word of ``text`` in Pig Latin (rules in the module docstring)."""
    return _WORD_RE.sub(lambda m: _pig_latin_word(m.group(0)), text)


def make_translation_task(
    heldout_fraction: float = 0.1,
    min_chars: int = 10,
    max_chars: int = 60,
    max_examples: int | None = None,
) -> TextToTextTask:
    """Pig Latin pairs from the spoken lines of the embedded plays.

    Lines of ``min_chars`` to ``max_chars`` characters are used once each (duplicates such as
    "My lord." appear once), in corpus order; a line goes to held-out by a hash of its text, so no
    held-out line appears verbatim in train. ``max_examples`` keeps the first N of each split's
    share (train and held-out are cut in proportion).
    """
    if min_chars < 1 or max_chars < min_chars:
        raise ValueError(f"need 1 <= min_chars <= max_chars, got {min_chars}, {max_chars}")
    seen: set[str] = set()
    train: list[TextPair] = []
    heldout: list[TextPair] = []
    for play in load_plays().values():
        for line in dialogue_lines(play):
            if not min_chars <= len(line) <= max_chars or line in seen:
                continue
            seen.add(line)
            pair = TextPair(PIG_LATIN_PREFIX + line, pig_latin(line))
            (heldout if is_heldout(line, heldout_fraction) else train).append(pair)
    if max_examples is not None:
        if max_examples < 1:
            raise ValueError(f"max_examples must be >= 1, got {max_examples}")
        n_heldout = round(max_examples * heldout_fraction)
        train, heldout = train[: max_examples - n_heldout], heldout[:n_heldout]
    return TextToTextTask(PIG_LATIN_PREFIX, train, heldout)
