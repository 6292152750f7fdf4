"""Places to run jobs, by name: ``local`` (fresh processes on this machine) and ``ray`` (the nodes
of a Ray cluster) built in, others from installed packages.

An executor package registers itself under the entry-point group ``greenbench.executors``, the
packaging convention pytest plugins use, so it needs no edit here::

    # the executor package's pyproject.toml
    [project.entry-points."greenbench.executors"]
    mycluster = "greenbench_mycluster:ClusterExecutor"

The entry names a factory called with keyword arguments only (``LocalExecutor``'s constructor is
one): ``logdir`` (this run's log folder), ``device`` (the fingerprint of the machine the driver
measures by default), ``idle`` (the ``run.jobs.IdleJob`` that measures the idle baseline of the
machine the executor's jobs run on: the executor runs it there, once, before the first job),
``progress`` (a callable taking one line of text), ``cwd`` (the work folder), ``stall_s``
(seconds of silence after which a job counts as hung, or None) and ``options`` (the
``--executor-option KEY=VALUE`` settings as strings, e.g. a cluster's address; an executor
refuses the ones it does not know). What it returns follows
``greenbench.executors.base.Executor``; its ``device`` is the device its jobs' records name.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from greenbench.errors import GreenbenchError

#: the entry-point group third-party executors register under
ENTRY_POINT_GROUP = "greenbench.executors"
#: built-in executors: name -> "module:attribute"
BUILTIN: dict[str, str] = {
    "local": "greenbench.executors.local:LocalExecutor",
    "ray": "greenbench.executors.ray:RayExecutor",
}
DEFAULT = "local"


class UnknownExecutor(GreenbenchError):
    """``--executor`` names no built-in or installed executor (exit code 2)."""

    exit_code = 2


def available() -> dict[str, str]:
    """Every executor name and where it comes from (``module:attribute``); built-ins win a clash."""
    found = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    return {**found, **BUILTIN}


def factory(name: str) -> Callable[..., Any]:
    """The factory registered as ``name``; an unknown name or one that cannot be imported is a
    one-paragraph error naming what is installed and how to register another."""
    known = available()
    if name not in known:
        near = difflib.get_close_matches(name, known, n=1)
        hint = f" Did you mean {near[0]!r}?" if near else ""
        raise UnknownExecutor(
            f"--executor {name[:40]!r}: no such executor; installed: {', '.join(sorted(known))}.{hint} "
            f"A package adds one under the entry-point group '{ENTRY_POINT_GROUP}' (README, Executors)."
        )
    module_name, _, attr = known[name].partition(":")
    try:
        target: Any = importlib.import_module(module_name)
        for part in attr.split(".") if attr else ():
            target = getattr(target, part)
    except (ImportError, AttributeError) as e:
        raise UnknownExecutor(
            f"--executor {name!r}: its entry point {known[name]!r} cannot be loaded ({type(e).__name__}: "
            f"{e}); reinstall the package that provides it."
        ) from None
    if not callable(target):
        raise UnknownExecutor(f"--executor {name!r}: {known[name]!r} is not callable.")
    return target  # type: ignore[no-any-return]
