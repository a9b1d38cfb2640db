"""An offline text-to-SQL task: English questions -> SQL over a small generated database.

Text-to-SQL is a natural text-to-text task for T5 ("translate English to SQL: ..."). A prediction is
scored by execution match: run it and the gold query on the same database and compare the rows,
so any SQL that returns the right answer counts, and broken SQL is simply wrong.

The database has three tables made from a seeded random number generator:
``departments(id, name, city)``, ``employees(id, name, age, salary, hire_year, department_id)`` and
``projects(id, name, budget, department_id)``. Questions come from templates (WHERE, COUNT, AVG,
MIN/MAX, SUM, ORDER BY ... LIMIT, JOIN, GROUP BY), each with two phrasings. The held-out split is
chosen by gold query, so a held-out question is never in train, not even in its other phrasing.
"""
from __future__ import annotations

import random
import sqlite3
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from minitransformer.data.tasks import TextPair, TextToTextTask, is_heldout

SQL_PREFIX = "translate English to SQL: "

_DEPARTMENTS = ["Sales", "Engineering", "Marketing", "Finance", "Research"]
_CITIES = ["London", "Paris", "Berlin", "Madrid", "Rome", "Vienna"]
_FIRST_NAMES = [
    "Alice", "Bob", "Carol", "David", "Emma", "Frank", "Grace", "Henry", "Irene", "Jack", "Karen", "Leo",
    "Maria", "Nathan", "Olivia", "Peter", "Quinn", "Rachel", "Sam", "Tina", "Umar", "Vera", "Walter",
    "Xenia", "Yusuf", "Zoe", "Adam", "Bella", "Chris", "Diana", "Ethan", "Fiona", "George", "Hannah",
    "Ivan", "Julia", "Kevin", "Laura", "Mark", "Nina",
]
_PROJECTS = ["Apollo", "Borealis", "Cascade", "Delta", "Echo", "Falcon", "Granite", "Horizon",
             "Ion", "Juniper", "Keystone", "Lumen"]

_SCHEMA = {
    "departments": [("id", "INTEGER"), ("name", "TEXT"), ("city", "TEXT")],
    "employees": [("id", "INTEGER"), ("name", "TEXT"), ("age", "INTEGER"), ("salary", "INTEGER"),
                  ("hire_year", "INTEGER"), ("department_id", "INTEGER")],
    "projects": [("id", "INTEGER"), ("name", "TEXT"), ("budget", "INTEGER"), ("department_id", "INTEGER")],
}

# sqlite3 authorizer: a query may only read.
_READ_ONLY_ACTIONS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION,
                      getattr(sqlite3, "SQLITE_RECURSIVE", 33)}
_MAX_VM_STEPS = 2_000_000   # a runaway prediction (e.g. a huge cross join) is stopped, not waited for


class SqlDatabase:
    """The generated tables and a read-only in-memory sqlite3 connection to them."""

    def __init__(self, rows: dict[str, list[tuple]]):
        self.rows = rows
        self._connection: sqlite3.Connection | None = None
        self._steps = 0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SqlDatabase) and self.rows == other.rows

    __hash__ = None  # mutable connection inside; compare by rows, do not hash

    def schema(self) -> str:
        """The ``CREATE TABLE`` statements, one a line."""
        return "\n".join(
            f"CREATE TABLE {table} ({', '.join(f'{c} {t}' for c, t in columns)});"
            for table, columns in _SCHEMA.items()
        )

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            conn = sqlite3.connect(":memory:")
            conn.executescript(self.schema())
            for table, rows in self.rows.items():
                marks = ", ".join("?" * len(_SCHEMA[table]))
                conn.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)
            conn.commit()
            conn.set_authorizer(lambda action, *_: sqlite3.SQLITE_OK if action in _READ_ONLY_ACTIONS
                                else sqlite3.SQLITE_DENY)
            conn.set_progress_handler(self._count_steps, 1000)
            # no string or blob over 1 MB: zeroblob(300000000) would otherwise allocate ~800 MB
            conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 1_000_000)
            self._connection = conn
        return self._connection

    def _count_steps(self) -> int:
        self._steps += 1000
        return int(self._steps > _MAX_VM_STEPS)   # non-zero aborts the query

    def execute(self, sql: str) -> list[tuple]:
        """Run one read-only query and return its rows. sqlite3.Error for bad, writing or runaway SQL."""
        conn = self._connect()
        self._steps = 0
        return conn.execute(sql).fetchall()


