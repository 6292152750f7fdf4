"""``greenbench clean``: remove work-folder artifacts that no stored record references.

Looks only at the entries of ``<workdir>/artifacts`` (a stage's checkpoints, one folder per stage
and cache key) and ``<workdir>/measure`` (a variant's evaluation, one folder per variant and key).
An entry is kept when a record in the store, or a measured record still waiting in
``<workdir>/pending``, names a path inside it (a stage checkpoint, the measured model file) or
its variant key; everything else is a cache that a later run rebuilds when it needs it (the
gate's artifacts included). Datasets, staged data, weights, logs and pending records are never
touched. The work folder is locked while cleaning, so a run in progress there (whose artifacts
are not stored yet) stops ``clean`` with a message naming it. Nothing is asked: ``--dry-run``
lists what would go and its size, and a real clean prints what it removed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from greenbench.errors import TERMINAL_UNSAFE, GreenbenchError
from greenbench.paths import WORKDIR_ENV, default_store, default_workdir, store_help

HELP = "remove work-folder artifacts that no stored record references (--dry-run: list them)"

#: the work folder's subfolders whose entries are caches a run can rebuild
CACHES = ("artifacts", "measure")
MAX_PENDING_BYTES = 256 * 1024 * 1024  # as greenbench.store.pending: a bigger file is not a record


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--store``, ``--workdir`` and ``--dry-run``."""
    parser.add_argument("--store", default=str(default_store()), help=store_help())
    parser.add_argument(
        "--workdir", help=f"the work folder to clean (default: ${WORKDIR_ENV}, else work/ beside the store)"
    )
    parser.add_argument("--dry-run", action="store_true", help="list what would be removed and its size")


@dataclass(frozen=True)
class Unreferenced:
    """A work-folder entry no record references, and its size on disk in bytes."""

    path: Path
    size_bytes: int


def _strings(value: Any) -> Iterator[str]:
    """Every string in nested dicts and lists."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings(v)


def _pending_documents(folder: Path) -> list[Any]:
    """The JSON of every measured record waiting in ``folder``; one that cannot be read stops
    the clean (its references are unknown)."""
    docs = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_PENDING_BYTES:
                raise ValueError("not a regular file of a record's size")
            docs.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, RecursionError) as e:
            raise GreenbenchError(
                f"cannot read the pending record {path} ({' '.join(str(e).split())[:200]}), so its "
                f"artifacts are unknown and nothing was removed; run the suite again to store it (or "
                f"move the file away), then clean."
            ) from None
    return docs


def references(documents: Iterable[Any], workdir: Path) -> tuple[set[Path], set[str]]:
    """(paths, keys) the records name: every path-like string of their stages and measurement,
    absolute (a relative one is taken from the work folder), and their variant keys."""
    paths: set[Path] = set()
    keys: set[str] = set()
    for doc in documents:
        if not isinstance(doc, dict):
            continue
        if isinstance(doc.get("variant_hash"), str):
            keys.add(doc["variant_hash"])
        for text in _strings([doc.get("stages"), doc.get("measurement")]):
            if os.sep in text and "\0" not in text and len(text) < 4096:
                path = Path(text)
                paths.add(Path(os.path.abspath(path if path.is_absolute() else workdir / path)))
    return paths, keys


def _size_bytes(path: Path) -> int:
    """Bytes on disk under ``path``, links not followed."""
    try:
        if path.is_symlink() or not path.is_dir():
            return path.lstat().st_size
        total = 0
        for root, _, files in os.walk(path):
            for name in files:
                try:
                    total += (Path(root) / name).lstat().st_size
                except OSError:
                    pass
        return total
    except OSError:
        return 0


def unreferenced(workdir: Path, paths: set[Path], keys: set[str]) -> list[Unreferenced]:
    """The entries of the work folder's caches that no path or key points into, sorted."""
    found = []
    for cache in CACHES:
        folder = workdir / cache
        if not folder.is_dir() or folder.is_symlink():
            continue
        for entry in sorted(folder.iterdir()):
            # as written and with the work folder's links resolved (runs store resolved paths)
            places = {Path(os.path.abspath(entry)), workdir.resolve() / cache / entry.name}
            named = any(p in places or places & set(p.parents) for p in paths)
            keyed = any(entry.name.endswith(f"-{key}") for key in keys)
            if not (named or keyed):
                found.append(Unreferenced(entry, _size_bytes(entry)))
    return found


def size_text(n_bytes: int) -> str:
    """A size for people: ``12.3 MB`` (10^6 bytes), or ``4.1 kB`` (10^3 bytes) under 1 MB."""
    return f"{n_bytes / 1e6:.1f} MB" if n_bytes >= 1e6 else f"{n_bytes / 1e3:.1f} kB"


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def _safe(path: Path) -> str:
    return TERMINAL_UNSAFE.sub("?", str(path))


def run(args: argparse.Namespace) -> int:
    """List (``--dry-run``) or remove the unreferenced entries; print each with its size."""
    from greenbench.run.lock import WorkdirLock
    from greenbench.store import Store

    store_path = Path(args.store)
    workdir = Path(args.workdir) if args.workdir else default_workdir(store_path)
    if not store_path.is_file():
        raise GreenbenchError(
            f"no results store at {store_path}: without it, every artifact would look unreferenced. "
            f"Pass --store with the store the work folder's runs wrote to."
        )
    if not workdir.is_dir():
        print(f"greenbench: no work folder at {_safe(workdir)}; nothing to clean.", file=sys.stderr)
        return 0
    lock = WorkdirLock(workdir, "clean", fix="wait until that run has finished, then clean")
    with lock, Store(store_path, readonly=True) as store:
        documents: list[Any] = [r.to_dict() for r in store.records()]
        documents += _pending_documents(workdir / "pending")
        paths, keys = references(documents, workdir.resolve())
        found = unreferenced(workdir, paths, keys)
        verb = "would remove" if args.dry_run else "removed"
        removed, count = 0, 0
        for item in found:
            if not args.dry_run:
                try:
                    _remove(item.path)
                except OSError as e:
                    print(
                        f"greenbench: cannot remove {_safe(item.path)} ({e.strerror or e}); kept.",
                        file=sys.stderr,
                    )
                    continue
            removed, count = removed + item.size_bytes, count + 1
            print(f"{verb} {_safe(item.path)} ({size_text(item.size_bytes)})")
    kept = "" if found else "; every artifact is referenced by a stored record"
    print(
        f"greenbench: {verb} {count} unreferenced entr{'y' if count == 1 else 'ies'}, "
        f"{size_text(removed)}, from {_safe(workdir)} (records in {_safe(store_path)}){kept}.",
        file=sys.stderr,
    )
    return 0
