"""Make a variant's model file: its stages (cached by key, run as one job) and its evaluation
(accuracy and complexity, deterministic: once), through whatever runs jobs. Used by ``run`` for
every variant and by ``gate`` for a suite side, so both measure the same file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from greenbench.errors import GreenbenchError
from greenbench.executors.base import Outcome
from greenbench.run import jobs
from greenbench.run.plan import Plan
from greenbench.runtimes.base import SUFFIXES, artifact_kind

RunJob = Callable[[jobs.Job], Outcome]


@dataclass
class Prepared:
    """A variant ready to be measured: its stages' results and its evaluation."""

    stages: tuple[jobs.StageDone, ...]
    evaluated: jobs.EvaluateResult

    @property
    def artifact(self) -> jobs.Artifact:
        """The model file that is measured."""
        return self.evaluated.artifact


def check_device(device: str, suite_path: Path) -> None:
    """A ``cuda:N`` device must exist here: found once, not after every variant's training."""
    if not device.startswith("cuda"):
        return
    import torch

    index = int(device.split(":")[1])
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if index >= count:
        raise GreenbenchError(
            f"measure.device in {suite_path} is {device}, but this machine has "
            f"{count or 'no'} CUDA GPU{'s' if count != 1 else ''} visible to torch. Use 'cpu' or "
            f"an index below {count}, or check the driver and CUDA_VISIBLE_DEVICES."
        )


def prepare_variant(plan: Plan, name: str, run_job: RunJob, force: bool = False) -> Prepared:
    """Run variant ``name``'s stages (cached ones are reused; ``force`` reruns its own) and
    evaluate the result once."""
    suite = plan.suite
    root = suite.root_model(name)
    assert root.model is not None
    stages = plan.stages(name)
    done: tuple[jobs.StageDone, ...] = ()
    artifact = None
    if stages:
        # --force retrains this variant's own stages; its ancestors' cached artifacts stay valid
        forced = tuple(p.key for p in stages if p.variant == name) if force else ()
        job = jobs.StagesJob(
            **plan.base(name),
            energy=plan.meter_spec(),
            data_yaml=str(plan.data.data_yaml),
            defaults=suite.defaults,
            model=root.model,
            weights=root.weights,
            stages=tuple(stages),
            force_keys=forced,
        )
        result = run_job(job).result
        assert isinstance(result, jobs.StagesResult)
        done = result.stages
        if result.checkpoint:  # its kind from the file: an export stage's artifact is ONNX
            artifact = jobs.Artifact(artifact_kind(result.checkpoint), result.checkpoint)
    elif Path(root.model).suffix.lower() in SUFFIXES:
        artifact = jobs.Artifact(artifact_kind(root.model), root.model)
    runtime, runtime_options = plan.runtime(name, artifact.kind if artifact else "torch")
    evaluate = jobs.EvaluateJob(
        **plan.base(name),
        artifact=artifact,
        model=root.model,
        weights=root.weights,
        data_yaml=str(plan.data.data_yaml),
        eval_split=plan.data.eval_split,
        eval_imgsz=plan.eval_imgsz,
        imgsz=plan.latency_imgsz,
        out_dir=str(plan.measure_dir(name)),
        runtime=runtime,
        runtime_options=runtime_options,
    )
    evaluated = run_job(evaluate).result
    assert isinstance(evaluated, jobs.EvaluateResult)
    return Prepared(done, evaluated)
