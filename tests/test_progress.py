"""The run's progress: events parsed, ETA from the stages' cost, throttled plain lines off a TTY."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from greenbench.run.progress import RunProgress
from greenbench.suite import load_suite

SUITE = """
name: p
task: detect
dataset: {synthetic: {classes: 2, images: 20, imgsz: 64}}
defaults: {epochs: 10, imgsz: 64}
measure: {protocol: {rounds: 2, blocks: 4}, energy: {min_window_s: 0.1}}
baseline: a
variants:
  a: {model: yolov5n.yaml, stages: [train]}
  b: {from: a, stages: [train: {epochs: 2}]}
"""


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _progress(tmp_path: Path, interval_s: float = 5.0) -> tuple[RunProgress, Clock, io.StringIO]:
    path = tmp_path / "s.yaml"
    path.write_text(SUITE)
    out = io.StringIO()
    clock = Clock()
    console = Console(file=out, force_terminal=False, width=200)
    return RunProgress(load_suite(path), console, interval_s, clock), clock, out


def test_epochs_rounds_and_done_variants_are_tracked(tmp_path: Path) -> None:
    progress, clock, _ = _progress(tmp_path)
    assert "ETA estimating" in progress.line()
    assert progress.eta_s() is None
    clock.t = 10.0
    progress("a: train")
    progress("a: train epoch 5/10")
    line = progress.line()
    assert "a · train epoch 5/10" in line and "0/2 prepared" in line
    eta_half = progress.eta_s()
    assert eta_half is not None and eta_half > 0
    clock.t = 20.0
    progress("a: train epoch 10/10")
    progress("a: accuracy")
    assert "0/2 prepared" in progress.line()  # evaluating: not prepared yet
    progress("a: prepared")
    assert "1/2 prepared" in progress.line()
    eta_later = progress.eta_s()
    assert eta_later is not None and eta_later < eta_half + 10  # extrapolated from the rate
    progress("interleaved round 1/2: a, b")
    assert "round 1/2" in progress.line()
    progress("a: ok")
    assert "1/2 done" in progress.line()
    assert 0.0 < progress.fraction() <= 1.0


def test_plain_lines_are_throttled_but_outcomes_always_printed(tmp_path: Path) -> None:
    progress, clock, out = _progress(tmp_path, interval_s=5.0)
    for i in range(1, 10):
        clock.t = i * 0.5
        progress(f"a: train epoch {i}/10")
    plain = [line for line in out.getvalue().splitlines() if line.startswith("variants")]
    assert 1 <= len(plain) <= 2  # 4.5 s of events, one line per 5 s
    progress("b: FAILED: boom \x1b[31m")
    text = out.getvalue()
    assert "b: FAILED: boom" in text and "\x1b" not in text


def test_a_resumed_variant_leaves_the_cost(tmp_path: Path) -> None:
    progress, _, _ = _progress(tmp_path)
    progress("a: already stored ok (run r1); skipped")
    assert "/1 prepared" in progress.line()


def test_variants_count_as_each_finishes_not_at_the_end(tmp_path: Path) -> None:
    """Preparation and measurement each count a variant when it is done: a failure at once, the
    interleaved variants as their records are stored."""
    progress, _, _ = _progress(tmp_path)
    lines = []
    for event in ("a: train", "a: prepared", "b: train", "b: FAILED: boom"):
        progress(event)
        lines.append(progress.line())
    assert ["1/2 prepared" in lines[1], "0/2 done" in lines[1], "1/2 done" in lines[3]] == [True] * 3
    progress("interleaved round 1/2: a")
    assert "1/2 prepared, 1/2 done" in progress.line() and "round 1/2" in progress.line()
    progress("a: ok")
    assert "2/2 done" in progress.line()
