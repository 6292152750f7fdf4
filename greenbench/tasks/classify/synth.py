"""Datasets the classifier writes without a download: scikit-learn's bundled handwritten digits
(real data) and a synthetic generator for ``--smoke`` and ``dataset.synthetic``.

Both are written as ImageFolder trees (``train/``, ``val/``, ``test/`` of ``<class>/<image>.png``),
split 8:1:1 per class with a fixed seed, so the task reads them like any user's dataset.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np

from greenbench.errors import GreenbenchError
from greenbench.tasks.base import Synthetic

SPLITS = ("train", "val", "test")
DIGITS_SIDE = 32  # px: the 8×8 digits upscaled 4× (nearest), so torchvision models see structure
DIGITS_WHAT = "scikit-learn's 8×8 handwritten digits (1,797 images of 10 classes from 43 people)"


def _split(labels: np.ndarray, seed: int) -> dict[str, list[int]]:
    """Indices per split, 8:1:1 within each class (every class in every split where it can be)."""
    rng = np.random.default_rng(seed)
    out: dict[str, list[int]] = {s: [] for s in SPLITS}
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_val = n_test = max(1, len(idx) // 10) if len(idx) >= 3 else 0
        out["test"] += idx[:n_test].tolist()
        out["val"] += idx[n_test : n_test + n_val].tolist()
        out["train"] += idx[n_test + n_val :].tolist()
    return {s: sorted(v) for s, v in out.items()}


def _write(out: Path, images: np.ndarray, labels: np.ndarray, names: list[str], seed: int) -> Path:
    """An ImageFolder tree of uint8 images (N, H, W[, 3]) under ``out``, written atomically."""
    from PIL import Image

    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    for split, idx in _split(labels, seed).items():
        for name in names:
            (tmp / split / name).mkdir(parents=True, exist_ok=True)
        for i in idx:
            Image.fromarray(images[i]).save(tmp / split / names[labels[i]] / f"{i:05d}.png")
    try:
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except OSError as e:
        raise GreenbenchError(
            f"cannot write the dataset to {out}: {e.strerror}. Pass another --out."
        ) from None
    return out


def write_digits(out: Path) -> Path:
    """scikit-learn's digits as an ImageFolder under ``out`` (its ``dataset.yaml`` normalises to
    [−1, 1], as the ResNet transfer study did); the folder a suite's ``dataset.path`` names."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise GreenbenchError("greenbench data digits needs scikit-learn: pip install scikit-learn") from None
    digits = load_digits()
    pixels = (digits.images * (255.0 / 16.0)).round().astype(np.uint8)  # 0..16 ink → 0..255
    scale = DIGITS_SIDE // pixels.shape[1]
    pixels = pixels.repeat(scale, axis=1).repeat(scale, axis=2)
    out = Path(out)
    _write(out, pixels, digits.target.astype(int), [str(d) for d in range(10)], seed=0)
    (out / "dataset.yaml").write_text(
        f"# {DIGITS_WHAT}, upscaled {scale}× to {DIGITS_SIDE} px; written by greenbench data digits\n"
        "normalize: minus1_1\npad: false\n",
        encoding="utf-8",
    )
    return out


def fingerprint(spec: Synthetic) -> str:
    """The key of the data ``write_synthetic`` makes from ``spec``."""
    return "cls-synth-" + hashlib.sha256(json.dumps(repr(spec)).encode()).hexdigest()[:12]


def write_synthetic(out: Path, spec: Synthetic) -> Path:
    """Class ``c``: noise around a colour and a stripe direction of its own (learnable in one
    epoch, so a smoke run's figures are not all chance)."""
    if spec.classes < 2:
        raise GreenbenchError(
            f"a synthetic classification dataset needs at least 2 classes, not {spec.classes}"
        )
    rng = np.random.default_rng(spec.seed)
    side = max(16, spec.imgsz)
    n = max(spec.images, spec.classes * 10)
    labels = np.arange(n) % spec.classes
    colours = rng.uniform(40, 215, size=(spec.classes, 3))
    angles = np.linspace(0, np.pi, spec.classes, endpoint=False)
    yy, xx = np.mgrid[0:side, 0:side] / side
    images = np.empty((n, side, side, 3), dtype=np.uint8)
    for i, c in enumerate(labels):
        stripes = np.sin(2 * np.pi * 4 * (xx * np.cos(angles[c]) + yy * np.sin(angles[c])))
        img = colours[c][None, None, :] + 30 * stripes[..., None] + rng.normal(0, 20, (side, side, 3))
        images[i] = np.clip(img, 0, 255).astype(np.uint8)
    names = list(spec.names) or [f"class{i}" for i in range(spec.classes)]
    return _write(Path(out), images, labels, names, spec.seed)


def cached(cache_root: Path, spec: Synthetic) -> Path:
    """``write_synthetic`` once under ``cache_root`` (reused after)."""
    out = cache_root / fingerprint(spec)
    if not (out / "test").is_dir():
        write_synthetic(out, spec)
    return out
