"""Runtime ``openvino`` on a real ultralytics export and its int8 (QDQ) quantization: options,
properties read back from the compiled model, precision, errors, and accuracy computed by OpenVINO
equal to onnxruntime's on the same file."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from greenbench.errors import GreenbenchError
from greenbench.runtimes import eval_forward, get_runtime, runtime_class
from greenbench.runtimes.base import Artifact, RuntimeSettings, runtime_label
from greenbench.runtimes.openvino import DEFAULTS, check_options, check_precision
from greenbench.tasks.detect.synth import SynthSpec, cached_synth
from tests.onnx_model import TinyYolo, export_tiny_yolo, hand_built, offline_ultralytics
from tests.ort_quantizer import use_onnxruntime_onnx_model

REPO = Path(__file__).parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TinyYolo, Path, Path]]:
    """yolov5n untrained, exported (static 1x3x64x64, simplified), its static int8 QDQ model, and
    a 2-class synthetic data set."""
    from greenbench.measure.energy.estimate import EstimateMeter
    from greenbench.pipeline.base import StageContext
    from greenbench.pipeline.quantize import QuantizeStage
    from greenbench.tasks.detect import DetectTask

    folder = tmp_path_factory.mktemp("ov")
    use_onnxruntime_onnx_model()
    with offline_ultralytics(folder / "work"):
        model = export_tiny_yolo(folder, imgsz=64, simplify=True)
        data = cached_synth(folder / "data", SynthSpec(classes=2, images=20, imgsz=64, seed=1))
        meter = EstimateMeter()
        ctx = StageContext(
            task=DetectTask(folder / "work"),
            data_yaml=data,
            defaults={"imgsz": 64},
            params=QuantizeStage.validate_params({"calibration_images": 4}),
            input=model.onnx,
            model="yolov5n.yaml",
            weights=None,
            out_dir=folder / "int8",
            meter=meter,
        )
        with meter:
            int8 = Path(QuantizeStage().run(ctx).checkpoint)
        yield model, int8, data


def ov(path: Path, **options: Any) -> Any:
    return get_runtime("openvino").load(
        Artifact("onnx", str(path)), RuntimeSettings(threads=1, imgsz=64, options=options)
    )


# --- options ----------------------------------------------------------------------------------


def test_options_are_checked_and_defaults_filled_in() -> None:
    assert check_options({}) == DEFAULTS == {"precision": "f32", "streams": 1}
    assert runtime_class("openvino").check_options({"precision": "bf16"}) == {
        "precision": "bf16",
        "streams": 1,
    }
    assert (
        runtime_label("openvino", {"precision": "bf16", "streams": 1})
        == "openvino(precision=bf16, streams=1)"
    )
    assert runtime_label("torch", {}) == "torch"


@pytest.mark.parametrize(
    ("options", "key"),
    [({"bogus": 1}, "'bogus'"), ({"precision": "int8"}, "'precision'"),
     ({"precision": "fp16"}, "'precision'"), ({"streams": 0}, "'streams'"), ({"streams": True}, "'streams'"),
     ({"threads": 2}, "'threads'")],
)  # fmt: skip
def test_bad_options_name_the_key(options: dict[str, Any], key: str) -> None:
    with pytest.raises(ValueError, match=key):
        check_options(options)


@pytest.mark.parametrize("name", ["torch", "onnxruntime"])
def test_the_other_runtimes_take_no_options(name: str) -> None:
    assert runtime_class(name).check_options({}) == {}
    with pytest.raises(ValueError, match=f"unknown option 'precision' for runtime '{name}'"):
        runtime_class(name).check_options({"precision": "bf16"})


def test_bf16_is_refused_where_the_cpu_lacks_it() -> None:
    check_precision("bf16", ["BF16", "FP32", "INT8"], "a CPU")
    with pytest.raises(
        GreenbenchError, match=r"precision 'bf16' needs a CPU with native BF16.*'precision: f32'"
    ):
        check_precision("bf16", ["WINOGRAD", "FP32", "INT8", "BIN"], "Some Xeon")


def test_importing_the_runtime_module_imports_no_library() -> None:
    code = (
        "import sys, greenbench.runtimes.openvino as m; m.check_options({'precision': 'bf16'});"
        "print(sorted(x for x in ('openvino', 'onnxruntime', 'torch', 'numpy') if x in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"


# --- predictors ---------------------------------------------------------------------------------


def test_f32_runs_and_records_what_the_compiled_model_reports(tiny: tuple[TinyYolo, Path, Path]) -> None:
    import openvino

    predictor = ov(tiny[0].onnx)
    predictor.call()
    predictor.sync()
    assert predictor.threads == 1 and predictor.images_per_call == 1
    d = predictor.description
    props = d["compiled_properties"]
    assert props["INFERENCE_NUM_THREADS"] == 1 and props["NUM_STREAMS"] == 1
    assert props["PERFORMANCE_HINT"] == "LATENCY" and props["INFERENCE_PRECISION_HINT"] == "f32"
    assert props["ENABLE_CPU_PINNING"] is False and props["EXECUTION_DEVICES"] == ["CPU"]
    assert d["version"] == openvino.get_version() and "CPU" in d["plugin_versions"]
    assert d["options"] == {"precision": "f32", "streams": 1} and d["precision"] == "fp32"
    assert set(d["conv_precisions"]) == {"f32"} and sum(d["conv_precisions"].values()) > 10
    assert d["input_shape"] == d["model_input_shape"] == [1, 3, 64, 64]
    json.dumps(d)  # stored with the record as is


def test_bf16_runs_in_bf16_or_is_refused(tiny: tuple[TinyYolo, Path, Path]) -> None:
    import openvino

    capabilities = openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    if "BF16" not in capabilities:
        with pytest.raises(GreenbenchError, match="needs a CPU with native BF16"):
            ov(tiny[0].onnx, precision="bf16")
        return
    d = ov(tiny[0].onnx, precision="bf16").description
    assert d["compiled_properties"]["INFERENCE_PRECISION_HINT"] == "bf16" == d["precision_hint"]
    assert "bf16" in d["conv_precisions"]  # what executes, not only what was asked
    assert d["precision"] == "bf16"  # recorded as what it computes in, not the file's fp32


def test_int8_qdq_model_runs_its_convolutions_in_int8(tiny: tuple[TinyYolo, Path, Path]) -> None:
    predictor = ov(tiny[1])
    predictor.call()
    d = predictor.description
    assert d["precision"] == "int8" and d["precision_hint"] == "f32"
    assert set(d["conv_precisions"]) <= {"u8", "i8"}


def test_dynamic_model_is_compiled_at_the_requested_shape(tmp_path: Path) -> None:
    model = hand_built(tmp_path / "dyn.onnx")
    predictor = get_runtime("openvino").load(Artifact("onnx", str(model)), RuntimeSettings(batch=2, imgsz=32))
    predictor.call()
    d = predictor.description
    assert d["input_shape"] == [2, 3, 32, 32] and d["model_input_shape"] == ["?", 3, "?", "?"]


def test_errors_are_clear(tiny: tuple[TinyYolo, Path, Path], tmp_path: Path) -> None:
    onnx = Artifact("onnx", str(tiny[0].onnx))
    with pytest.raises(GreenbenchError, match=r"fixed shape \(1, 3, 64, 64\).*\(1, 3, 128, 128\)"):
        get_runtime("openvino").load(onnx, RuntimeSettings(imgsz=128))
    with pytest.raises(GreenbenchError, match="runs on the CPU here"):
        get_runtime("openvino").load(onnx, RuntimeSettings(device="cuda:0", imgsz=64))
    with pytest.raises(GreenbenchError, match=r"runtime 'openvino': unknown option 'bogus'"):
        get_runtime("openvino").load(onnx, RuntimeSettings(imgsz=64, options={"bogus": 1}))
    with pytest.raises(GreenbenchError, match=r"cannot run .*\(a torch file\); it reads onnx"):
        get_runtime("openvino").load(Artifact("torch", str(tiny[0].checkpoint)), RuntimeSettings())
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a protobuf\x00\xff" * 10)
    with pytest.raises(GreenbenchError, match=r"bad\.onnx is not an ONNX model OpenVINO can read"):
        get_runtime("openvino").load(Artifact("onnx", str(bad)), RuntimeSettings(imgsz=64))


# --- accuracy through OpenVINO ---------------------------------------------------------------------


def test_openvino_f32_computes_what_onnxruntime_computes(tiny: tuple[TinyYolo, Path, Path]) -> None:
    import onnxruntime as ort

    from greenbench.tasks.detect.calibration import letterboxed, train_images

    image = letterboxed(train_images(tiny[2])[0][0], 64)
    for path in (tiny[0].onnx, tiny[1]):
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        expected = session.run(None, {session.get_inputs()[0].name: image})[0]
        (got,) = eval_forward("openvino", Artifact("onnx", str(path)), {"precision": "f32"})(image)  # type: ignore[misc]
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-3 * float(np.abs(expected).max()))


def test_openvino_map_equals_onnxruntime_map_on_the_same_file(tiny: tuple[TinyYolo, Path, Path]) -> None:
    from greenbench.tasks.detect.adapter import DetectAdapter

    model, int8, data = tiny
    with offline_ultralytics(model.workdir):
        adapter = DetectAdapter(model.workdir)
        for path in (model.onnx, int8):
            calls: list[tuple[int, ...]] = []
            forward = eval_forward("openvino", Artifact("onnx", str(path)), {"precision": "f32"})
            assert forward is not None

            def counted(x: Any, forward: Any = forward, calls: list[Any] = calls) -> list[Any]:
                calls.append(tuple(x.shape))
                return list(forward(x))

            out = model.workdir / "val" / path.parent.name
            by_ort = adapter.evaluate(adapter.load(path), data, 64, out / "ort", "test")
            by_ov = adapter.evaluate_with(path, counted, data, 64, out / "ov", "test")
            assert set(by_ov) == {"precision", "recall", "map50", "map50_95"}
            for key, value in by_ort.items():
                assert 0.0 <= by_ov[key] <= 1.0 and by_ov[key] == pytest.approx(value, abs=1e-3)
            assert calls and all(shape == (1, 3, 64, 64) for shape in calls)  # OpenVINO ran every image
        assert eval_forward("onnxruntime", Artifact("onnx", str(int8)), {}) is None  # ultralytics' own path


def test_the_predictors_forward_computes_what_onnxruntime_computes(tiny: tuple[TinyYolo, Path, Path]) -> None:
    import onnxruntime as ort

    from greenbench.tasks.detect.calibration import letterboxed, train_images

    image = letterboxed(train_images(tiny[2])[0][0], 64)
    path = tiny[0].onnx
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    expected = session.run(None, {session.get_inputs()[0].name: image})[0]
    for predictor in (ov(path, precision="f32"), get_runtime("onnxruntime").load(
        Artifact("onnx", str(path)), RuntimeSettings(threads=1, imgsz=64)
    )):  # fmt: skip
        (got,) = predictor.forward(image)  # what scope 'total' runs between pre- and postprocessing
        np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-3 * float(np.abs(expected).max()))
