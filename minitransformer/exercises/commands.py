"""``minitransformer exercises list | start N | check N``: the learner's side of the exercises.

    minitransformer exercises list             # one exercise a line: number, file, title, tutorial
    minitransformer exercises start 2          # copy the stub to ./exercises/ex02_attention.py
    minitransformer exercises check 2          # exit 0: all checks pass; 1: some fail; 2: no such file

User errors (an unknown number, an existing file without --force, a missing file) are raised as
ValueError / FileNotFoundError; ``cli.main`` prints them as one line and exits with status 2.
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from minitransformer.exercises.catalog import EXERCISES, get_exercise
from minitransformer.exercises.checking import LearnerFileError, Report, load_learner_module

DEFAULT_DIR = "exercises"


def cmd_list(args: argparse.Namespace) -> int:
    for e in EXERCISES:
        print(f"{e.number}  {e.filename:28s} {e.title}  (tutorials/{e.tutorial})")
    return 0


def cmd_start(args: argparse.Namespace) -> int:
    exercise = get_exercise(args.number)
    folder = Path(args.dir)
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"--dir {folder} is a file, not a folder")
    target = folder / exercise.filename
    if target.exists() and not args.force:
        raise ValueError(f"{target} already exists (your work?); edit it, or pass --force to replace it "
                         "with a fresh stub")
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(exercise.stub_path, target)
    print(f"wrote {target}")
    print(f"  exercise {exercise.number}: {exercise.title} (read tutorials/{exercise.tutorial} first)")
    print("  fill in the functions whose body raises NotImplementedError, then run:")
    print(f"  minitransformer exercises check {exercise.number}" + (f" --dir {args.dir}" if args.dir != DEFAULT_DIR else ""))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    exercise = get_exercise(args.number)
    path = Path(args.dir) / exercise.filename
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; create it with `minitransformer exercises start "
                                f"{exercise.number}" + (f" --dir {args.dir}" if args.dir != DEFAULT_DIR else "") + "`")
    print(f"exercise {exercise.number}: {exercise.title}  ({path})")
    try:
        module = load_learner_module(path, f"minitransformer_exercise_{exercise.number:02d}")
    except LearnerFileError as e:
        print(f"  FAIL  {e}")
        return 1
    report = Report()
    ok = report.run(exercise.checks(module, path))
    total = report.passed + report.failed
    if ok:
        print(f"all {total} checks passed. Well done!")
        return 0
    print(f"{report.passed} of {total} checks passed; fix the first failure above and run the check again.")
    return 1


def _exercise_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an exercise number, got {text!r}") from None


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``exercises list|start|check`` to the ``minitransformer`` command line."""
    parser = subparsers.add_parser("exercises", help="small auto-checked exercises to go with the tutorials")
    sub = parser.add_subparsers(dest="exercises_command", required=True)

    listing = sub.add_parser("list", help="list the exercises, one a line, starting with its number")
    listing.set_defaults(func=cmd_list)

    start = sub.add_parser("start", help="copy an exercise's stub into DIR to fill in")
    start.add_argument("number", type=_exercise_number, metavar="N")
    start.add_argument("--dir", default=DEFAULT_DIR, help=f"where to put the file (default: ./{DEFAULT_DIR}/)")
    start.add_argument("--force", action="store_true", help="overwrite the file if it exists (your work is lost)")
    start.set_defaults(func=cmd_start)

    check = sub.add_parser("check", help="check your solution: exit 0 all passed, 1 some failed, 2 no file")
    check.add_argument("number", type=_exercise_number, metavar="N")
    check.add_argument("--dir", default=DEFAULT_DIR, help=f"where your file is (default: ./{DEFAULT_DIR}/)")
    check.set_defaults(func=cmd_check)
