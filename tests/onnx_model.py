"""Tiny models for runtime and complexity tests: a real ultralytics export and hand-built graphs.

Run as ``python -m tests.onnx_model val MODEL DATA WORKDIR`` to validate an ONNX file with
ultralytics in a fresh interpreter; it prints one JSON line with the metrics and every command the
process started (a ``pip install`` would show there).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from greenbench.tasks.detect.offline import prepare_ultralytics
from tests.conftest import ULTRALYTICS_ENV  # the variables prepare_ultralytics sets


@contextlib.contextmanager
def offline_ultralytics(workdir: Path) -> Iterator[None]:
    """``prepare_ultralytics(workdir)`` for a block, then the environment as it was before.

    For fixtures wider than one test, where the function-scoped ``clean_ultralytics_env`` is not
    available: unset what an earlier test left, so ``setdefault`` inside prepare takes ``workdir``.
    """
    with pytest.MonkeyPatch.context() as mp:
        for var in ULTRALYTICS_ENV:
            mp.setenv(var, "")  # recorded, so the delenv below is undone afterwards
            mp.delenv(var)
        prepare_ultralytics(workdir)
        yield


@dataclass(frozen=True)
class TinyYolo:
    """An untrained YOLOv5n (80 classes) saved as a checkpoint and exported to ONNX."""

    checkpoint: Path
    onnx: Path
    imgsz: int
    workdir: Path

    def module_loader(self) -> Any:
        """What the detection adapter hands a torch runtime: path -> fused eval-mode module."""
        from greenbench.tasks.detect.adapter import DetectAdapter

        adapter = DetectAdapter(self.workdir)
        return lambda path: adapter.inference_module(adapter.load(path))


def export_tiny_yolo(folder: Path, imgsz: int = 64, **export_args: Any) -> TinyYolo:
    """Build ``yolov5n.yaml`` untrained, save it in ``folder`` and export it with ultralytics
    (static shape, not simplified unless ``export_args`` say so): about 3 s on 2 cores.

    Call inside ``offline_ultralytics`` (or after ``clean_ultralytics_env``): the adapter runs
    ``prepare_ultralytics`` on ``folder / "work"``.
    """
    from greenbench.tasks.detect.adapter import DetectAdapter

    workdir = folder / "work"
    adapter = DetectAdapter(workdir)
    # "tiny", not "yolov5n": ultralytics would look for a renamed yolov5nu.pt (a download)
    checkpoint = adapter.save(adapter.build("yolov5n.yaml"), folder / "tiny.pt")
    args = {"imgsz": imgsz, "simplify": False, "dynamic": False, "batch": 1, "device": "cpu", **export_args}
    # exported next to the checkpoint: a YAML-built model would export into the cwd
    onnx = Path(adapter.load(checkpoint).export(format="onnx", **args))
    return TinyYolo(checkpoint=checkpoint, onnx=onnx, imgsz=imgsz, workdir=workdir.resolve())


def hand_built(path: Path, qdq: bool = False) -> Path:
    """A small graph with every operator ``onnx_counts`` counts, dynamic batch and size.

    Input (N, 3, H, W) -> Conv 8x3x3x3 (pad 1) -> ConvTranspose 8->4, 2x2, stride 2 -> Resize x0.5
    -> GlobalAveragePool -> Flatten (N, 4) -> Gemm 4->5 -> MatMul 5->6. With ``qdq`` the Conv weight
    is int8 behind a per-channel DequantizeLinear (as onnxruntime's static quantizer writes it).
    """
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)

    def init(name: str, array: Any) -> Any:
        return numpy_helper.from_array(np.asarray(array), name)

    conv_w = rng.standard_normal((8, 3, 3, 3)).astype(np.float32)
    inits = [
        init("conv_b", np.zeros(8, np.float32)),
        init("up_w", rng.standard_normal((8, 4, 2, 2)).astype(np.float32)),
        init("roi", np.zeros(0, np.float32)),
        init("scales", np.array([1, 1, 0.5, 0.5], np.float32)),  # a float constant, not a weight
        init("gemm_b", rng.standard_normal((4, 5)).astype(np.float32)),
        init("mm_b", rng.standard_normal((5, 6)).astype(np.float32)),
        init("shape", np.array([0, -1], np.int64)),  # unused int64 constant: never a parameter
    ]
    nodes = []
    if qdq:
        scale = (np.abs(conv_w).reshape(8, -1).max(1) / 127).astype(np.float32)
        quantized = np.round(conv_w / scale[:, None, None, None]).astype(np.int8)
        inits += [init("conv_wq", quantized), init("conv_ws", scale), init("conv_wz", np.zeros(8, np.int8))]
        nodes.append(
            helper.make_node("DequantizeLinear", ["conv_wq", "conv_ws", "conv_wz"], ["conv_w"], axis=0)
        )
    else:
        inits.append(init("conv_w", conv_w))
    nodes += [
        helper.make_node("Conv", ["x", "conv_w", "conv_b"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("ConvTranspose", ["c", "up_w"], ["u"], strides=[2, 2]),
        helper.make_node("Resize", ["u", "roi", "scales"], ["r"], mode="nearest"),
        helper.make_node("GlobalAveragePool", ["r"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "gemm_b"], ["g"]),
        helper.make_node("MatMul", ["g", "mm_b"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "hand_built",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 6])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def hand_built_counts(imgsz: int) -> tuple[int, int]:
    """(params, MACs) of ``hand_built`` for one ``imgsz``² image, by hand."""
    params = 8 * 3 * 3 * 3 + 8 + 8 * 4 * 2 * 2 + 4 * 5 + 5 * 6
    conv = (8 * imgsz * imgsz) * (3 * 3 * 3)  # output elements x C_in x kernel area
    up = (8 * imgsz * imgsz) * (4 * 2 * 2)  # input elements x C_out x kernel area
    return params, conv + up + 5 * 4 + 6 * 5


def _val(model: str, data: str, workdir: str) -> None:
    """Validate ``model`` with ultralytics offline; print metrics and the commands started."""
    started: list[Any] = []
    popen_init = subprocess.Popen.__init__

    def spy(self: subprocess.Popen[Any], args: Any, *rest: Any, **kwargs: Any) -> None:
        started.append(args if isinstance(args, str) else [str(a) for a in args])
        popen_init(self, args, *rest, **kwargs)

    subprocess.Popen.__init__ = spy  # type: ignore[method-assign]
    prepare_ultralytics(Path(workdir))
    from ultralytics import YOLO

    metrics = YOLO(model, task="detect").val(
        data=data,
        imgsz=64,
        batch=8,
        device="cpu",
        plots=False,
        split="test",
        project=str(Path(workdir).resolve() / "runs"),
        name="val",
        exist_ok=True,
    )
    box = metrics.box
    out = {"map50": float(box.map50), "map50_95": float(box.map), "precision": float(box.mp)}
    print(json.dumps({"metrics": out, "speed_ms": metrics.speed, "started": started}))


if __name__ == "__main__":
    if len(sys.argv) != 5 or sys.argv[1] != "val":
        sys.exit("usage: python -m tests.onnx_model val MODEL DATA WORKDIR")
    _val(*sys.argv[2:])
