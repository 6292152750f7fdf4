"""Check a user's YOLO ``data.yaml`` before anything runs, fingerprint it, stage a safe copy.

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


def _labels_of(images: Path) -> Path:
    """Where ultralytics looks for the labels of an image folder: the last ``images`` path part
    replaced by ``labels``, or the folder itself when no part is called ``images``."""
    parts = list(images.parts)
    if "images" not in parts:
        return images
    i = len(parts) - 1 - parts[::-1].index("images")
    return Path(*parts[:i], "labels", *parts[i + 1 :])


def _digest_folder(digest: Any, folder: Path, contents: bool) -> None:
    """Names and sizes of every file (and, for labels, their bytes) into ``digest``."""
    if folder.is_file():  # a .txt list of images
        digest.update(folder.read_bytes())
        return
    for dirpath, dirs, names in os.walk(folder, followlinks=True):
        dirs.sort()
        for name in sorted(names):
            if name.endswith(".cache"):  # ultralytics' own label cache, rewritten on every read
                continue
            file = Path(dirpath, name)
            digest.update(f"{file.relative_to(folder)}:{file.stat().st_size}".encode())
            if contents:
                digest.update(file.read_bytes())


def check_dataset(path: Path) -> DatasetRef:
    """Check ``path`` (a data.yaml) and fingerprint it.

    The fingerprint covers the data.yaml's bytes, every label file's bytes and every image's
    name and size — not modification times, so a copy or a fresh clone keeps its results.
    """
    splits, eval_split = split_paths(path)
    digest = hashlib.sha256(path.read_bytes())
    for split, folders in sorted(splits.items()):
        for folder in folders:
            digest.update(split.encode())
            _digest_folder(digest, folder, contents=False)
            labels = _labels_of(folder)
            if labels != folder and labels.exists():
                _digest_folder(digest, labels, contents=True)
    return DatasetRef(path, eval_split, digest.hexdigest()[:16])


def _mirror(source: Path, target: Path) -> None:
    """Real folders under ``target`` with one symlink per file of ``source``.

    Per file, not per folder: ultralytics resolves the split folders it is given, and a
    linked folder would resolve back into the user's data (where its caches would go).
    """
    done = target / ".greenbench-complete"
    if done.exists() or not source.is_dir():
        return
    for dirpath, _dirs, names in os.walk(source, followlinks=True):
        here = target / Path(dirpath).relative_to(source)
        here.mkdir(parents=True, exist_ok=True)
        for name in names:
            link = here / name
            if not name.endswith(".cache") and not link.is_symlink():
                link.symlink_to(Path(dirpath, name).resolve())
    done.touch()


def staged_copy(ref: DatasetRef, workdir: Path) -> Path:
    """A data.yaml under ``workdir`` that ultralytics can read but not act on.

    Split folders are mirrored (one symlink per file) under
    ``workdir/data/<fingerprint>/{images,labels}/<split>`` and named by absolute path, so
    ultralytics never resolves ``path:`` against its own folders (where it would miss the
    data and act on ``download:``), the ``download:`` key is dropped
    (it may hold a URL or code), and the label ``.cache`` files it writes land in the work
    folder, not beside the user's data. Image lists (``.txt``) are used where they are.
    """
    data = _load(ref.data_yaml)
    splits, _ = split_paths(ref.data_yaml)
    out = workdir / "data" / ref.fingerprint
    staged: dict[str, Any] = {k: v for k, v in data.items() if k not in ("download", "path", *splits)}
    for split, folders in splits.items():
        entries = []
        for i, folder in enumerate(folders):
            if not folder.is_dir():
                entries.append(str(folder.resolve()))
                continue
            name = split if len(folders) == 1 else f"{split}{i}"
            for kind, target in (("images", folder), ("labels", _labels_of(folder))):
                _mirror(target, out / kind / name)
            entries.append(str(out / "images" / name))
        staged[split] = entries[0] if len(entries) == 1 else entries
    staged["path"] = str(out)
    target = out / "data.yaml"
    tmp = target.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(staged, sort_keys=False))
    tmp.replace(target)
    return target
