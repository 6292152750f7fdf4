"""Check a user's YOLO ``data.yaml`` before anything runs, fingerprint it, stage a safe copy.

ultralytics downloads a dataset whose folders are missing when the data.yaml has a
``download:`` key, fetches any split or path that is a URL, unpickles the label ``*.cache`` it
finds next to the labels, writes new caches (and restored JPEGs) there, drops bad samples with a
log line only, and fails only after training when the split it evaluates on is absent. All of
that is decided here up front, in the user's terms (their data.yaml, their keys, their files):

- the data.yaml is a mapping with ``train``/``val`` (``test`` optional), ``names`` (a list or an
  ``id: name`` mapping of strings) and an ``nc`` that agrees; no value in it is a URL
  (``download:`` is ignored, never acted on);
- every split folder or ``.txt`` image list exists and is walked the way ultralytics reads it
  (hidden files skipped, folder links followed), refusing the filesystem root and system folders,
  dangling links, link cycles and trees too large or too deep to be image folders;
- every image and label is checked as ultralytics would (``check_sample``); bad ones are counted
  by reason in ``DatasetRef.ignored`` (with examples), and a split left with no usable image is
  an error.

Accuracy is measured on ``test`` when the data.yaml has it and on ``val`` otherwise. The
fingerprint (data.yaml bytes, every image's name and size, every label's bytes) enters the cache
and resume keys. ``staged_copy`` then builds what ultralytics reads under the work folder: real
folders with one link per usable image and label, so what it writes never lands in the user's
folder and what it would unpickle there (``*.cache``) is never linked.
"""

from __future__ import annotations

import errno
import hashlib
import math
import os
import stat
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from greenbench.errors import GreenbenchError
from greenbench.offline import is_url
from greenbench.tasks.base import DatasetRef
from greenbench.tasks.detect.data_yaml import (
    channels,
    class_names,
    dataset_error,
    label_path,
    load_data_yaml,
    read_splits,
    stat_of,
    suffix_of,
)

#: image suffixes ultralytics reads (``ultralytics.data.utils.IMG_FORMATS``), lower case
IMAGE_SUFFIXES = frozenset(
    {
        "avif",
        "bmp",
        "dng",
        "heic",
        "heif",
        "jp2",
        "jpeg",
        "jpeg2000",
        "jpg",
        "mpo",
        "png",
        "tif",
        "tiff",
        "webp",
    }
)
#: the PIL decoders an image may be opened with: never EPS (Ghostscript) or other exotic plugins
_PIL_FORMATS = ("JPEG", "PNG", "BMP", "TIFF", "WEBP", "JPEG2000", "AVIF", "HEIF")
MAX_LIST_BYTES = 500_000_000  # a .txt image list (COCO's train2017.txt is 4 MB)
MAX_FILES = 5_000_000  # files walked in one dataset (Objects365 has 1.7 M images)
MAX_OTHER_FILES = 10_000  # non-image files in a split folder: more, and 10x its images, is no image folder
MAX_DEPTH = 32  # folder levels below a split folder
MAX_IMAGE_BYTES = 1 << 30
MAX_LABEL_BYTES = 10_000_000
MIN_IMAGE_PX = 10  # ultralytics drops smaller images
COORD_TOLERANCE = 0.01  # ultralytics keeps coordinates up to 1.01 (and down to -0.01 for centres)
EXAMPLES = 5  # example paths kept per reason
STAGING_VERSION = 2  # part of the staged folder's name: a new layout never reuses an old copy
MARKER = ".greenbench-complete"

