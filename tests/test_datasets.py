"""Tests for greenbench.tasks.detect.synth: the synthetic YOLO detection dataset and its cache."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from greenbench.errors import GreenbenchError
from greenbench.tasks.detect import synth as datasets
from greenbench.tasks.detect.synth import (
    GENERATOR_VERSION,
    MARKER,
    MAX_CLASSES,
    SHAPES,
    SPLITS,
    SynthSpec,
    SynthSpecError,
    cached_synth,
    class_names,
    render_image,
    split_counts,
    synth_detection,
)
from tests.clitools import assert_one_paragraph_error, run_cli

SMALL = SynthSpec(classes=3, images=12, imgsz=64, seed=7)
LINE = re.compile(r"^\d+ \d\.\d{6} \d\.\d{6} \d\.\d{6} \d\.\d{6}$")
# Objects are drawn with HSV S >= 0.65, V >= 0.6 (chroma >= ~99 grey levels) and the background
# with S <= 0.2 (chroma <= ~46); noise (sigma 3) moves either by well under the gap.
CHROMA_SPLIT = 72


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def _labels(root: Path) -> dict[str, list[list[float]]]:
    """Relative label path -> rows of ``[cls, cx, cy, w, h]``."""
    return {
        str(p.relative_to(root)): [[float(v) for v in line.split()] for line in p.read_text().splitlines()]
        for p in sorted((root / "labels").rglob("*.txt"))
    }


def _chroma(pixels: np.ndarray) -> np.ndarray:
    return pixels.max(axis=2).astype(np.int16) - pixels.min(axis=2)


@pytest.fixture(scope="module")
def small_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "small"
    synth_detection(out, SynthSpec(classes=20, images=30, imgsz=96, seed=3))
    return out


# --- spec -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("classes", 0),
        ("classes", -1),
        ("classes", MAX_CLASSES + 1),
        ("images", 9),
        ("images", 0),
        ("imgsz", 16),
        ("imgsz", 1025),
        ("seed", -1),
        ("classes", 2.0),
        ("images", "60"),
        ("imgsz", True),
    ],
)
def test_bad_spec_raises_value_error_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field) as info:
        SynthSpec(**{field: value})  # type: ignore[arg-type]
    assert isinstance(info.value, SynthSpecError)
    assert isinstance(info.value, GreenbenchError)  # the CLI prints it without a traceback


def test_key_is_stable_short_and_depends_on_every_field_and_the_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = SynthSpec().key()
    assert re.fullmatch(r"[0-9a-f]{12}", key)
    assert SynthSpec().key() == key
    others = [
        SynthSpec(classes=4),
        SynthSpec(images=61),
        SynthSpec(imgsz=160),
        SynthSpec(seed=1),
    ]
    assert len({key, *(s.key() for s in others)}) == 5
    monkeypatch.setattr(datasets, "GENERATOR_VERSION", GENERATOR_VERSION + 1)
    assert SynthSpec().key() != key


def test_class_names_use_shapes_then_shape_by_hue() -> None:
    assert class_names(3) == {0: "circle", 1: "rectangle", 2: "triangle"}
    assert len(SHAPES) >= 8 and len(set(SHAPES)) == len(SHAPES)
    assert list(class_names(len(SHAPES)).values()) == list(SHAPES)
    many = class_names(20)
    assert len(set(many.values())) == 20
    assert many[0].startswith("circle_hue") and many[8].startswith("circle_hue")
    assert len(set(class_names(MAX_CLASSES).values())) == MAX_CLASSES


# --- splits ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("images", "expected"),
    [
        (10, (8, 1, 1)),
        (11, (9, 1, 1)),
        (14, (12, 1, 1)),
        (15, (11, 2, 2)),
        (19, (15, 2, 2)),
        (60, (48, 6, 6)),
        (100, (80, 10, 10)),
        (1001, (801, 100, 100)),
    ],
)
def test_split_counts_are_8_1_1_with_every_split_non_empty(
    images: int, expected: tuple[int, int, int]
) -> None:
    assert split_counts(images) == expected
    assert sum(expected) == images and min(expected) >= 1


@pytest.mark.parametrize("images", [10, 23])
def test_files_on_disk_follow_the_split(tmp_path: Path, images: int) -> None:
    out = tmp_path / "ds"
    synth_detection(out, SynthSpec(images=images, imgsz=64))
    for split, count in zip(SPLITS, split_counts(images), strict=True):
        pngs = sorted(p.stem for p in (out / "images" / split).glob("*.png"))
        txts = sorted(p.stem for p in (out / "labels" / split).glob("*.txt"))
        assert len(pngs) == count and pngs == txts
        assert all(re.fullmatch(r"\d{5}", stem) for stem in pngs)
    meta = json.loads((out / "synth.json").read_text())
    assert [meta["splits"][s]["images"] for s in SPLITS] == list(split_counts(images))


# --- determinism ----------------------------------------------------------------------------


def test_same_spec_gives_identical_labels_and_pixels(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    synth_detection(a, SMALL)
    synth_detection(b, SMALL)
    assert _files(a) == _files(b)
    for rel in _files(a):
        if rel.endswith(".txt") or rel == "synth.json":
            assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
        elif rel.endswith(".png"):
            np.testing.assert_array_equal(np.asarray(Image.open(a / rel)), np.asarray(Image.open(b / rel)))


def test_image_depends_only_on_seed_and_index() -> None:
    # Growing the dataset keeps its first images: each has its own rng from (seed, index).
    for index in (0, 5, 9):
        small, small_boxes = render_image(SynthSpec(images=10, imgsz=64, seed=4), index)
        large, large_boxes = render_image(SynthSpec(images=200, imgsz=64, seed=4), index)
        np.testing.assert_array_equal(small, large)
        assert small_boxes == large_boxes


def test_different_seeds_give_different_data(tmp_path: Path) -> None:
    synth_detection(tmp_path / "a", SMALL)
    synth_detection(tmp_path / "b", SynthSpec(classes=3, images=12, imgsz=64, seed=8))
    assert _labels(tmp_path / "a") != _labels(tmp_path / "b")
    first = "images/train/00000.png"
    assert not np.array_equal(
        np.asarray(Image.open(tmp_path / "a" / first)),
        np.asarray(Image.open(tmp_path / "b" / first)),
    )


# --- content --------------------------------------------------------------------------------


def test_images_are_rgb_png_of_imgsz(small_set: Path) -> None:
    for path in (small_set / "images").rglob("*.png"):
        with Image.open(path) as im:
            assert (im.format, im.mode, im.size) == ("PNG", "RGB", (96, 96))


def test_labels_are_yolo_lines_in_range_with_class_below_nc(small_set: Path) -> None:
    nc = 20
    seen: set[int] = set()
    for rel, rows in _labels(small_set).items():
        assert 1 <= len(rows) <= 4, rel
        for line in (small_set / rel).read_text().splitlines():
            assert LINE.match(line), line
        for cls, cx, cy, w, h in rows:
            assert cls == int(cls) and 0 <= cls < nc
            seen.add(int(cls))
            assert all(0.0 <= v <= 1.0 for v in (cx, cy, w, h))
            assert cx - w / 2 >= -1e-6 and cx + w / 2 <= 1 + 1e-6
            assert cy - h / 2 >= -1e-6 and cy + h / 2 <= 1 + 1e-6
    assert len(seen) > 10  # the draws cover most of the classes, not a few


def test_boxes_are_not_degenerate(small_set: Path) -> None:
    for rows in _labels(small_set).values():
        for _, _, _, w, h in rows:
            # Objects are 12-40 % of imgsz; a fitted polygon's tight box can be a little smaller.
            assert 0.08 <= w <= 0.41 and 0.08 <= h <= 0.41


@pytest.mark.parametrize("imgsz", [32, 128])  # 32: the smallest size, objects on an 8 px floor
def test_every_box_holds_drawn_pixels_and_nothing_is_drawn_outside_boxes(imgsz: int) -> None:
    spec = SynthSpec(classes=9, images=10, imgsz=imgsz, seed=11)
    for index in range(40):
        pixels, boxes = render_image(spec, index)
        drawn = _chroma(pixels) > CHROMA_SPLIT
        outside = np.ones(drawn.shape, dtype=bool)
        for box in boxes:
            region = drawn[box.top : box.bottom, box.left : box.right]
            # A ring fills ~30 % of its box, every other shape more.
            assert region.mean() > 0.2, (index, box)
            # The box is tight: the drawn shape reaches every edge of it.
            assert region[0].any() and region[-1].any(), (index, box)
            assert region[:, 0].any() and region[:, -1].any(), (index, box)
            outside[box.top : box.bottom, box.left : box.right] = False
        assert not drawn[outside].any(), index


def test_written_labels_match_rendered_boxes(small_set: Path) -> None:
    spec = SynthSpec(classes=20, images=30, imgsz=96, seed=3)
    _, boxes = render_image(spec, 0)
    text = (small_set / "labels" / "train" / "00000.txt").read_text()
    assert text == "".join(b.yolo_line(96) + "\n" for b in boxes)


def test_objects_are_mostly_separated() -> None:
    spec = SynthSpec(imgsz=128, seed=2)
    for index in range(60):
        _, boxes = render_image(spec, index)
        for i, a in enumerate(boxes):
            for b in boxes[i + 1 :]:
                iw = max(0, min(a.right, b.right) - max(a.left, b.left))
                ih = max(0, min(a.bottom, b.bottom) - max(a.top, b.top))
                area_a = (a.right - a.left) * (a.bottom - a.top)
                area_b = (b.right - b.left) * (b.bottom - b.top)
                assert iw * ih / (area_a + area_b - iw * ih) < 0.3


# --- data.yaml and synth.json ---------------------------------------------------------------


def test_data_yaml_has_standard_keys_and_absolute_path(tmp_path: Path) -> None:
    out = tmp_path / "odd name: with colon #and hash"
    data_yaml = synth_detection(out, SMALL)
    assert data_yaml == out / "data.yaml"
    data = yaml.safe_load(data_yaml.read_text())
    assert set(data) == {"path", "train", "val", "test", "nc", "names"}
    assert data["path"] == str(out.resolve())
    assert Path(data["path"]).is_absolute()
    assert (data["train"], data["val"], data["test"]) == (
        "images/train",
        "images/val",
        "images/test",
    )
    assert data["nc"] == 3
    assert data["names"] == {0: "circle", 1: "rectangle", 2: "triangle"}
    for split in SPLITS:
        assert (Path(data["path"]) / data[split]).is_dir()


def test_synth_json_records_spec_version_and_counts(small_set: Path) -> None:
    meta = json.loads((small_set / "synth.json").read_text())
    assert meta["schema_version"] == 1
    assert meta["generator_version"] == GENERATOR_VERSION
    assert meta["spec"] == {"classes": 20, "images": 30, "imgsz": 96, "seed": 3}
    assert meta["key"] == SynthSpec(classes=20, images=30, imgsz=96, seed=3).key()
    objects = {s: sum(len(r) for k, r in _labels(small_set).items() if f"/{s}/" in k) for s in SPLITS}
    assert {s: meta["splits"][s]["objects"] for s in SPLITS} == objects


# --- output folder --------------------------------------------------------------------------


def test_refuses_a_non_empty_folder_it_did_not_write(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(GreenbenchError, match="not empty"):
        synth_detection(tmp_path, SMALL)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_regenerating_into_a_previous_dataset_leaves_no_stale_files(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    synth_detection(out, SynthSpec(images=30, imgsz=64))
    synth_detection(out, SynthSpec(images=10, imgsz=64))
    assert len(list((out / "images").rglob("*.png"))) == 10
    assert len(list((out / "labels").rglob("*.txt"))) == 10


def test_sixty_images_at_128_px_are_fast(tmp_path: Path) -> None:
    start = time.perf_counter()
    synth_detection(tmp_path / "ds", SynthSpec(images=60, imgsz=128))
    assert time.perf_counter() - start < 2.0


# --- cache ----------------------------------------------------------------------------------


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Record every ``synth_detection`` call made by ``cached_synth``."""
    calls: list[Path] = []
    real = datasets.synth_detection

    def spy(out: Path, spec: SynthSpec) -> Path:
        calls.append(out)
        return real(out, spec)

    monkeypatch.setattr(datasets, "synth_detection", spy)
    return calls


