"""onnxruntime's quantizer in the test process.

``quant_pre_process`` imports onnxruntime's transformer tools, which import a top-level module
named ``onnx_model`` from their own folder (appended to ``sys.path``). pytest puts ``tests/`` on
``sys.path`` first, where ``tests/onnx_model.py`` would be found instead; a worker process (how
greenbench runs stages) has no such folder on its path.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path


def use_onnxruntime_onnx_model() -> None:
    """Bind the top-level name ``onnx_model`` to onnxruntime's own module (idempotent)."""
    import onnxruntime

    current = sys.modules.get("onnx_model")
    path = Path(onnxruntime.__file__).parent / "transformers" / "onnx_model.py"
    if current is not None and Path(getattr(current, "__file__", "")) == path:
        return
    import onnxruntime.transformers  # puts its folder on sys.path for its own imports

    spec = importlib.util.spec_from_file_location("onnx_model", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["onnx_model"] = module
    spec.loader.exec_module(module)
