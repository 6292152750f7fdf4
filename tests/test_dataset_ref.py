"""User data.yaml checks (no download, split choice) and the content fingerprint."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from greenbench.errors import GreenbenchError
from greenbench.tasks.detect.dataset_ref import check_dataset
from greenbench.tasks.detect.staging import staged_copy
from greenbench.tasks.detect.synth import SynthSpec, synth_detection


@pytest.fixture
def data_yaml(tmp_path: Path) -> Path:
    return synth_detection(tmp_path / "shapes", SynthSpec(classes=2, images=10, imgsz=32, seed=0))


def test_test_split_is_used_when_present(data_yaml: Path) -> None:
    ref = check_dataset(data_yaml)
    assert ref.eval_split == "test" and len(ref.fingerprint) == 16


def test_without_test_split_accuracy_falls_back_to_val(data_yaml: Path) -> None:
    text = "\n".join(line for line in data_yaml.read_text().splitlines() if not line.startswith("test:"))
    data_yaml.write_text(text + "\n")
    assert check_dataset(data_yaml).eval_split == "val"


def test_missing_folder_is_an_error_and_download_is_refused(data_yaml: Path) -> None:
    data_yaml.write_text(data_yaml.read_text().replace("val: images/val", "val: images/nowhere")
                         + "download: https://example.com/shapes.zip\n")  # fmt: skip
    with pytest.raises(GreenbenchError, match=r"'val' images at .*nowhere do not exist") as e:
        check_dataset(data_yaml)
    assert "never downloads data" in str(e.value)


def test_fingerprint_follows_labels_not_ultralytics_caches(data_yaml: Path) -> None:
    before = check_dataset(data_yaml).fingerprint
    (data_yaml.parent / "labels" / "train.cache").write_bytes(b"ultralytics label cache")
    assert check_dataset(data_yaml).fingerprint == before
    label = sorted((data_yaml.parent / "labels" / "train").iterdir())[0]
    label.write_text(label.read_text() + "0 0.5 0.5 0.1 0.1\n")
    os.utime(label, ns=(1, 1))
    assert check_dataset(data_yaml).fingerprint != before


def test_not_a_mapping(tmp_path: Path) -> None:
    bad = tmp_path / "data.yaml"
    bad.write_text("- just\n- a list\n")
    with pytest.raises(GreenbenchError, match=r"not a YOLO data.yaml"):
        check_dataset(bad)


def test_fingerprint_ignores_modification_times(data_yaml: Path) -> None:
    before = check_dataset(data_yaml).fingerprint
    for f in (data_yaml.parent / "labels" / "train").iterdir():
        os.utime(f, ns=(10**18, 10**18))  # a copy or a fresh clone: same bytes, new times
    assert check_dataset(data_yaml).fingerprint == before


def test_staged_copy_mirrors_the_splits_by_absolute_path_and_drops_download(
    data_yaml: Path, tmp_path: Path
) -> None:
    # the layout of ultralytics' own data.yamls: a relative root and a download key (a URL or code)
    lines = ["path: shapes" if ln.startswith("path:") else ln for ln in data_yaml.read_text().splitlines()]
    user_yaml = tmp_path / "shapes.yaml"  # beside the dataset folder, as ultralytics ships them
    user_yaml.write_text("\n".join(lines) + "\ndownload: https://example.com/shapes.zip\n")
    ref = check_dataset(user_yaml)
    staged = staged_copy(ref, tmp_path / "work")
    data = yaml.safe_load(staged.read_text())
    assert "download" not in data and Path(data["path"]).is_absolute()
    assert staged.is_relative_to(tmp_path / "work")
    for split in ("train", "val", "test"):
        folder = Path(data[split])
        assert folder.is_absolute() and folder.resolve() == folder  # resolving stays in the work folder
        for kind, mirror in (("images", folder), ("labels", folder.parent.parent / "labels" / split)):
            originals = sorted(p.name for p in (data_yaml.parent / kind / split).iterdir())
            assert sorted(p.name for p in mirror.iterdir() if not p.name.startswith(".")) == originals
            first = next(p for p in mirror.iterdir() if not p.name.startswith("."))
            assert first.resolve() == (data_yaml.parent / kind / split / first.name).resolve()
    assert data["names"] == yaml.safe_load(user_yaml.read_text())["names"]
