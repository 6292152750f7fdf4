"""The child side of an executor: one job per fresh process.

``python -m greenbench.run.worker JOB.json RESULT.json [EVENTS]`` runs one typed job
(``greenbench.run.jobs``): the stages of a variant, the evaluation of a model (accuracy and
complexity, once), one round of the interleaved protocol, or the machine's idle baseline; it
writes a ``jobs.Reply`` with the typed result. A fresh process per job keeps measurements free of
the previous job's threads, allocator state and a framework's global thread setting. Progress
lines are appended to EVENTS. A user-caused failure (``GreenbenchError``) is a reply with
``user``; anything else carries the exception, its traceback in the log; exit code 1 either way.
"""

from __future__ import annotations

import dataclasses
import json
import resource
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from greenbench.errors import GreenbenchError
from greenbench.measure.energy.composite import MeterChoice, select_meters
from greenbench.measure.energy.meter import EnergyReading, Meter
from greenbench.run import jobs
from greenbench.run.jobs import total_arm
from greenbench.runtimes.base import Artifact
from greenbench.suite.identity import PlannedStage
from greenbench.tasks import task_class
from greenbench.tasks.base import Task

STAGE_MARKER = "stage.json"


class Events:
    """Append-only progress lines read by the parent's progress display."""

    def __init__(self, path: str | None) -> None:
        self.path = Path(path) if path else None

    def __call__(self, message: str) -> None:
        if self.path is not None:
            with self.path.open("a") as f:
                f.write(message + "\n")


def _prefixed(emit: Events, variant: str) -> Callable[[str], None]:
    return lambda msg: emit(f"{variant}: {msg}")


def _meter(spec: jobs.MeterSpec) -> tuple[Meter, list[MeterChoice]]:
    root = Path(spec.powercap_root) if spec.powercap_root else None
    gpus = list(spec.gpus) if spec.gpus is not None else None
    meter: Meter
    meter, choices = select_meters(list(spec.meters), spec.watts_per_core, gpus, root)
    cc = spec.codecarbon
    if cc:  # optional cross-check: CodeCarbon over the same windows, its CSV in the run's folder
        from greenbench.measure.codecarbon_check import CodeCarbonCheck, CrossCheckedMeter

        check = CodeCarbonCheck(Path(cc.out_dir), cc.country, region=cc.region)
        meter = CrossCheckedMeter(meter, check)
    return meter, list(choices)


def _task(job: jobs.JobBase) -> Task:
    return task_class(job.task)(Path(job.workdir), device=job.device)


def _cached_stage(marker: Path) -> dict[str, Any] | None:
    """A stage's stored result if it is complete and its checkpoint is still on disk."""
    try:
        result: dict[str, Any] = json.loads(marker.read_text())
        EnergyReading.from_dict(result["energy"])  # a marker cut short or of another shape: not cached
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return result if Path(result.get("checkpoint", "")).is_file() else None


def _marker(done: jobs.StageDone) -> dict[str, Any]:
    """What a stage's marker keeps: what it produced, its reading as ``EnergyReading.to_dict``
    (markers written before the job format was typed read back the same)."""
    return {
        "key": done.key, "name": done.name, "variant": done.variant, "params": done.params,
        "checkpoint": done.checkpoint, "energy": done.energy.to_dict(), "info": done.info,
        "meters": [c.to_dict() for c in done.meters],
    }  # fmt: skip


def _choices(found: Any) -> tuple[MeterChoice, ...]:
    """The meter choices a marker lists (dicts), typed; an unreadable entry is left out."""
    entries = found if isinstance(found, list) else []
    return tuple(
        MeterChoice.from_dict(c) for c in entries if isinstance(c, dict) and "name" in c and "used" in c
    )


def _models_read(spec: PlannedStage, by_key: dict[str, str]) -> dict[str, Path]:
    """The checkpoints of the variants ``spec`` reads (they ran earlier in the same job)."""
    missing = [p for p, key in spec.uses.items() if key not in by_key]
    if missing:
        raise GreenbenchError(
            f"stage {spec.name} of {spec.variant}: the variant its {missing[0]!r} names has no trained "
            "model (no stage ran for it); give that variant a training stage."
        )
    return {p: Path(by_key[key]) for p, key in spec.uses.items()}


