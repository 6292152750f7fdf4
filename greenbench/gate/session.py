"""Measuring for the gate: resolve the two sides to model files, time them interleaved in fresh
processes through an executor, add rounds while the decision is inconclusive, and calibrate.

A side is a model file (``.onnx``, or an ultralytics ``.pt`` with the pickle opt-in) or
``SUITE.yaml:VARIANT``, whose model file comes out of the suite's cached stages exactly as
``greenbench run`` produces it (``run.prepare.prepare_variant``). Both sides are arms of the same
``RoundJob``s: every round is one fresh process timing them in alternating blocks
(``greenbench.measure.protocol``), so a stored figure from another day is never the reference.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from greenbench.errors import GreenbenchError
from greenbench.executors.base import Executor
from greenbench.executors.rounds import Rounds, run_rounds
from greenbench.gate.decision import GateConfig, GateUsageError, MetricRule, Verdict, decide
from greenbench.measure.protocol import Block
from greenbench.run import jobs
from greenbench.runtimes import default_runtime
from greenbench.runtimes.base import SUFFIXES, Artifact, artifact_kind
from greenbench.suite import LatencySettings, ProtocolSettings

REFERENCE, CANDIDATE = "reference", "candidate"
_SUITE_SUFFIXES = (".yaml", ".yml")
#: rounds added at a time while the decision is inconclusive
EXTRA_ROUNDS = 2

Progress = Callable[[str], None]


@dataclass(frozen=True)
class GateSettings:
    """What one timed call is and how long the gate measures.

    imgsz, batch, threads, device, warmup, ort_spinning: as ``measure.latency`` of a suite.
    suite_scope: the latency scope a suite side's suite asks for; the gate times the model alone
    whatever it says (its report says so when the suite asks for ``total`` or ``both``).
    rounds: fresh processes measured first; max_rounds: the most, counting extra rounds added
    while inconclusive. blocks: cycles (one block per arm) per round. block_s: the shortest
    block, seconds (also the energy window). min_calls: calls per block at least. meters,
    watts_per_core: the energy meters (``measure.energy``).
    """

    imgsz: int = 640
    batch: int = 1
    threads: int = 1
    device: str = "cpu"
    warmup: int = 5
    ort_spinning: bool = False
    rounds: int = 5
    blocks: int = 10
    max_rounds: int = 12
    block_s: float = 0.2
    min_calls: int = 3
    meters: tuple[str, ...] = ("auto",)
    watts_per_core: float = 4.0
    suite_scope: str = "model"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class SideSpec:
    """A side as the user named it: a model file, or a variant of a suite file."""

    text: str
    path: Path
    variant: str | None = None

    @property
    def is_suite(self) -> bool:
        """Whether this side names ``SUITE.yaml:VARIANT``."""
        return self.variant is not None


#: the task of a side given as a bare model file: the detection task's checkpoints are the .pt
#: files greenbench loads without a suite
FILE_TASK = "detect"


@dataclass(frozen=True)
class Side:
    """A side resolved to the model file that is measured and the runtime that runs it. task: the
    task whose adapter loads a checkpoint for the torch runtime (a suite side's own task; a model
    file's: ``FILE_TASK``, the task whose adapter loads a bare checkpoint)."""

    text: str
    artifact: Artifact
    runtime: str
    options: dict[str, Any] = field(default_factory=dict)
    task: str = FILE_TASK

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "spec": self.text,
            "path": self.artifact.path,
            "kind": self.artifact.kind,
            "runtime": self.runtime,
            "runtime_options": dict(self.options),
        }


_PICKLE = (
    "{path!r} is a torch checkpoint, a Python pickle: loading it runs code from the file. If you "
    "trust it, pass --allow-pickle; otherwise gate an ONNX export of it (.onnx) instead."
)


def parse_side(text: str, allow_pickle: bool) -> SideSpec:
    """``text`` as a side; a missing file, an unknown kind or a pickle without the opt-in is a
    ``GateUsageError`` (checked before anything runs)."""
    path = Path(text).expanduser()
    head, sep, variant = text.rpartition(":")
    if not path.exists() and sep and Path(head).suffix.lower() in _SUITE_SUFFIXES:
        suite = Path(head).expanduser()
        if not suite.is_file():
            raise GateUsageError(f"side {text!r}: the suite file {suite} does not exist.")
        if not variant:
            raise GateUsageError(f"side {text!r}: name the variant after the colon, e.g. {head}:base.")
        return SideSpec(text, suite, variant)
    if path.suffix.lower() in _SUITE_SUFFIXES:
        raise GateUsageError(
            f"side {text!r} is a suite file; name one of its variants as {text}:VARIANT (a side is "
            f"one model)."
        )
    if not path.is_file():
        raise GateUsageError(
            f"side {text!r}: no such model file. A side is a model file ({', '.join(SUFFIXES)}) or "
            f"SUITE.yaml:VARIANT."
        )
    try:
        kind = artifact_kind(path)
    except GreenbenchError as e:
        raise GateUsageError(f"side {text!r}: {e}") from None
    if kind == "torch" and not allow_pickle:
        raise GateUsageError(_PICKLE.format(path=str(path)))
    return SideSpec(text, path)


