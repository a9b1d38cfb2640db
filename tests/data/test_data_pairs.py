"""Text pairs for fine-tuning: the two file formats, the built-in tasks, the train/validation rule,
and a clear error (with the line number) for every kind of broken file."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minitransformer.data.pairs import BUILTIN_TASKS, builtin_task, pair_splits, read_pairs
from minitransformer.data.sql_task import make_sql_task
from minitransformer.data.tasks import TextPair, is_heldout

# texts with something visible in them (an empty or blank side is refused), and no line breaks
line_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r"),
                    min_size=1, max_size=30).filter(lambda t: t.strip())


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(line_text, line_text), min_size=1, max_size=8))
def test_jsonl_round_trip(tmp_path_factory, pairs):
    path = tmp_path_factory.mktemp("pairs") / "p.jsonl"
    path.write_text("".join(json.dumps({"input": s, "target": t}) + "\n" for s, t in pairs), encoding="utf-8")
    assert read_pairs(path) == [TextPair(s, t) for s, t in pairs]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(line_text.filter(lambda t: "\t" not in t), line_text.filter(lambda t: "\t" not in t)),
                min_size=1, max_size=8))
def test_tsv_round_trip(tmp_path_factory, pairs):
    path = tmp_path_factory.mktemp("pairs") / "p.tsv"
    path.write_text("".join(f"{s}\t{t}\n" for s, t in pairs), encoding="utf-8")
    assert read_pairs(path) == [TextPair(s, t) for s, t in pairs]


def test_source_is_another_name_for_input_and_blank_lines_are_skipped(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"source": "a", "target": "b"}\n\n   \n{"input": "c", "target": "d", "id": 7}\r\n'
                    '{"text": "e", "label": 3}\n{"text": "f", "label": "good"}\n', encoding="utf-8")
    assert read_pairs(path) == [TextPair("a", "b"), TextPair("c", "d"), TextPair("e", "3"), TextPair("f", "good")]


@pytest.mark.parametrize("name, text, needle", [
    ("p.jsonl", '{"input": "a", "target": "b"}\n{"input": "a" "target": "b"}\n', "line 2: not JSON"),
    ("p.jsonl", '["a", "b"]\n', "line 1: expected an object"),
    ("p.jsonl", '{"question": "a", "answer": "b"}\n', 'needs "input" (or "source", "text") and "target"'),
    ("p.jsonl", '{"input": "a", "target": [3]}\n', "must be strings"),
    ("p.jsonl", '{"input": "a", "target": "  "}\n', "must not be empty"),
    ("p.jsonl", "\n\n", "holds no examples"),
    ("p.tsv", "a\tb\nonly an input\n", "line 2: expected the input, one tab, the target"),
    ("p.tsv", "a\tb\tc\td\n", "found 3 tabs"),
    ("p.csv", "a,b\n", "must end in .jsonl"),
])
def test_broken_files_are_named_with_their_line(tmp_path, name, text, needle):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=None) as info:
        read_pairs(path)
    assert needle in str(info.value)


def test_a_second_input_text_for_classifying_pairs(tmp_path):
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_text('{"text": "a", "text_pair": "b", "label": "same"}\n{"text": "c", "label": "x"}\n', encoding="utf-8")
    assert read_pairs(jsonl) == [TextPair("a", "same", "b"), TextPair("c", "x")]
    tsv = tmp_path / "p.tsv"
    tsv.write_text("a\tb\tsame\nc\tx\n", encoding="utf-8")
    assert read_pairs(tsv) == [TextPair("a", "same", "b"), TextPair("c", "x")]
    for text, needle in (('{"text": "a", "text_pair": 3, "label": "y"}', "must be strings"),
                         ('{"text": "a", "text_pair": " ", "label": "y"}', "must not be empty")):
        jsonl.write_text(text + "\n", encoding="utf-8")
        with pytest.raises(ValueError, match=needle):
            read_pairs(jsonl)


def test_missing_and_non_utf8_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="pairs file not found"):
        read_pairs(tmp_path / "nothing.jsonl")
    path = tmp_path / "latin1.tsv"
    path.write_bytes("caf\xe9\tcoffee\n".encode("latin-1"))
    with pytest.raises(ValueError, match="not UTF-8"):
        read_pairs(path)


def test_a_builtin_task_validates_on_its_own_heldout_split():
    task = make_sql_task()
    splits = pair_splits("sql")
    assert splits == {"train": task.train, "val": task.heldout}
    for name in BUILTIN_TASKS:
        train, heldout = builtin_task(name)
        assert train and heldout and not {p.source for p in train} & {p.source for p in heldout}
    with pytest.raises(ValueError, match="brings its own validation split"):
        pair_splits("sql", val_data="other.jsonl")
    with pytest.raises(ValueError, match="unknown built-in task"):
        builtin_task("poetry")


def test_a_file_is_split_by_a_hash_of_the_input(tmp_path):
    pairs = [TextPair(f"question {i % 150}", f"answer {i}") for i in range(300)]  # every input twice
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps({"input": p.source, "target": p.target}) + "\n" for p in pairs), encoding="utf-8")
    splits = pair_splits(str(path), val_fraction=0.2)
    assert sorted(splits["train"] + splits["val"], key=pairs.index) == pairs  # nothing lost, nothing doubled
    assert not {p.source for p in splits["train"]} & {p.source for p in splits["val"]}  # repeats stay together
    assert all(is_heldout(p.source, 0.2) for p in splits["val"])
    assert 0.1 < len(splits["val"]) / len(pairs) < 0.3
    assert pair_splits(str(path), val_fraction=0.2) == splits  # the same every time

    val = tmp_path / "v.tsv"
    val.write_text("x\ty\n", encoding="utf-8")
    assert pair_splits(str(path), val_data=str(val)) == {"train": pairs, "val": [TextPair("x", "y")]}

    one = tmp_path / "one.tsv"
    one.write_text("a\tb\n", encoding="utf-8")
    with pytest.raises(ValueError, match="give more examples or a validation file"):
        pair_splits(str(one))
