"""Offline fine-tuning tasks: text-to-SQL with execution match, Pig Latin, play classification."""
from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from minitransformer.data.corpus import dialogue_lines, load_plays
from minitransformer.data.play_task import (
    NaiveBayes,
    majority_baseline,
    make_play_classification,
    naive_bayes_baseline,
)
from minitransformer.data.sql_task import SQL_PREFIX, execution_match, make_database, make_sql_task
from minitransformer.data.translation_task import PIG_LATIN_PREFIX, make_translation_task, pig_latin

# ---- text-to-SQL -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sql_task():
    return make_sql_task(seed=0)


def test_database_is_deterministic_and_queryable():
    a, b, c = make_database(0), make_database(0), make_database(1)
    assert a.rows == b.rows and a.rows != c.rows
    assert a.execute("SELECT COUNT(*) FROM employees") == [(40,)]
    assert len(a.execute("SELECT DISTINCT salary FROM employees")) == 40   # no ties for ORDER BY
    assert "CREATE TABLE employees" in a.schema()


def test_every_gold_query_runs_and_returns_rows(sql_task):
    db = sql_task.database
    pairs = sql_task.train + sql_task.heldout
    assert len(pairs) > 300
    for pair in pairs:
        assert pair.source.startswith(SQL_PREFIX)
        rows = db.execute(pair.target)
        assert rows and any(v is not None for row in rows for v in row)
        assert execution_match(pair.target, pair.target, db)
    for keyword in ("WHERE", "COUNT(", "AVG(", "ORDER BY", "LIMIT", "JOIN", "GROUP BY", "SUM(", "MAX("):
        assert any(keyword in p.target for p in sql_task.train), keyword


def test_split_is_disjoint_and_deterministic(sql_task):
    train_q = {p.source for p in sql_task.train}
    train_sql = {p.target for p in sql_task.train}
    assert not train_q & {p.source for p in sql_task.heldout}
    assert not train_sql & {p.target for p in sql_task.heldout}       # held-out queries are new queries
    assert 0.08 < len(sql_task.heldout) / (len(sql_task.train) + len(sql_task.heldout)) < 0.25
    assert make_sql_task(seed=0) == sql_task


def test_execution_match_compares_results_not_text(sql_task):
    db = sql_task.database
    gold = "SELECT name FROM employees WHERE salary > 90000"
    assert execution_match("select NAME from employees where 90000 < salary", gold, db)
    assert execution_match("SELECT name FROM employees WHERE salary > 90000 ORDER BY name DESC", gold, db)
    assert not execution_match("SELECT name FROM employees WHERE salary > 80000", gold, db)
    assert not execution_match("SELECT name, age FROM employees WHERE salary > 90000", gold, db)
    ordered = "SELECT name FROM employees ORDER BY salary DESC LIMIT 3"
    assert execution_match("SELECT name FROM employees ORDER BY salary DESC LIMIT 3", ordered, db)
    assert not execution_match("SELECT name FROM employees ORDER BY salary ASC LIMIT 3", ordered, db)
    reversed_top3 = "SELECT name FROM (SELECT name, salary FROM employees ORDER BY salary DESC LIMIT 3) ORDER BY salary"
    assert not execution_match(reversed_top3, ordered, db)              # same rows, wrong order
    avg = "SELECT AVG(salary) FROM employees"
    assert execution_match("SELECT SUM(salary) * 1.0 / COUNT(*) FROM employees", avg, db)


def test_bad_predictions_are_wrong_never_a_crash(sql_task):
    db = sql_task.database
    gold = "SELECT COUNT(*) FROM employees"
    for bad in ["", "SELEC name FROM", "SELECT * FROM nowhere", "DROP TABLE employees",
                "DELETE FROM employees", "PRAGMA query_only = OFF", "SELECT 1; DROP TABLE employees",
                "ATTACH DATABASE 'x.db' AS x", "SELECT 'a\0b'", "SELECT length(zeroblob(300000000))",
                "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT COUNT(*) FROM r"]:
        assert not execution_match(bad, gold, db)
    assert db.execute(gold) == [(40,)]                                  # nothing was changed
    with pytest.raises(sqlite3.Error):
        execution_match(gold, "SELECT nonsense FROM", db)               # a broken gold query is a bug
    with pytest.raises(TypeError):
        execution_match(None, gold, db)


# ---- Pig Latin ---------------------------------------------------------------------------------------------


