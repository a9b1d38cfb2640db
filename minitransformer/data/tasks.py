"""What the offline fine-tuning tasks share: a text-to-text example and a stable train/held-out rule.

T5 casts every task as text in, text out, with a task prefix on the input such as
``"translate English to German: "`` (Raffel et al. 2020, §2.4). The tasks here are built offline
from the embedded corpus or generated data, so they run anywhere without downloads:

- ``sql_task``: English questions -> SQL over a small generated database, scored by execution.
- ``translation_task``: English lines of Shakespeare -> Pig Latin (a deterministic rewrite).
- ``play_task``: which play a passage comes from (classification, for BERT), with two baselines.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass


@dataclass(frozen=True)
class TextPair:
    """One text-to-text example: ``source`` (task prefix included) -> ``target``.

    ``text_pair``: a second input text, for classifying a *pair* of texts (does b follow a? do they
    mean the same?), which BERT reads as ``[CLS] source [SEP] text_pair [SEP]`` (Devlin et al. 2019 §4.1).
    """

    source: str
    target: str
    text_pair: str | None = None


@dataclass(frozen=True)
class TextToTextTask:
    """A task's prefix and its examples, split into train and held-out."""

    prefix: str
    train: list[TextPair]
    heldout: list[TextPair]


def is_heldout(key: str, heldout_fraction: float) -> bool:
    """Whether the example with this ``key`` goes to the held-out split.

    Decided by a CRC-32 of the key, so it is the same on every machine and Python version
    (unlike ``hash()``), and examples sharing a key always land on the same side.
    """
    if not 0.0 <= heldout_fraction <= 1.0:
        raise ValueError(f"heldout_fraction must be in [0, 1], got {heldout_fraction}")
    return zlib.crc32(key.encode("utf-8")) % 10_000 < heldout_fraction * 10_000
