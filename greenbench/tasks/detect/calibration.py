"""Calibration images for static int8 quantization of a detector: train images, letterboxed as
ultralytics' evaluation feeds them (``DetectTask.calibration_inputs``)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from greenbench.errors import GreenbenchError

# image suffixes ultralytics reads (ultralytics.data.utils.IMG_FORMATS), without importing it here
_IMAGES = frozenset({".bmp", ".dng", ".jpeg", ".jpg", ".mpo", ".png", ".tif", ".tiff", ".webp", ".pfm"})
PREPROCESSING = "letterbox (ultralytics LetterBox, grey 114), RGB, /255"


def train_images(data_yaml: Path) -> tuple[list[Path], str]:
    """Every image of the train split (folders walked, .txt lists read), sorted, and a
    description of where they came from."""
    return split_images(data_yaml, "train")


def split_images(data_yaml: Path, split: str | None = None) -> tuple[list[Path], str]:
    """Every image of ``split`` (None: the one evaluated on), sorted, and where they came from."""
    from greenbench.tasks.detect.data_yaml import split_paths

    splits, evaluated = split_paths(data_yaml)
    split = split or evaluated
    found: list[Path] = []
    for entry in splits[split]:
        if entry.is_dir():
            found += [p for p in entry.rglob("*") if p.suffix.lower() in _IMAGES and p.is_file()]
        else:  # an image list, as ultralytics reads it: './x' is relative to the list's folder
            for line in entry.read_text().splitlines():
                line = line.strip()
                if line:
                    p = Path(line)
                    found.append(entry.parent / line[2:] if line.startswith("./") else p)
    return sorted(set(found)), ", ".join(str(e) for e in splits[split])


def pick(images: list[Path], count: int, seed: int) -> list[Path]:
    """``count`` of ``images`` (all if fewer), chosen with ``seed``: the same files every run."""
    import numpy as np

    if len(images) <= count:
        return list(images)
    chosen = np.random.default_rng(seed).choice(len(images), size=count, replace=False)
    return [images[i] for i in sorted(chosen)]


def letterboxed(path: Path, imgsz: int) -> Any:
    """``path`` as ultralytics' evaluation feeds it: long side resized to ``imgsz``, padded to a
    square with grey (114), RGB, float32 in [0, 1], shape (1, 3, imgsz, imgsz)."""
    import cv2
    import numpy as np
    from ultralytics.data.augment import LetterBox

    image = cv2.imread(str(path))
    if image is None:
        raise GreenbenchError(f"calibration image {path} cannot be read as an image")
    h, w = image.shape[:2]
    r = imgsz / max(h, w)
    if r != 1:  # as ultralytics' BaseDataset.load_image: ceil, capped at imgsz, bilinear
        size = (min(math.ceil(w * r), imgsz), min(math.ceil(h * r), imgsz))
        image = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    boxed: Any = LetterBox(new_shape=(imgsz, imgsz), auto=False, scaleup=False)(image=image)
    chw = boxed[:, :, ::-1].transpose(2, 0, 1)  # BGR HWC -> RGB CHW
    return (np.ascontiguousarray(chw, dtype=np.float32) / 255.0)[None]


def calibration_inputs(
    data_yaml: Path, imgsz: int, count: int, seed: int
) -> tuple[Iterator[Any], dict[str, Any]]:
    """``count`` train images chosen with ``seed`` (now), letterboxed to ``imgsz`` one at a time
    as the quantizer reads them, and how many and where they came from for the record."""
    found, where = train_images(data_yaml)
    if not found:
        raise GreenbenchError(f"no images in the train split of {data_yaml} ({where}) to calibrate on")
    images = pick(found, count, seed)
    facts = {"images": len(images), "split": "train", "source": where, "preprocessing": PREPROCESSING}
    return (letterboxed(image, imgsz) for image in images), facts


#: ultralytics' predictor defaults, which ``scope: total`` applies after the model
NMS_CONF, NMS_IOU, NMS_MAX_DET = 0.25, 0.7, 300


def end_to_end(data_yaml: Path, imgsz: int, forward: Any) -> tuple[Any, str]:
    """One image per call from the evaluation split's files: read and decode (OpenCV), letterbox,
    the model (``forward``), then NMS as ultralytics' predictor does (``DetectTask.end_to_end``)."""
    import torch

    try:
        from ultralytics.utils.nms import non_max_suppression
    except ImportError:  # ultralytics before 8.3.170 kept it in ops
        from ultralytics.utils.ops import non_max_suppression  # type: ignore[attr-defined,no-redef]

    images, where = split_images(data_yaml)
    if not images:
        raise GreenbenchError(f"no images in the evaluation split of {data_yaml} ({where}) to time")
    state = {"next": 0}

    def call() -> None:
        path = images[state["next"] % len(images)]
        state["next"] += 1
        outputs = forward(letterboxed(path, imgsz))
        non_max_suppression(torch.from_numpy(outputs[0]), NMS_CONF, NMS_IOU, max_det=NMS_MAX_DET)

    what = (
        f"per image from its file ({len(images)} of the evaluation split, in turn): read and decode "
        f"(OpenCV), {PREPROCESSING}, the model, NMS (ultralytics, conf {NMS_CONF}, IoU {NMS_IOU})"
    )
    return call, what
