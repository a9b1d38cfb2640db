"""The ``minitransformer`` command line: a thin argparse front over the library.

Each area adds its own sub-commands (``add_commands(subparsers)``) and does the work in its own
module; this file only wires them together and turns user errors into one line + exit code 2.
"""
from __future__ import annotations

import argparse
import sys

# Errors that mean "the user gave us something wrong": one line, no traceback.
USER_ERRORS = (ValueError, TypeError, FileNotFoundError, NotADirectoryError, IsADirectoryError,
               PermissionError, UnicodeDecodeError)


def build_parser() -> argparse.ArgumentParser:
    from minitransformer.tokenizers import commands as tokenizer_commands

    parser = argparse.ArgumentParser(prog="minitransformer", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    tokenizer_commands.add_commands(sub)
    for module_name in ("minitransformer.training.commands", "minitransformer.bench",
                        "minitransformer.exercises"):
        try:
            module = __import__(module_name, fromlist=["add_commands"])
        except ModuleNotFoundError as e:  # an area not built yet
            if e.name != module_name:
                raise
            continue
        module.add_commands(sub)
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


if __name__ == "__main__":
    raise SystemExit(main())