#: why a sample is ignored (the keys of ``DatasetRef.ignored``)
REASONS = {
    "missing_image": "a listed image does not exist",
    "not_an_image": "a listed path without an image suffix",
    "not_a_regular_file": "not a regular file (a folder, FIFO or device)",
    "empty_image": "empty image (0 bytes)",
    "image_too_large": "image file or pixel count too large",
    "unreadable_image": "not an image PIL can decode",
    "image_too_small": f"image smaller than {MIN_IMAGE_PX} px",
    "label_not_text": "label file is not UTF-8 text",
    "label_too_large": "label file too large",
    "label_malformed": "a label line is not 'cls cx cy w h' (or a polygon) in numbers",
    "label_class_out_of_range": "a class id is not an integer in 0..nc-1",
    "label_out_of_bounds": "a coordinate is outside [0, 1]",
}


@dataclass(frozen=True)
class Sample:
    """A usable image: its path as ultralytics names it, its label file (None: a background
    image), and its path in the staged copy, relative to the split's folder there."""

    image: str
    label: str | None
    rel: str


@dataclass(frozen=True)
class Contents:
    """What staging needs: per split, the usable samples of each entry; the class names; channels."""

    splits: dict[str, tuple[tuple[Sample, ...], ...]]
    names: dict[int, str]
    channels: int | None = None


