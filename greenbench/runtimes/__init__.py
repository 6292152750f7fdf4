"""Runtimes by name. Looked up lazily by dotted path: importing this package imports neither torch
nor onnxruntime nor openvino; only ``runtime_class``/``get_runtime`` of a runtime imports its
module, and a runtime module imports its library only when it loads a model."""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Mapping
from typing import Any

from greenbench.errors import GreenbenchError
from greenbench.runtimes.base import Artifact, ArtifactKind, Runtime

RUNTIMES: dict[str, str] = {
    "torch": "greenbench.runtimes.torch_eager:TorchEager",
    "onnxruntime": "greenbench.runtimes.onnxruntime:OnnxRuntime",
    "openvino": "greenbench.runtimes.openvino:OpenVino",
}

_DEFAULTS: dict[ArtifactKind, str] = {"torch": "torch", "onnx": "onnxruntime"}


def runtime_names() -> list[str]:
    """The registered runtime names, sorted."""
    return sorted(RUNTIMES)


def runtime_class(name: str) -> type[Runtime]:
    """The class registered as ``name`` (its module imported, its library not)."""
    if name not in RUNTIMES:
        close = difflib.get_close_matches(name, RUNTIMES, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise GreenbenchError(
            f"unknown runtime {name!r}; known runtimes: {', '.join(runtime_names())}.{hint}"
        )
    module_name, _, attr = RUNTIMES[name].partition(":")
    cls: type[Runtime] = getattr(importlib.import_module(module_name), attr)
    return cls


def get_runtime(name: str) -> Runtime:
    """A new instance of the runtime registered as ``name``."""
    return runtime_class(name)()


def eval_forward(
    name: str, artifact: Artifact, options: Mapping[str, Any]
) -> Callable[[Any], list[Any]] | None:
    """How the runtime ``name`` computes a model's raw outputs for accuracy evaluation: a function
    from an NCHW float32 batch (numpy) to the list of output arrays, or None where the task
    adapter's own path already runs the artifact as this runtime does (torch for a checkpoint,
    onnxruntime for an ONNX file through ultralytics)."""
    runtime = get_runtime(name)
    make = getattr(runtime, "eval_forward", None)
    if make is None:
        return None
    forward: Callable[[Any], list[Any]] = make(artifact, options)
    return forward


def default_runtime(kind: ArtifactKind) -> str:
    """The runtime used for an artifact of ``kind`` when none is named."""
    if kind not in _DEFAULTS:
        raise GreenbenchError(f"no runtime for artifact kind {kind!r}; known kinds: {', '.join(_DEFAULTS)}")
    return _DEFAULTS[kind]
