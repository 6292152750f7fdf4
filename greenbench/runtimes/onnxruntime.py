"""ONNX Runtime: an ``InferenceSession`` on the CPU execution provider (CUDA when asked for and present).

Every session option that moves latency or energy is set explicitly rather than left to
onnxruntime's defaults (which use all cores and spin idle threads), and recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from greenbench.errors import GreenbenchError
from greenbench.runtimes.base import (
    Artifact,
    ArtifactKind,
    Predictor,
    RuntimeSettings,
    check_kind,
    checked_options,
    no_options,
)

_INPUT_DTYPES = {"tensor(float)": ("float32", "fp32"), "tensor(float16)": ("float16", "fp16")}
_SPIN_KEYS = ("session.intra_op.allow_spinning", "session.inter_op.allow_spinning")
# Operators that only appear in a quantized graph (QDQ or QOperator format).
QUANT_OPS = frozenset(
    {
        "QuantizeLinear",
        "DequantizeLinear",
        "DynamicQuantizeLinear",
        "QLinearConv",
        "QLinearMatMul",
        "ConvInteger",
        "MatMulInteger",
    }
)


def graph_precision(path: str) -> dict[str, Any]:
    """What the graph computes in: ``int8`` when it holds quantized operators (listed), else the
    dtype holding most weight elements. Empty when the ``onnx`` package is absent."""
    try:
        import onnx
    except ImportError:
        return {}
    model = onnx.load(path, load_external_data=False)
    quantized = sorted({n.op_type for n in model.graph.node} & QUANT_OPS)
    if quantized:
        return {"precision": "int8", "quantized_ops": quantized}
    sizes: dict[str, int] = {}
    for init in model.graph.initializer:
        elem = onnx.helper.tensor_dtype_to_np_dtype(init.data_type)
        if elem.kind == "f":
            n = 1
            for d in init.dims:
                n *= d
            sizes[str(elem)] = sizes.get(str(elem), 0) + n
    if not sizes:
        return {}
    dtype = max(sizes, key=lambda k: sizes[k])
    return {"precision": {"float32": "fp32", "float16": "fp16", "float64": "fp64"}.get(dtype, dtype)}


def _ort_errors() -> tuple[type[BaseException], ...]:
    """onnxruntime's load-time exception classes (none shares a base below ``Exception``)."""
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    names = ("Fail", "InvalidArgument", "InvalidGraph", "InvalidProtobuf", "NoModel", "NoSuchFile")
    return tuple(
        getattr(state, n) for n in (*names, "NotImplemented", "RuntimeException") if hasattr(state, n)
    )


def check_input(path: str, dims: list[Any], settings: RuntimeSettings) -> tuple[int, ...]:
    """The input shape to feed: the requested one, after checking it against the model's fixed dims."""
    wanted = settings.input_shape
    fixed = [d if isinstance(d, int) else None for d in dims]
    if len(dims) != len(wanted) or any(f is not None and f != w for f, w in zip(fixed, wanted, strict=True)):
        shown = "(" + ", ".join(str(d) if isinstance(d, int) else "?" for d in dims) + ")"
        raise GreenbenchError(
            f"{path}: the model's input has the fixed shape {shown} but {wanted} was requested "
            f"(batch {settings.batch}, imgsz {settings.imgsz}). Export the model with "
            f"imgsz={settings.imgsz} and batch={settings.batch} (or dynamic=True), or set "
            "measure.latency.imgsz/batch to the model's size."
        )
    return wanted