def test_cached_synth_generates_once_and_reuses(tmp_path: Path, counted: list[Path]) -> None:
    first = cached_synth(tmp_path, SMALL)
    final = tmp_path / f"synth-{SMALL.key()}"
    assert first == final / "data.yaml"
    assert (final / MARKER).is_file()
    assert yaml.safe_load(first.read_text())["path"] == str(final.resolve())
    mtime = first.stat().st_mtime_ns
    assert cached_synth(tmp_path, SMALL) == first
    assert len(counted) == 1
    assert first.stat().st_mtime_ns == mtime
    assert [p.name for p in tmp_path.iterdir()] == [final.name]  # no temp folder left behind


def test_cached_synth_keys_on_spec(tmp_path: Path, counted: list[Path]) -> None:
    other = SynthSpec(classes=3, images=12, imgsz=64, seed=99)
    assert cached_synth(tmp_path, SMALL) != cached_synth(tmp_path, other)
    assert len(counted) == 2


def test_cached_synth_regenerates_a_folder_without_the_marker(tmp_path: Path, counted: list[Path]) -> None:
    final = tmp_path / f"synth-{SMALL.key()}"
    (final / "images" / "train").mkdir(parents=True)
    (final / "images" / "train" / "half-written.png").write_bytes(b"")
    data_yaml = cached_synth(tmp_path, SMALL)
    assert len(counted) == 1
    assert (final / MARKER).is_file()
    assert not (final / "images" / "train" / "half-written.png").exists()
    assert len(list((final / "images").rglob("*.png"))) == SMALL.images
    assert yaml.safe_load(data_yaml.read_text())["nc"] == SMALL.classes
    assert [p.name for p in tmp_path.iterdir()] == [final.name]


