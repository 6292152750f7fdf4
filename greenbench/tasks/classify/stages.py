"""Stage ``train`` as the classifier runs it: the generic training (``greenbench.pipeline.train``)
plus what the record must show of it: trainable against total parameters, whether frozen
BatchNorm statistics moved, the epochs each augmentation step ran and the loss per epoch."""

from __future__ import annotations

from typing import Any, ClassVar

from greenbench.pipeline.base import StageContext, StageResult
from greenbench.pipeline.train import TrainStage
from greenbench.tasks.base import Task


class ClassifyTrainStage:
    """``train {freeze, epochs, optimizer, lr, augment, …}``: freeze-and-train or fine-tune."""

    name: ClassVar[str] = "train"
    variant_params: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def validate_params(cls, params: dict[str, Any], task: type[Task]) -> dict[str, Any]:
        """The classifier's training arguments (``greenbench.tasks.classify.train``)."""
        return TrainStage.validate_params(params, task)

    def run(self, ctx: StageContext) -> StageResult:
        """Train; the record gets the generic ``train_args`` and the training's own facts."""
        from greenbench.tasks.classify.models import read_checkpoint

        result = TrainStage().run(ctx)
        info = dict(read_checkpoint(result.checkpoint).get("info") or {})
        return StageResult(result.checkpoint, result.energy, {**result.info, **info})
