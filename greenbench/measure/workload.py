"""Synthetic ONNX workloads whose cost is known by construction, for calibrating and testing the gate.

``conv_stack(path, layers)`` writes a small CNN: a 3→C stem convolution, then ``layers``
identical C→C 3×3 convolutions with ReLU, a global average pool and a flatten. Every stacked
layer has the same shape, the same kernel and the same memory traffic, so a stack with one
more layer does ``1 / (layers + stem)`` more work, where the stem costs ``3 / C`` of a layer
(3 input channels instead of C). With C = 16 that makes ``conv_stack(21)`` about +4.9 % over
``conv_stack(20)``: a slowdown set by the graph, not by a calibration on a noisy host.

``with_side_branch(src, dst, layers)`` keeps a model as it is and adds fixed extra work: a
conv stack on the model's own input whose pooled result is an extra graph output (so
onnxruntime computes it on every call and cannot prune it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: channels of the stacked layers; 16 keeps a 64 px layer near a millisecond on one CPU core
CHANNELS = 16


def stem_fraction(channels: int = CHANNELS) -> float:
    """The stem's MACs as a fraction of one stacked layer's (3 input channels instead of C)."""
    return 3 / channels


def extra_work(layers: int, extra_layers: int, channels: int = CHANNELS) -> float:
    """The work ratio of ``conv_stack(layers + extra_layers)`` over ``conv_stack(layers)`` (MACs)."""
    base = layers + stem_fraction(channels)
    return (base + extra_layers) / base


def _stack_nodes(
    prefix: str, source: str, layers: int, channels: int, rng: Any
) -> tuple[list[Any], list[Any], str]:
    """Nodes and initializers of stem + ``layers`` conv/ReLU + pool + flatten; the output's name."""
    import numpy as np
    from onnx import helper, numpy_helper

    nodes, inits = [], []
    current, c_in = source, 3
    for i in range(layers + 1):
        w = (rng.standard_normal((channels, c_in, 3, 3)) / np.sqrt(9 * c_in)).astype(np.float32)
        inits += [
            numpy_helper.from_array(w, f"{prefix}w{i}"),
            numpy_helper.from_array(np.zeros(channels, np.float32), f"{prefix}b{i}"),
        ]
        conv, out = f"{prefix}c{i}", f"{prefix}r{i}"
        nodes += [
            helper.make_node("Conv", [current, f"{prefix}w{i}", f"{prefix}b{i}"], [conv], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", [conv], [out]),  # a non-linearity: no two convs can be folded
        ]
        current, c_in = out, channels
    nodes += [
        helper.make_node("GlobalAveragePool", [current], [f"{prefix}pool"]),
        helper.make_node("Flatten", [f"{prefix}pool"], [f"{prefix}out"]),
    ]
    return nodes, inits, f"{prefix}out"


def conv_stack(path: Path, layers: int, imgsz: int = 64, batch: int = 1, channels: int = CHANNELS) -> Path:
    """Write the conv stack (fixed input ``(batch, 3, imgsz, imgsz)``, output ``(batch, channels)``)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper

    if layers < 0 or imgsz < 1 or batch < 1 or channels < 1:
        raise ValueError(f"conv_stack: layers >= 0, imgsz, batch, channels >= 1; got {layers, imgsz, batch}")
    nodes, inits, out = _stack_nodes("", "images", layers, channels, np.random.default_rng(layers))
    graph = helper.make_graph(
        nodes,
        f"conv_stack_{layers}",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [batch, 3, imgsz, imgsz])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, [batch, channels])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # readable by every onnxruntime greenbench supports
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def with_side_branch(src: Path, dst: Path, layers: int, channels: int = CHANNELS) -> Path:
    """Copy the ONNX model ``src`` to ``dst`` with a conv-stack side branch on its (single, NCHW,
    3-channel) input, kept as an extra output ``side_out``: the same model plus fixed work."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(str(src))
    graph = model.graph
    inits = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise ValueError(f"{src}: a side branch needs exactly one input, found {len(inputs)}")
    nodes, weights, out = _stack_nodes("side_", inputs[0].name, layers, channels, np.random.default_rng(7))
    graph.node.extend(nodes)
    graph.initializer.extend(weights)
    graph.output.append(helper.make_tensor_value_info(out, TensorProto.FLOAT, ["N", channels]))
    onnx.checker.check_model(model)
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(dst))
    return dst
