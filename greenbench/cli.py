"""The ``greenbench`` command: one verb per module of ``greenbench.commands``.

Each verb is a module of ``greenbench.commands`` with ``HELP``, ``add_arguments(parser)`` and
``run(args) -> int`` (asv's ``commands/`` layout); this module only builds the parser and
dispatches. Every user error (``GreenbenchError``) prints one paragraph and exits with its code;
only a bug in greenbench shows a traceback.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import signal
import sys
from collections.abc import Sequence
from typing import Protocol

import greenbench
from greenbench import __version__
from greenbench.commands import (
    clean,
    data,
    env,
    export,
    gate,
    leaderboard,
    measure,
    report,
    run,
    runs,
    table,
    validate,
)
from greenbench.errors import GreenbenchError
from greenbench.paths import ENV_HELP

EXIT_OK = 0  # an invalid suite exits 2 (SuiteError.exit_code), a failed variant 1


class Verb(Protocol):
    """A verb module."""

    HELP: str

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


#: the verbs in the order ``greenbench --help`` lists them; a verb's name is its module's
VERBS: tuple[Verb, ...] = (
    run,
    validate,
    table,
    leaderboard,
    report,
    export,
    gate,
    runs,
    clean,
    data,
    env,
    measure,
)

_LITERAL = re.compile(r"``([^`]*)``")


def plain(text: str) -> str:
    """``text`` without reStructuredText's double backticks (help texts come from docstrings)."""
    return _LITERAL.sub(r"\1", text)


class PlainHelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, printing help texts without reStructuredText markup."""

    def _format_text(self, text: str) -> str:
        return super()._format_text(plain(text))

    def _expand_help(self, action: argparse.Action) -> str:
        return plain(super()._expand_help(action))


def verb_name(verb: Verb) -> str:
    """A verb's name on the command line: its module's name."""
    return getattr(verb, "__name__", "").rpartition(".")[2]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every verb."""
    p = argparse.ArgumentParser(
        prog="greenbench",
        description=plain(str(greenbench.__doc__).splitlines()[0]),
        epilog=f"'greenbench VERB --help' describes a verb. {ENV_HELP}",
        formatter_class=PlainHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"greenbench {__version__}")
    sub = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    for verb in VERBS:
        parser = sub.add_parser(
            verb_name(verb), help=verb.HELP, description=verb.HELP, formatter_class=PlainHelpFormatter
        )
        verb.add_arguments(parser)
        parser.set_defaults(func=verb.run, verb_parser=parser)
    return p


def parse(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace:
    """The arguments of one verb. A mistyped verb gets a "did you mean"; an unknown option after
    a verb is reported with that verb's usage, not the top-level one (exit 2 both)."""
    names = [verb_name(v) for v in VERBS]
    verb = next((a for a in argv if not a.startswith("-")), None)
    if verb is not None and verb not in names:
        close = difflib.get_close_matches(verb, names, n=3, cutoff=0.5)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        parser.error(f"unknown verb {verb[:60]!r}{hint} (verbs: {', '.join(names)})")
    args, extra = parser.parse_known_args(argv)
    if extra:
        _innermost(getattr(args, "verb_parser", parser), args).error(
            f"unrecognized arguments: {' '.join(extra)}"
        )
    return args


def _innermost(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The parser of the innermost sub-command chosen (``data synth``'s, not ``data``'s)."""
    while True:
        sub = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
        chosen = getattr(args, sub.dest, None) if sub is not None and sub.dest != argparse.SUPPRESS else None
        if sub is None or chosen not in sub.choices:
            return parser
        parser = sub.choices[chosen]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``greenbench`` console script."""
    for stream in (sys.stdout, sys.stderr):  # a non-UTF-8 terminal gets escapes, never a traceback
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    if not argv:  # no verb: what the command can do, not an error
        parser.print_help()
        return EXIT_OK
    args = parse(parser, argv)
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
