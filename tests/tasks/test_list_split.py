"""``greenbench data split``: a YOLO dataset from train/val/test file lists, on a fabricated image
tree laid out as the authors kept theirs (``image/`` and ``labels/`` side by side), and the lists
shipped for the YOLOv5 study."""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

import pytest
import yaml
from PIL import Image

from greenbench.cli import main
from greenbench.tasks.detect.dataset_ref import check_dataset
from greenbench.tasks.detect.list_split import SPLITS, read_lists
from tests.clitools import assert_one_paragraph_error

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "suites" / "yolo_thws_split"
NAMES = ["chair", "fire extinguisher"]
# names as the authors' lists have them: spaces, a dash, an en dash (non-ASCII)
LISTED = {
    "train": ["a 1.jpg", "ll_Fire extinguisher_46.jpg", "1st Night of Innovation – 3145.jpg", "b.jpg"],
    "val": ["inno-schneider- - 76.jpg"],
    "test": ["c.jpg"],
}


def _lists(folder: Path, listed: dict[str, list[str]] = LISTED, prefix: str = "./image/") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for split, names in listed.items():
        (folder / f"{split}.txt").write_text("".join(f"{prefix}{n}\n" for n in names), encoding="utf-8")
    (folder / "names.txt").write_text("\n".join(NAMES) + "\n", encoding="utf-8")
    return folder


def _tree(root: Path, names: list[str]) -> Path:
    """``root/image/<name>`` (a 32 px JPEG) and ``root/labels/<stem>.txt`` (one box of class i % 2)."""
    (root / "image").mkdir(parents=True)
    (root / "labels").mkdir()
    for i, name in enumerate(names):
        Image.new("RGB", (32, 32), (i * 40 % 256, 90, 160)).save(root / "image" / name, format="JPEG")
        (root / "labels" / f"{Path(name).stem}.txt").write_text(f"{i % 2} 0.5 0.5 0.25 0.25\n")
    return root / "image"


def _all(listed: dict[str, list[str]] = LISTED) -> list[str]:
    return [n for names in listed.values() for n in names]


def _split(*args: str) -> int:
    return main(["data", "split", *args])


def test_split_writes_the_lists_split_and_a_data_yaml_greenbench_accepts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = _tree(tmp_path / "thws", _all())
    out = tmp_path / "out"
    assert _split("--lists", str(_lists(tmp_path / "lists")), "--images", str(images), "--out", str(out)) == 0
    printed = capsys.readouterr().out
    assert "4 train, 1 val, 1 test images" in printed and "copied" in printed
    for split, names in LISTED.items():
        assert sorted(p.name for p in (out / "images" / split).iterdir()) == sorted(names)
        assert sorted(p.name for p in (out / "labels" / split).iterdir()) == sorted(
            f"{Path(n).stem}.txt" for n in names
        )
    label = out / "labels" / "train" / "ll_Fire extinguisher_46.txt"
    assert label.read_text() == "1 0.5 0.5 0.25 0.25\n"  # the file of that image, not another's
    assert not os.path.samefile(label, tmp_path / "thws" / "labels" / label.name)  # a copy
    data = yaml.safe_load((out / "data.yaml").read_text(encoding="utf-8"))
    assert data["names"] == dict(enumerate(NAMES)) and data["nc"] == 2
    ref = check_dataset(out / "data.yaml")  # greenbench's own dataset check reads it as a YOLO dataset
    assert ref.eval_split == "test"
    counts = {split: sum(len(entry) for entry in entries) for split, entries in ref.contents.splits.items()}
    assert counts == {split: len(names) for split, names in LISTED.items()}


def test_hardlink_links_the_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    images = _tree(tmp_path / "thws", _all())
    out = tmp_path / "out"
    args = ["--lists", str(_lists(tmp_path / "lists")), "--images", str(images), "--out", str(out)]
    assert _split(*args, "--hardlink") == 0
    assert "hard-linked" in capsys.readouterr().out
    assert os.path.samefile(
        out / "images" / "val" / "inno-schneider- - 76.jpg", images / "inno-schneider- - 76.jpg"
    )


