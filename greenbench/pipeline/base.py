"""What a stage receives and returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from greenbench.measure.energy.meter import EnergyReading, Meter


@dataclass
class StageContext:
    """Everything a stage may use. ``input`` is the previous stage's (or parent's) checkpoint;
    ``None`` means start from the root ``model`` config (and its ``weights``)."""

    adapter: Any
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


@dataclass(frozen=True)
class StageResult:
    """A stage's artifact, the energy of its window and what else it wants recorded."""

    checkpoint: Path
    energy: EnergyReading
    info: dict[str, Any] = field(default_factory=dict)


class Stage(Protocol):
    """A pipeline stage, registered by name in ``greenbench.pipeline.STAGES``."""

    name: ClassVar[str]

    @classmethod
    def validate_params(cls, params: dict[str, Any]) -> dict[str, Any]:
        """Return the cleaned params or raise ``ValueError`` naming the bad key."""
        ...

    def run(self, ctx: StageContext) -> StageResult:
        """Run the stage; raise ``GreenbenchError`` for a user-caused failure."""
        ...
