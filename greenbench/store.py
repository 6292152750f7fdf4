"""Run records and the embedded SQLite store.

One row per variant per run, the full record kept as JSON beside the indexed identity columns.
Records are only ever added: ``--force`` adds newer ones, nothing stored is overwritten.

Schema history (bump ``SCHEMA_VERSION`` and describe the change here):
  1 — first version: identity, status/error, stages, metrics {value, unit, …}, measurement,
      device, versions, timestamps.
      Later, same version: the file carries ``PRAGMA application_id`` ``APPLICATION_ID`` ("GrnB");
      unmarked version-1 stores are recognised by their tables and marked on a writable open.
  2 — interleaved measurement: ``task``, ``baseline`` and ``runtime`` on every record;
      ``deltas`` (metric -> Δ against the baseline from time-adjacent block pairs, with its CI);
      latency and energy-per-image metrics are medians of blocks over rounds of fresh processes
      with a hierarchical-bootstrap CI; ``measurement.blocks`` keeps every block. Version-1
      records stay readable (``_from_v1``): their latency is one process' samples, unpaired.
      A store is marked version 2 on its first writable open; its rows keep their own version.
"""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from greenbench.errors import GreenbenchError

SCHEMA_VERSION = 2
DEFAULT_STORE = Path("results/greenbench.db")

Status = Literal["ok", "failed"]


def metric(value: float | int | None, unit: str, **extra: Any) -> dict[str, Any]:
    """A stored metric: value and unit kept apart (rendered together only at the edge)."""
    return {"value": value, "unit": unit, **extra}


@dataclass
class RunRecord:
    """Everything known about one variant measured in one run.

    variant_hash: the variant key (``greenbench.identity.variant_key``): what resume looks up.
    metrics: name → ``{"value", "unit", ...}``; energy metrics also carry ``method``
        (``measured``/``estimated``) and ``source``; latency and energy per image carry
        ``ci_low``/``ci_high`` (hierarchical bootstrap over rounds and blocks).
    deltas: metric name → Δ against ``baseline`` from interleaved block pairs measured in the
        same processes: ``delta_pct``, ``delta_ci_low_pct``, ``delta_ci_high_pct``,
        ``significant``, ``p_value``, ``pairs``, ``rounds``, ``rounds_disagree``,
        ``baseline_key`` (the baseline's variant key), ``run_id``. Empty for the baseline.
    stages: per stage: name, params, cached, checkpoint, energy window (gross/net J).
    measurement: raw latency samples, energy windows, idle baseline, meter choices, settings.
    """

    run_id: str
    suite: str
    suite_hash: str
    variant: str
    variant_hash: str
    parent: str | None
    status: Status
    device_id: str
    started_at: str
    finished_at: str
    error: str | None = None
    task: str = "detect"
    baseline: str | None = None
    runtime: str | None = None
    stages: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    deltas: dict[str, dict[str, Any]] = field(default_factory=dict)
    measurement: dict[str, Any] = field(default_factory=dict)
    device: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunRecord:
        """Inverse of ``to_dict``, one read path per schema version (as pyperf's ``_json_load``)."""
        version = int(d.get("schema_version", 1))
        if version == 1:
            return cls._from_v1(d)
        if version != SCHEMA_VERSION:
            raise GreenbenchError(
                f"a stored record of {d.get('variant')!r} has schema version {version}, which this "
                f"greenbench ({SCHEMA_VERSION}) cannot read; upgrade greenbench."
            )
        return cls(**d)

    @classmethod
    def _from_v1(cls, d: dict[str, Any]) -> RunRecord:
        """A version-1 record: no task, baseline, runtime or deltas; latency from one process."""
        d = dict(d)
        lat = d.get("metrics", {}).get("latency_ms")
        if lat is not None:
            d["metrics"] = {
                **d["metrics"],
                "latency_ms": {**lat, "ci_method": "bootstrap of one process' samples (schema 1)"},
            }
        return cls(**{**d, "task": "detect", "runtime": "torch", "schema_version": 1})

    def value(self, name: str) -> float | None:
        """The value of metric ``name`` or None."""
        m = self.metrics.get(name)
        return None if m is None else m.get("value")


_DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    schema_version INTEGER NOT NULL,
    run_id TEXT NOT NULL,
    suite TEXT NOT NULL,
    suite_hash TEXT NOT NULL,
    variant TEXT NOT NULL,
    variant_hash TEXT NOT NULL,
    device_id TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    started_at TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS records_identity
    ON records (suite, variant_hash, device_id, status);
