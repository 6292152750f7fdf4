"""Deterministic synthetic YOLO-format detection datasets: no network, no torch.

A dataset is a pure function of its ``SynthSpec`` and ``GENERATOR_VERSION``: the same spec
gives byte-identical label files and pixel-identical images on every machine, so a benchmark
that trains or validates on it is repeatable without downloading anything.

Each image is ``imgsz x imgsz`` RGB: a desaturated two-colour gradient with mild Gaussian
noise, and 1-4 flat, saturated shapes. The *shape* is the class (circle, rectangle, triangle,
...); with more classes than shapes, a class is a shape x hue band. Objects are saturated
(HSV S >= 0.65, V >= 0.6) and the background is not (S <= 0.2), so every object stands out and
a small detector learns the set in a few epochs.

Layout written under the output folder (ultralytics reads it through ``data.yaml``)::

    data.yaml                       path, train/val/test, nc, names (standard keys only)
    synth.json                      spec, generator version, per-split image and object counts
    images/{train,val,test}/NNNNN.png
    labels/{train,val,test}/NNNNN.txt   one "cls cx cy w h" line per object, normalised, 6 dp
"""

from __future__ import annotations

import colorsys
import hashlib
import json
import math
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from greenbench.errors import GreenbenchError
from greenbench.tasks.detect.data_yaml import SPLITS, write_data_yaml
from greenbench.tasks.detect.staging import install_complete

# Bump whenever the drawing, the split or the file layout changes: it is part of the cache key,
# so a stale cached dataset is never reused after the generator changes.
GENERATOR_VERSION = 1
SCHEMA_VERSION = 1  # of synth.json

SHAPES: tuple[str, ...] = (
    "circle",
    "rectangle",
    "triangle",
    "cross",
    "diamond",
    "star",
    "ring",
    "hexagon",
)
MAX_HUE_FAMILIES = 12  # 30-degree hue bands; narrower bands stop being told apart reliably
MAX_CLASSES = len(SHAPES) * MAX_HUE_FAMILIES
MIN_IMAGES = 10  # the smallest count whose 8:1:1 split leaves every split one image
MIN_IMGSZ, MAX_IMGSZ = 32, 1024  # px; match the suite schema's bounds

MIN_OBJECTS, MAX_OBJECTS = 1, 4  # per image
MIN_SIZE_FRAC, MAX_SIZE_FRAC = 0.12, 0.40  # object box side, as a fraction of imgsz
MIN_OBJECT_PX = 8  # floor on the box side below imgsz 67: a ring needs room for its hole
MAX_IOU = 0.3  # placement rejects a box whose IoU with an earlier box reaches this
# ... or that covers this fraction of the smaller box: IoU alone lets a small box sit wholly
# inside a large one, and the object drawn second would hide the other.
MAX_COVER = 0.5
PLACEMENT_TRIES = 30  # per object; an object that finds no free spot is left out
NOISE_SIGMA = 3.0  # grey levels (0-255), added to the whole image after drawing

MARKER = ".complete"  # written last in a cached dataset; a folder without it is never reused
IMAGE_SUFFIX = ".png"


class SynthSpecError(GreenbenchError, ValueError):
    """A ``SynthSpec`` field is out of range; the message names the field and the allowed range."""

    exit_code = 2