def make_database(seed: int = 0) -> SqlDatabase:
    """The task's database, the same for the same seed: 5 departments, 40 employees, 12 projects.

    Ages, salaries and budgets are distinct within their table, so ORDER BY ... LIMIT has no ties.
    """
    rng = random.Random(seed)
    departments = [(i + 1, name, rng.choice(_CITIES)) for i, name in enumerate(_DEPARTMENTS)]
    ages = rng.sample(range(22, 65), len(_FIRST_NAMES))
    salaries = rng.sample(range(30_000, 150_001, 1_000), len(_FIRST_NAMES))
    employees = [
        (i + 1, name, ages[i], salaries[i], rng.randint(2005, 2023), rng.randint(1, len(_DEPARTMENTS)))
        for i, name in enumerate(_FIRST_NAMES)
    ]
    budgets = rng.sample(range(50_000, 1_000_001, 10_000), len(_PROJECTS))
    projects = [(i + 1, name, budgets[i], rng.randint(1, len(_DEPARTMENTS))) for i, name in enumerate(_PROJECTS)]
    return SqlDatabase({"departments": departments, "employees": employees, "projects": projects})


_JOIN_ED = "FROM employees JOIN departments ON employees.department_id = departments.id"
_JOIN_PD = "FROM projects JOIN departments ON projects.department_id = departments.id"


def _question_templates(db: SqlDatabase) -> list[tuple[tuple[str, str], str]]:
    """All ((phrasing 1, phrasing 2), gold SQL) of the task, before filtering and splitting."""
    out: list[tuple[tuple[str, str], str]] = []
    departments = [d[1] for d in db.rows["departments"]]
    cities = sorted({d[2] for d in db.rows["departments"]})
    names = [e[1] for e in db.rows["employees"]]
    for d in departments:
        out += [
            ((f"Which employees work in {d}?", f"List the names of the employees in the {d} department."),
             f"SELECT employees.name {_JOIN_ED} WHERE departments.name = '{d}'"),
            ((f"How many employees work in {d}?", f"Count the employees of the {d} department."),
             f"SELECT COUNT(*) {_JOIN_ED} WHERE departments.name = '{d}'"),
            ((f"What is the average salary in {d}?", f"Give the mean salary of the {d} department."),
             f"SELECT AVG(employees.salary) {_JOIN_ED} WHERE departments.name = '{d}'"),
            ((f"What is the highest salary in {d}?", f"Give the maximum salary of the {d} department."),
             f"SELECT MAX(employees.salary) {_JOIN_ED} WHERE departments.name = '{d}'"),
            ((f"What is the total budget of the projects of {d}?", f"Sum the project budgets of the {d} department."),
             f"SELECT SUM(projects.budget) {_JOIN_PD} WHERE departments.name = '{d}'"),
            ((f"Which projects belong to {d}?", f"List the projects of the {d} department."),
             f"SELECT projects.name {_JOIN_PD} WHERE departments.name = '{d}'"),
            ((f"Where is the {d} department?", f"In which city is {d} located?"),
             f"SELECT city FROM departments WHERE name = '{d}'"),
        ]
    for c in cities:
        out.append(((f"Which departments are in {c}?", f"List the departments located in {c}."),
                    f"SELECT name FROM departments WHERE city = '{c}'"))
    for n in names:
        out += [
            ((f"What is the salary of {n}?", f"How much does {n} earn?"),
             f"SELECT salary FROM employees WHERE name = '{n}'"),
            ((f"How old is {n}?", f"What is the age of {n}?"),
             f"SELECT age FROM employees WHERE name = '{n}'"),
            ((f"Which department does {n} work in?", f"In which department is {n}?"),
             f"SELECT departments.name {_JOIN_ED} WHERE employees.name = '{n}'"),
        ]
    for x in range(40_000, 150_000, 10_000):
        out += [
            ((f"Which employees earn more than {x}?", f"List the employees with a salary above {x}."),
             f"SELECT name FROM employees WHERE salary > {x}"),
            ((f"How many employees earn less than {x}?", f"Count the employees with a salary below {x}."),
             f"SELECT COUNT(*) FROM employees WHERE salary < {x}"),
        ]
    for a in range(25, 65, 5):
        out += [
            ((f"Which employees are older than {a}?", f"List the employees over {a} years old."),
             f"SELECT name FROM employees WHERE age > {a}"),
            ((f"How many employees are younger than {a}?", f"Count the employees under {a} years old."),
             f"SELECT COUNT(*) FROM employees WHERE age < {a}"),
        ]
    for y in range(2006, 2024, 2):
        out.append(((f"Who was hired after {y}?", f"List the employees hired after {y}."),
                    f"SELECT name FROM employees WHERE hire_year > {y}"))
    for k in range(1, 6):
        out += [
            ((f"Who are the {k} best paid employees?", f"List the {k} employees with the highest salaries."),
             f"SELECT name FROM employees ORDER BY salary DESC LIMIT {k}"),
            ((f"Who are the {k} youngest employees?", f"List the {k} employees with the lowest ages."),
             f"SELECT name FROM employees ORDER BY age ASC LIMIT {k}"),
            ((f"Which {k} projects have the largest budgets?", f"List the {k} most expensive projects."),
             f"SELECT name FROM projects ORDER BY budget DESC LIMIT {k}"),
        ]
    out += [
        (("How many employees does each department have?", "Count the employees per department."),
         f"SELECT departments.name, COUNT(*) {_JOIN_ED} GROUP BY departments.name"),
        (("What is the average salary of each department?", "Give the mean salary per department."),
         f"SELECT departments.name, AVG(employees.salary) {_JOIN_ED} GROUP BY departments.name"),
        (("How many projects does each department have?", "Count the projects per department."),
         f"SELECT departments.name, COUNT(*) {_JOIN_PD} GROUP BY departments.name"),
        (("How many employees are there?", "Count all employees."), "SELECT COUNT(*) FROM employees"),
        (("What is the average age of the employees?", "Give the mean age of all employees."),
         "SELECT AVG(age) FROM employees"),
    ]
    return out


