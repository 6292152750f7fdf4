"""The ``greenbench`` command: run, validate, table, leaderboard, report, export, gate, data, env, measure.

Each verb is a module of ``greenbench.commands`` with ``HELP``, ``add_arguments(parser)`` and
``run(args) -> int`` (asv's ``commands/`` layout); this module only builds the parser and
dispatches. Every user error (``GreenbenchError``) prints one paragraph and exits with its code;
only a bug in greenbench shows a traceback.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from typing import Protocol

from greenbench.commands import data, env, export, gate, leaderboard, measure, report, run, table, validate
from greenbench.errors import GreenbenchError

EXIT_OK = 0  # an invalid suite exits 2 (SuiteError.exit_code), a failed variant 1


class Verb(Protocol):
    """A verb module."""

    HELP: str

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


#: the verbs in the order ``greenbench --help`` lists them; a verb's name is its module's
VERBS: tuple[Verb, ...] = (run, validate, table, leaderboard, report, export, gate, data, env, measure)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every verb."""
    p = argparse.ArgumentParser(prog="greenbench", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    for verb in VERBS:
        name = getattr(verb, "__name__", "").rpartition(".")[2]
        parser = sub.add_parser(name, help=verb.HELP)
        verb.add_arguments(parser)
        parser.set_defaults(func=verb.run)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``greenbench`` console script."""
    for stream in (sys.stdout, sys.stderr):  # a non-UTF-8 terminal gets escapes, never a traceback
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    args = build_parser().parse_args(argv)
    # SIGTERM (a CI cancel, `kill`) unwinds like Ctrl-C: workers stopped, stored records kept
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return int(args.func(args))
    except GreenbenchError as e:
        print(f"greenbench: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("greenbench: interrupted; records stored so far are kept.", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `greenbench table … | head`: the reader left, nothing is wrong
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return EXIT_OK


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
