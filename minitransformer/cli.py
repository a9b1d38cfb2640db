"""The ``minitransformer`` command line: a thin argparse front over the library.

Each area adds its own sub-commands (``add_commands(subparsers)``) and does the work in its own
module; this file only wires them together and turns user errors into one line + exit code 2.
Exit codes: 0 done, 2 user error, 3 ``pretrain`` diverged (NaN/inf loss), 130 interrupted, 141 the
output pipe closed (``| head``).
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import NoReturn

# Errors that mean "the user gave us something wrong": one line, no traceback.
USER_ERRORS = (ValueError, TypeError, FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError,
               PermissionError, UnicodeDecodeError)


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse prints its whole usage text before an error; we print the error alone, in one line.

    Sub-commands inherit the class (``add_subparsers`` makes parsers of the parent's type).
    """

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from minitransformer import bench, exercises
    from minitransformer.tokenizers import commands as tokenizer_commands
    from minitransformer.training import commands as training_commands

    parser = OneLineErrorParser(
        prog="minitransformer",
        description="Build, pretrain and inspect small Transformers (BERT, GPT, T5) from shared blocks.")
    sub = parser.add_subparsers(dest="command", required=True)
    for area in (tokenizer_commands, training_commands, bench, exercises):
        area.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as e:
        print(f"minitransformer {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`... generate ... | head`): stop quietly, as cat does
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit flush cannot fail
        except (OSError, ValueError):  # stdout is not a real file (tests capture it)
            pass
        return 141  # 128 + SIGPIPE, the shell's code for a closed pipe


if __name__ == "__main__":
    raise SystemExit(main())
