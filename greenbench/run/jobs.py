"""Typed, versioned jobs and results: what crosses the process (or machine) boundary.

The runner hands a job to an executor; a worker process runs it and hands a result back, as
pyperf's worker hands a typed ``Benchmark`` to its manager. Every job and result is a frozen
dataclass that carries the suite's own validated settings (pydantic models), never re-keyed
dicts, and round-trips through JSON with ``dump``/``load`` (pydantic's ``TypeAdapter`` does the
typed decoding, so no hand-written ``from_dict`` per class).

Format history (bump ``JOB_VERSION`` and describe the change here):
  1 — StagesJob/StagesResult, EvaluateJob/EvaluateResult, RoundJob/RoundResult.
  2 — ArmSpec.options and EvaluateJob.runtime/runtime_options: the variant's runtime and its
      options (a worker of format 1 would drop them and measure with the defaults).
  3 — IdleJob/IdleResult: the idle baseline is a job the executor runs on its own machine (it
      was measured by the runner, on the driver). Typed all the way across: RoundResult.blocks
      are ``Block``s (their readings ``EnergyReading``s), StageDone.energy an ``EnergyReading``,
      the meter choices ``MeterChoice``s, and the worker's reply a ``Reply``, instead of dicts
      flattened on one side and rebuilt on the other. A planned stage is addressed by its key
      (``PlannedStage.address``), no longer by a folder of the driver (``out_dir``).
  4 — PlannedStage.input/model/weights/uses: a stage names the stage it starts from and the
      final stages of the variants it reads (a teacher's), so a lineage is no longer one chain.
  5 — RoundJob.data_yaml: the data ``measure.latency.scope: total`` times images from.
  6 — ``latency.scope: both``: a round times each model twice, as its variant's arm and as a
      second arm ``<variant>@total`` (``total_arm``) per image from its file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter

from greenbench.errors import GreenbenchError
from greenbench.measure.energy.composite import IdleBaseline, MeterChoice
from greenbench.measure.energy.meter import EnergyReading
from greenbench.measure.protocol import Block
from greenbench.runtimes.base import Artifact
from greenbench.suite import LatencySettings, ProtocolSettings
from greenbench.suite.identity import PlannedStage

JOB_VERSION = 6

#: the suffix of a variant's second arm under ``latency.scope: both`` (a variant name cannot hold '@')
TOTAL_ARM = "@total"


def total_arm(variant: str) -> str:
    """The arm that times ``variant`` per image from its file when the suite's scope is ``both``."""
    return variant + TOTAL_ARM


@dataclass(frozen=True)
class CodeCarbonSpec:
    """The optional CodeCarbon cross-check: its CSV folder and grid location."""

    out_dir: str
    country: str
    region: str | None = None


@dataclass(frozen=True)
class MeterSpec:
    """What a worker needs to build its energy meter (``measure.energy`` plus run options)."""

    meters: tuple[str, ...]
    watts_per_core: float
    gpus: tuple[int, ...] | None = None
    powercap_root: str | None = None
    codecarbon: CodeCarbonSpec | None = None


@dataclass(frozen=True)
class JobBase:
    """Fields every job has: the variant (or a label), the task, the work folder, the device."""

    label: str
    task: str
    workdir: str
    device: str


@dataclass(frozen=True)
class StagesJob(JobBase):
    """Run every not-yet-cached stage of a variant's lineage (``force_keys`` are rerun)."""

    energy: MeterSpec
    data_yaml: str
    defaults: dict[str, Any]
    model: str
    weights: str | None
    stages: tuple[PlannedStage, ...]
    force_keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class StageDone:
    """One stage's artifact, the energy reading of its window and the meters that read it."""

    key: str
    name: str
    variant: str
    params: dict[str, Any]
    checkpoint: str
    energy: EnergyReading
    info: dict[str, Any]
    meters: tuple[MeterChoice, ...]
    cached: bool = False


@dataclass(frozen=True)
class StagesResult:
    """Every stage of the lineage, in order; ``checkpoint``: the last one's artifact."""

    stages: tuple[StageDone, ...]
    checkpoint: str | None


@dataclass(frozen=True)
class EvaluateJob(JobBase):
    """Accuracy and complexity of one model: deterministic, so measured once per variant.

    artifact: the model file; None = build ``model`` (with ``weights``) and save it untrained.
    imgsz: the latency image size (complexity is counted there).
    runtime, runtime_options: the variant's runtime; accuracy is computed by it where it has its
    own evaluation path (``runtimes.eval_forward``: OpenVINO at its precision hint). "" = default.
    """

    artifact: Artifact | None
    model: str
    weights: str | None
    data_yaml: str
    eval_split: str
    eval_imgsz: int
    imgsz: int
    out_dir: str
    runtime: str = ""
    runtime_options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EvaluateResult:
    """What ``EvaluateJob`` found. ``artifact``: the file later measured (saved if untrained)."""

    artifact: Artifact
    params: int
    macs: int
    counted_by: str
    size_mb: float
    peak_rss_mb: float
    accuracy: dict[str, Any]


