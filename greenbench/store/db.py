"""The embedded SQLite store of run records (``greenbench.store.record``).

One row per variant per run, the full record kept as JSON beside the indexed identity columns.
Records are only ever added: ``--force`` adds newer ones, nothing stored is overwritten. The
schema history is in ``greenbench.store.record``.
"""

from __future__ import annotations

import errno
import json
import re
import shlex
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from greenbench.errors import GreenbenchError
from greenbench.store.record import SCHEMA_VERSION, RunRecord, Status

DEFAULT_STORE = Path("results/greenbench.db")

BUSY_TIMEOUT_S = 30.0  # how long a read or write waits for another process' transaction


class StoreFull(GreenbenchError):
    """The store's disk is full: nothing was written; the message says where and what to do."""


class StoreDamaged(GreenbenchError):
    """The store file is damaged; the message says how to recover what it holds."""


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
CREATE TABLE IF NOT EXISTS device_peaks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id TEXT NOT NULL,
    measured_at TEXT NOT NULL,
    peak TEXT NOT NULL
);
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

    SQLite's default rollback journal with a busy timeout makes a reader (``greenbench table``)
    safe beside a writing run: it reads the last committed state, or waits up to
    ``BUSY_TIMEOUT_S`` while a commit is being written. (WAL is not used: a read-only open of a
    WAL store needs write access to its ``-shm`` file, and WAL fails on network file systems.)
    A record that cannot be read is skipped and said in ``warnings`` (with its row id); a
    damaged file, a full disk or a lock held too long is a ``GreenbenchError`` that says what
    to do, never an ``sqlite3`` traceback.
    """

    def __init__(self, path: Path = DEFAULT_STORE, *, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        #: one line per record skipped as unreadable (row id and why), for the table's notes
        self.warnings: list[str] = []
        if self.path.exists() and not self.path.is_file():
            # a folder, a device or a pipe: SQLite could block forever reading a pipe
            raise GreenbenchError(
                f"the results store {self.path} is not a regular file (a folder, device or pipe); "
                f"pass --store with the path of a store file, or of a new file to create."
            )
        if readonly and not self.path.is_file():
            raise GreenbenchError(
                f"there is no results store at {self.path} (a read-only open never creates one); "
                f"run the suite first or pass --store with the path of an existing store."
            )
        conn: sqlite3.Connection | None = None
        try:
            if readonly:
                conn = sqlite3.connect(_uri(self.path), uri=True, timeout=BUSY_TIMEOUT_S)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S)
            self._open(conn)
        except (sqlite3.Error, OSError) as e:
            if conn is not None:
                conn.close()
            raise self._failure(e, "open") from None
        except BaseException:
            if conn is not None:
                conn.close()
            raise
        self._conn = conn

    def _failure(self, e: BaseException, doing: str) -> GreenbenchError:
        """One paragraph for an SQLite or OS error met while ``doing`` something to the store."""
        text = " ".join(str(e).split()) or type(e).__name__
        where = f"the results store {self.path}"
        if (isinstance(e, OSError) and e.errno == errno.ENOSPC) or "disk is full" in text:
            return StoreFull(
                f"no space left in {self.path.parent.resolve()} to {doing} {where} ({text}); free "
                f"space and re-run (trained stages are cached)."
            )
        if "locked" in text or "busy" in text:
            return GreenbenchError(
                f"cannot {doing} {where}: another process held it locked for more than "
                f"{BUSY_TIMEOUT_S:g} s ({text}); wait for the other greenbench or sqlite3 process to "
                f"finish, then re-run."
            )
        journal = Path(f"{self.path}-journal")
        if "readonly" in text and self.readonly and journal.exists():
            return GreenbenchError(
                f"cannot {doing} {where}: a process stopped in the middle of writing it and left "
                f"{journal}, which a read-only open cannot roll back; run 'greenbench run' on this "
                f"store once (or sqlite3 {shlex.quote(str(self.path))} 'PRAGMA quick_check'), then re-run."
            )
        if "readonly" in text or isinstance(e, PermissionError) or "unable to open" in text:
            return GreenbenchError(
                f"cannot {doing} {where} ({text}); check that the file and its folder are writable "
                f"by you, or pass --store with another file."
            )
        if isinstance(e, sqlite3.DatabaseError):
            q = shlex.quote(str(self.path))
            new = shlex.quote(f"{self.path}.recovered.db")
            return StoreDamaged(
                f"cannot {doing} {where}: the file is damaged ({text}). Recover what it holds with "
                f'sqlite3 {q} ".recover" | sqlite3 {new} and pass --store {new}, or move the file '
                f"aside and re-run into a new store; greenbench never overwrites an existing store."
            )
        return GreenbenchError(
            f"cannot {doing} {where} ({text}); pass --store with another file, or move this one aside."
        )

    @contextmanager
    def _guard(self, doing: str) -> Iterator[None]:
        """SQLite and OS errors while ``doing`` become one-paragraph ``GreenbenchError``s."""
        try:
            yield
        except (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError):
            raise  # a bug in greenbench (a record it built breaks a constraint): keep the traceback
        except (sqlite3.Error, OSError) as e:
            raise self._failure(e, doing) from None

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
        """Store ``record`` in one transaction; return its row id. A full disk is ``StoreFull``."""
        if self.readonly:
            raise GreenbenchError(
                f"the results store {self.path} is open read-only, so the record of "
                f"{record.variant} cannot be added; open it without readonly=True to add records."
            )
        with self._guard("write to"), self._conn:
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

    def _rows(self, sql: str, args: list[Any]) -> Iterator[RunRecord]:
        """The readable records of ``sql`` (selecting id, record); unreadable ones are skipped
        and said in ``warnings``."""
        with self._guard("read"):
            rows = self._conn.execute(sql, args).fetchall()
        for row_id, text in rows:
            try:
                yield RunRecord.from_dict(json.loads(text))
            except (ValueError, TypeError, RecursionError, GreenbenchError) as e:
                why = " ".join(str(e).split())[:300]
                note = f"row {row_id} of {self.path} skipped: its record cannot be read ({why})"
                if note not in self.warnings:
                    self.warnings.append(note)

    def latest(
        self,
        suite: str,
        variant_hash: str,
        device_id: str,
        status: Status | None = "ok",
        variant: str | None = None,
    ) -> RunRecord | None:
        """The newest readable record of this variant config on this device (of ``status``;
        of the variant named ``variant``, if given: twins with one config are two variants)."""
        sql = "SELECT id, record FROM records WHERE suite=? AND variant_hash=? AND device_id=?"
        args: list[Any] = [suite, variant_hash, device_id]
        if variant is not None:
            sql += " AND variant=?"
            args.append(variant)
        if status is not None:
            sql += " AND status=?"
            args.append(status)
        return next(self._rows(sql + " ORDER BY id DESC", args), None)

    def records(self, suite: str | None = None, device_id: str | None = None) -> list[RunRecord]:
        """All readable records, oldest first, optionally of one suite and/or device."""
        sql, args = "SELECT id, record FROM records WHERE 1=1", []
        if suite is not None:
            sql += " AND suite=?"
            args.append(suite)
        if device_id is not None:
            sql += " AND device_id=?"
            args.append(device_id)
        return list(self._rows(sql + " ORDER BY id", args))

    def count(self) -> int:
        """Number of records."""
        with self._guard("read"):
            return int(self._conn.execute("SELECT COUNT(*) FROM records").fetchone()[0])

    def holds(self, record: RunRecord) -> bool:
        """Whether this run's record of the variant, or any ok record of its key, is stored."""
        with self._guard("read"):
            row = self._conn.execute(
                "SELECT 1 FROM records WHERE suite=? AND variant_hash=? AND device_id=? AND variant=? "
                "AND (run_id=? OR status='ok') LIMIT 1",
                (record.suite, record.variant_hash, record.device_id, record.variant, record.run_id),
            ).fetchone()
        return row is not None

    def save_device_peak(self, device_id: str, peak: dict[str, Any]) -> None:
        """Add the measured peak of ``device_id`` (``fp32_gflops_per_s``, ``int8_gops_per_s`` or
        None, ``threads``, ``method``, ``measured_at``, ...); earlier ones are kept, the newest counts."""
        if self.readonly:
            raise GreenbenchError(
                f"the results store {self.path} is open read-only, so the peak of device {device_id} "
                f"cannot be added; open it without readonly=True."
            )
        with self._guard("write to"), self._conn:
            self._conn.execute(
                "INSERT INTO device_peaks (device_id, measured_at, peak) VALUES (?, ?, ?)",
                (device_id, str(peak.get("measured_at", "")), json.dumps(peak, sort_keys=True)),
            )

    def device_peak(self, device_id: str) -> dict[str, Any] | None:
        """The newest stored peak of ``device_id``, or None (none stored, a store from before the
        ``device_peaks`` table, or an unreadable row, which is said in ``warnings``)."""
        with self._guard("read"):
            has = self._conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name='device_peaks'"
            ).fetchone()
            row = (
                has
                and self._conn.execute(
                    "SELECT id, peak FROM device_peaks WHERE device_id=? ORDER BY id DESC LIMIT 1",
                    (device_id,),
                ).fetchone()
            )
        if not row:
            return None
        try:
            peak = json.loads(row[1])
        except ValueError:
            peak = None
        if not isinstance(peak, dict):
            self.warnings.append(f"device peak row {row[0]} of {self.path} skipped: not a JSON object")
            return None
        return peak