"""

# "GrnB" in the SQLite header (offset 68) marks a file as a greenbench store.
APPLICATION_ID = int.from_bytes(b"GrnB", "big")

_CREATE = f"""
BEGIN;
{_DDL}
INSERT OR REPLACE INTO meta VALUES ('schema_version', '{SCHEMA_VERSION}');
PRAGMA application_id = {APPLICATION_ID};
COMMIT;
"""

# Stores written before the marker existed: recognised by their meta row and records columns.
_RECORD_COLUMNS = {"schema_version", "run_id", "suite", "variant_hash", "device_id", "status", "record"}


def _is_unmarked_store(conn: sqlite3.Connection, names: list[str]) -> bool:
    """Whether an unmarked file is a greenbench store from before ``APPLICATION_ID``."""
    if "meta" not in names or "records" not in names:
        return False
    try:
        row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        columns = {r[1] for r in conn.execute("PRAGMA table_info(records)")}
    except sqlite3.OperationalError:  # a 'meta' table of another shape: not ours
        return False
    return row is not None and _RECORD_COLUMNS <= columns


def _uri(path: Path) -> str:
    return f"file:{quote(path.as_posix())}?mode=ro"  # quoted: '?', '#' and '%' are legal in names


class Store:
    """An SQLite file of ``RunRecord``s. Use as a context manager or call ``close()``.

    The file is marked as greenbench's (``PRAGMA application_id``); an SQLite file of another
    program is refused before anything is written to it. ``readonly``: open an existing store
    without creating, migrating or marking anything; ``add()`` is then an error.
    """

    def __init__(self, path: Path = DEFAULT_STORE, *, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        if readonly and not self.path.is_file():
            raise GreenbenchError(
                f"there is no results store at {self.path} (a read-only open never creates one); "
                f"run the suite first or pass --store with the path of an existing store."
            )
        conn: sqlite3.Connection | None = None
        try:
            if readonly:
                conn = sqlite3.connect(_uri(self.path), uri=True, timeout=30)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(self.path, timeout=30)
            self._open(conn)
        except (sqlite3.DatabaseError, OSError) as e:
            if conn is not None:
                conn.close()
            raise GreenbenchError(
                f"cannot open the results store {self.path}: {e}. Pass --store with a new file "
                f"name, or move the file aside; greenbench never overwrites an existing store."
            ) from None
        except BaseException:
            if conn is not None:
                conn.close()
            raise
        self._conn = conn

    def _open(self, conn: sqlite3.Connection) -> None:
        """Check the file is a greenbench store of a schema we read (or empty), then, unless
        read-only, create the schema and mark it. Nothing is written before the checks pass."""
        app_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'")]
        ours = app_id == APPLICATION_ID or (app_id == 0 and _is_unmarked_store(conn, names))
        if app_id not in (0, APPLICATION_ID) or (names and not ours):
            listed = ", ".join(sorted(names)[:5]) + (", …" if len(names) > 5 else "")
            raise GreenbenchError(
                f"{self.path} is an SQLite database that greenbench did not create (application id "
                f"{app_id}, tables: {listed or 'none'}); greenbench leaves it untouched. Pass --store "
                f"with a new file name or the path of a greenbench results store."
            )
        if self.readonly and "records" not in names:
            raise GreenbenchError(
                f"{self.path} holds no greenbench records table, so it is not a results store yet; "
                f"run the suite first or pass --store with the path of an existing store."
            )
        meta = "meta" in names
        row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() if meta else None
        stored = SCHEMA_VERSION if row is None else self._schema_version(row[0])
        if stored > SCHEMA_VERSION:
            raise GreenbenchError(
                f"the results store {self.path} has schema version {stored}, newer than this "
                f"greenbench ({SCHEMA_VERSION}). Upgrade greenbench or pass --store with another file."
            )
        if not self.readonly:
            conn.executescript(_CREATE)  # one transaction: schema, version and marker together

    def _schema_version(self, text: object) -> int:
        if not re.fullmatch(r"[0-9]+", str(text)):
            raise GreenbenchError(
                f"the results store {self.path} has schema_version {text!r} in its meta table, "
                f"which is not a whole number: the file is damaged or was not written by greenbench. "
                f"Pass --store with another file, or move this one aside."
            )
        return int(str(text))

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    def add(self, record: RunRecord) -> int:
        """Store ``record`` in one transaction; return its row id."""
        if self.readonly:
            raise GreenbenchError(
                f"the results store {self.path} is open read-only, so the record of "
                f"{record.variant} cannot be added; open it without readonly=True to add records."
            )
        with self._conn:
            cur = self._conn.execute(
                "INSERT INTO records (schema_version, run_id, suite, suite_hash, variant, "
                "variant_hash, device_id, status, started_at, finished_at, record) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.schema_version,
                    record.run_id,
                    record.suite,
                    record.suite_hash,
                    record.variant,
                    record.variant_hash,
                    record.device_id,
                    record.status,
                    record.started_at,
                    record.finished_at,
                    json.dumps(record.to_dict()),
                ),
            )
        return int(cur.lastrowid or 0)

    def latest(
        self, suite: str, variant_hash: str, device_id: str, status: Status | None = "ok"
    ) -> RunRecord | None:
        """The newest record of this variant config on this device (of ``status``, if given)."""
        sql = "SELECT record FROM records WHERE suite=? AND variant_hash=? AND device_id=?"
        args: list[Any] = [suite, variant_hash, device_id]
        if status is not None:
            sql += " AND status=?"
            args.append(status)
        row = self._conn.execute(sql + " ORDER BY id DESC LIMIT 1", args).fetchone()
        return RunRecord.from_dict(json.loads(row[0])) if row else None

    def records(self, suite: str | None = None, device_id: str | None = None) -> list[RunRecord]:
        """All records, oldest first, optionally of one suite and/or device."""
        sql, args = "SELECT record FROM records WHERE 1=1", []
        if suite is not None:
            sql += " AND suite=?"
            args.append(suite)
        if device_id is not None:
            sql += " AND device_id=?"
            args.append(device_id)
        rows = self._conn.execute(sql + " ORDER BY id", args).fetchall()
        return [RunRecord.from_dict(json.loads(r[0])) for r in rows]

    def count(self) -> int:
        """Number of records."""
        return int(self._conn.execute("SELECT COUNT(*) FROM records").fetchone()[0])