def run_stages(job: jobs.StagesJob, emit: Events) -> jobs.StagesResult:
    """Run every stage of the lineage whose artifact is not cached; return per-stage results."""
    from greenbench.pipeline import get_stage
    from greenbench.pipeline.base import StageContext

    task = _task(job)
    meter, choices = _meter(job.energy)
    checkpoint: str | None = None
    results: list[jobs.StageDone] = []
    by_key: dict[str, str] = {}  # stage key -> its checkpoint
    with meter:
        for spec in job.stages:
            out_dir = spec.folder(Path(job.workdir))  # its address, under this worker's work folder
            marker = out_dir / STAGE_MARKER
            cached = None if spec.key in job.force_keys else _cached_stage(marker)
            if cached is not None:
                # what the stage is comes from the plan (a twin or a renamed variant shares the
                # artifact under another name); only what it produced comes from the marker
                done = jobs.StageDone(
                    key=spec.key,
                    name=spec.name,
                    variant=spec.variant,
                    params=spec.params,
                    checkpoint=cached["checkpoint"],
                    energy=EnergyReading.from_dict(cached["energy"]),
                    info=cached.get("info", {}),
                    meters=_choices(cached.get("meters")),
                    cached=True,
                )
            else:
                emit(f"{spec.variant}: {spec.name}")
                stage = get_stage(spec.name, job.task)()
                start = by_key.get(spec.input) if spec.input is not None else None
                ctx = StageContext(
                    task=task,
                    data_yaml=Path(job.data_yaml),
                    defaults=job.defaults,
                    params=spec.params,
                    input=Path(start) if start else None,
                    model=spec.model or job.model,
                    weights=spec.weights if spec.model else job.weights,
                    out_dir=out_dir,
                    meter=meter,
                    emit=_prefixed(emit, spec.variant),
                    variant=spec.variant,
                    models=_models_read(spec, by_key),
                )
                out = stage.run(ctx)
                done = jobs.StageDone(
                    key=spec.key,
                    name=spec.name,
                    variant=spec.variant,
                    params=spec.params,
                    checkpoint=str(out.checkpoint),
                    energy=out.energy,
                    info=out.info,
                    meters=tuple(choices),
                )
                tmp = marker.with_suffix(".tmp")  # atomic: a crash never leaves half a marker
                tmp.write_text(json.dumps(_marker(done), indent=1, default=str))
                tmp.replace(marker)
            checkpoint = done.checkpoint
            by_key[spec.key] = done.checkpoint
            results.append(done)
    return jobs.StagesResult(tuple(results), checkpoint)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6  # KiB on Linux → MB


def _accuracy(task: Task, job: jobs.EvaluateJob, artifact: Artifact) -> dict[str, Any]:
    """The task's accuracy metrics, computed by the variant's runtime where that runtime has its
    own evaluation path (OpenVINO at its precision hint: bf16 and int8 change the numbers); a
    fixed-shape ONNX model is evaluated at its own size only, never silently resized."""
    from greenbench.runtimes import eval_forward

    path, data, out = Path(artifact.path), Path(job.data_yaml), Path(job.out_dir) / "val"
    if artifact.kind != "onnx":
        return task.evaluate(task.load(path), data, job.eval_imgsz, out, job.eval_split)
    from greenbench.pipeline.export import check_eval_imgsz

    check_eval_imgsz(path, job.eval_imgsz, job.label)
    forward = eval_forward(job.runtime, artifact, job.runtime_options) if job.runtime else None
    if forward is None:  # the task's own ONNX path
        return task.evaluate(task.load(path), data, job.eval_imgsz, out, job.eval_split)
    return task.evaluate_with(path, forward, data, job.eval_imgsz, out, job.eval_split)


def run_evaluate(job: jobs.EvaluateJob, emit: Events) -> jobs.EvaluateResult:
    """Complexity and accuracy of one model: deterministic, so measured once per variant."""
    from greenbench.measure.complexity import count_macs, count_params, file_size_mb, onnx_counts

    task = _task(job)
    artifact = job.artifact
    if artifact is None:  # a variant without stages: the model as configured, saved so it has a size
        model = task.build(job.model, job.weights)
        path = task.save(model, Path(job.out_dir) / "untrained.pt")
        artifact = Artifact("torch", str(path))
    path = Path(artifact.path)
    if artifact.kind == "onnx":
        params, macs = onnx_counts(path, job.imgsz)
        counted_by = "ONNX graph (Conv/ConvTranspose/Gemm/MatMul)"
    else:
        module = task.module_loader(path)
        params, macs = count_params(module), count_macs(module, job.imgsz)
        counted_by = "forward hooks on the fused torch model (Conv/ConvTranspose/Linear)"
    emit(f"{job.label}: accuracy")
    accuracy: dict[str, Any] = _accuracy(task, job, artifact)
    accuracy["split"] = job.eval_split
    return jobs.EvaluateResult(
        artifact=artifact,
        params=params,
        macs=macs,
        counted_by=counted_by,
        size_mb=file_size_mb(path),
        peak_rss_mb=_peak_rss_mb(),
        accuracy=accuracy,
    )


def _end_to_end(task: Task, predictor: Any, job: jobs.RoundJob) -> Any:
    """``predictor`` timed per image from its file (``latency.scope: total``): the task decodes,
    preprocesses, runs the runtime's forward and postprocesses, one image per call."""
    if predictor.forward is None:
        raise GreenbenchError("this runtime cannot time scope 'total' (it has no forward on given inputs)")
    call, what = task.end_to_end(Path(job.data_yaml), job.imgsz, predictor.forward)
    description = {**predictor.description, "scope": "total", "per_call": what}
    return dataclasses.replace(predictor, call=call, images_per_call=1, description=description)