def test_cached_synth_loses_a_race_cleanly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # While this process generates, a "second process" finishes the same spec first.
    real = datasets.synth_detection
    rivals: list[Path] = []
    started: list[bool] = []

    def racing(out: Path, spec: SynthSpec) -> Path:
        if not started:
            started.append(True)
            rivals.append(cached_synth(tmp_path, spec))
        return real(out, spec)

    monkeypatch.setattr(datasets, "synth_detection", racing)
    data_yaml = cached_synth(tmp_path, SMALL)
    final = tmp_path / f"synth-{SMALL.key()}"
    assert data_yaml == rivals[0] == final / "data.yaml"
    assert (final / MARKER).is_file()
    assert len(list((final / "labels").rglob("*.txt"))) == SMALL.images
    assert [p.name for p in tmp_path.iterdir()] == [final.name]


def test_cached_synth_cleans_up_when_generation_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(out: Path, spec: SynthSpec) -> Path:
        (out / "partial.txt").write_text("x")
        raise OSError("disk full")

    monkeypatch.setattr(datasets, "synth_detection", broken)
    with pytest.raises(OSError, match="disk full"):
        cached_synth(tmp_path, SMALL)
    assert list(tmp_path.iterdir()) == []


# --- errors through the real CLI: one paragraph, never a traceback --------------------------