def test_missing_images_and_labels_are_one_paragraph_and_nothing_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = _tree(tmp_path / "thws", _all())
    for name in ("a 1.jpg", "b.jpg", "c.jpg"):
        (images / name).unlink()
    (tmp_path / "thws" / "labels" / "inno-schneider- - 76.txt").unlink()
    out = tmp_path / "out"
    args = ["--lists", str(_lists(tmp_path / "lists")), "--images", str(images), "--out", str(out)]
    assert _split(*args) == 1
    err = capsys.readouterr().err
    assert_one_paragraph_error(
        err, "of the 6 images", "3 image(s) named in the lists are not under", "'a 1.jpg'", "'c.jpg'",
        "1 image(s) have no YOLO label file", "'inno-schneider- - 76.jpg'", "--allow-missing",
        "nothing was written",
    )  # fmt: skip
    assert not out.exists()


def test_allow_missing_leaves_them_out_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = _tree(tmp_path / "thws", _all())
    (images / "b.jpg").unlink()
    out = tmp_path / "out"
    args = ["--lists", str(_lists(tmp_path / "lists")), "--images", str(images), "--out", str(out)]
    assert _split(*args, "--allow-missing") == 0
    printed = capsys.readouterr().out
    assert (
        "3 train, 1 val, 1 test" in printed
        and "left out (--allow-missing): 1 image(s) of the lists: 'b.jpg'" in printed
    )
    assert "b.jpg" not in {p.name for p in (out / "images" / "train").iterdir()}
    assert "1 image(s) of the lists left out" in (out / "data.yaml").read_text(encoding="utf-8")


def test_a_split_that_would_be_empty_is_refused_even_with_allow_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = _tree(tmp_path / "thws", _all())
    (images / "c.jpg").unlink()
    args = ["--lists", str(_lists(tmp_path / "lists")), "--images", str(images), "--out", str(tmp_path / "o")]
    assert _split(*args, "--allow-missing") == 1
    assert_one_paragraph_error(capsys.readouterr().err, "'test' list")


def test_an_image_on_two_lists_and_a_non_empty_out_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = _tree(tmp_path / "thws", _all())
    twice = {**LISTED, "test": ["c.jpg", "b.jpg"]}
    args = ["--lists", str(_lists(tmp_path / "lists", twice)), "--images", str(images)]
    assert _split(*args, "--out", str(tmp_path / "o")) == 1
    assert_one_paragraph_error(capsys.readouterr().err, "'b.jpg (train.txt and test.txt)'")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    args = ["--lists", str(_lists(tmp_path / "ok")), "--images", str(images), "--out", str(tmp_path / "full")]
    assert _split(*args) == 1
    assert_one_paragraph_error(capsys.readouterr().err, "not an empty folder")


def test_names_match_across_unicode_forms_and_path_styles(tmp_path: Path) -> None:
    """A file system that stores NFD names (macOS) still matches the lists' NFC names, and a
    Windows path in a list counts by its file name."""
    nfd = {
        split: [unicodedata.normalize("NFD", n.replace("a 1", "ä 1")) for n in names]
        for split, names in LISTED.items()
    }
    images = _tree(tmp_path / "thws", _all(nfd))
    listed = {
        split: [f"C:\\THWS\\image\\{unicodedata.normalize('NFC', n)}" for n in names]
        for split, names in nfd.items()
    }
    lists = read_lists(_lists(tmp_path / "lists", listed, prefix=""))
    assert "ä 1.jpg" in lists.splits["train"]
    assert (
        main(
            [
                "data",
                "split",
                "--lists",
                str(lists.folder),
                "--images",
                str(images),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 0
    )


def test_the_shipped_lists_are_the_authors_split_with_the_suites_class_names() -> None:
    lists = read_lists(SHIPPED)
    assert {s: len(n) for s, n in lists.splits.items()} == {"train": 452, "val": 56, "test": 57}
    assert all("/" not in n and "\\" not in n and n.endswith(".jpg") for s in SPLITS for n in lists.splits[s])
    suite = yaml.safe_load((ROOT / "suites" / "yolo_thws.yaml").read_text(encoding="utf-8"))
    assert list(lists.names) == suite["dataset"]["names"]


def test_the_shipped_lists_split_a_tree_of_every_named_image(tmp_path: Path) -> None:
    """Every one of the 565 names (39 with spaces, 5 with an en dash, as the authors wrote them) found and
    placed in its split: what a user with the THWS images gets."""
    lists = read_lists(SHIPPED)
    every = {split: list(names) for split, names in lists.splits.items()}
    images = _tree(tmp_path / "thws", _all(every))
    out = tmp_path / "thws_split"
    assert main(["data", "split", "--lists", str(SHIPPED), "--images", str(images), "--out", str(out)]) == 0
    for split, names in every.items():
        assert sorted(p.name for p in (out / "images" / split).iterdir()) == sorted(names)
        assert len(list((out / "labels" / split).iterdir())) == len(names)