def test_pig_latin_rules():
    assert pig_latin("Long live the king!") == "Onglay ivelay ethay ingkay!"
    assert pig_latin("and I, my rhythm? yes") == "andway Iway, ymay ythmrhay? esyay"
    assert pig_latin("Who's there, HAMLET? Hmm") == "O'swhay erethay, AMLETHAY? Hmmay"
    assert pig_latin("--,; 123") == "--,; 123"


def test_translation_task_split_and_prefix():
    task = make_translation_task()
    assert task.prefix == PIG_LATIN_PREFIX
    assert len(task.train) > 5000 and len(task.heldout) > 500
    assert not {p.source for p in task.train} & {p.source for p in task.heldout}
    for pair in task.train[:200] + task.heldout[:200]:
        line = pair.source.removeprefix(PIG_LATIN_PREFIX)
        assert pair.target == pig_latin(line) and 10 <= len(line) <= 60
    small = make_translation_task(max_examples=100)
    assert len(small.train) == 90 and len(small.heldout) == 10
    assert small.train == task.train[:90]


# ---- play classification -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def play_task():
    return make_play_classification()


def test_play_passages_are_split_in_blocks_without_touching_neighbours(play_task):
    plays = load_plays()
    assert play_task.labels == list(plays)
    assert len(play_task.train) > 3000 and len(play_task.test) > 800
    train_texts = {t for t, _ in play_task.train}
    assert not train_texts & {t for t, _ in play_task.test}
    assert set(y for _, y in play_task.test) == set(range(len(plays)))
    # position of each passage in its play: no train passage is next to a test passage
    for label, title in enumerate(play_task.labels):
        lines = dialogue_lines(plays[title])
        passages = [" ".join(lines[i:i + 4]) for i in range(0, len(lines) - 3, 4)]
        index = {p: j for j, p in enumerate(passages)}
        test_pos = {index[t] for t, y in play_task.test if y == label}
        train_pos = {index[t] for t, y in play_task.train if y == label}
        assert not any(j - 1 in test_pos or j + 1 in test_pos for j in train_pos)
        assert len(test_pos) / len(passages) == pytest.approx(0.2, abs=0.02)
        # the test passages form at most 2 contiguous runs (the 2 test blocks)
        runs = sum(1 for j in test_pos if j - 1 not in test_pos)
        assert 1 <= runs <= 2
    assert make_play_classification() == play_task


def test_baselines(play_task):
    majority = majority_baseline(play_task)
    counts = np.bincount([y for _, y in play_task.test], minlength=len(play_task.labels))
    train_majority = np.bincount([y for _, y in play_task.train]).argmax()
    assert majority == pytest.approx(counts[train_majority] / counts.sum())
    bayes = naive_bayes_baseline(play_task)
    assert bayes > majority + 0.2          # words carry a lot of signal about the play
    two = make_play_classification(titles=["Hamlet", "The Tempest"])
    assert naive_bayes_baseline(two) > 0.7


def test_naive_bayes_on_a_toy_problem():
    texts = ["sword battle blood", "blood war sword", "love kiss rose", "rose love sweet"]
    model = NaiveBayes().fit(texts, [0, 0, 1, 1])
    assert model.predict(["a bloody sword fight", "sweet rose", "unseen words only"]).tolist()[:2] == [0, 1]


def test_play_task_errors():
    with pytest.raises(ValueError, match="unknown play titles"):
        make_play_classification(titles=["Hamlet", "Cats"])
    with pytest.raises(ValueError, match="at least 2"):
        make_play_classification(titles=["Hamlet"])
    with pytest.raises(ValueError, match="test_blocks"):
        make_play_classification(n_blocks=2, test_blocks=2)
    with pytest.raises(ValueError, match="listed once"):  # two labels for one play shared 588 passages
        make_play_classification(titles=["Hamlet", "Hamlet", "Macbeth"])
    with pytest.raises(ValueError, match="fewer than n_blocks"):  # used to give empty train and test sets
        make_play_classification(titles=["Hamlet", "Macbeth"], lines_per_passage=10**6)


def test_naive_bayes_errors():
    for alpha in (float("nan"), float("inf"), 0, True):  # NaN always predicted class 0
        with pytest.raises(ValueError, match="alpha"):
            NaiveBayes(alpha=alpha)
    with pytest.raises(ValueError, match="at least one"):
        NaiveBayes().fit([], [])
    with pytest.raises(ValueError, match="before fit"):
        NaiveBayes().predict(["a text"])