class _Scanner:
    """One pass over a dataset: images found, samples checked, counts, fingerprint."""

    def __init__(self, path: Path, nc: int) -> None:
        self.path = path
        self.nc = nc
        self.files = 0
        self.digest = hashlib.sha256()
        self.ignored: dict[str, int] = {}
        self.examples: dict[str, list[str]] = {}

    def _count_file(self) -> None:
        self.files += 1
        if self.files > MAX_FILES:
            raise dataset_error(
                self.path, f"more than {MAX_FILES:,} files under its splits; point them at image folders."
            )

    def _broken_link(self, file: str, key: str) -> GreenbenchError:
        try:
            os.stat(file)
            what = "a symlink that cannot be followed"
        except OSError as e:
            loop = e.errno == errno.ELOOP
            what = "a symlink loop" if loop else "a dangling symlink (its target does not exist)"
        return dataset_error(self.path, f"'{key}': {file} is {what}; remove it or fix its target.")

    def ignore(self, reason: str, file: str) -> None:
        """Count ``file`` as ignored for ``reason``; keep it as an example if there are few."""
        self.ignored[reason] = self.ignored.get(reason, 0) + 1
        shown = self.examples.setdefault(reason, [])
        if len(shown) < EXAMPLES:
            shown.append(file)

    def walk(self, top: Path, key: str) -> Iterator[tuple[str, str]]:
        """(path, path relative to ``top``) of each image below ``top``, like ultralytics' glob
        ``top/**/*.*``: hidden names skipped, folder links followed (each real folder once)."""
        first = os.stat(top)
        seen = {(first.st_dev, first.st_ino)}
        stack: list[tuple[str, str, int, frozenset[tuple[int, int]]]] = [(str(top), "", 0, frozenset(seen))]
        others = images = 0
        while stack:
            here, rel, depth, ancestors = stack.pop()
            try:
                with os.scandir(here) as it:
                    entries = sorted((e.name, e.path) for e in it)
            except OSError as e:
                raise dataset_error(
                    self.path, f"'{key}': cannot read the folder {here}: {e.strerror}."
                ) from None
            subdirs = []
            for name, full in entries:
                if name.startswith("."):  # ultralytics' glob skips hidden files and folders
                    continue
                st = stat_of(full)
                if st is None:
                    raise self._broken_link(full, key)
                self._count_file()
                if stat.S_ISDIR(st.st_mode):
                    ident = (st.st_dev, st.st_ino)
                    if ident in ancestors:
                        raise dataset_error(
                            self.path,
                            f"'{key}': {full} links back to a folder above it (a symlink cycle); "
                            f"remove the link.",
                        )
                    if ident in seen:
                        raise dataset_error(
                            self.path,
                            f"'{key}': {full} reaches a folder already read through another path "
                            f"(a symlink); its images would count twice. Remove the link.",
                        )
                    if os.path.lexists(os.path.join(full, MARKER)):
                        raise dataset_error(
                            self.path,
                            f"'{key}': {full} is a copy greenbench staged in its work folder; point "
                            f"'{key}' at your images, not at a folder that holds greenbench's work folder.",
                        )
                    if depth >= MAX_DEPTH:
                        raise dataset_error(
                            self.path,
                            f"'{key}': {full} is nested more than {MAX_DEPTH} folders deep; flatten it.",
                        )
                    seen.add(ident)
                    subdirs.append((full, f"{rel}{name}/", depth + 1, ancestors | {ident}))
                elif suffix_of(name) in IMAGE_SUFFIXES:
                    images += 1
                    yield full, rel + name
                else:  # labels or annotations may sit beside the images: only a tree of mostly others
                    others += 1
                    if others > MAX_OTHER_FILES and others > 10 * images:
                        raise dataset_error(
                            self.path,
                            f"'{key}': {top} holds more than {MAX_OTHER_FILES:,} files that are not images "
                            f"(e.g. {full}); point '{key}' at a folder of images.",
                        )
            stack.extend(reversed(subdirs))

    def read_list(self, file: Path, key: str) -> Iterator[tuple[str, str]]:
        """(path, staged name) of each image a ``.txt`` list names: ``./x`` and other relative
        lines start at the list's folder (ultralytics starts plain relative lines at its working
        folder, which would be greenbench's work folder: never what the user meant)."""
        st = os.stat(file)
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_LIST_BYTES:
            raise dataset_error(self.path, f"'{key}': {file} is not a folder or a .txt image list.")
        raw = file.read_bytes()
        self.digest.update(raw)
        try:
            lines = raw.decode("utf-8-sig").splitlines()
        except UnicodeDecodeError:
            raise dataset_error(
                self.path, f"'{key}': {file} is not a UTF-8 text list of image paths."
            ) from None
        images = []
        for number, line in enumerate(lines, 1):
            entry = line.strip()
            if not entry:
                continue
            if is_url(entry):
                raise dataset_error(
                    self.path,
                    f"'{key}': line {number} of {file} is a URL ({entry}); greenbench never downloads "
                    f"data. Fetch it yourself and list local paths.",
                )
            if entry.startswith("./"):
                entry = entry[2:]
            full = entry if os.path.isabs(entry) else os.path.join(file.parent, entry)
            self._count_file()
            if suffix_of(full) not in IMAGE_SUFFIXES:
                self.ignore("not_an_image", full)
                continue
            images.append(full)
        width = max(6, len(str(len(images))))
        for i, full in enumerate(sorted(images)):  # ultralytics sorts the image paths too
            yield full, f"{i:0{width}d}_{os.path.basename(full)}"

    def sample(self, image: str, rel: str, key: str) -> Sample | None:
        """The sample of ``image`` if ultralytics would use it; else None (counted as ignored)."""
        st = stat_of(image)
        if st is None:
            if os.path.islink(image):
                raise self._broken_link(image, key)
            self.ignore("missing_image", image)
            return None
        self.digest.update(f"{rel}:{st.st_size}".encode())
        reason = _image_problem(image, st)
        label = label_path(image)
        lst = stat_of(label)
        if lst is None and os.path.islink(label):
            raise self._broken_link(label, key)
        if lst is None or not stat.S_ISREG(lst.st_mode):  # ultralytics: no label file, a background image
            found: str | None = None
        else:
            found = label
            if reason is None:
                reason = self._label_problem(label, lst)
        if reason is not None:
            self.ignore(reason, image)
            return None
        return Sample(image, found, rel)

    def _label_problem(self, label: str, st: os.stat_result) -> str | None:
        if st.st_size > MAX_LABEL_BYTES:
            return "label_too_large"
        try:
            raw = Path(label).read_bytes()
        except OSError:
            return "label_not_text"
        self.digest.update(raw)
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            return "label_not_text"
        return label_problem(text, self.nc)


