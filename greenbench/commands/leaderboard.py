"""``greenbench leaderboard``: one CSV of every suite config × variant × runtime × device in the
stores.

Reads the stores read-only (``--store`` repeated merges them: results from several machines
become one board, a record present in two stores counts once), keeps the newest ``ok`` record of
each row that is not from a smoke run, ranks the rows within each rank group (one suite config on
one device with one energy method) by the stated rule and writes
``greenbench.report.columns.COLUMNS`` with pandas, the rule and the groups in ``<csv>.meta.json``
beside it; ``--json`` prints both as one JSON document instead. The rule and each group's note
are printed on stderr. ``-o -`` writes the CSV to standard output (no metadata file: the rule and
groups are on stderr); without ``-o`` it goes beside the first store, named after it
(``results/greenbench-leaderboard.csv``), never over the sample committed in ``results/``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from greenbench.errors import TERMINAL_UNSAFE, GreenbenchError
from greenbench.paths import beside_store, default_store, store_help

HELP = "write a leaderboard CSV of every suite, variant, runtime and device in the store(s)"

RANKS = ("pareto", "energy", "latency", "accuracy")


def add_selection_options(parser: argparse.ArgumentParser) -> None:
    """``--store`` (repeatable: stores are merged), ``--suite`` and ``--device`` filters; shared
    by the verbs that publish records (leaderboard, report)."""
    parser.add_argument(
        "--store",
        action="append",
        metavar="DB",
        help=store_help("SQLite results file; repeat to merge stores"),
    )
    parser.add_argument("--suite", help="only this suite (its name)")
    parser.add_argument("--device", metavar="ID", help="only this device id (see 'greenbench env')")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--store`` (repeatable), ``--suite``, ``--device``, ``-o``, ``--rank``, ``--json``."""
    add_selection_options(parser)
    parser.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="CSV file to write, '-' for standard output (default: <store>-leaderboard.csv beside the "
        "first store, e.g. results/greenbench-leaderboard.csv; never the committed results/leaderboard.csv)",
    )
    parser.add_argument(
        "--rank",
        choices=RANKS,
        default="pareto",
        help="rank rule (default: Pareto rank of accuracy vs energy per image, ties by latency)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the rows and the rank rule and groups as one JSON document on stdout instead of "
        "writing the CSV",
    )


def _say(text: str) -> None:
    print(f"greenbench: {TERMINAL_UNSAFE.sub(' ', text)}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    """Write the CSV and its metadata (or print the JSON); say the rank rule, the groups' notes,
    the row count and any skipped record on stderr."""
    from greenbench.output import STDOUT, check_target
    from greenbench.report.frame import load_results, read_stores
    from greenbench.report.leaderboard import csv_text, json_text, meta_path, write_leaderboard

    stores = [Path(s) for s in (args.store or [str(default_store())])]
    output = args.output or str(beside_store(stores[0], "leaderboard.csv"))
    if output != STDOUT:  # a folder or a store as -o is refused before anything is read
        check_target(output, stores, folder_made=True)
    frame = load_results(stores, suite=args.suite, device=args.device, rank_by=args.rank)
    for note in frame.attrs.get("warnings", []):
        _say(f"warning: {note}")
    if frame.empty:
        records = read_stores(stores)[0]
        suites = sorted({r.suite for r in records})
        devices = sorted({r.device_id for r in records})
        wanted = "".join(
            f" {what} {value!r}"
            for what, value in (("of suite", args.suite), ("on device", args.device))
            if value
        )
        raise GreenbenchError(
            f"the store(s) {', '.join(map(str, stores))} hold no ok, non-smoke record{wanted}; "
            f"suites stored: {', '.join(suites) or 'none'}; devices: {', '.join(devices) or 'none'}. "
            f"Run a suite first, or change --suite/--device."
        )
    _say(f"rank rule: {frame.attrs['rank_rule']}")
    for group in frame.attrs["groups"]:
        if group["note"]:
            _say(f"{group['rank_group']}: {group['note']}")
    groups = f"{len(frame)} row(s) in {len(frame.attrs['groups'])} rank group(s)"
    if args.json:
        sys.stdout.write(json_text(frame))
        _say(f"printed {groups}")
        return 0
    if output == STDOUT:
        sys.stdout.write(csv_text(frame))
        sys.stdout.flush()
        _say(f"wrote {groups} to standard output")
        return 0
    path = write_leaderboard(frame, Path(output))
    _say(f"wrote {groups} to {path} (rank rule and groups: {meta_path(path)})")
    return 0
