"""Hostile user datasets: a broken data.yaml, links that dangle or loop, trees that are no image
folders, bad samples. Each is one paragraph naming the user's file (never the staged copy), from
the real CLI, within a timeout; bad samples that leave usable ones are counted, not silent."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from greenbench.tasks.detect.dataset_ref import (
    EXAMPLES,
    MAX_DEPTH,
    MAX_OTHER_FILES,
    check_dataset,
)
from greenbench.tasks.detect.staging import staged_copy
from tests.hostile.payloads import (
    assert_no_network,
    assert_refused,
    cli,
    suite_text,
    write_image,
    yolo_dataset,
)

STAGES = "    stages: [train]\n"


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A valid dataset under ``tmp_path/user``; its data.yaml."""
    return yolo_dataset(tmp_path / "user")


def validate(data: Path, verb: str = "validate") -> tuple[Path, subprocess.CompletedProcess[str]]:
    """The real CLI's ``verb`` on a suite that uses ``data``; the folder it ran in and its result."""
    folder = data.parent.parent
    (folder / "suite.yaml").write_text(suite_text(dataset=f"path: {data}", extra=STAGES))
    return folder, cli(verb, "suite.yaml", cwd=folder)


def refused(data: Path, *needles: str, verb: str = "validate") -> str:
    """Validate (or run) the suite on ``data``: exit 2, one paragraph naming the user's data.yaml."""
    folder, out = validate(data, verb)
    assert_refused(out, 2, "dataset.path", str(data), *needles)
    assert "/work/data/" not in out.stderr  # never the staged copy
    assert_no_network(folder)
    return out.stderr


# --- 4. the data.yaml's keys -----------------------------------------------------------------

YAML_CASES = {
    "names_missing": ("", "no 'names:' key"),
    "names_a_number": ("names: 5\n", "'names' is 5, neither a list nor a mapping"),
    "nc_disagrees": ("names: [a, b]\nnc: 3\n", "'nc: 3' disagrees with 'names'"),
    "nc_not_a_number": ("names: [a, b]\nnc: two\n", "'nc: two' disagrees"),
    "names_numbers": ("names: [1, 2]\n", "'names' entry 0 is 1, not a text name"),
    "names_yaml_booleans": ("names: [yes, no]\n", "'names' entry 0 is True"),
    "names_nested": ("names: [[a], b]\n", "not a text name"),
    "names_ids_with_a_gap": ("names: {0: a, 2: b}\n", "the ids in 'names' are [0, 2]"),
    "names_empty": ("names: []\n", "'names' is empty"),
    "channels_odd": ("names: [a, b]\nchannels: 7\n", "'channels: 7'"),
}


@pytest.mark.parametrize("case", YAML_CASES, ids=list(YAML_CASES))
def test_data_yaml_keys_are_checked_at_validate(data: Path, case: str) -> None:
    names, needle = YAML_CASES[case]
    data.write_text("path: .\ntrain: images/train\nval: images/val\n" + names)
    refused(data, needle)


SHAPE_CASES = {
    "a_list": ("- train\n- val\n", "not a YOLO data.yaml"),
    "yaml_syntax": ("train: [images/train\nval: x\n", "cannot be read as YAML"),
    "deeply_nested": ("names: " + "[" * 5000 + "]" * 5000 + "\n", "cannot be read as YAML"),
    "split_a_number": ("train: 5\nval: images/val\nnames: [a, b]\n", "'train: 5'; expected a folder"),
    "split_a_mapping": ("train: {a: b}\nval: images/val\nnames: [a, b]\n", "expected a folder"),
    "no_val": ("train: images/train\nnames: [a, b]\n", "no 'val:' key"),
    "missing_folder": ("train: images/nowhere\nval: images/val\nnames: [a, b]\n", "do not exist"),
}


@pytest.mark.parametrize("case", SHAPE_CASES, ids=list(SHAPE_CASES))
def test_malformed_data_yaml_is_one_paragraph(data: Path, case: str) -> None:
    text, needle = SHAPE_CASES[case]
    data.write_text("path: .\n" + text if not text.startswith("-") else text)
    refused(data, needle)


def test_data_yaml_that_is_a_fifo_is_not_read(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "data.yaml")
    (tmp_path / "suite.yaml").write_text(suite_text(dataset="path: data.yaml", extra=STAGES))
    assert_refused(cli("validate", "suite.yaml", cwd=tmp_path), 2, "dataset.path", "data.yaml", "not found")


# --- 4. the splits: root, system folders, links, huge trees ----------------------------------


@pytest.mark.parametrize(
    "spec",
    ["path: .\ntrain: /\n", "path: /\ntrain: .\n", "path: .\ntrain: /proc/self\n", "path: .\ntrain: /sys\n"],
    ids=["train_root", "path_root", "proc", "sys"],
)
def test_root_and_system_folders_are_refused(data: Path, spec: str) -> None:
    data.write_text(spec + f"val: {data.parent}/images/val\nnames: [a, b]\n")
    refused(data, "'train' split is", "the filesystem root or a system folder")


