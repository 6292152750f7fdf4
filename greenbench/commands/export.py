"""``greenbench export FORMAT -o FILE``: stored records as files other tools read.

- ``pytest-benchmark``: a pytest-benchmark JSON file (one benchmark per suite × variant ×
  runtime; stats in seconds per call from the raw per-call samples) that ``pytest-benchmark
  compare`` reads (``greenbench.export.pytest_benchmark``).
- ``codecarbon``: a CodeCarbon-compatible ``emissions.csv`` (one row per training stage and one
  per variant's inference measurement; energy in kWh, emissions in kg;
  ``greenbench.export.codecarbon_csv``).

Only the newest ``ok`` record per key that is not a smoke run is exported. The store is opened
read-only; the file is written beside ``FILE`` and renamed over it (``-`` writes to standard
output). What was left out, and how many figures are estimates, is said on standard error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from greenbench.errors import GreenbenchError
from greenbench.paths import default_store, store_help

HELP = "write stored records as pytest-benchmark JSON or a CodeCarbon emissions.csv"
FORMATS = ("pytest-benchmark", "codecarbon")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The format, ``--store``, ``--suite``, ``--device`` and ``-o``."""
    parser.add_argument("format", choices=FORMATS, help="the file to write: %(choices)s")
    parser.add_argument("--store", default=str(default_store()), help=store_help())
    parser.add_argument("--suite", help="only this suite (a stored suite name or a suite file)")
    parser.add_argument("--device", help="only this device id (default: every device in the store)")
    parser.add_argument(
        "-o", "--output", required=True, metavar="FILE", help="the file to write ('-': standard output)"
    )


def run(args: argparse.Namespace) -> int:
    """Select the records, build the file, write it, say what was written on standard error."""
    from greenbench.commands.table import suite_ref
    from greenbench.export import codecarbon_csv, pytest_benchmark
    from greenbench.export.selection import printable
    from greenbench.output import write_output
    from greenbench.store import Store

    suite = suite_ref(args.suite).name if args.suite else None
    store_path = Path(args.store)
    if not store_path.exists():
        raise GreenbenchError(
            f"no results store at {args.store}; run a suite first or pass --store with the path of a store."
        )
    exporter = pytest_benchmark if args.format == "pytest-benchmark" else codecarbon_csv
    with Store(store_path, readonly=True) as store:
        exported = exporter.export(store, suite, args.device)
        warnings = list(store.warnings)
    where = write_output(args.output, exported.text, store_path)
    what = "benchmark(s)" if args.format == "pytest-benchmark" else "row(s)"
    for note in (*warnings, *exported.notes):
        print(f"greenbench: note: {printable(note)}", file=sys.stderr)
    print(f"greenbench: wrote {exported.items} {what} to {printable(where)}", file=sys.stderr)
    return 0
