"""Fine-tuning examples from a file, or from one of the built-in tasks.

A fine-tuning set is a list of (input, target) pairs (``TextPair``): for T5 an input text and the
text to write ("translate English to SQL: Who works in Sales?" -> "SELECT ..."), for a BERT
classifier a text and its class name ("O Romeo, Romeo" -> "Romeo and Juliet"). Two file formats,
one example per line:

- ``.jsonl``: ``{"input": "...", "target": "..."}``; ``"source"`` or ``"text"`` may name the input,
  ``"label"`` the target (a number is read as its text, "3"); ``"text_pair"`` a second input text,
  for classifying pairs of texts;
- ``.tsv``: the input, one tab, the target; or the input, the second input and the target (no field
  may hold a tab; use JSON Lines for those).

Built-in tasks need no file: ``"sql"`` (English questions -> SQL over a small generated database,
``sql_task``), ``"translation"`` (English -> Pig Latin, ``translation_task``) and, for
classification, ``"plays"`` (which play a passage of four spoken lines comes from, ``play_task``);
each comes with its own held-out split.

    splits = pair_splits("my_pairs.jsonl", val_data=None, val_fraction=0.1)   # {"train": [...], "val": [...]}
"""
from __future__ import annotations

import json
from pathlib import Path

from minitransformer.data.tasks import TextPair, is_heldout

BUILTIN_TASKS = ("sql", "translation", "plays")
FORMATS = (".jsonl", ".tsv")


def read_pairs(path: str | Path) -> list[TextPair]:
    """The (input, target) pairs of a ``.jsonl`` or ``.tsv`` file; ValueError naming the line at fault."""
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise ValueError(f"{path}: a pairs file must end in .jsonl (JSON Lines) or .tsv (tab-separated), "
                         f"got {path.suffix or 'no extension'!r}")
    if not path.is_file():
        raise FileNotFoundError(f"pairs file not found: {path}")
    try:
        # lines end at "\n" only (a "\r" before it is dropped): other line separators may be text
        lines = [line.removesuffix("\r") for line in path.read_text(encoding="utf-8").split("\n")]
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not UTF-8 text ({e.reason} at byte {e.start})") from None
    pairs = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue  # blank lines (a trailing newline, a visual break) are not examples
        where = f"{path}, line {number}"
        text_pair = None
        if path.suffix.lower() == ".tsv":
            fields = line.split("\t")
            if len(fields) not in (2, 3):
                raise ValueError(f"{where}: expected the input, one tab, the target (or input, second input, target); "
                                 f"found {len(fields) - 1} tabs")
            source, *pair, target = fields
            text_pair = pair[0] if pair else None
        else:
            try:
                item = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{where}: not JSON ({e.msg})") from None
            if not isinstance(item, dict):
                raise ValueError(f'{where}: expected an object {{"input": ..., "target": ...}}, '
                                 f"got {type(item).__name__}")
            source = next((item[k] for k in ("input", "source", "text") if k in item), None)
            target = next((item[k] for k in ("target", "label") if k in item), None)
            if source is None or target is None:
                raise ValueError(f'{where}: an example needs "input" (or "source", "text") and "target" (or '
                                 f'"label"); found keys {sorted(item)}')
            if isinstance(target, int) and not isinstance(target, bool):
                target = str(target)  # a class number
            text_pair = item.get("text_pair")
        if not isinstance(source, str) or not isinstance(target, str) or not isinstance(text_pair, str | None):
            raise ValueError(f"{where}: input, target and text_pair must be strings")
        if not source.strip() or not target.strip() or (text_pair is not None and not text_pair.strip()):
            raise ValueError(f"{where}: the input, the target and a text_pair must not be empty")
        pairs.append(TextPair(source, target, text_pair))
    if not pairs:
        raise ValueError(f"{path} holds no examples")
    return pairs


def builtin_task(name: str) -> tuple[list[TextPair], list[TextPair]]:
    """(train, held-out) pairs of a built-in task: ``"sql"``, ``"translation"`` or ``"plays"``."""
    if name == "plays":
        from minitransformer.data.play_task import make_play_classification

        plays = make_play_classification()
        return ([TextPair(text, plays.labels[c]) for text, c in plays.train],
                [TextPair(text, plays.labels[c]) for text, c in plays.test])
    if name == "sql":
        from minitransformer.data.sql_task import make_sql_task

        task = make_sql_task()
    elif name == "translation":
        from minitransformer.data.translation_task import make_translation_task

        task = make_translation_task()
    else:
        raise ValueError(f"unknown built-in task {name!r}; built in: {', '.join(BUILTIN_TASKS)}")
    return task.train, task.heldout


def pair_splits(data: str, val_data: str | None = None, val_fraction: float = 0.1) -> dict[str, list[TextPair]]:
    """Training and validation pairs.

    ``data`` is a built-in task (its own held-out split validates) or a file. From a file without
    ``val_data``, about ``val_fraction`` of the examples validate, chosen by a hash of the input
    (``is_heldout``): the same on every machine, and repeated inputs never straddle the two splits.
    """
    if data in BUILTIN_TASKS:
        if val_data is not None:
            raise ValueError(f"the built-in task {data!r} brings its own validation split; drop the validation file")
        train, val = builtin_task(data)
        return {"train": train, "val": val}
    pairs = read_pairs(data)
    if val_data is not None:
        return {"train": pairs, "val": read_pairs(val_data)}
    def key(p: TextPair) -> str:  # the whole input: both texts of a pair
        return p.source if p.text_pair is None else f"{p.source}\t{p.text_pair}"

    train = [p for p in pairs if not is_heldout(key(p), val_fraction)]
    val = [p for p in pairs if is_heldout(key(p), val_fraction)]
    if not train or not val:
        raise ValueError(f"{data}: its {len(pairs)} examples gave {len(train)} for training and {len(val)} for "
                         f"validation (val_fraction={val_fraction}); give more examples or a validation file")
    return {"train": train, "val": val}
