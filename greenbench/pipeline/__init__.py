"""Pipeline stages, looked up by name: the ones any task can run here, a task's own in its
``stages`` (``greenbench.tasks.base.Task``).

A stage is registered by name with the dotted path of its class, so that validating a suite
imports no framework. Adding a stage = one module + one line below (or in the task's
``stages``). A stage class has ``name``, a ``params`` validator and ``run(ctx) -> StageResult``
(see ``greenbench.pipeline.base``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from greenbench.pipeline.base import Stage

#: the stages any task can run: stage name -> "module:Class"
STAGES: dict[str, str] = {
    "train": "greenbench.pipeline.train:TrainStage",
    "prune": "greenbench.pipeline.prune:PruneStage",
    "export": "greenbench.pipeline.export:ExportStage",
    "quantize": "greenbench.pipeline.quantize:QuantizeStage",
}


#: stage parameters the comparison table shows as columns (stage -> param -> header): the
#: study's "sparsity" and "prune ratio" columns come from the stages that set them
TABLE_PARAMS: dict[str, dict[str, str]] = {
    "sparse_train": {"lambda": "sparsity_λ"},
    "prune": {"ratio": "prune_ratio"},
    "quantize": {"mode": "quantized"},
}


def registered(task: str) -> dict[str, str]:
    """Every stage a suite of ``task`` may use: name -> "module:Class" (the task's own win)."""
    from greenbench.tasks import task_class

    return {**STAGES, **task_class(task).stages}


def stage_names(task: str) -> list[str]:
    """Names of every stage a suite of ``task`` may use, sorted."""
    return sorted(registered(task))


def get_stage(name: str, task: str) -> type[Stage]:
    """The stage class registered as ``name`` for ``task`` (KeyError if none)."""
    module, _, cls = registered(task)[name].partition(":")
    return getattr(importlib.import_module(module), cls)  # type: ignore[no-any-return]
