"""Hostile files for the hardening tests, and the guarded CLI they are fed to.

A payload is live: unpickling it creates a marker file, so a test that finds no marker proves
the file was never unpickled (``test_payloads_are_live`` checks that they do fire when loaded).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
from PIL import Image

from tests.hostile.hostile_tools import gb

CLI_TIMEOUT_S = 30  # a hang fails the test instead of blocking it; a validate takes ~0.5 s


class MarkerWriter:
    """Unpickling this opens ``marker`` for writing (creating it): the smallest real payload."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (self.marker, "w"))


def label_cache_payload(path: Path, marker: Path) -> Path:
    """An ultralytics label ``*.cache`` at ``path`` whose unpickling creates ``marker``: a dict
    saved with ``np.save`` like ``ultralytics.data.utils.save_dataset_cache_file`` does, read
    back there with ``np.load(allow_pickle=True)``."""
    cache = {"version": "1.0.3", "hash": "", "labels": [MarkerWriter(marker)], "results": (0, 0, 0, 0, 0)}
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:  # np.save to a file object keeps the name exactly (no .npy added)
        np.save(f, cache, allow_pickle=True)
    return path


def checkpoint_payload(path: Path, marker: Path) -> Path:
    """A ``torch.save``'d checkpoint at ``path`` whose ``torch.load`` (unpickling) creates ``marker``."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": MarkerWriter(marker), "epoch": -1}, path)
    return path


def write_image(path: Path, size: int = 32, colour: tuple[int, int, int] = (200, 40, 40)) -> Path:
    """A small valid PNG (or any format PIL infers from the suffix) at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), colour).save(path)
    return path


def yolo_dataset(root: Path, images: int = 3, names: str = "[a, b]") -> Path:
    """A valid YOLO dataset under ``root`` (images/labels for train and val); returns its data.yaml."""
    for split in ("train", "val"):
        for i in range(images):
            write_image(root / "images" / split / f"{i}.png", colour=(40 * i, 120, 200))
            label = root / "labels" / split / f"{i}.txt"
            label.parent.mkdir(parents=True, exist_ok=True)
            label.write_text(f"{i % 2} 0.5 0.5 0.4 0.4\n")
    data = root / "data.yaml"
    data.write_text(f"path: .\ntrain: images/train\nval: images/val\nnames: {names}\n")
    return data


SUITE = """\
name: hostile
task: detect
dataset:
  {dataset}
defaults: {{epochs: 1, imgsz: 64, batch: 4, workers: 0, optimizer: SGD, amp: false, val: false{defaults}}}
baseline: base
variants:
  base:
    model: {model}
{extra}"""


def suite_text(
    dataset: str = "synthetic: {classes: 2, images: 10, imgsz: 64}",
    model: str = "yolov5n.yaml",
    defaults: str = "",
    extra: str = "    stages: [train]\n",
) -> str:
    """A small detect suite; ``defaults`` is appended inside the defaults mapping (``", k: v"``),
    ``extra`` is YAML that continues the ``base`` variant (and may add variants)."""
    return SUITE.format(dataset=dataset, model=model, defaults=defaults, extra=extra)


def cli(*args: str, cwd: Path, timeout: float = CLI_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    """``python -m greenbench ARGS`` under the network guard (``tests.hostile.hostile_tools.gb``)."""
    return gb(*args, cwd=cwd, timeout=timeout)


def assert_refused(out: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    """Exit ``code``, one ``greenbench: error:`` paragraph (no traceback) holding every needle."""
    text = out.stderr.strip()
    assert out.returncode == code, (out.returncode, out.stderr, out.stdout)
    assert "Traceback" not in out.stderr, out.stderr
    assert text.startswith("greenbench: error:") and "\n" not in text, out.stderr
    for needle in needles:
        assert needle in text, (needle, text)


def assert_no_network(cwd: Path) -> None:
    """Nothing in the guarded processes tried to reach the network."""
    log = cwd / "network-attempts.log"
    assert not log.exists(), log.read_text()


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every entry below ``folder`` (links as their target text, files as their bytes)."""
    found: dict[str, bytes] = {}
    for dirpath, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = Path(dirpath, name)
            rel = str(path.relative_to(folder))
            if path.is_symlink():
                found[rel] = b"-> " + os.readlink(path).encode()
            elif path.is_file():
                found[rel] = path.read_bytes()
            else:
                found[rel] = b"<dir>"
    return found
