"""The runtime seam: an artifact (a model file of one kind) becomes a predictor through a runtime.

A *runtime* (torch eager, onnxruntime, ...) loads an ``Artifact`` with ``RuntimeSettings`` and
returns a ``Predictor``: a forward pass on fixed random input, a device sync, and a description of
everything that shapes its speed (versions, provider, threads, session options, input, precision),
which is stored with the measurement.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

from greenbench.errors import GreenbenchError

ArtifactKind = Literal["torch", "onnx"]

SUFFIXES: dict[str, ArtifactKind] = {".pt": "torch", ".pth": "torch", ".onnx": "onnx"}
_DEVICE = re.compile(r"cpu|cuda(:\d+)?")


def artifact_kind(path: str | Path) -> ArtifactKind:
    """The kind of model file ``path`` holds, from its suffix (case-insensitive)."""
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        accepted = ", ".join(f"{s} ({k})" for s, k in SUFFIXES.items())
        raise GreenbenchError(
            f"{path}: cannot tell what kind of model file this is from its suffix "
            f"{suffix or '(none)'!r}; greenbench reads {accepted}."
        )
    return SUFFIXES[suffix]


@dataclass(frozen=True)
class Artifact:
    """A model file and its kind."""

    kind: ArtifactKind
    path: str


@dataclass(frozen=True)
class RuntimeSettings:
    """How a runtime should run an artifact.

    device: ``cpu`` or ``cuda:N``. threads: intra-op CPU threads. batch: images per call.
    imgsz: square input side in pixels. ort_spinning: let onnxruntime's idle intra-op threads spin
    (lower latency, but they burn CPU energy while waiting; off by default). options: the
    variant's runtime options (``runtime: {name: ..., ...}`` in a suite), checked by the runtime's
    ``check_options``.
    """

    device: str = "cpu"
    threads: int = 1
    batch: int = 1
    imgsz: int = 640
    ort_spinning: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _DEVICE.fullmatch(self.device):
            raise GreenbenchError(f"runtime settings: device must be 'cpu' or 'cuda:N', got {self.device!r}")
        for name in ("threads", "batch", "imgsz"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise GreenbenchError(f"runtime settings: {name} must be an integer >= 1, got {value!r}")

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        """(batch, 3, imgsz, imgsz): the NCHW input every predictor is fed."""
        return (self.batch, 3, self.imgsz, self.imgsz)


@dataclass(frozen=True)
class Predictor:
    """call(): one forward pass of images_per_call random images (fixed seed, no pre/post-processing).
    sync(): wait for the device.

    threads: the intra-op thread count the runtime reports back. description: runtime name and
    version, provider, every session option, input shape and precision (JSON-ready).
    """

    call: Callable[[], None]
    sync: Callable[[], None]
    images_per_call: int
    threads: int
    description: dict[str, Any]
    #: the model on a given input: an NCHW float32 numpy batch in, its outputs as numpy arrays
    #: out (what ``measure.latency.scope: total`` runs between a task's pre- and postprocessing)
    forward: Callable[[Any], list[Any]] | None = None


class Runtime(Protocol):
    """Turns an artifact of one of ``kinds`` into a ``Predictor``.

    ``module_loader(path) -> nn.Module`` is how a task adapter hands a runtime that executes torch
    modules the fused, eval-mode inference module of a checkpoint; other runtimes ignore it.
    """

    name: ClassVar[str]
    kinds: ClassVar[tuple[ArtifactKind, ...]]

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        """The options with defaults filled in; ``ValueError`` naming an unknown or bad key.
        Must not import the runtime's library: suites are validated without it."""
        ...

    def load(
        self,
        artifact: Artifact,
        settings: RuntimeSettings,
        module_loader: Callable[[Path], Any] | None = None,
    ) -> Predictor: ...


def no_options(name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """``check_options`` of a runtime that takes none: any key is an error naming it."""
    if options:
        key = sorted(options)[0]
        raise ValueError(f"unknown option {key!r} for runtime {name!r}; it takes no options")
    return {}


def checked_options(runtime: Runtime, options: Mapping[str, Any]) -> dict[str, Any]:
    """``runtime.check_options(options)`` with a bad option as a ``GreenbenchError``."""
    try:
        return runtime.check_options(options)
    except ValueError as e:
        raise GreenbenchError(f"runtime {runtime.name!r}: {e}") from None


def runtime_label(name: str, options: Mapping[str, Any]) -> str:
    """How a record names its runtime: ``openvino(precision=bf16, streams=1)``, or the bare name."""
    if not options:
        return name
    return f"{name}({', '.join(f'{k}={options[k]}' for k in sorted(options))})"


def check_kind(runtime: Runtime, artifact: Artifact) -> None:
    """Refuse an artifact the runtime cannot read, saying which runtimes can."""
    if artifact.kind not in runtime.kinds:
        raise GreenbenchError(
            f"runtime {runtime.name!r} cannot run {artifact.path} (a {artifact.kind} file); it reads "
            f"{', '.join(runtime.kinds)} files. Choose a runtime for {artifact.kind} files."
        )
