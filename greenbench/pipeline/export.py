"""Stage ``export``: the parent's checkpoint as an ONNX model (``model.onnx``), through ultralytics'
exporter, offline.

The graph is fp32, batch 1, with one output (the decoded Detect tensor), simplified by onnxslim.
Its input is fixed at the suite's training ``imgsz`` (``defaults.imgsz``, 640 if unset), which is
also where accuracy is evaluated; ``dynamic: true`` exports dynamic batch and image axes instead.
A fixed-shape model is only ever run at its own size: ultralytics would evaluate it at the
export's size whatever was asked, so the suite checks (``greenbench.suite.artifact_checks``) and the
evaluation (``check_eval_imgsz``) refuse a mismatch rather than resize silently.
"""

from __future__ import annotations

import importlib.metadata
import shutil
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from greenbench.errors import GreenbenchError
from greenbench.pipeline.base import StageContext, StageResult
from greenbench.tasks.base import Task

DEFAULT_IMGSZ = 640  # the image size when the suite's defaults set none (the detection task's default)
#: the image sides (px) a suite or the gate may ask for: at 8192 px one 3-channel float32 image is
#: 0.8 GB, and a model's activations are many times that; beyond it no device holds a batch
MIN_IMGSZ, MAX_IMGSZ = 8, 8192


class ExportParams(BaseModel):
    """``format`` (onnx only), ``opset`` (None: the exporter's default), ``simplify`` (onnxslim),
    ``dynamic`` (dynamic batch and image axes instead of a fixed 1x3ximgszximgsz input)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    format: Literal["onnx"] = "onnx"
    opset: int | None = Field(default=None, ge=11, le=23)
    simplify: bool = True
    dynamic: bool = False


def onnx_input_dims(path: Path) -> list[int | str]:
    """The dims of the model's (first) input: ints where fixed, names (or ``?``) where dynamic."""
    import onnx

    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception as e:  # onnx raises DecodeError, ValueError, OSError for a bad file
        raise GreenbenchError(f"{path} is not a readable ONNX model ({type(e).__name__}: {e})") from None
    if not graph.input:
        raise GreenbenchError(f"{path}: the ONNX graph has no input")
    dims = graph.input[0].type.tensor_type.shape.dim
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in dims]


def fixed_imgsz(path: Path) -> int | None:
    """The square image side a fixed-shape (N, C, S, S) model takes; None if its size is dynamic."""
    dims = onnx_input_dims(path)
    if len(dims) == 4 and isinstance(dims[2], int) and isinstance(dims[3], int) and dims[2] == dims[3]:
        return dims[2]
    return None


def check_eval_imgsz(path: Path, imgsz: int, variant: str = "") -> None:
    """Refuse to evaluate a fixed-shape ONNX model at another size: ultralytics would silently
    evaluate it at its own size instead, and the record would claim ``imgsz``."""
    dims = onnx_input_dims(path)
    if len(dims) == 4 and all(isinstance(d, int) for d in dims[2:]) and dims[2:] != [imgsz, imgsz]:
        who = f"variant {variant!r}: " if variant else ""
        raise GreenbenchError(
            f"{who}{path} has the fixed input {tuple(dims)}, but accuracy is evaluated at imgsz "
            f"{imgsz} (the suite's defaults.imgsz). Export at that size, or export with "
            "'export: {dynamic: true}' to run one model at several sizes."
        )


def _versions(task_packages: tuple[str, ...]) -> dict[str, str]:
    found = {}
    for name in (*task_packages, "onnx", "onnxslim", "torch"):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


class ExportStage:
    """``export {format: onnx, opset?: int, simplify: true, dynamic: false}``: torch checkpoint in,
    ``model.onnx`` out (its kind comes from its suffix)."""

    name: ClassVar[str] = "export"
    variant_params: ClassVar[tuple[str, ...]] = ()
    accepts: ClassVar[tuple[str, ...]] = ("torch",)
    produces: ClassVar[str] = "onnx"

    @classmethod
    def validate_params(cls, params: dict[str, Any], task: type[Task] | None = None) -> dict[str, Any]:
        """Params as ``ExportParams`` (pydantic errors name the key); the defaults filled in so
        that the cache key says what was exported."""
        return ExportParams.model_validate(params).model_dump()

    def run(self, ctx: StageContext) -> StageResult:
        """Export the parent's checkpoint (or the root model) at ``defaults.imgsz``."""
        p = ExportParams.model_validate(ctx.params)
        if ctx.input is not None and ctx.input.suffix.lower() == ".onnx":
            raise GreenbenchError(
                f"variant {ctx.variant!r}: stage 'export' takes a torch checkpoint, but its input "
                f"{ctx.input} is already an ONNX model; remove the second 'export'."
            )
        task = ctx.task
        imgsz = int(ctx.defaults.get("imgsz", DEFAULT_IMGSZ))
        ctx.out_dir.mkdir(parents=True, exist_ok=True)
        # the exporter writes beside its checkpoint: a copy here keeps the parent's folder untouched
        local = ctx.out_dir / "model.pt"
        if ctx.input is not None:
            shutil.copyfile(ctx.input, local)
        else:
            task.save(task.build(ctx.model, ctx.weights), local)
        ctx.emit(f"export onnx at {imgsz} px")
        window = ctx.meter.begin()
        made = task.export_onnx(local, imgsz, p.dynamic, p.simplify, p.opset)
        energy = ctx.meter.end(window)
        onnx_path = ctx.out_dir / "model.onnx"
        if Path(made).resolve() != onnx_path.resolve():
            shutil.move(str(made), onnx_path)
        local.unlink()  # the source checkpoint stays in the parent's folder
        info = {"export": {**p.model_dump(), "imgsz": imgsz, "batch": 1}, **describe_onnx(onnx_path)}
        info["versions"] = _versions(ctx.task.packages)
        if ctx.input is not None:
            info["source"] = str(ctx.input)
        return StageResult(onnx_path, energy, info)


def describe_onnx(path: Path) -> dict[str, Any]:
    """Opset, input and output shapes and file size of an ONNX model; more than one output is an
    error (greenbench's runtimes and the ultralytics evaluation read one detection tensor)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)

    def dims(value: Any) -> list[int | str]:
        shape = value.type.tensor_type.shape.dim
        return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in shape]

    outputs = [{"name": o.name, "shape": dims(o)} for o in model.graph.output]
    if len(outputs) != 1:
        names = ", ".join(o["name"] for o in outputs)
        raise GreenbenchError(
            f"{path}: the exported model has {len(outputs)} outputs ({names}); "
            "greenbench measures single-output detection models (the decoded Detect tensor)"
        )
    opsets = {imp.domain or "ai.onnx": imp.version for imp in model.opset_import}
    return {
        "opset": opsets.get("ai.onnx"),
        "inputs": [{"name": i.name, "shape": dims(i)} for i in model.graph.input],
        "outputs": outputs,
        "nodes": len(model.graph.node),
        "size_mb": path.stat().st_size / 1e6,
    }
