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
    "sparse_train": "greenbench.pipeline.sparse_train:SparseTrainStage",
    "prune": "greenbench.pipeline.prune:PruneStage",
    "finetune": "greenbench.pipeline.finetune:FinetuneStage",
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


def stage_names() -> list[str]:
    """Names of every registered stage, sorted."""
    return sorted(STAGES)


def get_stage(name: str) -> type[Stage]:
    """The stage class registered as ``name`` (KeyError if none)."""
    module, _, cls = STAGES[name].partition(":")
    return getattr(importlib.import_module(module), cls)  # type: ignore[no-any-return]
