"""Model complexity: parameters, MACs (hence GFLOPs), file size.

MACs are counted with forward hooks on the layers that carry the arithmetic: ``Conv2d`` /
``ConvTranspose2d`` (output elements × input channels per group × kernel area; for the
transposed conv, input elements × output channels per group × kernel area) and ``Linear``
(output elements × input features). Normalisation, activations, pooling and resampling are not
counted (they are < 2 % of a CNN's MACs and conventions differ). **GFLOPs = 2 × GMACs** (one
multiply + one add), the convention of the YOLOv5 study and of ultralytics. Counted for one image.

``onnx_counts`` counts the same quantities from an ONNX graph, with the same convention (see its
docstring), so a torch checkpoint and its export can be compared.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from greenbench.errors import GreenbenchError


def count_params(module: Any) -> int:
    """Number of parameters."""
    return int(sum(p.numel() for p in module.parameters()))


def count_macs(module: Any, imgsz: int, channels: int = 3) -> int:
    """Multiply-accumulates of one forward pass on one ``imgsz``² image (see module docstring)."""
    import torch
    from torch import nn

    total = 0

    def conv_hook(m: Any, inp: Any, out: Any) -> None:
        nonlocal total
        k = 1
        for s in m.kernel_size:
            k *= s
        if isinstance(m, nn.ConvTranspose2d):  # every input element scatters to out/groups × k
            total += inp[0].numel() * (m.out_channels // m.groups) * k
        else:
            total += out.numel() * (m.in_channels // m.groups) * k

    def linear_hook(m: Any, _inp: Any, out: Any) -> None:
        nonlocal total
        total += out.numel() * m.in_features

    handles = []
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    try:
        device = next(module.parameters()).device
        with torch.inference_mode():
            module(torch.zeros(1, channels, imgsz, imgsz, device=device))
    finally:
        for h in handles:
            h.remove()
    if total == 0:
        raise RuntimeError("counted 0 MACs: the model has no Conv2d/Linear layer the counter knows")
    return total


def file_size_mb(path: Path) -> float:
    """Size on disk in MB (10⁶ bytes)."""
    return Path(path).stat().st_size / 1e6


# ONNX operators that carry the arithmetic: the input index of the weight (Conv family) or of the
# left operand (MatMul family, K = its last dim); quantized forms count like their float op.
_ONNX_CONV_WEIGHT = {"Conv": 1, "ConvInteger": 1, "QLinearConv": 3}
_ONNX_MATMUL = {"MatMul", "MatMulInteger", "QLinearMatMul"}
# Inputs that hold quantization scales/zero points or resize factors, not weights.
_ONNX_NOT_WEIGHTS = {
    "QuantizeLinear": (1, 2),
    "DequantizeLinear": (1, 2),
    "QLinearConv": (1, 2, 4, 5, 6, 7),
    "QLinearMatMul": (1, 2, 4, 5, 6, 7),
    "ConvInteger": (2, 3),
    "MatMulInteger": (2, 3),
    "Resize": (1, 2, 3),
    "Upsample": (1,),
}
# Integer initializers that are weights: (op, input index) of quantized weights and biases.
_ONNX_INT_WEIGHTS = {
    ("DequantizeLinear", 0),
    ("QLinearConv", 3),
    ("QLinearConv", 8),
    ("ConvInteger", 1),
    ("QLinearMatMul", 3),
    ("MatMulInteger", 1),
}


def _prod(dims: Iterable[int]) -> int:
    n = 1
    for d in dims:
        n *= d
    return n


def _load_onnx(path: Path) -> Any:
    """The model proto without external weight data (dims are all that is counted)."""
    import onnx
    from google.protobuf.message import DecodeError

    try:
        return onnx.load(str(path), load_external_data=False)
    except (DecodeError, OSError, ValueError) as e:
        raise GreenbenchError(f"{path} is not a readable ONNX model: {e}") from None


def _fix_input(path: Path, model: Any, imgsz: int, channels: int) -> int:
    """Set the image input's dynamic dims to (1, channels, imgsz, imgsz); return its batch size."""
    init = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in init]
    if not inputs:
        raise GreenbenchError(f"{path}: the ONNX graph has no input")
    dims = inputs[0].type.tensor_type.shape.dim
    wanted = (1, channels, imgsz, imgsz)
    if len(dims) != len(wanted):
        raise GreenbenchError(f"{path}: the input {inputs[0].name!r} has {len(dims)} dims, not NCHW")
    batch = 1
    for i, (dim, want) in enumerate(zip(dims, wanted, strict=True)):
        if dim.HasField("dim_value") and dim.dim_value != want:
            if i == 0:  # a fixed batch: count it, then divide
                batch = dim.dim_value
                continue
            fixed = tuple(d.dim_value if d.HasField("dim_value") else "?" for d in dims)
            raise GreenbenchError(
                f"{path}: the model's input has the fixed shape {fixed}; cannot count it at "
                f"{channels}x{imgsz}x{imgsz}. Count at the size it was exported with."
            )
        dim.dim_value = want  # replaces a symbolic dim (dim_param), keeps an equal fixed one
    return batch


