"""A YOLO-format dataset from train/val/test file lists (``greenbench data split``).

A lists folder holds ``train.txt``, ``val.txt`` and ``test.txt`` (one image file name per line; a
path is reduced to its file name, so the authors' ``./image/x.jpg`` and ``C:\\d\\x.jpg`` both name
``x.jpg``) and ``names.txt`` (the class names, line N is class id N - 1). The images are looked
up by file name anywhere under the images folder, their YOLO label files (``<stem>.txt``) anywhere
under the label folders; names are compared in Unicode NFC, so a file system that stores NFD
(macOS) still matches. Written under a new or empty output folder::

    data.yaml                           path (absolute), train/val/test, nc, names
    images/{train,val,test}/<name>      copied, or hard-linked with ``hardlink``
    labels/{train,val,test}/<stem>.txt

Everything is checked before anything is written: a name on two lists, a name found twice, an
image or a label that is missing is an error naming how many and the first few, unless
``allow_missing`` leaves those images out (said in the result and in data.yaml).
"""

from __future__ import annotations

import argparse
import os
import shutil
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from greenbench.errors import GreenbenchError
from greenbench.tasks.detect.data_yaml import SPLITS, write_data_yaml

NAMES_FILE = "names.txt"
SHOWN = 5  # names quoted in a message; the rest are counted

HELP = "a YOLO dataset from train/val/test file lists (the YOLOv5 study's: suites/yolo_thws_split)"
DESCRIPTION = """\
Build a YOLO-format dataset (images/ and labels/ per split, and a data.yaml) from three file
lists: the YOLOv5 study's exact 8:1:1 split of the THWS images ships as suites/yolo_thws_split
(the authors' own lists). The lists name images; the images and their YOLO label files
(<image stem>.txt) are looked up by file name in every subfolder of --images and --labels.
Every image of the lists must be found with its label, else nothing is written and the error
says how many are missing and which, unless --allow-missing.

example: greenbench data split --lists suites/yolo_thws_split --images ~/thws/image --out data/thws
"""


def _nfc(name: str) -> str:
    return unicodedata.normalize("NFC", name)


def _first(names: list[str]) -> str:
    """The first few ``names`` quoted, and how many more."""
    shown = ", ".join(repr(n) for n in names[:SHOWN])
    return shown + (f" and {len(names) - SHOWN} more" if len(names) > SHOWN else "")


def _error(what: str) -> GreenbenchError:
    return GreenbenchError(f"data split: {what}")


@dataclass(frozen=True)
class SplitLists:
    """The image file names of each split and the class names, as read from a lists folder."""

    folder: Path
    splits: dict[str, tuple[str, ...]]
    names: tuple[str, ...]


def _lines(path: Path) -> list[str]:
    """The non-empty lines of a UTF-8 text file (a byte-order mark and CR line ends allowed)."""
    if not path.is_file():
        raise _error(
            f"{path} is missing; a lists folder holds train.txt, val.txt, test.txt and {NAMES_FILE}."
        )
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise _error(f"{path} cannot be read as UTF-8 text ({e}); write one name per line.") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def read_lists(folder: Path) -> SplitLists:
    """Read ``folder``'s three lists and names; a duplicate name is an error naming it."""
    splits: dict[str, tuple[str, ...]] = {}
    seen: dict[str, str] = {}
    twice: list[str] = []
    for split in SPLITS:
        names = []
        for line in _lines(folder / f"{split}.txt"):
            name = _nfc(PurePosixPath(line.replace("\\", "/")).name)
            if name in seen:
                twice.append(f"{name} ({seen[name]}.txt and {split}.txt)")
            seen[name] = split
            names.append(name)
        if not names:
            raise _error(f"{folder / f'{split}.txt'} names no image; write one image file name per line.")
        splits[split] = tuple(names)
    if twice:
        raise _error(
            f"{len(twice)} image name(s) appear more than once in the lists in {folder}: {_first(twice)}. "
            "Each image belongs to one split once; fix the lists."
        )
    classes = tuple(_lines(folder / NAMES_FILE))
    if not classes or len(set(classes)) != len(classes):
        raise _error(
            f"{folder / NAMES_FILE}: expected distinct class names, one per line, got {len(classes)}."
        )
    return SplitLists(folder, splits, classes)