def run_round(job: jobs.RoundJob, emit: Events) -> jobs.RoundResult:
    """One round of the interleaved protocol: load every arm, then time them block by block."""
    from greenbench.measure.latency import set_threads
    from greenbench.measure.protocol import Arm, ProtocolConfig, balanced_blocks, run_round, williams_period
    from greenbench.runtimes import get_runtime
    from greenbench.runtimes.base import RuntimeSettings

    task = _task(job)
    lat = job.latency
    settings = RuntimeSettings(job.device, lat.threads, lat.batch, job.imgsz, lat.ort_spinning)
    arms, described, failed = [], {}, {}
    for spec in job.arms:
        try:
            arm_settings = dataclasses.replace(settings, options=spec.options)
            predictor = get_runtime(spec.runtime).load(spec.artifact, arm_settings, task.module_loader)
            timed = [(spec.variant, predictor)]
            if lat.scope == "total":
                timed = [(spec.variant, _end_to_end(task, predictor, job))]
            elif lat.scope == "both":  # a second arm of the same loaded model, interleaved like the others
                timed.append((total_arm(spec.variant), _end_to_end(task, predictor, job)))
            for _, one in timed:
                one.call()  # one call now: a model that cannot run fails alone, not the round
                one.sync()
        except GreenbenchError as e:
            failed[spec.variant] = str(e)
            continue
        except Exception as e:  # a damaged file, out of memory: this arm only
            why = f"{type(e).__name__}: {e}"
            failed[spec.variant] = f"{spec.runtime} could not run {spec.artifact.path}: {why}"
            continue
        for name, one in timed:
            arms.append(Arm(name, one.call, one.images_per_call, one.sync))
            described[name] = {**one.description, "threads": one.threads}
    meter, choices = _meter(job.energy)
    p = job.protocol
    # whole Williams periods over all rounds: the order is balanced, not just nearly
    cycles = balanced_blocks(p.blocks, p.rounds, len(arms))
    config = ProtocolConfig(cycles, job.min_window_s, p.min_calls, lat.warmup)
    padded = f" (padded from {p.blocks} to whole order periods)" if cycles != p.blocks else ""
    if len(arms) > 1 and (p.rounds * cycles) % williams_period(len(arms)):
        padded = (
            f" (order nearly balanced: {p.rounds} rounds × {cycles} blocks is not a whole number of "
            f"{williams_period(len(arms))}-cycle periods)"
        )
    emit(f"round {job.round + 1}: {len(arms)} models × {cycles} blocks{padded}")
    threads = set_threads(lat.threads)  # right before timing: a framework's imports may change it
    with meter:
        first = job.round * cycles  # the rounds continue one order design
        blocks = run_round(arms, config, job.round, meter, first_cycle=first) if arms else []
    for info in described.values():
        info["torch_threads"] = threads
    return jobs.RoundResult(
        round=job.round,
        blocks=tuple(blocks),
        arms=described,
        failed=failed,
        meters=tuple(choices),
    )


def run_idle(job: jobs.IdleJob, emit: Events) -> jobs.IdleResult:
    """The idle baseline of this machine: ``job.seconds`` of nothing under the job's meters."""
    from greenbench.measure.energy.composite import measure_idle, skipped_idle

    if job.skipped:
        return jobs.IdleResult(skipped_idle(job.skipped))
    emit(f"idle baseline: {job.seconds:g} s")
    try:
        meter, _ = _meter(job.energy)
    except GreenbenchError as err:
        where = f"measure.energy.meters in {job.context}: " if job.context else ""
        raise type(err)(f"{where}{err}") from None
    with meter:
        return jobs.IdleResult(measure_idle(meter, job.seconds))


def _die_with_parent() -> None:
    """Linux: get SIGTERM when the runner dies, even by SIGKILL, instead of running on alone."""
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


_RUNNERS: dict[type[Any], Callable[[Any, Events], Any]] = {
    jobs.StagesJob: run_stages,
    jobs.EvaluateJob: run_evaluate,
    jobs.RoundJob: run_round,
    jobs.IdleJob: run_idle,
}


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m greenbench.run.worker JOB.json RESULT.json [EVENTS]``."""
    _die_with_parent()
    args = argv or sys.argv[1:]
    job_path, result_path = args[:2]
    emit = Events(args[2] if len(args) > 2 else None)
    try:
        job = jobs.load(Path(job_path).read_text())
        text, code = jobs.dump_reply(jobs.Reply(True, _RUNNERS[type(job)](job, emit))), 0
    except GreenbenchError as e:
        text, code = jobs.dump_reply(jobs.Reply(False, error=str(e), user=True)), 1
    except Exception as e:  # a bug, a result that cannot be written as JSON included
        traceback.print_exc()
        text, code = jobs.dump_reply(jobs.Reply(False, error=f"{type(e).__name__}: {e}")), 1
    Path(result_path).write_text(text)
    return code


if __name__ == "__main__":
    sys.exit(main())
