"""Stage ``quantize``: an ONNX model to int8 with onnxruntime's quantizer, the recipe that keeps a
detector's accuracy (RECIPES.md, "Export and int8 quantization for CPU").

``int8_static`` (default): ``quant_pre_process``, then static QDQ quantization with per-channel
int8 weights and uint8 activations, calibrated (MinMax) on train inputs that the task
preprocesses as its evaluation does (a detector: letterboxed train images), of the operators in
``ops`` only (Conv, Gemm, MatMul). Every other node is excluded by name, so the Detect decode
stays fp32: quantizing it puts box pixels and class scores on one int8 scale and gives mAP 0.
``int8_dynamic``: ``quantize_dynamic`` (int8 weights, activations quantized at run time): a
smaller file, but no speed-up for CNNs."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from greenbench.errors import GreenbenchError
from greenbench.pipeline.base import StageContext, StageResult
from greenbench.pipeline.export import DEFAULT_IMGSZ, fixed_imgsz
from greenbench.tasks.base import Task

DEFAULT_OPS = ("Conv", "Gemm", "MatMul")
_DYNAMIC_NOTE = "int8_dynamic quantizes activations at run time: a smaller file, no speed-up for CNNs"


class QuantizeParams(BaseModel):
    """``mode``, ``calibration_images`` (static only), ``ops`` (operator types to quantize) and
    ``seed`` (which train images calibrate)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    mode: Literal["int8_static", "int8_dynamic"] = "int8_static"
    calibration_images: int = Field(default=32, ge=1, le=10_000)
    ops: list[str] = Field(default_factory=lambda: list(DEFAULT_OPS), min_length=1, max_length=50)
    seed: int = Field(default=0, ge=0, le=2**32 - 1)

    @field_validator("ops")
    @classmethod
    def _op_names(cls, value: list[str]) -> list[str]:
        bad = [op for op in value if not op.isidentifier()]
        if bad:
            raise ValueError(f"'ops' holds {bad[0]!r}, not an ONNX operator name (e.g. Conv, Gemm, MatMul)")
        return sorted(set(value))


class _Reader:
    """A ``CalibrationDataReader``: one preprocessed input per call (made as it is read), then None."""

    def __init__(self, input_name: str, inputs: Iterator[Any]) -> None:
        self.input_name, self.inputs = input_name, inputs

    def get_next(self) -> dict[str, Any] | None:
        array = next(self.inputs, None)
        return None if array is None else {self.input_name: array}


