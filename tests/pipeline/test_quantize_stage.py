"""Stage ``quantize``: onnxruntime's static QDQ int8 recipe on a real ultralytics export, calibrated on
the train split, and its dynamic variant."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from greenbench.errors import GreenbenchError
from greenbench.pipeline import get_stage
from greenbench.pipeline.export import ExportStage
from greenbench.pipeline.quantize import QuantizeStage
from greenbench.tasks.detect.calibration import letterboxed, pick, train_images
from tests.ort_quantizer import use_onnxruntime_onnx_model
from tests.pipeline.conftest import Slim

pytestmark = pytest.mark.slow
QUANTIZED = {"Conv", "Gemm", "MatMul"}


@pytest.mark.parametrize(
    ("params", "key"),
    [({"mode": "int4"}, "mode"), ({"calibration_images": 0}, "calibration_images"),
     ({"calibration_images": "8"}, "calibration_images"), ({"ops": ["Conv", "1x"]}, "ops"),
     ({"ops": []}, "ops"), ({"per_tensor": True}, "per_tensor")],
)  # fmt: skip
def test_bad_params_are_rejected_naming_the_key(params: dict[str, Any], key: str) -> None:
    with pytest.raises(ValueError, match=key):
        QuantizeStage.validate_params(params)


def test_defaults_are_filled_in() -> None:
    assert get_stage("quantize", "detect") is QuantizeStage
    assert QuantizeStage.validate_params({"ops": ["MatMul", "Conv", "Conv"]}) == {
        "mode": "int8_static", "calibration_images": 32, "ops": ["Conv", "MatMul"], "seed": 0,
    }  # fmt: skip


@pytest.fixture(scope="module")
def fp32(slim: Slim) -> Path:
    return Path(slim.run(ExportStage, {}, slim.untrained("q-parent"), "q-export").checkpoint)


@pytest.fixture(scope="module", autouse=True)
def _quantizer() -> None:
    use_onnxruntime_onnx_model()


@pytest.fixture(scope="module")
def int8(slim: Slim, fp32: Path) -> Any:
    return slim.run(QuantizeStage, {"calibration_images": 8}, fp32, "q-int8")


def _run(path: Path) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((1, 3, 64, 64), dtype=np.float32)
    return np.asarray(session.run(None, {session.get_inputs()[0].name: x})[0])


def test_static_int8_runs_is_smaller_and_says_how_it_was_made(slim: Slim, fp32: Path, int8: Any) -> None:
    path = Path(int8.checkpoint)
    assert path.name == "model.onnx" and path.parent == slim.root / "q-int8"
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.onnx"]  # no pre-processed leftovers
    assert path.stat().st_size < fp32.stat().st_size / 2  # int8 weights: about a quarter
    assert _run(path).shape == _run(fp32).shape
    info = int8.info
    q = info["quantize"]
    assert (q["mode"], q["format"], q["ops"]) == ("int8_static", "QDQ", ["Conv", "Gemm", "MatMul"])
    conv = sum(n.op_type == "Conv" for n in onnx.load(str(fp32)).graph.node)
    assert q["quantized_nodes"] == {"Conv": conv} and q["quantized_tensors"] > conv
    assert q["excluded_nodes"] > 0
    cal = info["calibration"]
    assert cal["images"] == 8 == cal["requested"] and cal["split"] == "train" and "train" in cal["source"]
    assert cal["imgsz"] == 64 and cal["seed"] == 0
    assert info["size_after_mb"] < info["size_before_mb"] and info["source"] == str(fp32)
    assert int8.energy.energy_j > 0
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert meta["imgsz"] == "[64, 64]" and "names" in meta  # ultralytics evaluates by it


def test_only_conv_gemm_matmul_are_quantized_and_the_decode_stays_fp32(int8: Any) -> None:
    """QDQ pairs only at the inputs and outputs of the quantized operators: quantizing the
    Detect decode (box pixels and class scores on one int8 scale) gives mAP 0."""
    graph = onnx.load(str(int8.checkpoint)).graph
    producer = {o: n for n in graph.node for o in n.output}
    readers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    initializers = {i.name for i in graph.initializer}
    dequantized = {n.output[0]: n for n in graph.node if n.op_type == "DequantizeLinear"}
    for dq in dequantized.values():
        if dq.input[0] in initializers:  # a quantized weight: read by a quantized operator only
            assert {n.op_type for n in readers[dq.output[0]]} <= QUANTIZED
    for q in (n for n in graph.node if n.op_type == "QuantizeLinear"):
        source = producer.get(q.input[0])
        after = {r.op_type for dq in readers[q.output[0]] for r in readers.get(dq.output[0], [])}
        # an activation is quantized where a quantized operator makes it or reads it
        assert (source is not None and source.op_type in QUANTIZED) or after & QUANTIZED, q.name
    last = producer[graph.output[0].name]  # the decode's final Concat, and what feeds it
    assert not set(last.input) & set(dequantized)
    for name in last.input:
        assert not set(producer[name].input) & set(dequantized), producer[name].op_type


def test_int8_accuracy_is_computed(slim: Slim, int8: Any) -> None:
    path = Path(int8.checkpoint)
    metrics = slim.adapter.evaluate(slim.adapter.load(path), slim.data_yaml, 64, slim.root / "q-val", "val")
    assert set(metrics) == {"precision", "recall", "map50", "map50_95"}
    assert all(0.0 <= v <= 1.0 for v in metrics.values())


def test_calibration_images_are_train_images_chosen_by_seed(slim: Slim) -> None:
    images, where = train_images(slim.data_yaml)
    assert len(images) >= 10 and all("train" in str(p) for p in images) and "train" in where
    assert pick(images, 8, 0) == pick(images, 8, 0) != pick(images, 8, 1)
    assert pick(images, 1000, 0) == images
    x = letterboxed(images[0], 64)
    assert x.shape == (1, 3, 64, 64) and x.dtype == np.float32 and 0.0 <= x.min() <= x.max() <= 1.0


def test_dynamic_int8_runs_and_is_smaller(slim: Slim, fp32: Path) -> None:
    result = slim.run(QuantizeStage, {"mode": "int8_dynamic"}, fp32, "q-dyn")
    path = Path(result.checkpoint)
    assert path.stat().st_size < fp32.stat().st_size and _run(path).shape == _run(fp32).shape
    assert result.info["calibration"] == {} and "no speed-up for CNNs" in result.info["note"]
    assert result.info["quantize"]["quantized_tensors"] > 0


def test_a_torch_parent_is_refused_saying_to_export_first(slim: Slim) -> None:
    with pytest.raises(
        GreenbenchError, match=r"variant 'v': stage 'quantize' needs an ONNX model.*add '- export'"
    ):
        slim.run(QuantizeStage, {}, slim.untrained("q-torch"), "q-torch-out")
