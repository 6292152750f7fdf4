"""``greenbench runs``: what a results store holds, per suite: variants, devices, runs, dates.

Reads the store read-only. Per suite: its variants (in the order first stored), the devices it
was measured on, how many runs and records (ok, failed, smoke), and the first and last time a
record of it started and finished (UTC). ``--json`` prints the same as one JSON object.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from greenbench.errors import TERMINAL_UNSAFE, GreenbenchError
from greenbench.paths import default_store, store_help

if TYPE_CHECKING:
    from greenbench.store import RunRecord

HELP = "list what a results store holds: suites, variants, devices, runs and dates"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--store`` and ``--json``."""
    parser.add_argument("--store", default=str(default_store()), help=store_help())
    parser.add_argument("--json", action="store_true", help="print the summary as JSON on standard output")


@dataclass(frozen=True)
class SuiteHeld:
    """One suite in a store. first: the earliest ``started_at``; last: the latest ``finished_at``
    (ISO 8601, UTC)."""

    suite: str
    variants: list[str]
    devices: list[str]
    runs: int
    records: int
    ok: int
    failed: int
    smoke: int
    first: str
    last: str


def summarize(records: Sequence[RunRecord]) -> list[SuiteHeld]:
    """Per suite (in the order first stored), what the records hold."""
    by_suite: dict[str, list[RunRecord]] = {}
    for record in records:
        by_suite.setdefault(record.suite, []).append(record)
    held = []
    for suite, rs in by_suite.items():
        held.append(
            SuiteHeld(
                suite=suite,
                variants=list(dict.fromkeys(r.variant for r in rs)),
                devices=sorted({r.device_id for r in rs}),
                runs=len({r.run_id for r in rs}),
                records=len(rs),
                ok=sum(r.status == "ok" and r.smoke is None for r in rs),
                failed=sum(r.status == "failed" for r in rs),
                smoke=sum(r.status == "ok" and r.smoke is not None for r in rs),
                first=min(r.started_at for r in rs),
                last=max(r.finished_at for r in rs),
            )
        )
    return held


def _when(iso: str) -> str:
    """``2026-12-05T07:44:00+00:00`` as ``2026-12-05 07:44``."""
    return iso[:16].replace("T", " ")


def _safe(text: str) -> str:
    return TERMINAL_UNSAFE.sub("?", text)


def summary_text(store: Path, held: Sequence[SuiteHeld]) -> str:
    """The summary as a table, then each suite's variants and devices."""
    from tabulate import tabulate

    total = sum(h.records for h in held)
    head = f"{_safe(str(store))}: {total} record(s) of {len(held)} suite(s)"
    if not held:
        return f"{head}; run a suite to fill it ('greenbench run SUITE --store {_safe(str(store))}')."
    rows = [
        [
            _safe(h.suite),
            len(h.variants),
            len(h.devices),
            h.runs,
            h.ok,
            h.failed,
            h.smoke,
            _when(h.first),
            _when(h.last),
        ]
        for h in held
    ]
    headers = ["suite", "variants", "devices", "runs", "ok", "failed", "smoke", "first (UTC)", "last (UTC)"]
    lines = [head, "", tabulate(rows, headers=headers, tablefmt="simple"), ""]
    for h in held:
        lines.append(f"{_safe(h.suite)}: variants {_safe(', '.join(h.variants))}")
        lines.append(f"{' ' * len(_safe(h.suite))}  devices {_safe(', '.join(h.devices))}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Print the store's summary (text or JSON); notes about unreadable records on stderr."""
    import sys

    from greenbench.output import write_json
    from greenbench.store import Store

    path = Path(args.store)
    if not path.is_file():
        raise GreenbenchError(
            f"no results store at {path}; run a suite first or pass --store with a store file."
        )
    with Store(path, readonly=True) as store:
        records = store.records()
        warnings = list(store.warnings)
    held = summarize(records)
    for note in warnings:
        print(f"greenbench: warning: {_safe(note)}", file=sys.stderr)
    if args.json:
        doc: dict[str, Any] = {
            "store": str(path),
            "records": len(records),
            "suites": [asdict(h) for h in held],
        }
        write_json("-", doc)
    else:
        print(summary_text(path, held))
    return 0
