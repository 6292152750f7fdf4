"""The task protocol: everything greenbench needs from a task (detection, classification, …).

A task is a class registered by name (``greenbench.tasks``). Its class attributes and class
methods are what a suite is checked against before anything runs (no framework import); an
instance (``Task(workdir, device)``) builds, trains, evaluates and exports models in a worker
process. Runners, stages and workers see only this protocol: nothing reaches a task with
``getattr``, and nothing outside a task's package imports its framework.

What crosses from the driver to the workers about the data is a ``DatasetRef`` (the task's
checked dataset, staged under the work folder) and, for ``dataset.synthetic`` and ``--smoke``,
a ``Synthetic`` spec the task generates data from.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    from greenbench.metric_def import MetricDef


@dataclass(frozen=True)
class DatasetRef:
    """A checked dataset: the file workers read (``data``: a YOLO data.yaml for detection, the
    task's own file otherwise), the split accuracy is measured on, and a content fingerprint
    that keys the stage cache and resume.

    ignored: samples the task's framework would drop, counted by reason; ignored_examples: up
    to a few of their paths per reason; contents: what the task needs to stage the data (its
    own type; None for a ref built by hand: staging checks the data again).
    """

    data_yaml: Path
    eval_split: str
    fingerprint: str
    ignored: dict[str, int] = field(default_factory=dict, compare=False)
    ignored_examples: dict[str, tuple[str, ...]] = field(default_factory=dict, compare=False)
    contents: Any = field(default=None, compare=False, repr=False)

    @property
    def names(self) -> list[str] | None:
        """The class names the data declares, in order, where the task knows them."""
        found = getattr(self.contents, "names", None)
        return list(found.values()) if isinstance(found, Mapping) else None


@dataclass(frozen=True)
class Synthetic:
    """A generated dataset, as a suite's ``dataset.synthetic`` (or ``--smoke``) asks for it:
    ``classes`` classes, ``images`` images of ``imgsz`` px square in all (split by the task),
    every random draw fixed by ``seed``; ``names``: the class names (empty: the task's own)."""

    classes: int = 3
    images: int = 60
    imgsz: int = 128
    seed: int = 0
    names: tuple[str, ...] = ()


#: a training hook: the trainer class of the task's framework a stage trains with (the
#: detection task's sparse and module trainers), passed back to the task's own ``train``
Trainer = Any


@dataclass
class Prunable:
    """What a structural pruning stage may change of a model, as its task says.

    module: the ``nn.Module`` to prune, fp32 on the CPU. protected: its layers that are never a
    pruning root (their outputs keep their shape: a detector's head, a classifier's final
    layer). weights_from: where the weights came from, for the record. protected_what: the
    protected layers in words. saved_as: how ``save`` stores the pruned module, in words.
    save: write the pruned module where the task can load it back with its own shapes.
    residual: the BatchNorm layers on residual paths, which the ``bn_threshold`` criterion keeps
    whole; residual_what: which those are, in words.
    """

    module: Any
    protected: list[Any]
    weights_from: str
    protected_what: str
    saved_as: str
    save: Callable[[Any, Path], Path]
    residual: list[Any] = field(default_factory=list)
    residual_what: str = "none named by the task"


class Task(Protocol):
    """One task's models on one device. ``workdir``: where the task may write caches."""

    name: ClassVar[str]
    #: the accuracy metrics this task reports (merged into ``greenbench.metrics``)
    metrics: ClassVar[tuple[MetricDef, ...]]
    #: the accuracy columns of the comparison table, in order
    table_accuracy: ClassVar[tuple[str, ...]]
    #: the one accuracy the task is judged by (tables, leaderboard ranks, reports, the gate)
    headline: ClassVar[str]
    #: what a suite's ``dataset.path`` must point at, in words
    dataset_format: ClassVar[str]
    #: model file suffixes the task builds from (lower case, with the dot)
    model_suffixes: ClassVar[tuple[str, ...]]
    #: training arguments naming a file the framework unpickles (need ``allow_pickle: true``)
    pickle_args: ClassVar[tuple[str, ...]]
    #: stages only this task can run: name -> "module:Class" (``greenbench.pipeline.base.Stage``)
    stages: ClassVar[dict[str, str]]
    #: distributions whose versions a record or an export notes (the task's framework)
    packages: ClassVar[tuple[str, ...]]
    #: the task reads model and weights files with ``torch.load(weights_only=True)`` (no code
    #: runs from them), so a suite needs no ``allow_pickle`` for them
    weights_only: ClassVar[bool]
    #: real datasets the task writes without a download (``greenbench data NAME --out DIR``):
    #: name -> (what it is, "module:function"); the function takes the output folder and
    #: returns what a suite's ``dataset.path`` names
    datasets: ClassVar[dict[str, tuple[str, str]]]

    # --- before anything runs (class methods: no framework import) ------------------------
    @classmethod
    def check_train_args(cls, args: dict[str, Any]) -> list[tuple[str, str]]:
        """(key, what is wrong) for every training argument the task refuses; [] if all fine."""
        ...

    @classmethod
    def builtin_models(cls) -> list[str]:
        """Model names the task builds without a file (e.g. a framework's bundled configs); the
        first is the one messages give as an example."""
        ...

    @classmethod
    def is_builtin_model(cls, name: str) -> bool:
        """Whether ``name`` (no folder) is one of ``builtin_models``."""
        ...

    @classmethod
    def check_dataset(cls, path: Path) -> DatasetRef:
        """Check the dataset file at ``path`` and every sample it names; its fingerprint. Raise
        ``GreenbenchError`` naming the file and what to do."""
        ...

    @classmethod
    def stage_dataset(cls, ref: DatasetRef, workdir: Path) -> Path:
        """A copy of ``ref`` under ``workdir`` the framework may read and write beside; the
        file workers are given."""
        ...

    @classmethod
    def synthetic_fingerprint(cls, spec: Synthetic) -> str:
        """The fingerprint of the data ``synthesize`` makes from ``spec`` (without making it)."""
        ...

    @classmethod
    def synthesize(cls, cache_root: Path, spec: Synthetic) -> Path:
        """Generate ``spec``'s data under ``cache_root`` once (reused after); the file workers read."""
        ...

    @classmethod
    def write_synthetic(cls, out: Path, spec: Synthetic) -> Path:
        """Generate ``spec``'s data into ``out`` (``greenbench data synth``); the file to read."""
        ...

    # --- in a worker ------------------------------------------------------------------------
    def __init__(self, workdir: Path, device: str = "cpu") -> None: ...

    def build(self, model: str, weights: str | None = None) -> Any:
        """A model from a config, a built-in name or a file on disk (optionally with weights)."""
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
        trainer: Trainer | None = None,
    ) -> Path:
        """Train ``model``; return the checkpoint to carry on from. ``trainer``: a training hook
        of the task's own (a stage of the task's package passes it), None for the default."""
        ...

    def evaluate(
        self, model: Any, data_yaml: Path, imgsz: int, out_dir: Path, split: str = "test"
    ) -> dict[str, float]:
        """The task's accuracy metrics (names as in ``metrics``) on ``split``; a ``details`` entry,
        if any, holds what is not one number (per-class accuracy, a confusion matrix) as JSON
        values: the record keeps it beside the metrics (``measurement.accuracy_details``)."""
        ...

    def evaluate_with(
        self,
        onnx: Path,
        forward: Callable[[Any], list[Any]],
        data_yaml: Path,
        imgsz: int,
        out_dir: Path,
        split: str = "test",
    ) -> dict[str, float]:
        """``evaluate`` of an ONNX file whose outputs ``forward`` computes (a runtime's own
        session, e.g. OpenVINO at a precision hint), everything else as ``evaluate``."""
        ...

    def inference_module(self, model: Any) -> Any:
        """The eval-mode ``nn.Module`` that latency times and complexity counts."""
        ...

    def module_loader(self, path: Path) -> Any:
        """``inference_module`` of the model file at ``path`` (what the torch runtime runs)."""
        ...

    def export_onnx(
        self, checkpoint: Path, imgsz: int, dynamic: bool, simplify: bool, opset: int | None
    ) -> Path:
        """Export ``checkpoint`` to an ONNX file (batch 1, fp32, one output) on the CPU."""
        ...

    def prunable(self, model: Any, source: Path | None) -> Prunable:
        """The part of ``model`` (loaded from ``source``, or built) a pruning stage may change,
        the layers it must not, and how to save the result."""
        ...

    def end_to_end(
        self, data_yaml: Path, imgsz: int, forward: Callable[[Any], list[Any]]
    ) -> tuple[Callable[[], None], str]:
        """What ``measure.latency.scope: total`` times: a call that takes the next image file of
        the evaluation split (cycling), reads and decodes it, preprocesses it as evaluation does,
        runs ``forward`` (a runtime's model on an NCHW float32 batch) and postprocesses the
        outputs as an application would (top-k, NMS); and that work in words, for the record."""
        ...

    def calibration_inputs(
        self, data_yaml: Path, imgsz: int, count: int, seed: int
    ) -> tuple[Iterator[Any], dict[str, Any]]:
        """Up to ``count`` training inputs (numpy arrays shaped as the model's input), chosen
        with ``seed`` now and preprocessed as evaluation feeds them one at a time as they are
        read, and facts for the record (``images``: how many, ``split``, ``source``,
        ``preprocessing``): what a static int8 quantization calibrates on."""
        ...