@dataclass(frozen=True)
class ArmSpec:
    """One model of an interleaved round: a variant's artifact, the runtime that runs it and the
    runtime's options (checked by its ``check_options``)."""

    variant: str
    artifact: Artifact
    runtime: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RoundJob(JobBase):
    """One round of the interleaved protocol in one fresh process: every arm, block by block."""

    round: int
    arms: tuple[ArmSpec, ...]
    latency: LatencySettings
    protocol: ProtocolSettings
    min_window_s: float
    imgsz: int
    energy: MeterSpec
    data_yaml: str = ""  # the images ``latency.scope: total`` reads, from the evaluation split


@dataclass(frozen=True)
class RoundResult:
    """Every block of the round, each arm's runtime description and the arms that could not be
    loaded (variant -> error)."""

    round: int
    blocks: tuple[Block, ...]
    arms: dict[str, dict[str, Any]]
    failed: dict[str, str] = field(default_factory=dict)
    meters: tuple[MeterChoice, ...] = ()


@dataclass(frozen=True)
class IdleJob(JobBase):
    """The idle baseline of the machine an executor runs jobs on, measured there by its own
    process: ``seconds`` of doing nothing under the suite's meters. ``skipped``: why it is not
    measured (an executor answers that without starting anything). ``context``: what names the
    meter settings in an error (the suite file)."""

    energy: MeterSpec
    seconds: float
    skipped: str = ""
    context: str = ""

    @classmethod
    def skip(cls, reason: str, workdir: str = "", device: str = "cpu") -> IdleJob:
        """An idle job that measures nothing: the baseline is skipped for ``reason``."""
        meters = MeterSpec(meters=("estimate",), watts_per_core=0.0)
        return cls("idle", "", workdir, device, energy=meters, seconds=0.0, skipped=reason)


@dataclass(frozen=True)
class IdleResult:
    """The idle baseline ``IdleJob`` measured (or the skipped one)."""

    idle: IdleBaseline


Job = StagesJob | EvaluateJob | RoundJob | IdleJob
Result = StagesResult | EvaluateResult | RoundResult | IdleResult
_JOBS = (StagesJob, EvaluateJob, RoundJob, IdleJob)
_RESULTS = (StagesResult, EvaluateResult, RoundResult, IdleResult)
_TYPES: dict[str, type[Any]] = {cls.__name__: cls for cls in (*_JOBS, *_RESULTS)}


@dataclass(frozen=True)
class Reply:
    """What a worker writes back: its result, or the error (``user``: caused by the input, a
    one-paragraph message; otherwise a bug, with its traceback in the log)."""

    ok: bool
    result: Result | None = None
    error: str = ""
    user: bool = False


def dump_reply(reply: Reply) -> str:
    """``reply`` as versioned JSON (the result as ``dump`` writes it)."""
    result = None if reply.result is None else json.loads(dump(reply.result))
    data = {"ok": reply.ok, "result": result, "error": reply.error, "user": reply.user}
    return json.dumps({"version": JOB_VERSION, "type": "Reply", "data": data}, indent=1, default=str)


def load_reply(text: str) -> Reply:
    """Inverse of ``dump_reply``; anything else is a ``GreenbenchError``."""
    try:
        envelope = json.loads(text)
        version, name, data = envelope["version"], envelope["type"], envelope["data"]
        ok, error, user = bool(data["ok"]), str(data.get("error", "")), bool(data.get("user", False))
    except (ValueError, KeyError, TypeError) as e:
        raise GreenbenchError(f"a worker reply is not greenbench reply JSON ({e})") from None
    if version != JOB_VERSION or name != "Reply":
        raise GreenbenchError(
            f"a worker reply of format {version} cannot be read by this greenbench (format {JOB_VERSION}); "
            "runner and workers must run the same greenbench version."
        )
    result = load(json.dumps(data["result"])) if ok and data.get("result") is not None else None
    return Reply(ok, result, error, user)


def dump(obj: Job | Result) -> str:
    """``obj`` as versioned JSON: ``{"version", "type", "data"}``."""
    data = TypeAdapter(type(obj)).dump_python(obj, mode="json")
    return json.dumps({"version": JOB_VERSION, "type": type(obj).__name__, "data": data}, indent=1)


def load(text: str) -> Any:
    """Inverse of ``dump``; a different version or an unknown type is an error."""
    try:
        envelope = json.loads(text)
        version, name, data = envelope["version"], envelope["type"], envelope["data"]
    except (ValueError, KeyError, TypeError) as e:
        raise GreenbenchError(f"a job or result file is not greenbench job JSON ({e})") from None
    if version != JOB_VERSION or name not in _TYPES:
        raise GreenbenchError(
            f"a {name!r} of job format {version} cannot be read by this greenbench (format "
            f"{JOB_VERSION}); runner and workers must run the same greenbench version."
        )
    return TypeAdapter(_TYPES[name]).validate_python(data)
