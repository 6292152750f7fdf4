"""Pipeline stages, looked up by name.

A stage is registered here by name with the dotted path of its class, so that validating a
suite does not import torch or ultralytics. Adding a stage = one module + one line below.
A stage class has ``name``, a ``params`` validator and ``run(ctx) -> StageResult``
(see ``greenbench.pipeline.base``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from greenbench.pipeline.base import Stage

#: stage name -> "module:Class"
STAGES: dict[str, str] = {
    "train": "greenbench.pipeline.train:TrainStage",
}


def stage_names() -> list[str]:
    """Names of every registered stage, sorted."""
    return sorted(STAGES)


def get_stage(name: str) -> type[Stage]:
    """The stage class registered as ``name`` (KeyError if none)."""
    module, _, cls = STAGES[name].partition(":")
    return getattr(importlib.import_module(module), cls)  # type: ignore[no-any-return]