def test_dangling_image_link_names_the_link(data: Path) -> None:
    link = data.parent / "images" / "train" / "gone.png"
    link.symlink_to(data.parent / "nowhere.png")
    refused(data, str(link), "dangling symlink")


def test_dangling_label_link_names_the_link(data: Path) -> None:
    label = data.parent / "labels" / "train" / "0.txt"
    label.unlink()
    label.symlink_to(data.parent / "nowhere.txt")
    refused(data, str(label), "dangling symlink")


def test_self_link_is_a_loop(data: Path) -> None:
    link = data.parent / "images" / "train" / "self.png"
    link.symlink_to(link)
    refused(data, str(link), "symlink loop")


def test_folder_link_cycle_is_refused(data: Path) -> None:
    (data.parent / "images" / "train" / "loop").symlink_to(data.parent / "images")
    refused(data, "loop", "symlink cycle")


def test_folder_reached_twice_is_refused(data: Path) -> None:
    sub = data.parent / "images" / "train" / "sub"
    write_image(sub / "x.png")
    (data.parent / "images" / "train" / "again").symlink_to(sub)
    refused(data, "already read through another path")


def test_a_tree_of_non_images_is_refused_quickly(data: Path) -> None:
    junk = data.parent / "images" / "train" / "junk"
    junk.mkdir()
    for i in range(MAX_OTHER_FILES + 1):
        (junk / f"{i}.so").touch()
    refused(data, "files that are not images")


def test_a_tree_too_deep_is_refused(data: Path) -> None:
    deep = data.parent / "images" / "train"
    for i in range(MAX_DEPTH + 1):
        deep = deep / f"d{i}"
    deep.mkdir(parents=True)
    refused(data, f"nested more than {MAX_DEPTH} folders deep")


def test_a_split_list_that_is_a_fifo_is_not_read(data: Path) -> None:
    os.mkfifo(data.parent / "train.txt")
    data.write_text("path: .\ntrain: train.txt\nval: images/val\nnames: [a, b]\n")
    refused(data, "train.txt is not a folder or a .txt image list")


def test_a_split_list_that_is_not_text(data: Path) -> None:
    (data.parent / "train.txt").write_bytes(b"\xff\xfe\x00binary\x80\x81")
    data.write_text("path: .\ntrain: train.txt\nval: images/val\nnames: [a, b]\n")
    refused(data, "not a UTF-8 text list")


def test_image_named_fifo_is_skipped_not_read(data: Path) -> None:
    os.mkfifo(data.parent / "images" / "train" / "pipe.png")
    _, out = validate(data)
    assert out.returncode == 0, out.stderr
    assert check_dataset(data).ignored == {"not_a_regular_file": 1}


# --- 5. bad samples --------------------------------------------------------------------------


def fill_train(data: Path, write: Callable[[Path, Path], object]) -> None:
    """Replace every train image and label with what ``write(image, label)`` makes."""
    for image in sorted((data.parent / "images" / "train").glob("*.png")):
        write(image, data.parent / "labels" / "train" / f"{image.stem}.txt")


ALL_BAD = {
    "empty_images": (lambda im, lb: im.write_bytes(b""), "empty image (0 bytes)"),
    "corrupt_images": (
        lambda im, lb: im.write_bytes(b"\x89PNG\r\n\x1a\nnot really"),
        "not an image PIL can decode",
    ),
    "tiny_images": (lambda im, lb: write_image(im, size=4), "smaller than 10 px"),
    "class_out_of_range": (lambda im, lb: lb.write_text("7 0.5 0.5 0.2 0.2\n"), "class id"),
    "negative_class": (lambda im, lb: lb.write_text("-1 0.5 0.5 0.2 0.2\n"), "class id"),
    "malformed_lines": (lambda im, lb: lb.write_text("0 0.5 0.5\n"), "is not 'cls cx cy w h'"),
    "words_not_numbers": (lambda im, lb: lb.write_text("cat 0.5 0.5 0.2 0.2\n"), "is not 'cls cx cy w h'"),
    "nan_coordinates": (lambda im, lb: lb.write_text("0 nan 0.5 0.2 0.2\n"), "is not 'cls cx cy w h'"),
    "out_of_bounds": (lambda im, lb: lb.write_text("0 1.5 0.5 0.2 0.2\n"), "outside [0, 1]"),
    "label_not_text": (lambda im, lb: lb.write_bytes(b"\xff\xfe\x80\x81"), "not UTF-8 text"),
}


@pytest.mark.parametrize("case", ALL_BAD, ids=list(ALL_BAD))
def test_a_split_with_no_usable_image_is_an_error(data: Path, case: str) -> None:
    write, needle = ALL_BAD[case]
    fill_train(data, write)
    text = refused(data, "none of the 3 images of the 'train' split is usable", needle)
    assert "pi_heif" not in text


