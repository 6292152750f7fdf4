"""``greenbench validate SUITE``: check a suite without running it."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "check a suite without running it (exit 0 valid, 2 invalid)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The suite file."""
    parser.add_argument("suite")


def run(args: argparse.Namespace) -> int:
    """Load and check the suite (an invalid one raises ``SuiteError``, exit 2); print a summary."""
    from greenbench.suite import load_suite

    suite = load_suite(Path(args.suite))
    print(
        f"{args.suite}: valid — suite '{suite.name}', {len(suite.variants)} variants, "
        f"order: {' → '.join(suite.order())}, baseline '{suite.baseline}'"
    )
    return 0
