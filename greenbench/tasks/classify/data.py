"""ImageFolder datasets for classification: check, fingerprint, stage, read and preprocess.

A dataset is a folder with ``train/``, ``val/`` and ``test/``, each of ``<class>/<image>``
(torchvision's ImageFolder layout; class indices follow the sorted class folders of
``train/``). An optional ``dataset.yaml`` in that folder (or named by ``dataset.path``) sets::

    normalize: imagenet      # or minus1_1 (x / 127.5 − 1, as the ResNet transfer study), or none
    pad: true                # pad to a square (black) before resizing, keeping the aspect ratio
    boxes: boxes.csv         # per-image crop: path,x1,y1,x2,y2 (pixels; path relative to the folder)

What workers read is a staged JSON file (``stage``): the folder, the settings and every image
with its class, so that a worker never walks the folder again and the order is fixed.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from greenbench.errors import GreenbenchError
from greenbench.tasks.base import DatasetRef

SPLITS = ("train", "val", "test")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
SETTINGS_FILE = "dataset.yaml"
#: mean and std per channel of each normalisation, on [0, 1] pixels
NORMALIZE: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "minus1_1": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "none": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
}
FORMAT = (
    "an ImageFolder dataset: a folder with train/, val/ and test/ of <class>/<image> (optionally "
    "a dataset.yaml in it: normalize, pad, boxes)"
)


@dataclass(frozen=True)
class Contents:
    """What ``check`` found: the settings and, per split, (path relative to the root, class)."""

    root: Path
    names: dict[int, str]
    normalize: str
    pad: bool
    boxes: dict[str, tuple[float, float, float, float]] = field(default_factory=dict)
    samples: dict[str, list[tuple[str, int]]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """As the staged JSON file keeps it."""
        return {
            "root": str(self.root),
            "names": [self.names[i] for i in range(len(self.names))],
            "normalize": self.normalize,
            "pad": self.pad,
            "boxes": {k: list(v) for k, v in self.boxes.items()},
            "samples": {s: [list(x) for x in v] for s, v in self.samples.items()},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Contents:
        """Back from ``to_dict``."""
        return cls(
            root=Path(d["root"]),
            names=dict(enumerate(d["names"])),
            normalize=d["normalize"],
            pad=bool(d["pad"]),
            boxes={k: (v[0], v[1], v[2], v[3]) for k, v in d["boxes"].items()},
            samples={s: [(p, int(c)) for p, c in v] for s, v in d["samples"].items()},
        )


def _settings(root: Path, file: Path | None) -> dict[str, Any]:
    import yaml

    path = file if file is not None else root / SETTINGS_FILE
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise GreenbenchError(
            f"{path}: cannot read the dataset settings ({type(e).__name__}: {e})."
        ) from None
    if not isinstance(data, dict):
        raise GreenbenchError(f"{path}: expected a mapping of settings (normalize, pad, boxes).")
    unknown = sorted(set(data) - {"normalize", "pad", "boxes", "path"})
    if unknown:
        raise GreenbenchError(
            f"{path}: unknown setting(s) {', '.join(map(repr, unknown))}; expected normalize, pad, boxes."
        )
    if data.get("normalize", "imagenet") not in NORMALIZE:
        raise GreenbenchError(
            f"{path}: normalize {data['normalize']!r} is not one of {', '.join(NORMALIZE)}."
        )
    if not isinstance(data.get("pad", True), bool):
        raise GreenbenchError(f"{path}: pad must be true or false, got {data['pad']!r}.")
    return data


def _boxes(path: Path) -> dict[str, tuple[float, float, float, float]]:
    """``path,x1,y1,x2,y2`` rows (a header row is allowed)."""
    found: dict[str, tuple[float, float, float, float]] = {}
    try:
        with path.open(newline="", encoding="utf-8") as f:
            for n, row in enumerate(csv.reader(f), start=1):
                if not row or (n == 1 and row[0].strip().lower() in ("path", "file", "image")):
                    continue
                try:
                    x1, y1, x2, y2 = (float(v) for v in row[1:5])
                except ValueError:
                    raise GreenbenchError(
                        f"{path}, line {n}: expected path,x1,y1,x2,y2 in pixels, got {','.join(row)[:120]!r}."
                    ) from None
                if not (x2 > x1 and y2 > y1):
                    raise GreenbenchError(f"{path}, line {n}: an empty box ({x1}, {y1}, {x2}, {y2}).")
                found[row[0].strip().replace("\\", "/")] = (x1, y1, x2, y2)
    except OSError as e:
        raise GreenbenchError(f"{path}: cannot read the boxes file ({e.strerror}).") from None
    return found


def check(path: Path) -> tuple[DatasetRef, Contents]:
    """The dataset at ``path`` (its folder, or its ``dataset.yaml``) and every image in it."""
    settings_file = path if path.is_file() else None
    root = path.parent if settings_file is not None else path
    settings = _settings(root, settings_file)
    if "path" in settings:
        root = (root / str(settings["path"])).resolve()
    missing = [s for s in SPLITS if not (root / s).is_dir()]
    if missing:
        raise GreenbenchError(
            f"{root}: no {', '.join(f'{s}/' for s in missing)} folder; expected {FORMAT}. "
            "'greenbench data digits --out DIR' writes a real one offline."
        )
    classes = sorted(d.name for d in (root / "train").iterdir() if d.is_dir() and not d.name.startswith("."))
    if len(classes) < 2:
        raise GreenbenchError(
            f"{root / 'train'}: expected a folder per class (at least 2), found {len(classes)}."
        )
    index = {c: i for i, c in enumerate(classes)}
    digest = hashlib.sha256(json.dumps(classes).encode())
    samples: dict[str, list[tuple[str, int]]] = {}
    for split in SPLITS:
        found: list[tuple[str, int]] = []
        for folder in sorted(
            p for p in (root / split).iterdir() if p.is_dir() and not p.name.startswith(".")
        ):
            if folder.name not in index:
                raise GreenbenchError(
                    f"{folder}: class {folder.name!r} is not among train/'s classes; every split "
                    "must use the class folders of train/."
                )
            for image in sorted(folder.iterdir()):
                if image.suffix.lower() in IMAGE_SUFFIXES and image.is_file():
                    rel = image.relative_to(root).as_posix()
                    found.append((rel, index[folder.name]))
                    digest.update(rel.encode())
                    digest.update(hashlib.sha256(image.read_bytes()).digest())
        if not found:
            raise GreenbenchError(
                f"{root / split}: no images ({', '.join(IMAGE_SUFFIXES)}) in its class folders."
            )
        samples[split] = found
    boxes = _boxes(root / str(settings["boxes"])) if settings.get("boxes") else {}
    unknown = sorted(set(boxes) - {rel for v in samples.values() for rel, _ in v})
    if unknown:
        raise GreenbenchError(
            f"{root / str(settings['boxes'])}: {len(unknown)} box(es) name no image of the dataset, "
            f"e.g. {unknown[0]!r}; paths are relative to {root}."
        )
    normalize = str(settings.get("normalize", "imagenet"))
    pad = bool(settings.get("pad", True))
    digest.update(json.dumps([normalize, pad, sorted(boxes.items())]).encode())
    contents = Contents(root, dict(enumerate(classes)), normalize, pad, boxes, samples)
    return DatasetRef(path, "test", "cls-" + digest.hexdigest()[:16], contents=contents), contents


def stage(ref: DatasetRef, workdir: Path) -> Path:
    """The JSON file workers read: the checked dataset's settings and samples, under ``workdir``."""
    contents = ref.contents if isinstance(ref.contents, Contents) else check(ref.data_yaml)[1]
    out = workdir / "datasets" / f"{ref.fingerprint}.json"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(contents.to_dict()), encoding="utf-8")
        tmp.replace(out)
    return out