def greenbench(*args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args)


def test_cli_refuses_a_huge_imgsz_before_drawing(tmp_path: Path) -> None:
    out = greenbench("data", "synth", "--out", str(tmp_path / "d"), "--imgsz", "100000")
    assert out.returncode == 1, out.stderr
    assert_one_paragraph_error(out.stderr, "imgsz must be 32..1024, got 100000")
    assert not (tmp_path / "d").exists()


def test_cli_out_under_a_file_is_a_clear_error(tmp_path: Path) -> None:
    a_file = tmp_path / "some_file"
    a_file.write_text("not a folder")
    out = greenbench("data", "synth", "--out", str(a_file / "sub"), "--images", "10", "--imgsz", "32")
    assert out.returncode == 1, out.stderr
    assert_one_paragraph_error(out.stderr, f"cannot write under {a_file / 'sub'}: Not a directory")
    assert a_file.read_text() == "not a folder"


def test_synth_and_cache_under_a_file_raise_greenbench_errors(tmp_path: Path) -> None:
    a_file = tmp_path / "some_file"
    a_file.write_text("")
    with pytest.raises(
        GreenbenchError, match=re.escape(f"cannot write under {a_file / 'sub'}: Not a directory")
    ):
        synth_detection(a_file / "sub", SMALL)
    with pytest.raises(GreenbenchError, match=re.escape(f"cannot write under {a_file / 'cache'}: ")):
        cached_synth(a_file / "cache", SMALL)
    with pytest.raises(GreenbenchError, match=re.escape(f"cannot write under {a_file}: ")):
        cached_synth(a_file, SMALL)  # the cache root itself is a file


def test_cached_synth_rewords_a_failure_after_generation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_rename(src: object, dst: object) -> None:
        raise PermissionError(13, "Permission denied", str(dst))

    monkeypatch.setattr(os, "rename", no_rename)  # the atomic install renames the finished folder
    with pytest.raises(
        GreenbenchError, match=re.escape(f"cannot write under {tmp_path}: Permission denied at ")
    ):
        cached_synth(tmp_path, SMALL)
    assert list(tmp_path.iterdir()) == []  # the temporary copy is cleaned up
