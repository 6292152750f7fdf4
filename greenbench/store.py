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
      with a CI over rounds (a hierarchical bootstrap before round-level t-intervals; each
      record's ``ci_method`` says which); ``measurement.blocks`` keeps every block. Version-1
      records stay readable (``_from_v1``): their latency is one process' samples, unpaired.
      A store is marked version 2 on its first writable open; its rows keep their own version.
      Later, same version: a ``device_peaks`` table (device id → measured peak GFLOP/s, JSON,
      rows only added; the newest counts), created on a writable open; a store without it reads
      as one with no peaks.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shlex
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from greenbench.errors import GreenbenchError

SCHEMA_VERSION = 2
DEFAULT_STORE = Path("results/greenbench.db")

Status = Literal["ok", "failed"]
BUSY_TIMEOUT_S = 30.0  # how long a read or write waits for another process' transaction


class StoreFull(GreenbenchError):
    """The store's disk is full: nothing was written; the message says where and what to do."""


class StoreDamaged(GreenbenchError):
    """The store file is damaged; the message says how to recover what it holds."""


class BadRecord(GreenbenchError):
    """One stored record cannot be read (not JSON, wrong shape, unknown schema version)."""


def metric(value: float | int | None, unit: str, **extra: Any) -> dict[str, Any]:
    """A stored metric: value and unit kept apart (rendered together only at the edge)."""
    return {"value": value, "unit": unit, **extra}


@dataclass
class RunRecord:
    """Everything known about one variant measured in one run.

    variant_hash: the variant key (``greenbench.identity.variant_key``): what resume looks up.
    metrics: name → ``{"value", "unit", ...}``; energy metrics also carry ``method``
        (``measured``/``estimated``) and ``source``; latency and energy per image carry
        ``ci_low``/``ci_high`` (None under 2 rounds) and ``ci_method`` (how they were made:
        a t-interval over rounds now, a hierarchical bootstrap in older records).
    deltas: metric name → Δ against ``baseline`` from interleaved block pairs measured in the
        same processes: ``delta_pct``, ``delta_ci_low_pct``, ``delta_ci_high_pct``,
        ``significant``, ``pairs``, ``rounds``, ``spread_pct`` (τ, between processes),
        ``per_round`` (older records: ``p_value``, ``rounds_disagree``),
        ``baseline_key`` (the baseline's variant key), ``run_id``. Empty for the baseline.
    stages: per stage: name, params, cached, checkpoint, energy window (gross/net J).
    measurement: raw latency samples, energy windows, idle baseline, meter choices, settings.
    smoke: for a ``greenbench run --smoke`` record, what the smoke run changed (settings, notes
        such as pretrained weights replaced by training from scratch); None for a real result.
        Tables, leaderboards and exports keep smoke records apart from real ones.
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
    smoke: dict[str, Any] | None = None
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunRecord:
        """Inverse of ``to_dict``, one read path per schema version (as pyperf's ``_json_load``)."""
        if not isinstance(d, dict):
            raise BadRecord(f"a stored record is a JSON {type(d).__name__}, not an object")
        version = d.get("schema_version", 1)
        if not isinstance(version, int) or isinstance(version, bool):
            raise BadRecord(f"a stored record has schema_version {_short(version)}, not a whole number")
        if version == 1:
            return cls._from_v1(d)
        if version != SCHEMA_VERSION:
            raise BadRecord(
                f"a stored record of {_short(d.get('variant'))} has schema version {version}, which "
                f"this greenbench ({SCHEMA_VERSION}) cannot read; upgrade greenbench."
            )
        _check_shape(d)
        return cls(**d)

    @classmethod
    def _from_v1(cls, d: dict[str, Any]) -> RunRecord:
        """A version-1 record: no task, baseline, runtime or deltas; latency from one process."""
        d = dict(d)
        metrics = d.get("metrics", {})
        lat = metrics.get("latency_ms") if isinstance(metrics, dict) else None
        if isinstance(lat, dict):
            d["metrics"] = {
                **d["metrics"],
                "latency_ms": {**lat, "ci_method": "bootstrap of one process' samples (schema 1)"},
            }
        d = {**d, "task": "detect", "runtime": "torch", "schema_version": 1}
        _check_shape(d)
        return cls(**d)

    def value(self, name: str) -> float | None:
        """The value of metric ``name`` or None."""
        m = self.metrics.get(name)
        return None if m is None else m.get("value")


def _short(value: object) -> str:
    """A stored value quoted for a message: one line, at most 60 characters."""
    text = repr(value)
    text = re.sub(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]", "?", text)
    return text if len(text) <= 60 else text[:57] + "..."


_TEXT = {"run_id", "suite", "suite_hash", "variant", "variant_hash", "device_id", "started_at", "finished_at"}
_TEXT |= {"task"}
_TEXT_OR_NONE = {"parent", "error", "baseline", "runtime"}
_MAPS = {"metrics", "deltas", "measurement", "device", "versions"}
_NAMES = {f.name for f in fields(RunRecord)}
_REQUIRED = {f.name for f in fields(RunRecord) if f.default is MISSING and f.default_factory is MISSING}


def _check_shape(d: dict[str, Any]) -> None:
    """Raise ``BadRecord`` unless ``d`` has the fields of a ``RunRecord`` with the types the
    store, the resume and the tables rely on (stored JSON is not trusted)."""
    name = _short(d.get("variant"))

    def bad(problem: str) -> BadRecord:
        return BadRecord(f"the stored record of {name} {problem}")

    if unknown := sorted(str(k) for k in set(d) - _NAMES):
        raise bad(f"has unknown field(s) {_short(', '.join(unknown))}")
    if missing := sorted(_REQUIRED - set(d)):
        raise bad(f"lacks the field(s) {', '.join(missing)}")
    for key in sorted(d):
        value = d[key]
        if key in _TEXT and not isinstance(value, str):
            raise bad(f"has {key} {_short(value)}, not a string")
        if key in _TEXT_OR_NONE and value is not None and not isinstance(value, str):
            raise bad(f"has {key} {_short(value)}, not a string or null")
        if key in _MAPS and not isinstance(value, dict):
            raise bad(f"has {key} of type {type(value).__name__}, not an object")
    if d.get("smoke") is not None and not isinstance(d["smoke"], dict):
        raise bad(f"has smoke {_short(d['smoke'])}, not an object or null")
    if d["status"] not in ("ok", "failed"):
        raise bad(f"has status {_short(d['status'])}, not 'ok' or 'failed'")
    if not all(isinstance(m, dict) for m in d.get("metrics", {}).values()):
        raise bad("has a metric that is not an object of value and unit")
    stages = d.get("stages", [])
    if not isinstance(stages, list) or not all(isinstance(st, dict) for st in stages):
        raise bad("has stages that are not a list of objects")


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


# --- records measured but not yet stored ------------------------------------------------------
# Before a record is added, it is written to ``<workdir>/pending/``; after the add, the file is
# removed. A full disk or a killed run between the two leaves the file, and the next run stores
# it before it looks for work: a measured result is never measured twice or lost. A few MB are
# kept reserved in the folder, so a pending record can be written even when the disk filled up.

RESERVE_NAME = ".reserve"
RESERVE_BYTES = 4 * 1024 * 1024
MAX_PENDING_BYTES = 256 * 1024 * 1024  # far above any record: a bigger file is not one of ours


def pending_name(record: RunRecord) -> str:
    """``<run_id>-<variant>-<tag>.json``: safe in a path whatever the names hold; ``tag`` keeps
    names that differ only in unsafe characters apart."""
    tag = hashlib.sha256(f"{record.run_id}\0{record.variant}".encode()).hexdigest()[:8]
    run, variant = (re.sub(r"[^A-Za-z0-9_.-]", "_", x)[:60] for x in (record.run_id, record.variant))
    return f"{run}-{variant}-{tag}.json"


def _write_synced(path: Path, data: bytes) -> None:
    try:
        with path.open("wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except OSError:
        path.unlink(missing_ok=True)
        raise


def reserve_space(folder: Path, nbytes: int = RESERVE_BYTES) -> None:
    """Keep ``nbytes`` allocated in ``folder/.reserve`` (freed when a pending record needs it)."""
    path = folder / RESERVE_NAME
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if path.is_file() and not path.is_symlink() and path.stat().st_size >= nbytes:
            return
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            os.posix_fallocate(fd, 0, nbytes)  # real blocks: a sparse file would reserve nothing
        finally:
            os.close(fd)
    except OSError:
        # already too full to reserve, or no fallocate: a run goes on without the reserve
        try:
            path.unlink(missing_ok=True)
        except OSError:
            pass


def save_pending(record: RunRecord, folder: Path) -> Path:
    """Write ``record`` to ``folder`` (durably, atomically) before it is stored; return the file."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / pending_name(record)
    tmp = path.with_name(path.name + ".tmp")
    data = json.dumps(record.to_dict()).encode()
    try:
        _write_synced(tmp, data)
    except OSError as e:
        if e.errno != errno.ENOSPC:
            raise
        (folder / RESERVE_NAME).unlink(missing_ok=True)  # what the reserve is kept for
        _write_synced(tmp, data)
    os.replace(tmp, path)
    return path


def store_record(store: Store, record: RunRecord, folder: Path) -> int:
    """Add ``record`` to ``store`` with a pending copy in ``folder`` until it is stored.

    A full store disk is ``StoreFull`` naming the pending file the next run stores."""
    kept: Path | None = None
    why = ""
    try:
        kept = save_pending(record, folder)
    except OSError as e:  # the store may be on another disk: try it anyway
        why = e.strerror or str(e)
    try:
        row = store.add(record)
    except GreenbenchError as e:  # full, locked past the timeout, damaged: the record is kept
        if kept is None:
            raise type(e)(f"{e} The record of {record.variant!r} could not be kept ({why}).") from None
        raise type(e)(
            f"{e} The measured record of {record.variant!r} is kept in {kept}; the next "
            f"'greenbench run' with this work folder stores it without measuring again."
        ) from None
    if kept is not None:
        kept.unlink(missing_ok=True)
    return row


def store_pending(store: Store, folder: Path) -> list[RunRecord]:
    """Store the records a previous run kept in ``folder`` (oldest first) unless their key is
    already stored ok, or this very record is; return those stored. An unreadable file is
    renamed ``*.bad`` (never retried) and said in ``store.warnings``."""
    stored: list[RunRecord] = []
    if not folder.is_dir():
        reserve_space(folder)
        return stored
    for path in sorted(folder.glob("*.json"), key=lambda p: p.name):
        try:
            if path.is_symlink() or not path.is_file():
                raise BadRecord("it is not a regular file")  # a pipe would block the read
            if path.stat().st_size > MAX_PENDING_BYTES:
                raise BadRecord(f"it is larger than {MAX_PENDING_BYTES // 2**20} MB")
            record = RunRecord.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError, RecursionError, GreenbenchError) as e:
            bad = path.with_name(path.name + ".bad")
            try:
                path.rename(bad)
            except OSError:
                bad = path
            why = " ".join(str(e).split())[:300]
            store.warnings.append(f"pending record {path} not stored: {why}; left as {bad}")
            continue
        if not store.holds(record):
            store.add(record)
            stored.append(record)
        path.unlink(missing_ok=True)
    reserve_space(folder)
    return stored