@dataclass(frozen=True)
class SqlTask(TextToTextTask):
    """The text-to-SQL task: ``database`` plus the prefix and the train / held-out pairs."""

    database: SqlDatabase | None = None


def make_sql_task(seed: int = 0, heldout_fraction: float = 0.15) -> SqlTask:
    """Question -> SQL pairs over ``make_database(seed)``, both phrasings of each question.

    A query is kept only if it returns at least one row with a non-NULL value (so an answer exists).
    The held-out split is chosen by a hash of the gold SQL: both phrasings of a query land on the
    same side, and held-out queries never appear in train.
    """
    db = make_database(seed)
    train: list[TextPair] = []
    heldout: list[TextPair] = []
    for phrasings, sql in _question_templates(db):
        rows = db.execute(sql)
        if not rows or all(v is None for row in rows for v in row):
            continue
        split = heldout if is_heldout(sql, heldout_fraction) else train
        split += [TextPair(SQL_PREFIX + q, sql) for q in phrasings]
    return SqlTask(SQL_PREFIX, train, heldout, database=db)


def _normalize_rows(rows: Sequence[tuple]) -> list[tuple]:
    return [tuple(round(v, 6) if isinstance(v, float) else v for v in row) for row in rows]


def execution_match(pred_sql: str, gold_sql: str, db: SqlDatabase) -> bool:
    """Whether ``pred_sql`` returns the same rows as ``gold_sql`` on ``db``.

    Rows are compared as a multiset, or in order if the gold query has ORDER BY; floats to 6
    decimals; column names are ignored. A prediction that fails to run (bad SQL, an attempt to
    write, a runaway query) is a mismatch, never an exception. The gold query must run.
    """
    if not isinstance(pred_sql, str) or not isinstance(gold_sql, str):
        raise TypeError(f"execution_match compares SQL strings, got {type(pred_sql).__name__} and "
                        f"{type(gold_sql).__name__}")
    gold = _normalize_rows(db.execute(gold_sql))
    try:
        pred = _normalize_rows(db.execute(pred_sql))
    except (sqlite3.Error, sqlite3.Warning, ValueError, OverflowError):
        return False
    if "ORDER BY" in gold_sql.upper():
        return pred == gold
    return Counter(pred) == Counter(gold)