def _count_quantized(path: Path, ops: list[str]) -> dict[str, Any]:
    """How many nodes of each quantized operator type read an int8 (dequantized) tensor, how many
    tensors are quantized, and any integer operators (``int8_dynamic``)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    dequantized = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    integer = {"ConvInteger", "MatMulInteger", "QLinearConv", "QLinearMatMul"}
    counts: dict[str, int] = {}
    for node in graph.node:
        if node.op_type in integer or (node.op_type in ops and set(node.input) & dequantized):
            counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return {
        "quantized_nodes": dict(sorted(counts.items())),
        "quantized_tensors": sum(
            n.op_type in ("QuantizeLinear", "DynamicQuantizeLinear") for n in graph.node
        ),
    }


def _copy_metadata(source: Path, target: Path) -> None:
    """Carry the exporter's metadata (names, stride, imgsz) into the quantized file, where the
    quantizer dropped it: ultralytics evaluates an ONNX model by it."""
    import onnx

    src = onnx.load(str(source), load_external_data=False)
    out = onnx.load(str(target), load_external_data=False)
    have = {p.key for p in out.metadata_props}
    missing = [p for p in src.metadata_props if p.key not in have]
    if missing:
        for prop in missing:
            out.metadata_props.add(key=prop.key, value=prop.value)
        onnx.save(out, str(target))


class QuantizeStage:
    """``quantize {mode: int8_static | int8_dynamic, calibration_images: 32, ops: [Conv, Gemm,
    MatMul], seed: 0}``: ONNX in, int8 ONNX (``model.onnx``) out."""

    name: ClassVar[str] = "quantize"
    variant_params: ClassVar[tuple[str, ...]] = ()
    accepts: ClassVar[tuple[str, ...]] = ("onnx",)
    produces: ClassVar[str] = "onnx"

    @classmethod
    def validate_params(cls, params: dict[str, Any], task: type[Task] | None = None) -> dict[str, Any]:
        """Params as ``QuantizeParams`` with the defaults filled in (the cache key says them)."""
        return QuantizeParams.model_validate(params).model_dump()

    def run(self, ctx: StageContext) -> StageResult:
        """Quantize the parent's ONNX model into ``out_dir/model.onnx``."""
        p = QuantizeParams.model_validate(ctx.params)
        source = ctx.input
        if source is None or source.suffix.lower() != ".onnx":
            what = f"the torch checkpoint {source}" if source is not None else f"the model {ctx.model}"
            raise GreenbenchError(
                f"variant {ctx.variant!r}: stage 'quantize' needs an ONNX model, but its input is {what}; "
                "add '- export' before '- quantize' in its stages."
            )
        import onnx
        import onnxruntime
        from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process

        ctx.out_dir.mkdir(parents=True, exist_ok=True)
        prepared, out = ctx.out_dir / "preprocessed.onnx", ctx.out_dir / "model.onnx"
        imgsz = fixed_imgsz(source) or int(ctx.defaults.get("imgsz", DEFAULT_IMGSZ))
        calibration: dict[str, Any] = {}
        inputs: Iterator[Any] = iter(())
        if p.mode == "int8_static":  # the task lists and picks its training inputs (read lazily)
            inputs, facts = ctx.task.calibration_inputs(ctx.data_yaml, imgsz, p.calibration_images, p.seed)
            calibration = {
                "images": facts.pop("images"),
                "requested": p.calibration_images,
                "seed": p.seed,
                "imgsz": imgsz,
                "method": "MinMax",
                **facts,
            }
        ctx.emit(f"quantize {p.mode}")
        window = ctx.meter.begin()
        quant_pre_process(str(source), str(prepared))
        graph = onnx.load(str(prepared), load_external_data=False).graph
        excluded = [n.name for n in graph.node if n.op_type not in p.ops]
        if any(not n.name for n in graph.node):
            raise GreenbenchError(
                f"{source}: some ONNX nodes have no name, so they cannot be kept out of quantization"
            )
        common: dict[str, Any] = {
            "per_channel": True,
            "weight_type": QuantType.QInt8,
            "op_types_to_quantize": p.ops,
            "nodes_to_exclude": excluded,
        }
        if p.mode == "int8_static":
            reader = _Reader(graph.input[0].name, inputs)
            quantize_static(
                str(prepared),
                str(out),
                reader,
                quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QUInt8,
                **common,
            )
        else:
            quantize_dynamic(str(prepared), str(out), **common)
        energy = ctx.meter.end(window)
        prepared.unlink()
        _copy_metadata(source, out)
        info: dict[str, Any] = {
            "quantize": {
                "mode": p.mode,
                "format": "QDQ" if p.mode == "int8_static" else "dynamic (integer ops)",
                "weights": "int8 (QInt8), per channel",
                "activations": "uint8 (QUInt8)" if p.mode == "int8_static" else "uint8, at run time",
                "ops": p.ops,
                "excluded_nodes": len(excluded),
                **_count_quantized(out, p.ops),
            },
            "calibration": calibration,
            "size_before_mb": source.stat().st_size / 1e6,
            "size_after_mb": out.stat().st_size / 1e6,
            "source": str(source),
            "versions": {"onnxruntime": onnxruntime.__version__, "onnx": importlib.metadata.version("onnx")},
        }
        if p.mode == "int8_dynamic":
            info["note"] = _DYNAMIC_NOTE
        return StageResult(out, energy, info)