def label_problem(text: str, nc: int) -> str | None:
    """Why ultralytics would drop the image whose label file holds ``text`` (a key of
    ``REASONS``), or None. Rows are ``cls cx cy w h`` or, all of them, polygons ``cls x1 y1 ...``."""
    rows = [line.split() for line in text.strip().splitlines() if line.strip()]
    polygons = any(len(r) > 6 for r in rows)
    for row in rows:
        if (len(row) != 5) if not polygons else (len(row) < 7 or len(row) % 2 == 0):
            return "label_malformed"
        try:
            values = [float(v) for v in row]
        except ValueError:
            return "label_malformed"
        if not all(math.isfinite(v) for v in values):
            return "label_malformed"
        cls, coords = values[0], values[1:]
        if cls != int(cls) or not 0 <= cls < nc:
            return "label_class_out_of_range"
        low = -COORD_TOLERANCE if polygons or min(coords[2:]) >= 0 else 0.0
        if max(coords) > 1 + COORD_TOLERANCE or min(coords) < low:
            return "label_out_of_bounds"
    return None


def _image_problem(image: str, st: os.stat_result) -> str | None:
    """Why ultralytics would drop the image file at ``image`` (a key of ``REASONS``), or None."""
    if not stat.S_ISREG(st.st_mode):
        return "not_a_regular_file"
    if st.st_size == 0:
        return "empty_image"
    if st.st_size > MAX_IMAGE_BYTES:
        return "image_too_large"
    from PIL import Image

    Image.init()
    formats = [f for f in _PIL_FORMATS if f in Image.OPEN]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(image, formats=formats) as im:
                im.verify()
                width, height = im.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return "image_too_large"
    except Exception:  # PIL raises many kinds on a bad file; all mean the same here
        return "unreadable_image"
    return "image_too_small" if min(width, height) < MIN_IMAGE_PX else None


def check_dataset(path: Path) -> DatasetRef:
    """Check ``path`` (a data.yaml) and every sample of its splits, and fingerprint it.

    The fingerprint covers the data.yaml's bytes, every image's name and size and every label
    file's bytes — not modification times, so a copy or a fresh clone keeps its results.
    """
    data = load_data_yaml(path)
    splits, eval_split = read_splits(path, data)
    names = class_names(path, data)
    scan = _Scanner(path, len(names))
    scan.digest.update(path.read_bytes())
    staged: dict[str, tuple[tuple[Sample, ...], ...]] = {}
    for split, entries in splits.items():
        scan.digest.update(split.encode())
        found = 0
        usable: list[tuple[Sample, ...]] = []
        for i, entry in enumerate(entries):
            key = split if len(entries) == 1 else f"{split}[{i}]"
            images = scan.walk(entry, key) if entry.is_dir() else scan.read_list(entry, key)
            samples = []
            for image, rel in sorted(images):
                found += 1
                sample = scan.sample(image, rel, key)
                if sample is not None:
                    samples.append(sample)
            usable.append(tuple(samples))
        if not any(usable):
            where = ", ".join(str(e) for e in entries)
            if not found:
                raise dataset_error(
                    path,
                    f"no images in the '{split}' split at {where} (looked for files ending in "
                    f"{', '.join(sorted(IMAGE_SUFFIXES))}); point '{split}:' at a folder of images or a "
                    f".txt list of image paths.",
                )
            raise dataset_error(
                path, f"none of the {found} images of the '{split}' split is usable: {_why(scan)}."
            )
        staged[split] = tuple(usable)
    examples = {reason: tuple(paths) for reason, paths in scan.examples.items()}
    contents = Contents(staged, names, channels(path, data))
    return DatasetRef(path, eval_split, scan.digest.hexdigest()[:16], dict(scan.ignored), examples, contents)


def _why(scan: _Scanner) -> str:
    """The ignored samples in a sentence: counts by reason, and one example of each."""
    return "; ".join(
        f"{n} {REASONS[reason]} (e.g. {scan.examples[reason][0]})"
        for reason, n in sorted(scan.ignored.items())
    )
