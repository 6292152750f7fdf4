"""Task adapters, looked up by task name.

Registered by dotted path so that validating a suite imports neither torch nor ultralytics.
Adding a task = one adapter module + one line below (and its metrics in ``greenbench.metrics``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from greenbench.errors import GreenbenchError

if TYPE_CHECKING:
    from greenbench.adapters.base import TaskAdapter

#: task name -> "module:Class"
ADAPTERS: dict[str, str] = {
    "detect": "greenbench.adapters.detect:DetectAdapter",
}


def task_names() -> list[str]:
    """Every registered task, sorted."""
    return sorted(ADAPTERS)


def adapter_class(task: str) -> type[TaskAdapter]:
    """The adapter class registered for ``task``."""
    if task not in ADAPTERS:
        raise GreenbenchError(f"unknown task {task!r}; expected one of: {', '.join(task_names())}")
    module, _, cls = ADAPTERS[task].partition(":")
    return getattr(importlib.import_module(module), cls)  # type: ignore[no-any-return]
