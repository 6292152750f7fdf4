"""The classification task through the real CLI: a smoke run of the ResNet transfer study's
DAG (freeze vs fine-tune, distillation from a teacher variant, low rank, pruning, int8), and
the digits quickstart on real data written by ``greenbench data digits``. No pretrained weights
and no network."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from greenbench.store import Store
from tests.e2e.test_run_cli import assert_no_network, greenbench

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def _reduced(tmp_path: Path, suite: str, keep: dict[str, dict[str, object]], **top: object) -> Path:
    """``suites/SUITE`` with only the variants in ``keep`` (each updated with its mapping)."""
    data = yaml.safe_load((ROOT / "suites" / suite).read_text())
    data["variants"] = {k: {**data["variants"].get(k, {}), **extra} for k, extra in keep.items()}
    data.update(top)
    path = tmp_path / "suites" / suite
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_a_smoke_run_of_the_resnet_transfer_dag(tmp_path: Path) -> None:
    keep: dict[str, dict[str, object]] = {
        "resnet18-freeze": {},
        "resnet18-finetune": {},
        # the study's teacher is the curriculum ResNet-152; a ResNet-18 keeps this test short
        "resnet18-kd": {"stages": [{"distill": {"teacher": "resnet18-finetune", "temperature": 4.0}}]},
        "resnet18-lowrank25": {},
        "resnet18-pruned": {},
        "resnet18-ort-int8": {
            "from": "resnet18-finetune",
            "stages": ["export", {"quantize": {"mode": "int8_static", "calibration_images": 8}}],
            "runtime": "onnxruntime",
            "table": "runtimes",
        },
    }
    # the frozen model as baseline: the compression rows' parent (the fine-tuned one) is another
    suite = _reduced(tmp_path, "resnet_transfer.yaml", keep, name="rt_reduced", baseline="resnet18-freeze")
    data = yaml.safe_load(suite.read_text())
    data["measure"]["latency"]["scope"] = "total"  # timed per image from its file, as the study's "total"
    suite.write_text(yaml.safe_dump(data, sort_keys=False))
    store = tmp_path / "gb.db"
    without = greenbench("run", str(suite), "--store", str(store), cwd=tmp_path)
    assert without.returncode == 2 and "--smoke" in without.stderr and "Traceback" not in without.stderr
    assert "hub/checkpoints" in without.stderr  # where torchvision's weights go

    out = greenbench("run", str(suite), "--smoke", "--store", str(store), "--no-idle", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:] + out.stdout[-3000:]
    assert_no_network(tmp_path)
    assert "top1" in out.stdout and "top5" in out.stdout and "%" in out.stdout
    with Store(store) as s:
        records = {r.variant: r for r in s.records(suite="rt_reduced")}
    assert set(records) == set(keep)
    assert all(r.status == "ok" for r in records.values()), {v: r.error for v, r in records.items()}
    notes = records["resnet18-finetune"].smoke["notes"]  # type: ignore[index]
    assert any("resnet18-f37072fd.pth not found; trained from scratch" in n for n in notes)
    for r in records.values():
        assert 0.0 <= r.value("top1") <= r.value("top5") <= 1.0  # type: ignore[operator]
        details = r.measurement["accuracy_details"]
        classes = len(details["classes"])
        assert (
            len(details["confusion"]) == classes and sum(map(sum, details["confusion"])) == details["images"]
        )

    freeze = records["resnet18-freeze"].stages[0]["info"]
    assert freeze["freeze"] == "backbone" and freeze["trainable_params"] < freeze["total_params"] / 100
    finetune = records["resnet18-finetune"].stages[0]["info"]
    assert finetune["trainable_params"] == finetune["total_params"]

    base_params = records["resnet18-finetune"].value("params")
    assert records["resnet18-lowrank25"].value("params") < base_params  # type: ignore[operator]
    assert records["resnet18-pruned"].value("params") < base_params  # type: ignore[operator]
    lowrank = next(st for st in records["resnet18-lowrank25"].stages if st["name"] == "lowrank")
    assert (
        lowrank["info"]["layers_replaced"] > 0
        and lowrank["info"]["params_after"] < lowrank["info"]["params_before"]
    )

    kd = records["resnet18-kd"]
    (distill,) = kd.stages
    assert distill["name"] == "distill" and distill["info"]["teacher"] == "resnet18-finetune"
    # the student's lineage cost includes the teacher it read (its stages ran first, cached)
    assert kd.value("train_energy_lineage_j") > kd.value("train_energy_j")  # type: ignore[operator]
    assert all(r.measurement["runtime"]["scope"] == "total" for r in records.values())
    # compression rows against their parent (the suite's tables: {compression: {delta: parent}}),
    # paired in time with it: every variant was measured interleaved with every other
    parent = records["resnet18-finetune"]
    paired = records["resnet18-lowrank25"].measurement["parent_deltas"]["latency_ms"]
    assert paired["parent"] == "resnet18-finetune" and paired["parent_key"] == parent.variant_hash
    assert (
        paired["paired"]
        and paired["delta_pct"] != records["resnet18-lowrank25"].deltas["latency_ms"]["delta_pct"]
    )
    md = greenbench("table", str(suite), "--smoke", "--store", str(store), "--format", "md", cwd=tmp_path)
    assert "scope total: per image from its file" in md.stdout  # the notes say what a call was
    compression = md.stdout.split("### Table: compression", 1)[1].split("###", 1)[0]
    assert "Δ vs" in compression and "| resnet18-finetune" in compression
    int8 = records["resnet18-ort-int8"]
    assert int8.runtime.startswith("onnxruntime") and int8.value("size_mb") < base_params * 4 / 1e6  # type: ignore[operator,union-attr]


def test_the_digits_quickstart_on_real_data(tmp_path: Path) -> None:
    wrote = greenbench("data", "digits", "--out", str(tmp_path / "data" / "digits"), cwd=tmp_path)
    assert wrote.returncode == 0, wrote.stderr
    # distillation, pruning and int8 are the smoke test's: here the real data, trained and measured
    keep: dict[str, dict[str, object]] = {
        "resnet18": {},
        "resnet18-lowrank": {"stages": [{"lowrank": {"rank_ratio": 0.5}}, {"train": {"epochs": 1}}]},
    }
    suite = _reduced(
        tmp_path,
        "classify_quickstart.yaml",
        keep,
        name="digits_reduced",
        defaults={"epochs": 2, "imgsz": 32, "batch": 32, "optimizer": "adam", "lr": 0.002, "seed": 0},
        measure={"latency": {"warmup": 1}, "protocol": {"rounds": 2, "blocks": 2, "min_calls": 2},
                 "energy": {"idle_s": 0.2, "min_window_s": 0.05}},
    )  # fmt: skip
    store = tmp_path / "gb.db"
    out = greenbench("run", str(suite), "--store", str(store), cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:] + out.stdout[-3000:]
    assert_no_network(tmp_path)
    with Store(store) as s:
        records = {r.variant: r for r in s.records(suite="digits_reduced")}
    assert all(r.status == "ok" for r in records.values()), {v: r.error for v, r in records.items()}
    resnet = records["resnet18"]
    assert resnet.measurement["accuracy_details"]["images"] > 150  # the real test split, not a toy
    assert resnet.value("top1") > 0.3  # type: ignore[operator]  # 10 classes: chance is 0.1
    assert records["resnet18-lowrank"].value("params") < resnet.value("params")  # type: ignore[operator]
    table = greenbench("table", str(suite), "--store", str(store), "--format", "md", cwd=tmp_path)
    assert table.returncode == 0 and "top1" in table.stdout and "resnet18 (baseline)" in table.stdout