def read(staged: Path) -> Contents:
    """A staged dataset (``stage``), or a dataset folder given directly."""
    if staged.suffix == ".json" and staged.is_file():
        return Contents.from_dict(json.loads(staged.read_text(encoding="utf-8")))
    return check(staged)[1]


def preprocess_note(contents: Contents) -> str:
    """The preprocessing in words, for records."""
    crop = "crop to its box, " if contents.boxes else ""
    pad = "pad to a square, " if contents.pad else ""
    return f"{crop}{pad}resize to imgsz², normalise {contents.normalize}"


def load_image(contents: Contents, rel: str, imgsz: int) -> Any:
    """Image ``rel`` as a uint8 tensor (3, imgsz, imgsz): cropped to its box, padded to a square
    (if set) and resized, not yet normalised."""
    import torch
    from PIL import Image
    from torchvision.transforms.functional import pil_to_tensor

    try:
        with Image.open(contents.root / rel) as im:
            image = im.convert("RGB")
    except (OSError, ValueError) as e:
        raise GreenbenchError(f"{contents.root / rel}: cannot read the image ({e}).") from None
    box = contents.boxes.get(rel)
    if box is not None:
        image = image.crop(box)
    if contents.pad and image.width != image.height:
        side = max(image.width, image.height)
        square = Image.new("RGB", (side, side))
        square.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
        image = square
    image = image.resize((imgsz, imgsz), Image.Resampling.BILINEAR)
    return torch.as_tensor(pil_to_tensor(image))


def normalize(contents: Contents, batch: Any) -> Any:
    """uint8 images (N, 3, H, W) as the model reads them: [0, 1], then the dataset's normalisation."""
    import torch

    mean, std = NORMALIZE[contents.normalize]
    x = batch.float() / 255.0
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


class Images:
    """One split's images, decoded and resized once per process and size (evaluation, training
    and calibration all read the same tensors)."""

    _cache: ClassVar[dict[tuple[str, str, int], Any]] = {}

    def __init__(self, contents: Contents, split: str, imgsz: int) -> None:
        import torch

        self.contents, self.split, self.imgsz = contents, split, imgsz
        samples = contents.samples[split]
        key = (str(contents.root), split, imgsz)
        if key not in Images._cache:
            if any(k[0] != key[0] or k[2] != imgsz for k in Images._cache):
                Images._cache.clear()  # one dataset and size at a time: memory stays bounded
            pixels = torch.stack([load_image(contents, rel, imgsz) for rel, _ in samples])
            Images._cache[key] = pixels
        self.pixels = Images._cache[key]
        self.labels = torch.tensor([c for _, c in samples], dtype=torch.long)

    def __len__(self) -> int:
        return len(self.labels)
