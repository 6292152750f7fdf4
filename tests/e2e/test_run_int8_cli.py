"""End to end through the real CLI: train → export → int8 quantize, measured on onnxruntime and on
OpenVINO in the same interleaved rounds, with accuracy for every runtime."""

from __future__ import annotations

from pathlib import Path

import pytest

from greenbench.store import Store
from tests.e2e.test_run_cli import assert_no_network, greenbench

pytestmark = pytest.mark.slow

VARIANTS = """\
  onnx: {from: base, stages: [export]}
  int8: {from: onnx, stages: [{quantize: {calibration_images: 8}}]}
  int8_ov:
    from: onnx
    stages: [{quantize: {calibration_images: 8}}]
    runtime: {name: openvino, precision: f32}
"""


def test_export_quantize_and_openvino_variants_run_end_to_end(micro_suite: Path, tmp_path: Path) -> None:
    text = micro_suite.read_text().split("  child:")[0] + VARIANTS
    suite = tmp_path / "int8.yaml"
    suite.write_text(text.replace("name: micro", "name: int8"))
    store = tmp_path / "gb.db"
    out = greenbench("run", str(suite), "--store", str(store), "--no-idle", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:] + out.stdout[-3000:]
    assert_no_network(tmp_path)
    with Store(store) as s:
        records = {r.variant: r for r in s.records(suite="int8")}
    assert set(records) == {"base", "onnx", "int8", "int8_ov"}
    assert all(r.status == "ok" for r in records.values()), {v: r.error for v, r in records.items()}
    base, onnx, int8, int8_ov = (records[v] for v in ("base", "onnx", "int8", "int8_ov"))
    assert (base.runtime, onnx.runtime, int8.runtime) == ("torch", "onnxruntime", "onnxruntime")
    assert int8_ov.runtime == "openvino(precision=f32, streams=1)"
    desc = int8_ov.measurement["runtime"]
    assert desc["runtime"] == "openvino" and desc["compiled_properties"]["INFERENCE_NUM_THREADS"] == 1
    assert desc["precision"] == "int8" and desc["compiled_properties"]["INFERENCE_PRECISION_HINT"] == "f32"
    assert int8.measurement["runtime"]["precision"] == "int8"
    for r in records.values():  # accuracy for every runtime × precision
        for name in ("precision", "recall", "map50", "map50_95"):
            assert 0.0 <= r.metrics[name]["value"] <= 1.0
    assert int8.metrics["size_mb"]["value"] < onnx.metrics["size_mb"]["value"] / 2
    assert int8.measurement["artifact"]["path"] == int8_ov.measurement["artifact"]["path"]  # one int8 file
    quantize = [st for r in (int8, int8_ov) for st in r.stages if st["name"] == "quantize"]
    assert len(quantize) == 2 and sorted(st["cached"] for st in quantize) == [False, True]  # made once
    export = next(st for st in onnx.stages if st["name"] == "export")
    assert export["energy_j"] > 0
    assert isinstance(base.device["isa"], list)  # the instruction set int8 and bf16 ran on
    for r in (onnx, int8, int8_ov):
        assert r.deltas["latency_ms"]["paired"]  # measured beside the torch baseline