def test_a_split_without_images_is_an_error(data: Path) -> None:
    for image in (data.parent / "images" / "train").glob("*.png"):
        image.unlink()
    (data.parent / "images" / "train" / "README.md").write_text("nothing here")
    refused(data, "no images in the 'train' split")


def test_run_refuses_a_broken_dataset_before_any_work(data: Path) -> None:
    data.write_text("path: .\ntrain: images/train\nval: images/val\nnames: 5\n")
    refused(data, "'names' is 5", verb="run")
    assert not (data.parent.parent / "results").exists() or not list(
        (data.parent.parent / "results").rglob("*.db")
    )


def test_table_never_reads_the_dataset(data: Path) -> None:
    data.write_text("path: .\ntrain: /\nval: images/val\nnames: 5\n")
    _, out = validate(data, "table")
    assert "Traceback" not in out.stderr


def test_ignored_samples_are_counted_with_examples_and_left_out_of_the_staged_copy(
    data: Path, tmp_path: Path
) -> None:
    images, labels = data.parent / "images" / "train", data.parent / "labels" / "train"
    for i in range(EXAMPLES + 2):  # more than EXAMPLES of one reason
        (images / f"empty{i}.png").write_bytes(b"")
    (images / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    write_image(images / "small.png", size=5)
    write_image(images / "oob.png")
    (labels / "oob.txt").write_text("0 0.5 0.5 0.2 0.2\n0 0.5 1.7 0.2 0.2\n")
    write_image(images / "cls.png")
    (labels / "cls.txt").write_text("2 0.5 0.5 0.2 0.2\n")
    write_image(images / "bad.png")
    (labels / "bad.txt").write_text("0 0.5 0.5 0.2\n")
    write_image(images / "background.png")  # no label file: a background image, used
    write_image(images / ".hidden.png")  # ultralytics' glob skips it: not counted either
    ref = check_dataset(data)
    assert ref.ignored == {
        "empty_image": EXAMPLES + 2,
        "unreadable_image": 1,
        "image_too_small": 1,
        "label_out_of_bounds": 1,
        "label_class_out_of_range": 1,
        "label_malformed": 1,
    }
    assert len(ref.ignored_examples["empty_image"]) == EXAMPLES
    assert ref.ignored_examples["label_malformed"] == (str(images / "bad.png"),)
    staged = yaml.safe_load(staged_copy(ref, tmp_path / "work").read_text())
    used = sorted(p.name for p in Path(staged["train"]).iterdir())
    assert used == ["0.png", "1.png", "2.png", "background.png"]


@pytest.mark.parametrize(
    "value",
    ["a" * 5000 + ".yaml", "~no-such-user-xyz/m.yaml", "models/\u0000evil.yaml"],
    ids=["name_too_long", "unknown_home", "nul_byte"],
)
def test_hostile_model_paths_are_one_paragraph(tmp_path: Path, value: str) -> None:
    (tmp_path / "suite.yaml").write_text(
        suite_text(model=f'"{value}"', extra=STAGES).replace("\u0000", "\\0")
    )
    assert_refused(cli("validate", "suite.yaml", cwd=tmp_path), 2, "variants.base.model")


# --- staging: a second writer, a full disk ---------------------------------------------------


def test_two_writers_staging_the_same_data_leave_one_complete_copy(data: Path, tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    ref = check_dataset(data)
    work = tmp_path / "work"
    with ThreadPoolExecutor(4) as pool:
        staged = set(pool.map(lambda _: staged_copy(ref, work), range(4)))
    assert len(staged) == 1
    (target,) = staged
    assert yaml.safe_load(target.read_text())["names"] == {0: "a", 1: "b"}
    assert [p.name for p in (work / "data").iterdir()] == [target.parent.name]  # no temporary left


def test_an_incomplete_staged_copy_is_replaced(data: Path, tmp_path: Path) -> None:
    ref = check_dataset(data)
    first = staged_copy(ref, tmp_path / "work")
    (first.parent / ".greenbench-complete").unlink()  # a crash before the copy was marked complete
    (first.parent / "images" / "train" / "stray.png").write_bytes(b"half written")
    again = staged_copy(ref, tmp_path / "work")
    assert again == first and not (again.parent / "images" / "train" / "stray.png").exists()


def test_a_full_disk_while_staging_is_one_paragraph_and_leaves_no_half_copy(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from greenbench.errors import GreenbenchError

    before = sorted(p.name for p in data.parent.rglob("*"))

    def full(self: Path, target: object, target_is_directory: bool = False) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(self))

    monkeypatch.setattr(Path, "symlink_to", full)
    with pytest.raises(GreenbenchError, match=r"cannot stage the dataset .*No space left on device") as e:
        staged_copy(check_dataset(data), tmp_path / "work")
    assert "\n" not in str(e.value) and "--workdir" in str(e.value)
    assert list((tmp_path / "work" / "data").iterdir()) == []
    assert sorted(p.name for p in data.parent.rglob("*")) == before