def onnx_input_shape(path: Path) -> tuple[int | None, int | None]:
    """(batch, imgsz) of an ONNX model's fixed NCHW input; None where a dim is not fixed (or unreadable)."""
    try:
        import onnx

        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # unreadable: the runtime says why when it loads the file
        return None, None
    inits = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1:
        return None, None
    dims = [d.dim_value if d.HasField("dim_value") else None for d in inputs[0].type.tensor_type.shape.dim]
    if len(dims) != 4:
        return None, None
    return dims[0], dims[3] if dims[2] == dims[3] else None


def settings_from_suite(suite: Any, base: GateSettings) -> GateSettings:
    """``base`` with what a suite's ``measure`` section sets (flags are applied afterwards)."""
    m = suite.measure
    lat, prot, energy = m.latency, m.protocol, m.energy
    return replace(
        base,
        imgsz=lat.imgsz or int(suite.defaults.get("imgsz", 640)),
        batch=lat.batch,
        threads=lat.threads,
        device=m.device,
        warmup=lat.warmup,
        ort_spinning=lat.ort_spinning,
        rounds=max(2, prot.rounds),
        blocks=prot.blocks,
        min_calls=prot.min_calls,
        block_s=energy.min_window_s,
        meters=tuple(energy.meters),
        watts_per_core=energy.watts_per_core,
        suite_scope=str(lat.scope or "model"),
    )


def load_suites(specs: Sequence[SideSpec]) -> dict[Path, Any]:
    """The suite of every suite side, loaded and checked once (by resolved path); an unknown
    variant is a ``GateUsageError`` that lists the suite's variants."""
    from greenbench.suite import load_suite
    from greenbench.suite.problems import suggest

    suites: dict[Path, Any] = {}
    for spec in specs:
        if not spec.is_suite:
            continue
        path = spec.path.resolve()
        if path not in suites:
            suites[path] = load_suite(path)
        variants = suites[path].variants
        if spec.variant not in variants:
            raise GateUsageError(
                f"side {spec.text!r}: the suite {path} has no variant {spec.variant!r}"
                f"{suggest(str(spec.variant), variants)}; it has {', '.join(variants)}."
            )
    return suites


def prepare_suite_sides(
    specs: Sequence[SideSpec], suites: dict[Path, Any], workdir: Path, executor: Executor, progress: Progress
) -> dict[str, Artifact]:
    """The model file of each suite side (by ``text``), produced through its suite's cached stages
    exactly as ``greenbench run`` produces it (``run.prepare.prepare_variant`` on the suite's
    ``Plan``). Nothing is stored."""
    from greenbench.run.plan import Plan
    from greenbench.run.prepare import check_device, prepare_variant

    out: dict[str, Artifact] = {}
    for path, suite in suites.items():
        members = [s for s in specs if s.is_suite and s.path.resolve() == path]
        names = list(dict.fromkeys(str(s.variant) for s in members))
        progress(f"preparing {', '.join(names)} of suite {suite.name} (cached stages are reused)")
        plan = Plan.of(suite, workdir, codecarbon_dir=workdir / "logs" / "gate-codecarbon")
        check_device(suite.measure.device, suite.path)
        plan.resolve()
        found = {name: prepare_variant(plan, name, executor.run).artifact for name in names}
        for spec in members:
            out[spec.text] = found[str(spec.variant)]
    return out


def file_task(name: str | None) -> str:
    """The task of the sides given as model files: ``--task``, else ``FILE_TASK``; a task that
    is not installed is a ``GateUsageError``."""
    from greenbench.tasks import task_names, unknown_task_message

    if name is None:
        return FILE_TASK
    if name not in task_names():
        raise GateUsageError(f"--task {name[:40]!r}: {unknown_task_message(name)}.")
    return name


def side_of(
    spec: SideSpec, prepared: dict[str, Artifact], suites: dict[Path, Any], task: str = FILE_TASK
) -> Side:
    """The resolved side of ``spec``: a suite side's file from ``prepared``, run by its variant's
    own ``runtime:`` where the suite names one (as ``greenbench run`` would); else the default
    runtime of the file's kind, loaded by ``task`` (``--task``)."""
    if not spec.is_suite:
        artifact = Artifact(artifact_kind(spec.path), str(spec.path.resolve()))
        return Side(spec.text, artifact, default_runtime(artifact.kind), task=task)
    artifact = prepared[spec.text]
    suite = suites[spec.path.resolve()]
    chosen = suite.variants[spec.variant].runtime
    if chosen is None:
        return Side(spec.text, artifact, default_runtime(artifact.kind), task=suite.task)
    return Side(spec.text, artifact, chosen.name, dict(chosen.options), task=suite.task)


