"""Stage a checked YOLO dataset under greenbench's work folder (``staged_copy``): real folders of
links to the usable samples and a data.yaml naming them, so what ultralytics writes or would
unpickle never touches the user's folders."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml

from greenbench.errors import GreenbenchError
from greenbench.tasks.base import DatasetRef
from greenbench.tasks.detect.dataset_ref import MARKER, STAGING_VERSION, Contents, check_dataset, label_path


def staged_copy(ref: DatasetRef, workdir: Path) -> Path:
    """A data.yaml under ``workdir`` that ultralytics can read but not act on.

    Under ``workdir/data/<fingerprint>-<STAGING_VERSION>``: ``images/<split>/...`` holds one
    symlink per usable image and ``labels/<split>/...`` one per label file (in real folders, so
    no folder resolves back into the user's data), and data.yaml names them by absolute path
    with ``names``, ``nc`` and ``channels`` only — no ``download:`` (a URL or code), no other key.
    ultralytics' label caches, restored JPEGs and ``cache: disk`` arrays therefore land in the
    work folder; a ``*.cache`` or any other file in the user's folders is never linked. Built in a
    temporary folder and renamed into place, so a second run staging the same data at the same
    time, or a full disk, never leaves half a copy that looks complete.
    """
    contents = ref.contents if ref.contents is not None else check_dataset(ref.data_yaml).contents
    assert contents is not None  # check_dataset always fills it
    root = workdir.resolve() / "data"
    out = root / f"{ref.fingerprint}-{STAGING_VERSION}"
    target = out / "data.yaml"
    if (out / MARKER).is_file() and target.is_file():
        return target
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=root))
    except OSError as e:
        raise _stage_error(ref, root, e) from None
    try:
        _build(contents, out, tmp)
        install_complete(tmp, out, MARKER)
    except OSError as e:
        raise _stage_error(ref, root, e) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _build(contents: Contents, out: Path, tmp: Path) -> None:
    """Write the staged copy that will live at ``out`` into ``tmp``."""

    def here(final: str | Path) -> Path:
        return tmp / Path(final).relative_to(out)

    staged: dict[str, Any] = {"path": str(out)}
    for split, entries in contents.splits.items():
        folders = []
        for i, samples in enumerate(entries):
            images = out / "images" / (split if len(entries) == 1 else f"{split}{i}")
            for sample in samples:
                link = images / sample.rel
                here(link).parent.mkdir(parents=True, exist_ok=True)
                here(link).symlink_to(os.path.realpath(sample.image))
                if sample.label is not None:  # ultralytics only reads label files
                    label = here(label_path(str(link)))
                    label.parent.mkdir(parents=True, exist_ok=True)
                    label.symlink_to(os.path.realpath(sample.label))
            folders.append(str(images))
        staged[split] = folders[0] if len(folders) == 1 else folders
    staged["nc"] = len(contents.names)
    staged["names"] = contents.names
    if contents.channels is not None:
        staged["channels"] = contents.channels
    (tmp / "data.yaml").write_text(yaml.safe_dump(staged, sort_keys=False), encoding="utf-8")
    (tmp / MARKER).write_text("", encoding="utf-8")


def _stage_error(ref: DatasetRef, root: Path, e: OSError) -> GreenbenchError:
    culprit = f" at {e.filename}" if e.filename else ""
    return GreenbenchError(
        f"cannot stage the dataset {ref.data_yaml} under {root}: {e.strerror or e}{culprit}. Free some "
        f"space or pass --workdir with a writable folder; the dataset itself is only read."
    )


def install_complete(tmp: Path, final: Path, marker: str) -> None:
    """Rename the complete folder ``tmp`` (holding ``marker``) to ``final``, replacing an
    incomplete ``final``; if another process installed a complete ``final`` first, keep its copy.

    ``OSError`` escapes (e.g. a full disk): the caller words it.
    """
    try:
        os.rename(tmp, final)
        return
    except OSError:
        if not final.exists():
            raise
    if (final / marker).is_file():
        return  # another process finished first; its copy is identical, ours is discarded
    # An incomplete folder (crash, older greenbench): move it aside, then take its place.
    stale = Path(tempfile.mkdtemp(prefix=f".{final.name}.stale-", dir=final.parent))
    try:
        os.rename(final, stale / "old")
    except FileNotFoundError:
        pass  # another process moved it first
    try:
        os.rename(tmp, final)
    except OSError:
        if not (final / marker).is_file():
            raise
    finally:
        shutil.rmtree(stale, ignore_errors=True)