def _index(roots: list[Path], what: str) -> dict[str, Path]:
    """Every regular file under ``roots`` by its NFC file name; a name found twice is an error."""
    found: dict[str, Path] = {}
    clashes: list[str] = []
    for root in roots:
        for parent, _dirs, files in os.walk(root):
            for file in files:
                path = Path(parent, file)
                name = _nfc(file)
                if name in found and found[name].resolve() != path.resolve():
                    clashes.append(f"{found[name]} and {path}")
                elif path.is_file():
                    found.setdefault(name, path)
    if clashes:
        raise _error(
            f"{len(clashes)} {what} file name(s) occur twice under {', '.join(map(str, roots))}: "
            f"{_first(clashes)}. Point the option at the folder that holds the ones to use."
        )
    return found


@dataclass
class SplitResult:
    """What ``write_split`` wrote: its data.yaml, images per split, how the files got there
    (``copied`` or ``hard-linked``, and how many of a hard-linked split had to be copied because
    they are on another file system), and the images left out under ``allow_missing``."""

    data_yaml: Path
    images: dict[str, int]
    method: str
    copied_instead: int = 0
    left_out: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SplitSources:
    """Where the images and labels are: images under ``images``, labels under ``labels``
    (default: ``images`` and a ``labels`` folder beside it, when there is one)."""

    images: Path
    labels: Path | None = None

    def label_roots(self) -> list[Path]:
        if self.labels is not None:
            return [self.labels]
        beside = self.images.parent / "labels"
        return (
            [self.images, beside]
            if beside.is_dir() and beside.resolve() != self.images.resolve()
            else [self.images]
        )


def _plan(
    lists: SplitLists, sources: SplitSources, allow_missing: bool
) -> tuple[dict[str, list[tuple[Path, Path]]], list[str]]:
    """(image, label) per split, and the names left out; missing files are an error unless allowed."""
    for option, root in (("--images", sources.images), ("--labels", sources.labels)):
        if root is not None and not root.is_dir():
            raise _error(f"{option} {root} is not a folder; point it at the folder that holds the files.")
    images = _index([sources.images], "image")
    label_roots = sources.label_roots()
    labels = _index(label_roots, "label") if label_roots != [sources.images] else images
    no_image: list[str] = []
    no_label: list[str] = []
    plan: dict[str, list[tuple[Path, Path]]] = {}
    for split, names in lists.splits.items():
        plan[split] = []
        for name in names:
            label = labels.get(_nfc(PurePosixPath(name).stem + ".txt"))
            if name not in images:
                no_image.append(name)
            elif label is None:
                no_label.append(name)
            else:
                plan[split].append((images[name], label))
    missing = []
    if no_image:
        missing.append(
            f"{len(no_image)} image(s) named in the lists are not under {sources.images} ({_first(no_image)})"
        )
    if no_label:
        where = " or ".join(str(r) for r in label_roots)
        missing.append(
            f"{len(no_label)} image(s) have no YOLO label file <stem>.txt under {where} ({_first(no_label)})"
        )
    if missing and not allow_missing:
        total = sum(len(n) for n in lists.splits.values())
        raise _error(
            f"of the {total} images in {lists.folder}, {'; '.join(missing)}. Point --images (and "
            "--labels) at the folders that hold them, or pass --allow-missing to write the split "
            "without them (it is then not the lists' exact split); nothing was written."
        )
    for split, pairs in plan.items():
        if not pairs:
            raise _error(f"no image of the '{split}' list was found with its label; nothing was written.")
    return plan, no_image + no_label


