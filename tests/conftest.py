"""Shared fixtures."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

MICRO_SUITE = """\
name: micro
task: detect
dataset:
  synthetic: {classes: 2, images: 20, imgsz: 64, seed: 1}
defaults: {epochs: 1, imgsz: 64, batch: 4, workers: 0, optimizer: SGD, lr0: 0.01,
           warmup_epochs: 0, mosaic: 0.0, amp: false, val: false}
measure:
  latency: {warmup: 1, threads: 1}
  protocol: {rounds: 2, blocks: 3, min_calls: 2}
  energy: {idle_s: 0.3, min_window_s: 0.1}
baseline: base
variants:
  base: {model: yolov5n.yaml, stages: [train]}
  child:
    from: base
    stages: [{train: {epochs: 1, lr0: 0.001}}]
"""


@pytest.fixture
def micro_suite(tmp_path: Path) -> Path:
    """A two-variant detection suite that trains 1 epoch on 64 px images (≈ 30 s)."""
    path = tmp_path / "micro.yaml"
    path.write_text(textwrap.dedent(MICRO_SUITE))
    return path


ULTRALYTICS_ENV = (
    "YOLO_OFFLINE", "YOLO_AUTOINSTALL", "YOLO_CONFIG_DIR", "MPLCONFIGDIR", "XDG_CACHE_HOME", "TORCH_HOME",
    "HF_HUB_OFFLINE",
)  # fmt: skip


@pytest.fixture
def clean_ultralytics_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset the variables ``prepare_ultralytics`` sets, and restore them after the test.

    ``monkeypatch.delenv`` of an unset variable records nothing to restore, so set it first:
    otherwise what the code under test sets leaks into every later test of the session.
    """
    for var in ULTRALYTICS_ENV:
        monkeypatch.setenv(var, "")
        monkeypatch.delenv(var)
