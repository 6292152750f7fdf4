"""Runtimes by name. Looked up lazily by dotted path: importing this package imports neither torch
nor onnxruntime; only ``get_runtime`` of a runtime imports its module."""

from __future__ import annotations

import difflib
import importlib

from greenbench.errors import GreenbenchError
from greenbench.runtimes.base import ArtifactKind, Runtime

RUNTIMES: dict[str, str] = {
    "torch": "greenbench.runtimes.torch_eager:TorchEager",
    "onnxruntime": "greenbench.runtimes.onnxruntime:OnnxRuntime",
}

_DEFAULTS: dict[ArtifactKind, str] = {"torch": "torch", "onnx": "onnxruntime"}


def runtime_names() -> list[str]:
    """The registered runtime names, sorted."""
    return sorted(RUNTIMES)


def get_runtime(name: str) -> Runtime:
    """A new instance of the runtime registered as ``name``."""
    if name not in RUNTIMES:
        close = difflib.get_close_matches(name, RUNTIMES, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise GreenbenchError(
            f"unknown runtime {name!r}; known runtimes: {', '.join(runtime_names())}.{hint}"
        )
    module_name, _, attr = RUNTIMES[name].partition(":")
    runtime: Runtime = getattr(importlib.import_module(module_name), attr)()
    return runtime


def default_runtime(kind: ArtifactKind) -> str:
    """The runtime used for an artifact of ``kind`` when none is named."""
    if kind not in _DEFAULTS:
        raise GreenbenchError(f"no runtime for artifact kind {kind!r}; known kinds: {', '.join(_DEFAULTS)}")
    return _DEFAULTS[kind]
