"""``greenbench validate SUITE``: check a suite without running it.

``--json`` prints one JSON object on standard output instead of text, valid or not:
``{"suite": FILE, "valid": bool, "name", "variants", "order", "baseline", "smoke_notes"}`` for a
valid suite, ``{"suite": FILE, "valid": false, "problems": [{"file", "line", "key", "message"}]}``
for an invalid one (exit 2 as without ``--json``; a problem not placed in the file has line null).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from greenbench.errors import GreenbenchError, SuiteError

HELP = "check a suite without running it (exit 0 valid, 2 invalid)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The suite file, ``--json`` and the changes ``run`` would make to it."""
    from greenbench.commands.run import add_override_options

    parser.add_argument("suite")
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the result as JSON on standard output: the suite's summary, or its problems "
        "(file, line, key, message) with exit 2",
    )
    add_override_options(parser)


def problems_json(suite: str, error: GreenbenchError) -> dict[str, Any]:
    """The JSON document of an invalid suite (or of options that cannot apply to it): every
    problem with its file, line and key."""
    placed = error.problems if isinstance(error, SuiteError) else ()
    problems = [{"file": p.file, "line": p.line, "key": p.key, "message": p.message} for p in placed] or [
        {"file": suite, "line": None, "key": "", "message": str(error)}
    ]
    return {"suite": suite, "valid": False, "problems": problems}


def run(args: argparse.Namespace) -> int:
    """Load and check the suite (an invalid one raises ``SuiteError``, exit 2); print a summary."""
    from greenbench.commands.run import overrides
    from greenbench.output import write_json
    from greenbench.suite import load_suite

    try:
        suite = load_suite(Path(args.suite), overrides(args))
    except GreenbenchError as e:  # an invalid suite, or --smoke with --data
        if not args.json:
            raise
        write_json("-", problems_json(args.suite, e))
        return e.exit_code
    notes = list((suite.smoke or {}).get("notes", []))
    if args.json:
        summary = {
            "suite": args.suite,
            "valid": True,
            "name": suite.name,
            "variants": list(suite.variants),
            "order": list(suite.order()),
            "baseline": suite.baseline,
            "smoke_notes": notes,
        }
        write_json("-", summary)
        return 0
    print(
        f"{args.suite}: valid — suite '{suite.name}', {len(suite.variants)} variants, "
        f"order: {' → '.join(suite.order())}, baseline '{suite.baseline}'"
    )
    for note in notes:
        print(f"  smoke: {note}")
    return 0
