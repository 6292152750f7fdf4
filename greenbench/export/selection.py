"""Which records an export holds, text fit for the tools that read it, and writing the file.

An export holds, per key (suite × variant × runtime for pytest-benchmark; suite × device ×
variant for CodeCarbon), the newest readable record of status ``ok`` that is not a smoke record
(``RunRecord.smoke`` set: a quick check of the pipeline, not a measurement).
Failed records carry no figures, so they are left out too; an empty selection is a
``GreenbenchError`` that says what the store does hold.
"""

from __future__ import annotations

import math
import os
import re
import secrets
import sys
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from greenbench.errors import TERMINAL_UNSAFE, GreenbenchError
from greenbench.store import RunRecord, Store

_UNSAFE_RUN = re.compile(TERMINAL_UNSAFE.pattern + "+")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


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


def json_safe(value: Any) -> Any:
    """``value`` with every lone surrogate replaced by U+FFFD (no UTF-8 encoder takes one) and every
    NaN or infinity by None (not JSON), in nested dicts, lists and tuples."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {json_safe(str(k)): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def write_output(target: str, text: str, store_path: Path) -> str:
    """Write ``text`` (UTF-8, newlines as given) to ``target``, or to standard output for ``-``;
    return where it went. The file is written beside the target and renamed over it, so a failed
    write leaves no half file and the old file, if any, untouched. The results store itself, a
    folder, a missing folder or an unwritable place is a ``GreenbenchError`` naming the path."""
    if target == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return "standard output"
    path = Path(target)
    if _same_file(path, store_path):
        raise GreenbenchError(
            f"the output file {target} is the results store itself; pass -o with another file name."
        )
    if path.exists() and not path.is_file():
        raise GreenbenchError(
            f"the output {target} exists and is not a regular file (a folder, device or pipe); pass -o "
            f"with the path of a file to write."
        )
    if not path.parent.is_dir():
        raise GreenbenchError(
            f"cannot write {target}: the folder {path.parent} does not exist; create it or pass -o with "
            f"a file in an existing folder."
        )
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        with tmp.open("x", encoding="utf-8", newline="") as f:  # "x": never follows a planted file
            f.write(text)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise GreenbenchError(
            f"cannot write {target} ({e.strerror or e}); check that {path.parent} is writable by you "
            f"and has free space, or pass -o with another file."
        ) from None
    return str(path)


@dataclass(frozen=True)
class Exported:
    """An export ready to write: ``text`` (the file's content), ``items`` (benchmarks or rows),
    ``notes`` (one line each: records left out and why, estimated figures), for standard error."""

    text: str
    items: int
    notes: tuple[str, ...] = ()
