"""A smoke run of a reduced yolo_thws DAG through the real CLI: sparse -> two prune ratios from one
sparse model -> fine-tune -> export -> int8 on ONNX Runtime and OpenVINO, and a GhostNet backbone,
on synthetic data with the study's 14 class names. No dataset and no pretrained weights exist."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from greenbench.store import Store
from tests.e2e.test_run_cli import assert_no_network, greenbench

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
KEEP = (
    "yolov5s", "sparse-5e-4", "prune-5e-4-30", "prune-5e-4-50", "ft-5e-4-50", "ghostnet",
    "ft-5e-4-50-ort", "ft-5e-4-50-ort-int8", "ft-5e-4-50-ov-int8",
)  # fmt: skip


def _reduced(tmp_path: Path) -> Path:
    data = yaml.safe_load((ROOT / "suites" / "yolo_thws.yaml").read_text())
    data["variants"] = {k: v for k, v in data["variants"].items() if k in KEEP}
    for spec in data["variants"].values():
        if str(spec.get("model", "")).startswith("../models/"):
            spec["model"] = str(ROOT / "models" / Path(spec["model"]).name)
        for stage in spec.get("stages", []):
            params = next(iter(stage.values())) if isinstance(stage, dict) else {}
            if isinstance(params.get("hyp"), str):  # the hyperparameter file beside the suite
                params["hyp"] = str(ROOT / "suites" / params["hyp"])
    data["name"] = "thws_reduced"
    path = tmp_path / "suites" / "thws_reduced.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_a_smoke_run_of_the_study_dag_goes_end_to_end(tmp_path: Path) -> None:
    suite = _reduced(tmp_path)
    store = tmp_path / "gb.db"
    without = greenbench("run", str(suite), "--store", str(store), cwd=tmp_path)
    assert without.returncode == 2 and "--smoke" in without.stderr and "Traceback" not in without.stderr

    out = greenbench("run", str(suite), "--smoke", "--store", str(store), "--no-idle", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:] + out.stdout[-3000:]
    assert_no_network(tmp_path)
    assert "Table: pruning" in out.stdout and "Table: backbones" in out.stdout
    md = greenbench("table", str(suite), "--smoke", "--store", str(store), "--format", "md", cwd=tmp_path)
    assert "SMOKE RUN" in md.stdout and "prune_ratio" in md.stdout
    with Store(store) as s:
        records = {r.variant: r for r in s.records(suite="thws_reduced")}
    assert set(records) == set(KEEP)
    assert all(r.status == "ok" for r in records.values()), {v: r.error for v, r in records.items()}
    assert all(r.smoke is not None for r in records.values())
    assert any("from scratch" in n for n in records["yolov5s"].smoke["notes"])  # type: ignore[index]
    # the shared prefix ran once: one sparse_train stage for both prune ratios
    sparse = [st for r in records.values() for st in r.stages if st["name"] == "sparse_train"]
    assert len(sparse) == 1
    # the authors' choices, as the records say them
    authors = {"lambda_schedule": "linear_decay", "beta_l1": 10.0, "bn": "non_residual"}
    assert {k: sparse[0]["info"][k] for k in authors} == authors
    assert sparse[0]["info"]["lambda_applies"] == "per batch"
    prune = next(st for st in records["prune-5e-4-50"].stages if st["name"] == "prune")
    assert prune["info"]["criterion"] == "bn_threshold" and prune["info"]["channels_per_layer"]
    tune = next(st for st in records["ft-5e-4-50"].stages if st["name"] == "finetune")
    assert tune["info"]["hyp_carried"]["mixup"] == 0.243 and "obj" not in tune["info"]["hyp_not_carried"]
    # the study's head takes the file's YOLOv5 loss settings
    assert tune["info"]["loss"]["obj"] == 0.301 and tune["info"]["loss"]["anchor_t"] == 2.91
    assert "fl_gamma" in tune["info"]["hyp_not_carried"]
    p30, p50 = records["prune-5e-4-30"], records["prune-5e-4-50"]
    assert p50.value("params") < p30.value("params") < records["yolov5s"].value("params")  # type: ignore[operator]
    ft = records["ft-5e-4-50"]
    assert ft.value("params") == p50.value("params")
    int8 = records["ft-5e-4-50-ort-int8"]
    assert int8.value("size_mb") < records["ft-5e-4-50-ort"].value("size_mb")  # type: ignore[operator]
    assert records["ft-5e-4-50-ov-int8"].runtime.startswith("openvino")  # type: ignore[union-attr]
    # scope both, as the study reports: the model alone and the whole detection of an image (NMS too)
    for name, r in records.items():
        assert r.metrics["latency_ms"]["value"] > 0 and r.metrics["latency_total_ms"]["value"] > 0, name
    assert "NMS" in records["yolov5s"].measurement["total_runtime"]["per_call"]
    assert "latency_total_ms" in md.stdout

    table = greenbench("table", str(suite), "--store", str(store), cwd=tmp_path)
    assert table.returncode != 0 and "--smoke" in table.stderr  # never shown as real results