class OnnxRuntime:
    """``onnxruntime.InferenceSession`` with explicit threads, no spinning unless asked, full graph
    optimisation and sequential execution."""

    name: ClassVar[str] = "onnxruntime"
    kinds: ClassVar[tuple[ArtifactKind, ...]] = ("onnx",)

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        """No options (threads, batch and spinning come from ``measure.latency``)."""
        return no_options(cls.name, options)

    def load(
        self,
        artifact: Artifact,
        settings: RuntimeSettings,
        module_loader: Callable[[Path], Any] | None = None,
    ) -> Predictor:
        """Open a session on ``artifact`` and build a predictor on fixed-seed random input."""
        import numpy as np
        import onnxruntime as ort

        check_kind(self, artifact)
        checked_options(self, settings.options)
        path = str(artifact.path)
        if not Path(path).is_file():
            raise GreenbenchError(f"ONNX model {path} does not exist")
        providers = self._providers(ort, settings.device)
        options = ort.SessionOptions()
        options.intra_op_num_threads = settings.threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3  # errors only: optimiser notices would clutter the run log
        for key in _SPIN_KEYS:
            options.add_session_config_entry(key, "1" if settings.ort_spinning else "0")
        try:
            session = ort.InferenceSession(path, sess_options=options, providers=providers)
        except _ort_errors() as e:
            raise GreenbenchError(
                f"{path} is not an ONNX model onnxruntime {ort.__version__} can load: {e}"
            ) from None
        used = list(session.get_providers())
        if settings.device.startswith("cuda") and "CUDAExecutionProvider" not in used:
            raise GreenbenchError(
                f"{path}: onnxruntime did not start its CUDA execution provider (it runs "
                f"{', '.join(used)}); check that the CUDA and cuDNN libraries onnxruntime-gpu needs are "
                "installed, or use device 'cpu'."
            )

        inputs = session.get_inputs()
        if len(inputs) != 1:
            names = ", ".join(i.name for i in inputs)
            raise GreenbenchError(
                f"{path}: the model has {len(inputs)} inputs ({names}); greenbench feeds one image tensor"
            )
        first = inputs[0]
        if first.type not in _INPUT_DTYPES:
            raise GreenbenchError(
                f"{path}: the model's input {first.name!r} is {first.type}; greenbench feeds float32 or "
                "float16 images"
            )
        shape = check_input(path, list(first.shape), settings)
        np_dtype, input_precision = _INPUT_DTYPES[first.type]
        x = np.random.default_rng(0).random(shape, dtype=np.float32).astype(np_dtype)
        feed = {first.name: x}

        def call() -> None:
            session.run(None, feed)

        def forward(batch: Any) -> list[Any]:
            return list(session.run(None, {first.name: batch.astype(np_dtype)}))

        used_options = session.get_session_options()
        threads = int(used_options.intra_op_num_threads)
        description: dict[str, Any] = {
            "runtime": self.name,
            "version": ort.__version__,
            "device": settings.device,
            "providers": used,
            "session_options": {
                "intra_op_num_threads": threads,
                "inter_op_num_threads": int(used_options.inter_op_num_threads),
                "graph_optimization_level": used_options.graph_optimization_level.name,
                "execution_mode": used_options.execution_mode.name,
                "enable_cpu_mem_arena": bool(used_options.enable_cpu_mem_arena),
                "enable_mem_pattern": bool(used_options.enable_mem_pattern),
                "enable_mem_reuse": bool(used_options.enable_mem_reuse),
                **{key: used_options.get_session_config_entry(key) for key in _SPIN_KEYS},
            },
            "input_name": first.name,
            "input_shape": list(shape),
            "model_input_shape": [d if isinstance(d, int) else str(d) for d in first.shape],
            "input_dtype": np_dtype,
            "precision": input_precision,
            "io": "host numpy arrays (copies to and from the device are part of each call)"
            if settings.device.startswith("cuda")
            else "host numpy arrays",
            **graph_precision(path),
        }
        return Predictor(
            call=call,
            sync=lambda: None,  # session.run returns only once the outputs are on the host
            images_per_call=settings.batch,
            threads=threads,
            description=description,
            forward=forward,
        )

    @staticmethod
    def _providers(ort: Any, device: str) -> list[Any]:
        """The execution providers for ``device``; CUDA must be available when asked for."""
        if not device.startswith("cuda"):
            return ["CPUExecutionProvider"]
        available = ort.get_available_providers()
        if "CUDAExecutionProvider" not in available:
            raise GreenbenchError(
                f"device {device!r} requested but this onnxruntime {ort.__version__} has no CUDA execution "
                f"provider (it has {', '.join(available)}). Install onnxruntime-gpu instead of onnxruntime, "
                "or use device 'cpu'."
            )
        index = int(device.partition(":")[2] or 0)
        return [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