def _place(source: Path, target: Path, hardlink: bool) -> bool:
    """Copy ``source`` to ``target``, or hard-link it; True when a hard link had to be a copy."""
    if hardlink:
        try:
            os.link(source, target)
            return False
        except OSError:  # another file system, or links not allowed there
            pass
    shutil.copy2(source, target)
    return hardlink


def _write_data_yaml(out: Path, lists: SplitLists, method: str, left_out: list[str]) -> Path:
    comments = [
        f"built by 'greenbench data split' from the lists in {lists.folder.resolve()} (files {method})"
    ]
    comments += [f"{len(left_out)} image(s) of the lists left out (--allow-missing)"] if left_out else []
    return write_data_yaml(out, out, lists.names, comments)


def write_split(
    lists: SplitLists,
    sources: SplitSources,
    out: Path,
    *,
    hardlink: bool = False,
    allow_missing: bool = False,
) -> SplitResult:
    """Write ``lists``' split of the files under ``sources`` into ``out`` (new or empty)."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise _error(f"--out {out} exists and is not an empty folder; choose a new or empty folder.")
    plan, left_out = _plan(lists, sources, allow_missing)
    method = "hard-linked" if hardlink else "copied"
    copied_instead = 0
    try:
        for split, pairs in plan.items():
            for kind in ("images", "labels"):
                (out / kind / split).mkdir(parents=True, exist_ok=True)
            for image, label in pairs:
                copied_instead += _place(image, out / "images" / split / image.name, hardlink)
                copied_instead += _place(label, out / "labels" / split / f"{image.stem}.txt", hardlink)
        data_yaml = _write_data_yaml(out, lists, method, left_out)
    except OSError as e:
        raise _error(
            f"cannot write under {out}: {e.strerror or e} ({e.filename}); choose a folder you can write."
        ) from None
    images = {split: len(pairs) for split, pairs in plan.items()}
    return SplitResult(data_yaml, images, method, copied_instead, left_out)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``greenbench data split``."""
    parser.add_argument(
        "--lists",
        required=True,
        metavar="DIR",
        help="folder with train.txt, val.txt, test.txt (one image file name per line; a path counts "
        "by its file name) and names.txt (the class names, one per line, in class-id order)",
    )
    parser.add_argument(
        "--images",
        required=True,
        metavar="SRC",
        help="folder holding the images (searched in every subfolder)",
    )
    parser.add_argument(
        "--labels",
        metavar="DIR",
        help="folder holding the YOLO label files <image stem>.txt (searched in every subfolder; "
        "default: SRC, and a 'labels' folder beside SRC if there is one)",
    )
    parser.add_argument(
        "--out",
        required=True,
        metavar="DST",
        help="a new or empty folder: images/{train,val,test}, labels/{train,val,test}, data.yaml",
    )
    parser.add_argument(
        "--hardlink",
        action="store_true",
        help="hard-link the files instead of copying them (saves the space; a file on another file "
        "system is copied, and the summary says how many); default: copy",
    )
    parser.add_argument(
        "--allow-missing",
        action="store_true",
        help="write the split without the images (or labels) that are not found, and say how many; "
        "it is then not the lists' exact split",
    )


def run(args: argparse.Namespace) -> int:
    """Write the lists' split under ``--out``; print its data.yaml, the counts and how files got there."""
    lists = read_lists(Path(args.lists))
    sources = SplitSources(Path(args.images), Path(args.labels) if args.labels else None)
    result = write_split(
        lists, sources, Path(args.out), hardlink=args.hardlink, allow_missing=args.allow_missing
    )
    counts = ", ".join(f"{n} {split}" for split, n in result.images.items())
    how = result.method
    if result.copied_instead:
        how += f" ({result.copied_instead} files copied instead: another file system)"
    print(f"wrote {result.data_yaml}: {counts} images with their labels, {how}")
    if result.left_out:
        print(
            f"left out (--allow-missing): {len(result.left_out)} image(s) of the lists: "
            f"{_first(result.left_out)}"
        )
    return 0