@dataclass(frozen=True)
class SynthSpec:
    """What to generate: ``classes`` shape classes, ``images`` images of ``imgsz`` px square.

    ``seed`` (a non-negative int) fixes every random draw. ``names``: the class names written to
    data.yaml (one per class; empty: the shape names, see ``class_names``), so that a smoke run of a
    suite trains on its own class names; the shapes drawn are the same. Invalid values raise
    ``SynthSpecError`` (a ``ValueError``) at construction.
    """

    classes: int = 3
    images: int = 60
    imgsz: int = 128
    seed: int = 0
    names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        limits = {
            "classes": (1, MAX_CLASSES),
            "images": (MIN_IMAGES, None),
            "imgsz": (MIN_IMGSZ, MAX_IMGSZ),
            "seed": (0, None),
        }
        for name, (low, high) in limits.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise SynthSpecError(f"synthetic dataset: {name} must be an integer, got {value!r}")
            if value < low or (high is not None and value > high):
                allowed = f"{low}..{high}" if high is not None else f">= {low}"
                why = {
                    "images": " (an 8:1:1 train/val/test split needs one image in each)",
                    "classes": f" ({len(SHAPES)} shapes x {MAX_HUE_FAMILIES} hue bands)",
                }.get(name, "")
                raise SynthSpecError(f"synthetic dataset: {name} must be {allowed}{why}, got {value}")
        if self.names and (len(self.names) != self.classes or len(set(self.names)) != len(self.names)):
            raise SynthSpecError(
                f"synthetic dataset: names must be {self.classes} distinct class names (one per class), "
                f"got {len(self.names)} ({len(set(self.names))} distinct)"
            )
        if any(not isinstance(n, str) or not n.strip() for n in self.names):
            raise SynthSpecError("synthetic dataset: every class name must be a non-empty string")

    def as_dict(self) -> dict[str, object]:
        """The spec's fields; ``names`` only when given (so keys and synth.json of specs written
        before names existed stay the same)."""
        d = asdict(self)
        if not self.names:
            del d["names"]
        return d

    def class_names(self) -> dict[int, str]:
        """Class id -> name: ``names`` if given, else the shape names (``class_names``)."""
        return dict(enumerate(self.names)) if self.names else class_names(self.classes)

    def key(self) -> str:
        """A 12-hex-digit hash of the spec and ``GENERATOR_VERSION``, stable across runs."""
        ident = {**self.as_dict(), "generator_version": GENERATOR_VERSION}
        blob = json.dumps(ident, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


@dataclass(frozen=True)
class Box:
    """One labelled object: class id and tight pixel box ``[left, right) x [top, bottom)``."""

    cls: int
    left: int
    top: int
    right: int
    bottom: int

    def yolo_line(self, imgsz: int) -> str:
        """``cls cx cy w h``, normalised to [0, 1] by ``imgsz`` (px), six decimals."""
        cx = (self.left + self.right) / 2 / imgsz
        cy = (self.top + self.bottom) / 2 / imgsz
        w = (self.right - self.left) / imgsz
        h = (self.bottom - self.top) / imgsz
        return f"{self.cls} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}"


def class_names(classes: int) -> dict[int, str]:
    """Class id -> name: the shape, plus ``_hueNNN`` (band centre, degrees) past 8 classes."""
    families = math.ceil(classes / len(SHAPES))
    names = {}
    for cls in range(classes):
        shape = SHAPES[cls % len(SHAPES)]
        if families == 1:
            names[cls] = shape
        else:
            centre = round((cls // len(SHAPES) + 0.5) * 360 / families) % 360
            names[cls] = f"{shape}_hue{centre:03d}"
    return names


def split_counts(images: int) -> tuple[int, int, int]:
    """Train, val and test image counts for an 8:1:1 split (val and test rounded half up)."""
    if images < MIN_IMAGES:
        raise SynthSpecError(f"synthetic dataset: images must be >= {MIN_IMAGES}, got {images}")
    held_out = (images + 5) // 10
    return images - 2 * held_out, held_out, held_out


def _split_of(index: int, counts: tuple[int, int, int]) -> str:
    # Contiguous by index: every image is drawn i.i.d., so no shuffle is needed.
    train, val, _ = counts
    return SPLITS[0] if index < train else SPLITS[1] if index < train + val else SPLITS[2]


# --- drawing ---------------------------------------------------------------------------------


def _hsv_rgb(h: float, s: float, v: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, s, v)
    return round(r * 255), round(g * 255), round(b * 255)


def _background(rng: np.random.Generator, imgsz: int) -> np.ndarray:
    """A smooth two-colour linear gradient in a random direction, desaturated, float32 HxWx3."""
    c0, c1 = (
        np.array(_hsv_rgb(rng.random(), rng.uniform(0.0, 0.2), rng.uniform(0.2, 0.9)), np.float32)
        for _ in range(2)
    )
    angle = rng.uniform(0.0, 2 * math.pi)
    coords = np.arange(imgsz, dtype=np.float32)
    ramp = coords[None, :] * math.cos(angle) + coords[:, None] * math.sin(angle)
    t = (ramp - ramp.min()) / max(float(ramp.max() - ramp.min()), 1e-6)
    return c0 * (1 - t[..., None]) + c1 * t[..., None]


def _separated(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    """Whether boxes ``a`` and ``b`` (px) overlap less than ``MAX_IOU`` and ``MAX_COVER``."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return True
    inter = iw * ih
    area_a, area_b = (a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1])
    return inter / (area_a + area_b - inter) < MAX_IOU and inter / min(area_a, area_b) < MAX_COVER


def _unit_polygon(shape: str) -> list[tuple[float, float]]:
    """Vertices of ``shape`` around the origin, roughly within [-1, 1]^2 (y points down)."""
    if shape == "triangle":
        return [(math.cos(a), math.sin(a)) for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)]
    if shape == "diamond":
        return [(0.0, -1.0), (1.0, 0.0), (0.0, 1.0), (-1.0, 0.0)]
    if shape == "cross":
        t = 0.33  # half the arm thickness
        return [(-t, -1), (t, -1), (t, -t), (1, -t), (1, t), (t, t),
                (t, 1), (-t, 1), (-t, t), (-1, t), (-1, -t), (-t, -t)]  # fmt: skip
    if shape == "star":
        return [
            ((1.0 if k % 2 == 0 else 0.45) * math.cos(-math.pi / 2 + k * math.pi / 5),
             (1.0 if k % 2 == 0 else 0.45) * math.sin(-math.pi / 2 + k * math.pi / 5))
            for k in range(10)
        ]  # fmt: skip
    if shape == "hexagon":
        return [(math.cos(k * math.pi / 3), math.sin(k * math.pi / 3)) for k in range(6)]
    raise KeyError(shape)


# Shapes that would turn into another class if rotated (a 45-degree square is a diamond) stay
# axis-aligned; the rest get a small tilt so the set is not all upright.
_MAX_TILT_DEG = {"triangle": 15.0, "cross": 15.0, "star": 36.0, "hexagon": 30.0}
_ASPECT = {"rectangle": (0.6, 1.6)}  # width/height range; others use _DEFAULT_ASPECT
_DEFAULT_ASPECT = (0.8, 1.25)


def _draw_shape(
    draw: ImageDraw.ImageDraw,
    shape: str,
    box: tuple[int, int, int, int],
    rng: np.random.Generator,
) -> None:
    """Fill ``shape`` with 255 on a mask, fitted inside ``box`` (px, left/top/right/bottom)."""
    x0, y0, x1, y1 = box
    if shape in ("circle", "ring"):
        draw.ellipse((x0, y0, x1 - 1, y1 - 1), fill=255)
        if shape == "ring":
            inset = max(2.0, 0.22 * min(x1 - x0, y1 - y0) / 2)
            draw.ellipse((x0 + inset, y0 + inset, x1 - 1 - inset, y1 - 1 - inset), fill=0)
        return
    if shape == "rectangle":
        draw.rectangle((x0, y0, x1 - 1, y1 - 1), fill=255)
        return
    tilt = math.radians(rng.uniform(-1.0, 1.0) * _MAX_TILT_DEG.get(shape, 0.0))
    cos_t, sin_t = math.cos(tilt), math.sin(tilt)
    pts = [(x * cos_t - y * sin_t, x * sin_t + y * cos_t) for x, y in _unit_polygon(shape)]
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    # One scale for both axes keeps the shape undistorted by the fit.
    scale = min((x1 - x0 - 1) / (max(xs) - min(xs)), (y1 - y0 - 1) / (max(ys) - min(ys)))
    cx, cy = (x0 + x1 - 1) / 2, (y0 + y1 - 1) / 2
    mx, my = (max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2
    draw.polygon([(cx + (x - mx) * scale, cy + (y - my) * scale) for x, y in pts], fill=255)


def _object_colour(rng: np.random.Generator, cls: int, classes: int) -> tuple[int, int, int]:
    """A saturated colour; with more classes than shapes, its hue lies in the class's band."""
    families = math.ceil(classes / len(SHAPES))
    if families == 1:
        hue = rng.random()
    else:
        # 70 % of each band is used, so neighbouring families keep a gap between their hues.
        hue = (cls // len(SHAPES) + 0.5 + rng.uniform(-0.35, 0.35)) / families
    return _hsv_rgb(hue, rng.uniform(0.65, 1.0), rng.uniform(0.6, 1.0))


_PxBox = tuple[int, int, int, int]  # left, top, right, bottom (px, right/bottom exclusive)


def _place_boxes(rng: np.random.Generator, shapes: list[str], imgsz: int) -> list[_PxBox | None]:
    """Rejection-sample one box per shape, ``_separated`` from every box placed before it.

    ``None`` marks a shape that found no free spot in ``PLACEMENT_TRIES``; it is left out.
    """
    lo = max(MIN_SIZE_FRAC * imgsz, MIN_OBJECT_PX)
    hi = max(MAX_SIZE_FRAC * imgsz, lo)
    placed: list[_PxBox | None] = []
    for shape in shapes:
        a_lo, a_hi = _ASPECT.get(shape, _DEFAULT_ASPECT)
        for _ in range(PLACEMENT_TRIES):
            side, aspect = rng.uniform(lo, hi), rng.uniform(a_lo, a_hi)
            w = float(np.clip(side * math.sqrt(aspect), lo, hi))
            h = float(np.clip(side / math.sqrt(aspect), lo, hi))
            x0, y0 = rng.uniform(0, imgsz - w), rng.uniform(0, imgsz - h)
            cand = (round(x0), round(y0), round(x0 + w), round(y0 + h))
            if all(other is None or _separated(cand, other) for other in placed):
                placed.append(cand)
                break
        else:
            placed.append(None)
    return placed


def render_image(spec: SynthSpec, index: int) -> tuple[np.ndarray, list[Box]]:
    """Image ``index`` of ``spec`` as uint8 HxWx3 RGB, and its boxes (px), drawn in memory."""
    rng = np.random.default_rng(np.random.SeedSequence([spec.seed, index]))
    size = spec.imgsz
    canvas = Image.fromarray(_background(rng, size).round().astype(np.uint8))
    count = int(rng.integers(MIN_OBJECTS, MAX_OBJECTS + 1))
    classes = [int(c) for c in rng.integers(0, spec.classes, size=count)]
    shapes = [SHAPES[c % len(SHAPES)] for c in classes]
    boxes: list[Box] = []
    for cls, shape, box in zip(classes, shapes, _place_boxes(rng, shapes, size), strict=True):
        if box is None:
            continue
        left, top, right, bottom = box
        mask = Image.new("L", (right - left, bottom - top), 0)
        _draw_shape(ImageDraw.Draw(mask), shape, (0, 0, right - left, bottom - top), rng)
        tight = mask.getbbox()  # exact extent of the drawn pixels; the box lies in the image
        if tight is None:
            continue
        canvas.paste(_object_colour(rng, cls, spec.classes), box, mask)
        boxes.append(Box(cls, left + tight[0], top + tight[1], left + tight[2], top + tight[3]))
    pixels = np.asarray(canvas, dtype=np.float32)
    pixels += NOISE_SIGMA * rng.standard_normal(pixels.shape, dtype=np.float32)
    return np.clip(pixels.round(), 0, 255).astype(np.uint8), boxes


# --- writing ---------------------------------------------------------------------------------


def _write_data_yaml(out: Path, spec: SynthSpec, root: Path) -> Path:
    """Write ``out/data.yaml`` whose ``path`` is ``root`` (absolute); return the file."""
    comment = f"greenbench synthetic detection dataset, spec key {spec.key()}; details in synth.json"
    return write_data_yaml(out, root, list(spec.class_names().values()), [comment])


def _write_error(path: Path, e: OSError) -> GreenbenchError:
    """One paragraph for an ``OSError`` met while writing a dataset under ``path``."""
    culprit = f" at {e.filename}" if e.filename is not None and str(e.filename) != str(path) else ""
    return GreenbenchError(
        f"synthetic dataset: cannot write under {path}: {e.strerror or e}{culprit}. Choose a folder "
        "you can write whose parents are all folders, not files."
    )


def _written_by_us(out: Path) -> bool:
    """Whether ``out`` holds a synth.json that greenbench wrote (a real file, not a link, with our
    keys): only then may ``_prepare_out`` delete its images and labels."""
    meta_file = out / "synth.json"
    if meta_file.is_symlink() or not meta_file.is_file() or meta_file.stat().st_size > 1_000_000:
        return False
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and {"generator_version", "key", "spec"} <= meta.keys()


def _prepare_out(out: Path) -> None:
    """Make ``out`` ready: create it, or clear a previous synthetic dataset; refuse other data."""
    if out.exists() and not out.is_dir():
        raise GreenbenchError(f"synthetic dataset: {out} is a file; choose a folder for --out")
    if out.is_dir() and any(out.iterdir()):
        if not _written_by_us(out):
            raise GreenbenchError(
                f"synthetic dataset: {out} is not empty and holds no synth.json, so it is not a "
                "dataset greenbench wrote; choose an empty or new folder for --out"
            )
        # A previous generation may have had more images: leftovers would join the new set.
        for sub in ("images", "labels"):
            shutil.rmtree(out / sub, ignore_errors=True)
        for name in ("data.yaml", "synth.json", MARKER):
            (out / name).unlink(missing_ok=True)
    for kind in ("images", "labels"):
        for split in SPLITS:
            (out / kind / split).mkdir(parents=True, exist_ok=True)


def synth_detection(out: Path, spec: SynthSpec) -> Path:
    """Write the dataset for ``spec`` into ``out`` and return the path of its ``data.yaml``.

    ``out`` must be missing, empty or a dataset this function wrote before (which is replaced).
    Raises ``GreenbenchError`` naming the path when it cannot be written (e.g. a parent is a file).
    """
    out = Path(out)
    counts = split_counts(spec.images)
    try:
        return _write_dataset(out, spec, counts)
    except OSError as e:
        raise _write_error(out, e) from None


def _write_dataset(out: Path, spec: SynthSpec, counts: tuple[int, int, int]) -> Path:
    """``synth_detection`` itself; ``OSError`` escapes for the caller to reword."""
    _prepare_out(out)
    width = max(5, len(str(spec.images - 1)))
    objects = dict.fromkeys(SPLITS, 0)
    for index in range(spec.images):
        split = _split_of(index, counts)
        pixels, boxes = render_image(spec, index)
        stem = f"{index:0{width}d}"
        # compress_level 1: a few % larger files, several times faster to write than the default.
        Image.fromarray(pixels).save(
            out / "images" / split / f"{stem}{IMAGE_SUFFIX}", format="PNG", compress_level=1
        )
        label = "".join(box.yolo_line(spec.imgsz) + "\n" for box in boxes)
        (out / "labels" / split / f"{stem}.txt").write_bytes(label.encode("ascii"))
        objects[split] += len(boxes)
    meta = {
        "schema_version": SCHEMA_VERSION,
        "generator_version": GENERATOR_VERSION,
        "key": spec.key(),
        "spec": spec.as_dict(),
        "names": {str(k): v for k, v in spec.class_names().items()},
        "image_format": IMAGE_SUFFIX.lstrip("."),
        "imgsz_px": spec.imgsz,
        "splits": {
            split: {"images": n, "objects": objects[split]} for split, n in zip(SPLITS, counts, strict=True)
        },
    }
    (out / "synth.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return _write_data_yaml(out, spec, root=out)


def cached_synth(cache_root: Path, spec: SynthSpec) -> Path:
    """``data.yaml`` of ``spec``'s dataset under ``cache_root/synth-<key>``, generated at most once.

    Generation happens in a temporary sibling folder that is renamed into place only once it is
    complete (``MARKER`` written), so a reader never sees half a dataset and two processes
    racing for the same spec both end up with one complete copy.
    """
    cache_root = Path(cache_root)
    final = cache_root / f"synth-{spec.key()}"
    if (final / MARKER).is_file():
        return final / "data.yaml"
    try:
        cache_root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=cache_root))
    except OSError as e:
        raise _write_error(cache_root, e) from None
    try:
        synth_detection(tmp, spec)  # turns its own OSErrors into a GreenbenchError
        try:
            _write_data_yaml(tmp, spec, root=final)
            (tmp / MARKER).write_text(spec.key() + "\n", encoding="utf-8")
            install_complete(tmp, final, MARKER)
        except OSError as e:
            raise _write_error(cache_root, e) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final / "data.yaml"
