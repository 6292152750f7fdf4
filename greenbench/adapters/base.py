"""The task adapter protocol: what greenbench needs from a task (detection, classification).

An adapter builds, loads, saves, trains and evaluates models of its task, names the accuracy
metrics it reports (registered in ``greenbench.metrics``), checks the training arguments it
accepts before anything runs, and says which dataset format it reads. Runners, stages and
workers only see this protocol; the adapter is chosen by the suite's ``task`` through
``greenbench.adapters.adapter_class``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Protocol


class TaskAdapter(Protocol):
    """One task's models on one device. ``workdir``: where the adapter may write caches."""

    task: ClassVar[str]
    #: accuracy metric names this task reports (each registered in ``greenbench.metrics``)
    metrics: ClassVar[tuple[str, ...]]
    #: what a suite's ``dataset.path`` must point at
    dataset_format: ClassVar[str]
    #: model file suffixes the task builds from (lower case, with the dot)
    model_suffixes: ClassVar[tuple[str, ...]]

    def __init__(self, workdir: Path, device: str = "cpu") -> None: ...

    @classmethod
    def check_train_args(cls, args: dict[str, Any]) -> list[tuple[str, str]]:
        """(key, what is wrong) for every training argument the task refuses; [] if all fine."""
        ...

    def build(self, model: str, weights: str | None = None) -> Any:
        """A model from a config or a file on disk (optionally with weights)."""
        ...

    def load(self, checkpoint: Path) -> Any:
        """A model from a file greenbench wrote (or an ``.onnx`` file, for evaluation)."""
        ...

    def save(self, model: Any, path: Path) -> Path:
        """Save ``model`` at ``path``."""
        ...

    def train(
        self,
        model: Any,
        data_yaml: Path,
        out_dir: Path,
        args: dict[str, Any],
        on_epoch: Callable[[int, int], None] | None = None,
        trainer: type[Any] | None = None,
    ) -> Path:
        """Train ``model``; return the checkpoint to carry on from. ``trainer``: the task's
        trainer class to use instead of its default (a stage's own, e.g. sparse training)."""
        ...

    def evaluate(
        self, model: Any, data_yaml: Path, imgsz: int, out_dir: Path, split: str = "test"
    ) -> dict[str, float]:
        """The task's accuracy metrics (names as in ``metrics``) on ``split``."""
        ...

    def inference_module(self, model: Any) -> Any:
        """The eval-mode ``nn.Module`` that latency times and complexity counts."""
        ...

    def module_loader(self, path: Path) -> Any:
        """``inference_module`` of the model file at ``path`` (what the torch runtime runs)."""
        ...
