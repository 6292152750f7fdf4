"""Stage ``train``: train (from scratch, from weights, or on from the parent's checkpoint)."""

from __future__ import annotations

from typing import Any, ClassVar

from greenbench.pipeline.base import StageContext, StageResult
from greenbench.tasks.base import Task


class TrainStage:
    """The task's training with the suite's ``defaults`` overridden by the stage's params."""

    name: ClassVar[str] = "train"
    variant_params: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def validate_params(cls, params: dict[str, Any], task: type[Task]) -> dict[str, Any]:
        """Params must be training arguments the task accepts (and greenbench does not set)."""
        for _key, message in task.check_train_args(params):
            raise ValueError(message)
        return dict(params)

    def run(self, ctx: StageContext) -> StageResult:
        """Train and return the best checkpoint with the energy of the whole training window."""
        args = {**ctx.defaults, **ctx.params}
        checkpoint, energy = ctx.train(ctx.start_model(), args, "train")
        return StageResult(checkpoint, energy, {"train_args": args})
