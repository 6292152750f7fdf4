"""Runtimes on a real ultralytics export: onnxruntime and torch eager predictors, their errors,
the registry, ONNX complexity counts, and ultralytics validating the ONNX file offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from greenbench.errors import GreenbenchError
from greenbench.measure.complexity import count_macs, count_params, onnx_counts
from greenbench.runtimes import RUNTIMES, default_runtime, get_runtime, runtime_names
from greenbench.runtimes.base import Artifact, RuntimeSettings, artifact_kind
from greenbench.tasks.detect.synth import SynthSpec, cached_synth
from tests.onnx_model import (
    ULTRALYTICS_ENV,
    TinyYolo,
    export_tiny_yolo,
    hand_built,
    hand_built_counts,
    offline_ultralytics,
)

REPO = Path(__file__).parents[2]
NETGUARD = REPO / "tests" / "e2e" / "netguard"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TinyYolo]:
    """yolov5n untrained, exported once for the module (static 1x3x64x64, not simplified)."""
    folder = tmp_path_factory.mktemp("tiny")
    with offline_ultralytics(folder / "work"):
        yield export_tiny_yolo(folder, imgsz=64)


def onnx_artifact(tiny: TinyYolo) -> Artifact:
    return Artifact("onnx", str(tiny.onnx))


# --- artifacts and registry -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind"),
    [("m.pt", "torch"), ("m.PT", "torch"), ("m.pth", "torch"), ("a.b/m.onnx", "onnx"), ("m.ONNX", "onnx")],
)
def test_artifact_kind_by_suffix_any_case(name: str, kind: str) -> None:
    assert artifact_kind(name) == kind
    assert artifact_kind(Path("/models") / name) == kind


@pytest.mark.parametrize("name", ["m.engine", "m.pt.bak", "onnx", "m."])
def test_unknown_suffix_names_the_file_and_the_accepted_ones(name: str) -> None:
    with pytest.raises(GreenbenchError, match=r"\.pt \(torch\), \.pth \(torch\), \.onnx \(onnx\)") as e:
        artifact_kind(name)
    assert name in str(e.value)


def test_registry_names_instances_and_defaults() -> None:
    assert runtime_names() == ["onnxruntime", "openvino", "torch"]
    for name in runtime_names():
        runtime = get_runtime(name)
        assert runtime.name == name
        assert runtime.kinds[0] in ("torch", "onnx")
    assert default_runtime("torch") == "torch" and default_runtime("onnx") == "onnxruntime"


def test_unknown_runtime_lists_the_known_ones() -> None:
    with pytest.raises(
        GreenbenchError, match=r"unknown runtime 'onnxrt'.*onnxruntime, openvino, torch.*'onnxruntime'\?"
    ):
        get_runtime("onnxrt")


def test_importing_the_registry_imports_no_runtime() -> None:
    code = (
        "import sys, greenbench.runtimes, greenbench.runtimes.base;"
        "print(sorted(m for m in ('torch', 'onnxruntime', 'onnx', 'numpy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"
    assert set(RUNTIMES) == set(runtime_names())


@pytest.mark.parametrize(
    ("field", "value"),
    [("threads", 0), ("batch", -1), ("imgsz", 1.5), ("device", "gpu"), ("device", "cuda0")],
)
def test_settings_are_validated(field: str, value: object) -> None:
    with pytest.raises(GreenbenchError, match=field):
        RuntimeSettings(**{field: value})  # type: ignore[arg-type]


def test_a_runtime_refuses_the_other_kind(tiny: TinyYolo) -> None:
    with pytest.raises(GreenbenchError, match=r"runtime 'torch' cannot run .*tiny\.onnx.*reads torch files"):
        get_runtime("torch").load(onnx_artifact(tiny), RuntimeSettings(imgsz=64), tiny.module_loader())
    with pytest.raises(GreenbenchError, match=r"runtime 'onnxruntime' cannot run .*tiny\.pt"):
        get_runtime("onnxruntime").load(Artifact("torch", str(tiny.checkpoint)), RuntimeSettings(imgsz=64))


# --- onnxruntime ------------------------------------------------------------------------------


def test_onnxruntime_predictor_runs_and_records_its_session(tiny: TinyYolo) -> None:
    predictor = get_runtime("onnxruntime").load(onnx_artifact(tiny), RuntimeSettings(threads=1, imgsz=64))
    predictor.call()
    predictor.sync()
    assert predictor.images_per_call == 1 and predictor.threads == 1
    d = predictor.description
    assert d["runtime"] == "onnxruntime" and d["version"].count(".") == 2
    assert d["providers"] == ["CPUExecutionProvider"]
    assert d["session_options"] == {
        "intra_op_num_threads": 1,
        "inter_op_num_threads": 1,
        "graph_optimization_level": "ORT_ENABLE_ALL",
        "execution_mode": "ORT_SEQUENTIAL",
        "enable_cpu_mem_arena": True,
        "enable_mem_pattern": True,
        "enable_mem_reuse": True,
        "session.intra_op.allow_spinning": "0",
        "session.inter_op.allow_spinning": "0",
    }
    assert d["input_shape"] == d["model_input_shape"] == [1, 3, 64, 64]
    assert (d["input_dtype"], d["precision"]) == ("float32", "fp32")
    json.dumps(d)  # stored with the record as is


def test_onnxruntime_threads_and_spinning_follow_the_settings(tiny: TinyYolo) -> None:
    settings = RuntimeSettings(threads=2, imgsz=64, ort_spinning=True)
    predictor = get_runtime("onnxruntime").load(onnx_artifact(tiny), settings)
    predictor.call()
    assert predictor.threads == 2
    assert predictor.description["session_options"]["session.intra_op.allow_spinning"] == "1"


@pytest.mark.parametrize(("batch", "imgsz"), [(1, 128), (2, 64)])
def test_fixed_input_shape_mismatch_says_what_to_do(tiny: TinyYolo, batch: int, imgsz: int) -> None:
    with pytest.raises(GreenbenchError) as e:
        get_runtime("onnxruntime").load(onnx_artifact(tiny), RuntimeSettings(batch=batch, imgsz=imgsz))
    message = str(e.value)
    for part in (str(tiny.onnx), "(1, 3, 64, 64)", f"({batch}, 3, {imgsz}, {imgsz})", "dynamic=True"):
        assert part in message
    assert "measure.latency.imgsz/batch" in message


def test_dynamic_dims_take_the_requested_size(tmp_path: Path) -> None:
    model = hand_built(tmp_path / "dyn.onnx")
    predictor = get_runtime("onnxruntime").load(
        Artifact("onnx", str(model)), RuntimeSettings(batch=3, imgsz=32)
    )
    predictor.call()
    assert predictor.images_per_call == 3
    d = predictor.description
    assert d["input_shape"] == [3, 3, 32, 32] and d["model_input_shape"] == ["N", 3, "H", "W"]


def test_qdq_model_is_described_as_int8(tmp_path: Path) -> None:
    model = hand_built(tmp_path / "q.onnx", qdq=True)
    d = get_runtime("onnxruntime").load(Artifact("onnx", str(model)), RuntimeSettings(imgsz=16)).description
    assert d["precision"] == "int8" and d["quantized_ops"] == ["DequantizeLinear"]


def test_garbage_or_missing_onnx_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not a protobuf\x00\xff" * 10)
    with pytest.raises(GreenbenchError, match=r"bad\.onnx is not an ONNX model onnxruntime .* can load") as e:
        get_runtime("onnxruntime").load(Artifact("onnx", str(bad)), RuntimeSettings(imgsz=64))
    assert e.value.__cause__ is None and e.value.__suppress_context__
    with pytest.raises(GreenbenchError, match=r"missing\.onnx does not exist"):
        get_runtime("onnxruntime").load(Artifact("onnx", str(tmp_path / "missing.onnx")), RuntimeSettings())
    with pytest.raises(GreenbenchError, match=r"bad\.onnx is not a readable ONNX model"):
        onnx_counts(bad, 64)


def test_cuda_without_the_cuda_provider_is_an_error(tiny: TinyYolo, monkeypatch: pytest.MonkeyPatch) -> None:
    import onnxruntime

    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    with pytest.raises(
        GreenbenchError, match=r"'cuda:0' requested .* no CUDA execution provider.*onnxruntime-gpu"
    ):
        get_runtime("onnxruntime").load(onnx_artifact(tiny), RuntimeSettings(device="cuda:0", imgsz=64))


# --- torch eager ------------------------------------------------------------------------------


def test_torch_eager_predictor_on_the_same_model(tiny: TinyYolo) -> None:
    import torch

    predictor = get_runtime("torch").load(
        Artifact("torch", str(tiny.checkpoint)),
        RuntimeSettings(threads=1, batch=2, imgsz=64),
        tiny.module_loader(),
    )
    predictor.call()
    predictor.sync()
    assert predictor.threads == 1 == torch.get_num_threads()
    assert predictor.images_per_call == 2
    d = predictor.description
    assert (d["runtime"], d["version"], d["mode"]) == ("torch", torch.__version__, "eager")
    assert d["input_shape"] == [2, 3, 64, 64] and d["precision"] == "fp32"
    json.dumps(d)


def test_torch_eager_needs_the_adapters_module_loader(tiny: TinyYolo) -> None:
    with pytest.raises(GreenbenchError, match="needs the task adapter's module loader"):
        get_runtime("torch").load(Artifact("torch", str(tiny.checkpoint)), RuntimeSettings(imgsz=64))


def test_torch_eager_refuses_a_cuda_device_torch_cannot_see(
    tiny: TinyYolo, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(GreenbenchError, match=r"'cuda:1' requested but torch sees no CUDA device"):
        get_runtime("torch").load(
            Artifact("torch", str(tiny.checkpoint)), RuntimeSettings(device="cuda:1"), tiny.module_loader()
        )


# --- complexity from the ONNX graph ----------------------------------------------------------


def test_onnx_counts_match_the_torch_counter_on_the_export(tiny: TinyYolo) -> None:
    module = tiny.module_loader()(tiny.checkpoint)
    params, macs = onnx_counts(tiny.onnx, tiny.imgsz)
    # Equal, not close: the unsimplified export holds exactly the fused model's Conv layers
    # (DFL's 1x1 conv included on both sides); the Detect decode (Sigmoid, Softmax, Mul, Sub)
    # counts on neither side, and its anchors/strides are Constant nodes, not initializers.
    # The exporter merges the untrained model's identical zero biases into one initializer plus
    # Identity nodes: without counting those aliases, ONNX would read 5,168 params (0.2 %) fewer.
    assert macs == count_macs(module, tiny.imgsz)
    assert params == count_params(module)


@pytest.mark.parametrize("imgsz", [32, 96])
def test_onnx_counts_by_hand_on_a_dynamic_graph(tmp_path: Path, imgsz: int) -> None:
    assert onnx_counts(hand_built(tmp_path / "m.onnx"), imgsz) == hand_built_counts(imgsz)


def test_onnx_counts_a_qdq_weight_once_and_no_scales(tmp_path: Path) -> None:
    assert onnx_counts(hand_built(tmp_path / "q.onnx", qdq=True), 32) == hand_built_counts(32)


def test_onnx_counts_on_a_static_export_refuses_another_size(tiny: TinyYolo) -> None:
    with pytest.raises(GreenbenchError, match=r"fixed shape \(1, 3, 64, 64\); cannot count it at 3x128x128"):
        onnx_counts(tiny.onnx, 128)


def test_onnx_counts_zero_macs_is_an_error(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu", [x], [y])
    onnx.save(helper.make_model(graph), str(tmp_path / "relu.onnx"))
    with pytest.raises(GreenbenchError, match=r"relu\.onnx: counted 0 MACs.*its operators: Relu"):
        onnx_counts(tmp_path / "relu.onnx", 8)


# --- ultralytics validates the ONNX file offline ---------------------------------------------


def test_ultralytics_validates_the_onnx_export_offline(tiny: TinyYolo, tmp_path: Path) -> None:
    """A fresh interpreter (as a worker would be) with every non-local name lookup or connection
    refused and logged, HOME in tmp, and every command it starts recorded."""
    data = cached_synth(tmp_path / "data", SynthSpec(classes=2, images=20, imgsz=64, seed=1))
    env = {
        **{k: v for k, v in os.environ.items() if k not in ULTRALYTICS_ENV and not k.startswith("YOLO_")},
        "HOME": str(tmp_path / "home"),
        "PYTHONPATH": os.pathsep.join([str(NETGUARD), str(REPO)]),
        "GREENBENCH_NETLOG": str(tmp_path / "network-attempts.log"),
    }
    out = subprocess.run(
        [sys.executable, "-m", "tests.onnx_model", "val", str(tiny.onnx), str(data), str(tmp_path / "work")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert 0.0 <= result["metrics"]["map50"] <= 1.0  # untrained: 0 in practice
    assert not (tmp_path / "network-attempts.log").exists()
    assert not any("pip" in str(cmd) for cmd in result["started"]), result["started"]
    assert not (tmp_path / "home").exists()  # settings, fonts and caches all went to work/
    assert "Using ONNX Runtime" in out.stdout + out.stderr  # the ONNX file ran, not a torch fallback
