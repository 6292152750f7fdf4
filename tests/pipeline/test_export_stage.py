"""Stage ``export``: a real ultralytics ONNX export of a tiny yolov5n, offline, in the stage's folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import onnx
import pytest

from greenbench.errors import GreenbenchError
from greenbench.pipeline import get_stage
from greenbench.pipeline.export import ExportStage, check_eval_imgsz, fixed_imgsz, onnx_input_dims
from greenbench.runtimes.base import artifact_kind
from tests.pipeline.conftest import Slim

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("params", "key"),
    [({"format": "tflite"}, "format"), ({"opset": 3}, "opset"), ({"simplify": "yes"}, "simplify"),
     ({"imgsz": 320}, "imgsz"), ({"dynamic": 1}, "dynamic")],
)  # fmt: skip
def test_bad_params_are_rejected_naming_the_key(params: dict[str, Any], key: str) -> None:
    with pytest.raises(ValueError, match=key):
        ExportStage.validate_params(params)


def test_defaults_are_filled_in() -> None:
    assert get_stage("export", "detect") is ExportStage
    assert ExportStage.validate_params({}) == {
        "format": "onnx",
        "opset": None,
        "simplify": True,
        "dynamic": False,
    }


@pytest.fixture(scope="module")
def exported(slim: Slim) -> tuple[Path, Any]:
    parent = slim.untrained("export-parent")
    return parent, slim.run(ExportStage, {}, parent, "export")


def test_export_writes_one_fixed_shape_onnx_in_its_own_folder(slim: Slim, exported: tuple[Path, Any]) -> None:
    parent, result = exported
    path = Path(result.checkpoint)
    assert path == slim.root / "export" / "model.onnx" and artifact_kind(path) == "onnx"
    assert sorted(p.name for p in parent.parent.iterdir()) == ["model.pt"]  # the parent's folder untouched
    assert not (slim.root / "export" / "model.pt").exists()  # the working copy is gone
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    assert len(model.graph.output) == 1
    assert onnx_input_dims(path) == [1, 3, 64, 64] and fixed_imgsz(path) == 64
    info = result.info
    assert info["export"] == {"format": "onnx", "opset": None, "simplify": True, "dynamic": False,
                              "imgsz": 64, "batch": 1}  # fmt: skip
    assert info["outputs"][0]["shape"][:2] == [1, 4 + 2]  # boxes + 2 classes, decoded
    assert info["opset"] >= 11 and info["size_mb"] == pytest.approx(path.stat().st_size / 1e6)
    assert {"ultralytics", "onnx", "onnxslim"} <= set(info["versions"])
    assert result.energy.duration_s > 0 and result.energy.energy_j > 0
    meta = {p.key for p in model.metadata_props}
    assert {"names", "stride", "imgsz"} <= meta  # what ultralytics evaluates the file by


def test_evaluating_a_fixed_export_at_another_size_is_refused(exported: tuple[Path, Any]) -> None:
    path = Path(exported[1].checkpoint)
    check_eval_imgsz(path, 64)
    with pytest.raises(GreenbenchError, match=r"fixed input \(1, 3, 64, 64\).*imgsz 128.*dynamic: true"):
        check_eval_imgsz(path, 128, "v")


def test_dynamic_export_and_an_onnx_input_is_refused(slim: Slim, exported: tuple[Path, Any]) -> None:
    parent, fixed = exported
    result = slim.run(ExportStage, {"dynamic": True, "simplify": False}, parent, "export-dyn")
    dims = onnx_input_dims(Path(result.checkpoint))
    assert dims[1] == 3 and not all(isinstance(d, int) for d in dims)
    assert fixed_imgsz(Path(result.checkpoint)) is None
    check_eval_imgsz(Path(result.checkpoint), 128)  # any size
    with pytest.raises(GreenbenchError, match=r"variant 'v': stage 'export' takes a torch checkpoint"):
        slim.run(ExportStage, {}, Path(fixed.checkpoint), "export-again")
