"""Run records and the embedded SQLite store.

One row per variant per run, the full record kept as JSON beside the indexed identity columns.
Records are only ever added: ``--force`` adds newer ones, nothing stored is overwritten.

Schema history (bump ``SCHEMA_VERSION`` and describe the change here):
  1 — first version: identity, status/error, stages, metrics {value, unit, …}, measurement,
      device, versions, timestamps.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from greenbench.errors import GreenbenchError

SCHEMA_VERSION = 1
DEFAULT_STORE = Path("results/greenbench.db")

Status = Literal["ok", "failed"]


def metric(value: float | int | None, unit: str, **extra: Any) -> dict[str, Any]:
    """A stored metric: value and unit kept apart (rendered together only at the edge)."""
    return {"value": value, "unit": unit, **extra}


@dataclass
class RunRecord:
    """Everything known about one variant measured in one run.

    metrics: name → ``{"value", "unit", ...}``; energy metrics also carry ``method``
        (``measured``/``estimated``) and ``source``.
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
    stages: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    measurement: dict[str, Any] = field(default_factory=dict)
    device: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunRecord:
        """Inverse of ``to_dict``; unknown keys from a newer schema are an error."""
        return cls(**d)

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


class Store:
    """An SQLite file of ``RunRecord``s. Use as a context manager or call ``close()``."""

    def __init__(self, path: Path = DEFAULT_STORE) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(self.path, timeout=30)
            with self._conn:
                self._conn.executescript(_DDL)
                row = self._conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
                if row is None:
                    self._conn.execute(
                        "INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
                    )
        except (sqlite3.DatabaseError, OSError) as e:
            raise GreenbenchError(
                f"cannot open the results store {self.path}: {e}. Pass --store with a new file "
                f"name, or move the file aside; greenbench never overwrites an existing store."
            ) from None
        stored = int(row[0]) if row else SCHEMA_VERSION
        if stored > SCHEMA_VERSION:
            raise GreenbenchError(
                f"the results store {self.path} has schema version {stored}, newer than this "
                f"greenbench ({SCHEMA_VERSION}). Upgrade greenbench or pass --store with another file."
            )

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    def add(self, record: RunRecord) -> int:
        """Store ``record`` in one transaction; return its row id."""
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
