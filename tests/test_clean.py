"""``greenbench clean``: only work-folder artifacts no record references go, with their sizes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from greenbench.cli import main
from greenbench.run.lock import WorkdirLock
from greenbench.store import Store
from tests.factories import make_record


def work_folder(root: Path) -> Path:
    """A work folder as runs leave it: stage artifacts, evaluations, data, logs, a pending record."""
    work = root / "work"
    files = {
        "artifacts/train-k1/weights/best.pt": 3000,  # the stored record's checkpoint
        "artifacts/export-k2/model.onnx": 2000,  # the stored record's measured model
        "artifacts/prune-k3/pruned.pt": 1000,  # the pending record's checkpoint
        "artifacts/train-old/weights/best.pt": 5_000_000,  # no record: a stale cache
        "measure/base-vk1/results.json": 10,  # the stored record's variant key
        "measure/gone-vk9/results.json": 700_000,
        "datasets/shapes/img0.png": 100,
        "logs/r0/worker.log": 100,
    }
    for name, size in files.items():
        path = work / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * size)
    pending = make_record(
        variant="pruned",
        variant_hash="vk3",
        stages=[{"checkpoint": str(work / "artifacts/prune-k3/pruned.pt")}],
    )
    (work / "pending").mkdir()
    (work / "pending" / "r2-pruned.json").write_text(json.dumps(pending.to_dict()))
    return work


def stored(root: Path, work: Path) -> Path:
    db = root / "gb.db"
    real = work.resolve()  # runs store resolved paths
    record = make_record(
        variant="base",
        variant_hash="vk1",
        stages=[{"name": "train", "checkpoint": str(real / "artifacts/train-k1/weights/best.pt")}],
        measurement={"artifact": {"kind": "onnx", "path": str(real / "artifacts/export-k2/model.onnx")}},
    )
    with Store(db) as s:
        s.add(record)
    return db


def tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and p.name != ".lock"}


def test_dry_run_lists_then_clean_removes_only_the_unreferenced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    work = work_folder(tmp_path)
    link = tmp_path / "link"
    link.symlink_to(work)  # the folder named through a link: the records' resolved paths still match
    db = stored(tmp_path, work)
    before = tree(work)
    assert main(["clean", "--store", str(db), "--workdir", str(link), "--dry-run"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        f"would remove {link / 'artifacts/train-old'} (5.0 MB)",
        f"would remove {link / 'measure/gone-vk9'} (700.0 kB)",
    ]
    assert "would remove 2 unreferenced entries, 5.7 MB" in err
    assert tree(work) == before  # a dry run removes nothing
    assert main(["clean", "--store", str(db), "--workdir", str(link)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"removed {link / 'artifacts/train-old'} (5.0 MB)") and "removed 2" in err
    assert tree(work) == {p for p in before if not p.startswith(("artifacts/train-old", "measure/gone-vk9"))}
    assert main(["clean", "--store", str(db), "--workdir", str(link)]) == 0  # again: nothing left to do
    assert "removed 0 unreferenced entries" in capsys.readouterr().err


def test_clean_never_runs_beside_a_run_or_without_its_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    work = work_folder(tmp_path)
    db = stored(tmp_path, work)
    before = tree(work)
    with WorkdirLock(work, "quickstart"):  # a run in progress: its artifacts are not stored yet
        assert main(["clean", "--store", str(db), "--workdir", str(work)]) == 1
    assert "quickstart" in capsys.readouterr().err
    assert main(["clean", "--store", str(tmp_path / "none.db"), "--workdir", str(work)]) == 1
    assert "no results store" in capsys.readouterr().err
    (work / "pending" / "broken.json").write_text("{not json")
    assert main(["clean", "--store", str(db), "--workdir", str(work)]) == 1
    assert "broken.json" in capsys.readouterr().err
    assert tree(work) == before | {"pending/broken.json"}
    monkeypatch.setenv("GREENBENCH_WORKDIR", str(tmp_path / "nowhere"))  # the default work folder
    assert main(["clean", "--store", str(db)]) == 0
    assert "no work folder at" in capsys.readouterr().err
