"""Check a user's YOLO ``data.yaml`` before anything runs, and fingerprint its content.

ultralytics downloads a dataset whose folders are missing when the data.yaml has a
``download:`` key, and fails only after training when the split it evaluates on is absent.
Both are decided here up front: every split folder must exist (a clear error otherwise, never a
download), accuracy is measured on ``test`` when the data.yaml has it and on ``val`` otherwise
(recorded). The fingerprint — data.yaml bytes plus name, size and mtime of every image and label
file — enters the cache and resume keys, so editing labels re-runs what depends on them.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from greenbench.errors import GreenbenchError


@dataclass(frozen=True)
class DatasetRef:
    """A checked dataset: its data.yaml, the split accuracy is measured on, a content fingerprint."""

    data_yaml: Path
    eval_split: str
    fingerprint: str


def _load(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as e:
        raise GreenbenchError(f"dataset {path} cannot be read as YAML: {e}") from None
    if not isinstance(data, dict):
        raise GreenbenchError(f"dataset {path} is not a YOLO data.yaml (a mapping with train/val keys).")
    return data


def _root(path: Path, data: dict[str, Any]) -> Path:
    root = data.get("path")
    if not root:
        return path.parent
    root_path = Path(str(root)).expanduser()
    if root_path.is_absolute():
        return root_path
    for base in (path.parent, Path.cwd()):
        if (base / root_path).exists():
            return (base / root_path).resolve()
    return path.parent / root_path


def split_paths(path: Path) -> tuple[dict[str, list[Path]], str]:
    """The existing folders/lists of each split and the split to evaluate on (``test`` or ``val``)."""
    data = _load(path)
    root = _root(path, data)
    splits: dict[str, list[Path]] = {}
    for split in ("train", "val", "test"):
        value = data.get(split)
        if value is None:
            if split == "test":
                continue
            raise GreenbenchError(
                f"dataset {path} has no '{split}:' key; a YOLO data.yaml needs train and val."
            )
        entries = value if isinstance(value, list) else [value]
        paths = [p if p.is_absolute() else root / p for p in (Path(str(e)) for e in entries)]
        missing = [p for p in paths if not p.exists()]
        if missing:
            hint = (
                " Its 'download:' key is ignored: greenbench never downloads data. Fetch the dataset "
                "yourself and point 'path:' at it."
                if "download" in data
                else ""
            )
            raise GreenbenchError(f"dataset {path}: the '{split}' images at {missing[0]} do not exist.{hint}")
        splits[split] = paths
    return splits, ("test" if "test" in splits else "val")


def _files(folder: Path) -> list[tuple[str, int, int]]:
    if folder.is_file():  # a .txt list of images
        st = folder.stat()
        return [(str(folder), st.st_size, st.st_mtime_ns)]
    out = []
    for dirpath, _dirs, names in os.walk(folder):
        for name in names:
            if name.endswith(".cache"):  # ultralytics' own label cache, rewritten on every read
                continue
            st = os.stat(os.path.join(dirpath, name))
            out.append((os.path.relpath(os.path.join(dirpath, name), folder), st.st_size, st.st_mtime_ns))
    return sorted(out)


def check_dataset(path: Path) -> DatasetRef:
    """Check ``path`` (a data.yaml) and fingerprint it."""
    splits, eval_split = split_paths(path)
    digest = hashlib.sha256(path.read_bytes())
    for split, folders in sorted(splits.items()):
        for folder in folders:
            labels = Path(str(folder).replace(f"{os.sep}images", f"{os.sep}labels"))
            for f in (folder, labels) if labels != folder and labels.exists() else (folder,):
                digest.update(repr((split, _files(f))).encode())
    return DatasetRef(path, eval_split, digest.hexdigest()[:16])
