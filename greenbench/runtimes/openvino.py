"""OpenVINO on the CPU: Intel's inference runtime, reading the same ONNX (and QDQ int8) files as ONNX
Runtime. Offline; ``openvino`` is imported only when a model is loaded.

Everything OpenVINO would otherwise pick for itself is set: threads (``measure.latency.threads``),
streams, the latency hint, the inference precision (its CPU default is bf16 wherever the CPU has
bf16 instructions, which changes accuracy silently) and thread pinning (off, as for the other
runtimes: an arm must not pin the thread the next arm runs on). The description stores what the
compiled model reports back, not what was asked for, and the precision its convolutions actually
execute in.
"""

from __future__ import annotations

from collections import Counter
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
)
from greenbench.runtimes.onnxruntime import check_input, graph_precision

#: option -> default (``runtime: {name: openvino, precision: bf16, streams: 1}`` in a suite)
DEFAULTS: dict[str, Any] = {"precision": "f32", "streams": 1}
PRECISIONS = ("f32", "bf16")
MAX_STREAMS = 64
#: what OPTIMIZATION_CAPABILITIES must list for a precision hint to be honoured
_CAPABILITY = {"f32": "FP32", "bf16": "BF16"}
#: properties read back from the compiled model and stored with every measurement
READ_BACK = (
    "INFERENCE_NUM_THREADS",
    "NUM_STREAMS",
    "PERFORMANCE_HINT",
    "INFERENCE_PRECISION_HINT",
    "EXECUTION_MODE_HINT",
    "ENABLE_CPU_PINNING",
    "ENABLE_HYPER_THREADING",
    "SCHEDULING_CORE_TYPE",
    "OPTIMAL_NUMBER_OF_INFER_REQUESTS",
    "EXECUTION_DEVICES",
)


def check_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """``precision`` (f32 | bf16) and ``streams`` (1..64) with defaults filled in; ``ValueError``
    naming an unknown or bad key."""
    for key in options:
        if key not in DEFAULTS:
            raise ValueError(
                f"unknown option {key!r} for runtime 'openvino'; its options are "
                f"{', '.join(DEFAULTS)} (threads come from measure.latency.threads)"
            )
    out = {**DEFAULTS, **options}
    if out["precision"] not in PRECISIONS:
        raise ValueError(
            f"option 'precision' of runtime 'openvino' must be one of {', '.join(PRECISIONS)}, "
            f"got {out['precision']!r} (int8 comes from the model: quantize it with the 'quantize' stage)"
        )
    streams = out["streams"]
    if isinstance(streams, bool) or not isinstance(streams, int) or not 1 <= streams <= MAX_STREAMS:
        raise ValueError(
            f"option 'streams' of runtime 'openvino' must be an integer from 1 to {MAX_STREAMS}, "
            f"got {streams!r}"
        )
    return out


def check_precision(precision: str, capabilities: list[str], cpu: str) -> None:
    """Refuse a precision hint this CPU cannot execute natively (OpenVINO would fall back to f32
    or emulate it, and the record would name a precision that never ran)."""
    needed = _CAPABILITY[precision]
    if needed not in capabilities:
        raise GreenbenchError(
            f"runtime 'openvino': precision {precision!r} needs a CPU with native {needed} support "
            f"(AVX512_BF16 or AMX), but OpenVINO reports {', '.join(capabilities) or 'nothing'} for "
            f"{cpu}. Use 'precision: f32' on this machine, or measure bf16 on a CPU that has it."
        )


def plain(value: Any) -> Any:
    """An OpenVINO property value as JSON-ready data (``<Type: 'float32'>`` -> ``f32``)."""
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if hasattr(value, "to_string"):
        return value.to_string()
    if hasattr(value, "name"):  # an enum (PerformanceMode.LATENCY)
        return str(value.name)
    return str(value)


def _config(options: Mapping[str, Any], threads: int | None) -> dict[str, Any]:
    config: dict[str, Any] = {
        "NUM_STREAMS": options["streams"],
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_PRECISION_HINT": options["precision"],
        "ENABLE_CPU_PINNING": False,
    }
    if threads is not None:
        config["INFERENCE_NUM_THREADS"] = threads
    return config


def _read(core: Any, path: str) -> Any:
    """The model at ``path`` read by OpenVINO, or a clear error."""
    if not Path(path).is_file():
        raise GreenbenchError(f"ONNX model {path} does not exist")
    try:
        model = core.read_model(path)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise GreenbenchError(f"{path} is not an ONNX model OpenVINO can read: {first}") from None
    if len(model.inputs) != 1:
        raise GreenbenchError(
            f"{path}: the model has {len(model.inputs)} inputs; greenbench feeds one image tensor"
        )
    return model


def _conv_precisions(compiled: Any) -> dict[str, int]:
    """How many convolutions of the compiled graph run in each precision (what really executes)."""
    counts: Counter[str] = Counter()
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        if "layerType" in info and info["layerType"].astype(str) == "Convolution":
            counts[info["runtimePrecision"].astype(str) if "runtimePrecision" in info else "?"] += 1
    return dict(sorted(counts.items()))