def _onnx_params(model: Any) -> int:
    """Weight elements: float initializers and quantized weights, without quantization scales,
    zero points or resize factors. An ``Identity`` of a weight counts again: torch's exporter
    merges identical tensors (e.g. the all-zero biases of an untrained model) into one
    initializer plus ``Identity`` nodes, while torch counts each parameter."""
    import onnx

    uses: dict[str, list[tuple[str, int]]] = {}
    for node in model.graph.node:
        for k, name in enumerate(node.input):
            uses.setdefault(name, []).append((node.op_type, k))
    sizes: dict[str, int] = {}
    for init in model.graph.initializer:
        used = uses.get(init.name, [])
        if not used or any(k in _ONNX_NOT_WEIGHTS.get(op, ()) for op, k in used):
            continue
        floating = onnx.helper.tensor_dtype_to_np_dtype(init.data_type).kind == "f"
        if floating or any(u in _ONNX_INT_WEIGHTS for u in used):
            sizes[init.name] = _prod(init.dims)
    total = sum(sizes.values())
    for node in model.graph.node:  # topological order: chains of Identity resolve in one pass
        if node.op_type == "Identity" and node.input[0] in sizes:
            sizes[node.output[0]] = sizes[node.input[0]]
            total += sizes[node.output[0]]
    return total


def onnx_counts(path: Path, imgsz: int, channels: int = 3) -> tuple[int, int]:
    """(parameters, MACs) of one ``imgsz``² image, counted from an ONNX graph like ``count_macs``.

    MACs: Conv (also QLinearConv, ConvInteger) = output elements × input channels per group ×
    kernel area; ConvTranspose = input elements × output channels per group × kernel area; Gemm,
    MatMul (also QLinearMatMul, MatMulInteger) = output elements × K. Unlike the torch counter,
    a MatMul of two activations (attention) counts too: torch's ``torch.matmul`` has no hook.
    Shapes come from ONNX shape inference after the input's dynamic dims are set to
    (1, ``channels``, ``imgsz``, ``imgsz``); a fixed batch is divided out. Parameters: see
    ``_onnx_params``; a QDQ graph's quantized weights count once, their scales not at all.
    """
    from onnx import shape_inference

    model = _load_onnx(path)
    batch = _fix_input(path, model, imgsz, channels)
    del model.graph.value_info[:]  # shapes stored at export may hold the old dynamic dims
    inferred = shape_inference.infer_shapes(model, data_prop=True)
    graph = inferred.graph
    shapes: dict[str, list[int] | None] = {}
    for info in (*graph.input, *graph.value_info, *graph.output):
        dims = info.type.tensor_type.shape.dim
        known = all(d.HasField("dim_value") for d in dims)
        shapes[info.name] = [d.dim_value for d in dims] if known else None
    for init in graph.initializer:
        shapes[init.name] = list(init.dims)

    def shape(node: Any, name: str) -> list[int]:
        found = shapes.get(name)
        if found is None:
            raise GreenbenchError(
                f"{path}: ONNX shape inference left the shape of {name!r} (at {node.op_type} node "
                f"{node.name!r}) unknown; cannot count its MACs"
            )
        return found

    macs = 0
    for node in graph.node:
        op = node.op_type
        if op in _ONNX_CONV_WEIGHT:
            weight = shape(node, node.input[_ONNX_CONV_WEIGHT[op]])
            macs += _prod(shape(node, node.output[0])) * _prod(weight[1:])
        elif op == "ConvTranspose":
            weight = shape(node, node.input[1])  # (C_in, C_out / group, *kernel)
            macs += _prod(shape(node, node.input[0])) * _prod(weight[1:])
        elif op == "Gemm":
            a = shape(node, node.input[0])
            trans_a = next((attr.i for attr in node.attribute if attr.name == "transA"), 0)
            macs += _prod(shape(node, node.output[0])) * a[0 if trans_a else -1]
        elif op in _ONNX_MATMUL:
            macs += _prod(shape(node, node.output[0])) * shape(node, node.input[0])[-1]
    if macs == 0:
        ops = sorted({n.op_type for n in graph.node})
        raise GreenbenchError(
            f"{path}: counted 0 MACs; the graph has no Conv/ConvTranspose/Gemm/MatMul node the counter "
            f"knows (its operators: {', '.join(ops)})"
        )
    return _onnx_params(model), macs // batch
