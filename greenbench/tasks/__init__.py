"""Tasks by name: ``detect`` built in, others from installed packages.

A task owns its framework: building, training and evaluating its models, its dataset format
(check, fingerprint, staging, synthetic data), its accuracy metrics and the stages only it can
run (``greenbench.tasks.base.Task``). Nothing outside a task's package imports its framework.

A task package registers itself under the entry-point group ``greenbench.tasks``, the packaging
convention pytest plugins use, so adding one needs no edit here::

    # the task package's pyproject.toml
    [project.entry-points."greenbench.tasks"]
    segment = "greenbench_segment:SegmentTask"

Looked up by dotted path, so validating a suite imports the task's module but never its
framework (a task imports its framework inside its methods).
"""

from __future__ import annotations

import difflib
import importlib
from functools import cache
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from greenbench.errors import GreenbenchError

if TYPE_CHECKING:
    from greenbench.tasks.base import Task

#: the entry-point group third-party tasks register under
ENTRY_POINT_GROUP = "greenbench.tasks"
#: built-in tasks: name -> "module:Class"
BUILTIN: dict[str, str] = {
    "detect": "greenbench.tasks.detect:DetectTask",
    "classify": "greenbench.tasks.classify:ClassifyTask",
}


class UnknownTask(GreenbenchError):
    """A suite's ``task`` names no built-in or installed task."""

    exit_code = 2


def available() -> dict[str, str]:
    """Every task name and where it comes from (``module:Class``); built-ins win a clash."""
    found = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    return {**found, **BUILTIN}


def task_names() -> list[str]:
    """Every registered task, sorted."""
    return sorted(available())


def unknown_task_message(name: object) -> str:
    """What to say about a ``task`` that is not registered: the installed ones, a near name, how
    to add one."""
    known = task_names()
    near = difflib.get_close_matches(str(name), known, n=1) if isinstance(name, str) else []
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    return (
        f"expected one of the installed tasks: {', '.join(known)}{hint}; a package adds a task "
        f"under the entry-point group '{ENTRY_POINT_GROUP}' (README, Tasks)"
    )


@cache
def task_class(name: str) -> type[Task]:
    """The task class registered as ``name``; an unknown one, or one whose module cannot be
    imported, is a one-paragraph error."""
    known = available()
    if name not in known:
        raise UnknownTask(f"unknown task {name[:40]!r}; {unknown_task_message(name)}.")
    module_name, _, attr = known[name].partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise UnknownTask(
            f"task {name!r}: its entry point {known[name]!r} cannot be loaded ({type(e).__name__}: "
            f"{e}); reinstall the package that provides it."
        ) from None
    return cls  # type: ignore[no-any-return]