#: OpenVINO's precision hint -> the precision names greenbench records use
_HINT_PRECISION = {"f32": "fp32", "bf16": "bf16", "f16": "fp16"}


class OpenVino:
    """``openvino.Core().compile_model`` on the CPU with explicit threads, streams, latency hint and
    precision hint; one synchronous infer request per call."""

    name: ClassVar[str] = "openvino"
    kinds: ClassVar[tuple[ArtifactKind, ...]] = ("onnx",)

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        """``precision`` (f32 default, bf16) and ``streams`` (default 1)."""
        return check_options(options)

    def _core(self, device: str, precision: str) -> Any:
        import openvino as ov

        if device != "cpu":
            raise GreenbenchError(
                f"runtime 'openvino' runs on the CPU here; measure.device is {device!r}. Use device "
                "'cpu' for OpenVINO variants, or the onnxruntime/torch runtimes on a CUDA device."
            )
        core = ov.Core()
        capabilities = [str(c) for c in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")]
        check_precision(precision, capabilities, str(core.get_property("CPU", "FULL_DEVICE_NAME")))
        return core

    def load(
        self,
        artifact: Artifact,
        settings: RuntimeSettings,
        module_loader: Callable[[Path], Any] | None = None,
    ) -> Predictor:
        """Compile ``artifact`` for the CPU at the requested input shape and build a predictor on
        fixed-seed random input."""
        import numpy as np
        import openvino as ov

        check_kind(self, artifact)
        options = checked_options(self, settings.options)
        core = self._core(settings.device, options["precision"])
        path = str(artifact.path)
        model = _read(core, path)
        port = model.inputs[0]
        partial = port.get_partial_shape()
        model_dims: list[Any] = [d.get_length() if d.is_static else "?" for d in partial]
        shape = check_input(path, model_dims, settings)
        if not partial.is_static:  # dynamic axes: compiled for the one shape measured, as deployed
            model.reshape({port.get_any_name(): ov.PartialShape(list(shape))})
        try:
            compiled = core.compile_model(model, "CPU", _config(options, settings.threads))
        except RuntimeError as e:
            raise GreenbenchError(f"OpenVINO could not compile {path}: {str(e).strip()[:500]}") from None
        request = compiled.create_infer_request()
        x = np.random.default_rng(0).random(shape, dtype=np.float32)

        def call() -> None:
            request.infer({0: x})

        def forward(batch: Any) -> list[Any]:
            result = request.infer({0: batch})
            return [result[port] for port in compiled.outputs]

        props = {key: plain(compiled.get_property(key)) for key in READ_BACK}
        threads = int(props["INFERENCE_NUM_THREADS"])
        description: dict[str, Any] = {
            "runtime": self.name,
            "version": ov.get_version(),
            "plugin_versions": {
                device: f"{v.description} {v.build_number}" for device, v in core.get_versions("CPU").items()
            },
            "device": settings.device,
            "device_name": plain(core.get_property("CPU", "FULL_DEVICE_NAME")),
            "optimization_capabilities": plain(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")),
            "options": options,
            "compiled_properties": props,
            "conv_precisions": _conv_precisions(compiled),
            "input_name": port.get_any_name(),
            "input_shape": list(shape),
            "model_input_shape": model_dims,
            "input_dtype": "float32",
            "precision_hint": props["INFERENCE_PRECISION_HINT"],
            # a QDQ graph is int8 whatever the hint (its convolutions run u8/i8); any other graph
            # computes in the hint's precision (bf16 on a bf16 hint, not the file's fp32)
            "precision": _HINT_PRECISION.get(
                str(props["INFERENCE_PRECISION_HINT"]), props["INFERENCE_PRECISION_HINT"]
            ),
            "io": "host numpy arrays",
        }
        graph = graph_precision(path)
        if graph.get("precision") == "int8":
            description.update(graph)
        return Predictor(
            call=call,
            sync=lambda: None,  # a synchronous infer returns once the outputs are written
            images_per_call=settings.batch,
            threads=threads,
            description=description,
            forward=forward,
        )

    def eval_forward(self, artifact: Artifact, options: Mapping[str, Any]) -> Callable[[Any], list[Any]]:
        """The model compiled with the variant's precision hint for accuracy evaluation: an NCHW
        float32 batch in, the output arrays (the ONNX outputs' layout) out. Threads are left to
        OpenVINO (evaluation is not timed); a dynamic-shape model stays dynamic."""
        check_kind(self, artifact)
        checked = checked_options(self, options)
        core = self._core("cpu", checked["precision"])
        path = str(artifact.path)
        model = _read(core, path)
        try:
            compiled = core.compile_model(model, "CPU", _config(checked, None))
        except RuntimeError as e:
            raise GreenbenchError(f"OpenVINO could not compile {path}: {str(e).strip()[:500]}") from None
        request = compiled.create_infer_request()
        outputs = len(compiled.outputs)

        def forward(x: Any) -> list[Any]:
            request.infer({0: x})
            return [request.get_output_tensor(i).data.copy() for i in range(outputs)]

        return forward
