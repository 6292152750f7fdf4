"""``greenbench validate SUITE``: check a suite without running it."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "check a suite without running it (exit 0 valid, 2 invalid)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The suite file and the changes ``run`` would make to it."""
    from greenbench.commands.run import add_override_options

    parser.add_argument("suite")
    add_override_options(parser)


def run(args: argparse.Namespace) -> int:
    """Load and check the suite (an invalid one raises ``SuiteError``, exit 2); print a summary."""
    from greenbench.commands.run import overrides
    from greenbench.suite import load_suite

    suite = load_suite(Path(args.suite), overrides(args))
    print(
        f"{args.suite}: valid — suite '{suite.name}', {len(suite.variants)} variants, "
        f"order: {' → '.join(suite.order())}, baseline '{suite.baseline}'"
    )
    for note in (suite.smoke or {}).get("notes", []):
        print(f"  smoke: {note}")
    return 0
