"""Records measured but not yet stored: written to ``<workdir>/pending/`` first, stored, then
removed, so a full disk or a killed run never loses a measured result."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
from pathlib import Path

from greenbench.errors import GreenbenchError
from greenbench.store.db import Store
from greenbench.store.record import BadRecord, RunRecord

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