@dataclass
class GateResult:
    """A gate's verdict and what it rests on: every block, rounds run and lost, wall seconds."""

    verdict: Verdict
    blocks: list[Block]
    rounds: int
    wall_s: float
    lost_rounds: list[str] = field(default_factory=list)
    arms: dict[str, dict[str, Any]] = field(default_factory=dict)


class GateSession:
    """Runs gate rounds on ``executor``: one ``RoundJob`` (a fresh process) per round."""

    def __init__(self, executor: Executor, settings: GateSettings, workdir: Path, progress: Progress) -> None:
        self.executor = executor
        self.settings = settings
        self.workdir = workdir
        self.progress = progress

    def _job(self, arms: tuple[jobs.ArmSpec, ...], index: int, task: str) -> jobs.RoundJob:
        s = self.settings
        return jobs.RoundJob(
            label=f"gate-round{index + 1}",
            task=task,  # the adapter that loads checkpoints for the torch runtime
            workdir=str(self.workdir),
            device=s.device,
            round=index,
            arms=arms,
            latency=LatencySettings(
                warmup=s.warmup, batch=s.batch, imgsz=None, threads=s.threads, ort_spinning=s.ort_spinning
            ),
            protocol=ProtocolSettings(rounds=s.max_rounds, blocks=s.blocks, min_calls=s.min_calls),
            min_window_s=s.block_s,
            imgsz=s.imgsz,
            energy=jobs.MeterSpec(meters=s.meters, watts_per_core=s.watts_per_core),
        )

    def measure(self, reference: Side, candidate: Side, first: int, count: int, result: GateResult) -> None:
        """Run rounds ``first`` .. ``first + count - 1`` into ``result``; an arm that cannot run is
        a ``GateUsageError``, a lost process only loses its round."""
        arms = (
            jobs.ArmSpec(REFERENCE, reference.artifact, reference.runtime, reference.options),
            jobs.ArmSpec(CANDIDATE, candidate.artifact, candidate.runtime, candidate.options),
        )
        if reference.task != candidate.task:
            raise GateUsageError(
                f"the reference {reference.text!r} is a {reference.task} model and the candidate "
                f"{candidate.text!r} a {candidate.task} one: gate models of one task."
            )

        def announce(index: int) -> None:
            self.progress(
                f"round {index + 1} (up to {self.settings.max_rounds}): reference and candidate interleaved"
            )

        got = run_rounds(
            self.executor, lambda index: self._job(arms, index, reference.task), range(first, first + count),
            Rounds(),
            announce, stop_at_failed_arm=True,
        )  # fmt: skip
        result.lost_rounds += got.lost_rounds
        if got.failed:
            names = {REFERENCE: reference.text, CANDIDATE: candidate.text}
            arm, error = next(iter(got.failed.items()))
            raise GateUsageError(f"the {arm} {names.get(arm, arm)!r} could not be run: {error}")
        result.blocks += got.blocks
        result.arms.update(got.arms)
        result.rounds += got.done
        if result.rounds == 0:
            raise GreenbenchError("every gate round was lost: " + "; ".join(result.lost_rounds))

    def gate(
        self, reference: Side, candidate: Side, rules: Sequence[MetricRule], config: GateConfig
    ) -> GateResult:
        """Measure ``rounds`` rounds, decide, and add rounds while inconclusive, up to ``max_rounds``."""
        s = self.settings
        started = time.monotonic()
        result = GateResult(Verdict("inconclusive", (), config.confidence, config.confidence), [], 0, 0.0)
        self.measure(reference, candidate, 0, s.rounds, result)
        done = s.rounds
        result.verdict = decide(result.blocks, REFERENCE, [CANDIDATE], rules, config)
        while result.verdict.outcome == "inconclusive" and done < s.max_rounds:
            more = min(EXTRA_ROUNDS, s.max_rounds - done)
            self.progress(f"inconclusive after {result.rounds} rounds: measuring {more} more")
            self.measure(reference, candidate, done, more, result)
            done += more
            result.verdict = decide(result.blocks, REFERENCE, [CANDIDATE], rules, config)
        result.wall_s = time.monotonic() - started
        return result

    def calibrate(
        self,
        model: Side,
        runs: int,
        rules: Sequence[MetricRule],
        config: GateConfig,
        candidate: Side | None = None,
        what: str = "A/A",
    ) -> list[GateResult]:
        """``runs`` gates of ``model`` against ``candidate`` (default: itself, A/A), each with its
        own fresh rounds."""
        results = []
        for i in range(runs):
            self.progress(f"{what} run {i + 1}/{runs}")
            results.append(self.gate(model, candidate or model, rules, config))
        return results
