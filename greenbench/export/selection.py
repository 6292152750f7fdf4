"""Which records an export holds, text fit for the tools that read it, and writing the file.

An export holds, per key (suite × variant × runtime for pytest-benchmark; suite × device ×
variant for CodeCarbon), the newest readable record of status ``ok`` that is not a smoke record
(``RunRecord.smoke`` set: a quick check of the pipeline, not a measurement).
Failed records carry no figures, so they are left out too; an empty selection is a
``GreenbenchError`` that says what the store does hold.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from greenbench.errors import TERMINAL_UNSAFE, GreenbenchError
from greenbench.store import RunRecord, Store

_UNSAFE_RUN = re.compile(TERMINAL_UNSAFE.pattern + "+")


def is_smoke(record: RunRecord) -> bool:
    """Whether ``record`` comes from ``greenbench run --smoke`` (a quick pipeline check, not a
    measurement): its ``smoke`` field is set, as the tables read it."""
    return getattr(record, "smoke", None) is not None


def latest_ok(
    store: Store,
    key: Callable[[RunRecord], Hashable],
    suite: str | None = None,
    device_id: str | None = None,
) -> list[RunRecord]:
    """Per ``key(record)``: the newest ok, non-smoke record of ``suite`` on ``device_id`` (None: any),
    in the order the keys first appear in the store."""
    newest: dict[Hashable, RunRecord] = {}
    for record in store.records(suite=suite, device_id=device_id):  # oldest first
        if record.status == "ok" and not is_smoke(record):
            newest[key(record)] = record
    return list(newest.values())


def nothing_to_export(store: Store, suite: str | None, device_id: str | None) -> GreenbenchError:
    """The error for an empty selection: what was asked, and what the store holds instead."""
    every = store.records()
    asked = [r for r in every if (suite is None or r.suite == suite) and (device_id in (None, r.device_id))]
    which = "".join(
        (
            f" of suite {printable(suite)!r}" if suite is not None else "",
            f" on device {printable(device_id)!r}" if device_id is not None else "",
        )
    )
    if asked:
        failed = sum(r.status == "failed" for r in asked)
        smoke = sum(r.status == "ok" and is_smoke(r) for r in asked)
        why = f"its {len(asked)} record(s){which} are failed ({failed}) or smoke runs ({smoke})"
        hint = "run the suite without --smoke first"
    else:
        suites = sorted({printable(r.suite) for r in every})
        devices = sorted({printable(r.device_id) for r in every})
        why = (
            f"it holds no record{which}; suites in it: {', '.join(suites) or 'none'}; "
            f"devices: {', '.join(devices) or 'none'}"
        )
        hint = "pass --suite and --device with values from those lists, or run the suite first"
    return GreenbenchError(
        f"nothing to export from the results store {store.path}: {why}. Only ok records that are not "
        f"smoke runs are exported; {hint}."
    )


def printable(text: str) -> str:
    """``text`` on one line, safe on a terminal: each run of control characters, line or paragraph
    separators, bidi controls or lone surrogates becomes one space (commas, quotes, ``=`` stay)."""
    return _UNSAFE_RUN.sub(" ", text)


@dataclass(frozen=True)
class Exported:
    """An export ready to write: ``text`` (the file's content), ``items`` (benchmarks or rows),
    ``notes`` (one line each: records left out and why, estimated figures), for standard error."""

    text: str
    items: int
    notes: tuple[str, ...] = ()
