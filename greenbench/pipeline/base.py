"""What a stage receives and returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from greenbench.measure.energy.meter import EnergyReading, Meter
from greenbench.tasks.base import Task, Trainer


@dataclass
class StageContext:
    """Everything a stage may use. ``input`` is the previous stage's (or parent's) checkpoint;
    ``None`` means start from the root ``model`` config (and its ``weights``)."""

    task: Task
    data_yaml: Path
    defaults: dict[str, Any]
    params: dict[str, Any]
    input: Path | None
    model: str
    weights: str | None
    out_dir: Path
    meter: Meter
    emit: Callable[[str], None] = field(default=lambda _msg: None)
    variant: str = ""  # the variant whose lineage runs this stage (for messages)
    #: the final checkpoint of each variant the stage's ``variant_params`` name (param -> file)
    models: dict[str, Path] = field(default_factory=dict)

    def start_model(self) -> Any:
        """The model the stage starts from: the parent's checkpoint, else the root config (with
        its weights)."""
        if self.input is not None:
            return self.task.load(self.input)
        return self.task.build(self.model, self.weights)

    def train(
        self, model: Any, args: dict[str, Any], label: str, trainer: Trainer | None = None
    ) -> tuple[Path, EnergyReading]:
        """Train ``model`` with ``args`` inside the stage's energy window, emitting
        ``"<label> epoch x/y"`` after each epoch; the checkpoint and the window's energy."""
        window = self.meter.begin()
        checkpoint = self.task.train(
            model,
            self.data_yaml,
            self.out_dir,
            args,
            on_epoch=lambda epoch, epochs: self.emit(f"{label} epoch {epoch}/{epochs}"),
            trainer=trainer,
        )
        return checkpoint, self.meter.end(window)


@dataclass(frozen=True)
class StageResult:
    """A stage's artifact, the energy of its window and what else it wants recorded."""

    checkpoint: Path
    energy: EnergyReading
    info: dict[str, Any] = field(default_factory=dict)


class Stage(Protocol):
    """A pipeline stage, registered by name in ``greenbench.pipeline.STAGES`` (any task) or in a
    task's ``stages`` (that task only)."""

    name: ClassVar[str]
    #: params whose value names another variant of the suite whose final model the stage reads
    #: (a distillation's teacher): that variant's stages run first, its final stage's key enters
    #: this stage's key, and ``StageContext.models`` hands its checkpoint over
    variant_params: ClassVar[tuple[str, ...]]

    @classmethod
    def validate_params(cls, params: dict[str, Any], task: type[Task]) -> dict[str, Any]:
        """Return the cleaned params or raise ``ValueError`` naming the bad key; ``task``: the
        suite's task class (it checks its own training arguments)."""
        ...

    def run(self, ctx: StageContext) -> StageResult:
        """Run the stage; raise ``GreenbenchError`` for a user-caused failure."""
        ...
