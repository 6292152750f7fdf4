"""What a run of a suite will do, worked out once: the data it runs on, every variant's resume key
and stage plan, the runtime that measures it, the groups measured together, and the settings
every job carries. The one place a key is worked out (``Plan.key``); the runner, the preparation
of variants and the gate read it from here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from greenbench.pipeline.export import DEFAULT_IMGSZ
from greenbench.run import jobs
from greenbench.runtimes import default_runtime
from greenbench.runtimes.base import ArtifactKind
from greenbench.suite import Suite
from greenbench.suite.identity import PlannedStage, dataset_ref, stage_plan, synthetic, variant_key
from greenbench.tasks import task_class
from greenbench.tasks.base import DatasetRef


def resolve_dataset(suite: Suite, workdir: Path, ref: DatasetRef) -> DatasetRef:
    """``ref`` (from ``identity.dataset_ref``) made usable by workers, by the suite's task:
    synthetic data generated once into the cache, user data staged under ``workdir``."""
    spec = synthetic(suite) if suite.dataset.synthetic is not None else None  # data to generate
    task = task_class(suite.task)
    if spec is not None:
        return DatasetRef(task.synthesize(workdir / "datasets", spec), "test", ref.fingerprint)
    return dataclasses.replace(ref, data_yaml=task.stage_dataset(ref, workdir))  # keeps what was left out


@dataclass
class Plan:
    """One suite's run in one work folder on one kind of device.

    data: the suite's data, identified (its fingerprint keys resume); ``resolve`` makes it
    usable by workers (generated or staged) with the same fingerprint.
    """

    suite: Suite
    workdir: Path
    data: DatasetRef = field(default_factory=lambda: DatasetRef(Path(), "test", ""))
    powercap_root: Path | None = None
    codecarbon_dir: Path | None = None

    @classmethod
    def of(cls, suite: Suite, workdir: Path, **kw: Any) -> Plan:
        """The plan of ``suite`` under ``workdir``, its data identified (walked once, or reused
        from the walk ``load_suite`` made) but not yet generated or staged."""
        return cls(suite, workdir.resolve(), dataset_ref(suite), **kw)

    def resolve(self) -> None:
        """Generate or stage the data where workers read it (work, not set-up: done once a run
        has something to do)."""
        self.data = resolve_dataset(self.suite, self.workdir, self.data)

    # --- keys ------------------------------------------------------------------------
    def key(self, name: str) -> str:
        """The resume (and measurement-folder) key of variant ``name``: its config, its
        lineage's, the data's fingerprint and, beside the baseline, the baseline's config."""
        return variant_key(self.suite, name, self.data.fingerprint)

    def stages(self, name: str) -> list[PlannedStage]:
        """Every stage from the root model to ``name``, each with its cache key."""
        return stage_plan(self.suite, name, self.data.fingerprint)

    # --- what measures what ------------------------------------------------------------
    def runtime(self, name: str, kind: ArtifactKind) -> tuple[str, dict[str, Any]]:
        """The variant's runtime and options (suite ``runtime:``), else the default for ``kind``."""
        spec = self.suite.variants[name].runtime
        return (spec.name, dict(spec.options)) if spec is not None else (default_runtime(kind), {})

    def arm(self, name: str, artifact: jobs.Artifact) -> jobs.ArmSpec:
        """Variant ``name``'s model file as an arm of an interleaved round, with its runtime."""
        return jobs.ArmSpec(name, artifact, *self.runtime(name, artifact.kind))

    def groups(self, names: list[str]) -> list[list[str]]:
        """Which variants share processes: all of them, or one group per variant (``pairs``)."""
        others = [n for n in names if n != self.suite.baseline]
        if self.suite.measure.protocol.group == "pairs" and others:
            return [[n] for n in others]
        return [others] if others or self.suite.baseline not in names else [[]]

    @property
    def eval_imgsz(self) -> int:
        """The image size accuracy is evaluated at: the suite's training ``imgsz``."""
        return int(self.suite.defaults.get("imgsz", DEFAULT_IMGSZ))

    @property
    def latency_imgsz(self) -> int:
        """The image size latency is timed at: ``measure.latency.imgsz``, else the training one."""
        return self.suite.measure.latency.imgsz or self.eval_imgsz

    def measure_dir(self, name: str) -> Path:
        """Where the evaluation of variant ``name`` writes (by its key)."""
        return self.workdir / "measure" / f"{name}-{self.key(name)}"

    # --- what every job carries ----------------------------------------------------------
    def base(self, label: str) -> dict[str, Any]:
        """The fields every job has (``jobs.JobBase``)."""
        return {
            "label": label,
            "task": self.suite.task,
            "workdir": str(self.workdir),
            "device": self.suite.measure.device,
        }

    def meter_spec(self) -> jobs.MeterSpec:
        """What a worker needs to build its energy meter."""
        e, c = self.suite.measure.energy, self.suite.measure.carbon
        cc = None
        if e.codecarbon and self.codecarbon_dir is not None:
            cc = jobs.CodeCarbonSpec(str(self.codecarbon_dir), c.country, c.region)
        return jobs.MeterSpec(
            meters=tuple(e.meters),
            watts_per_core=e.watts_per_core,
            gpus=tuple(e.gpus) if e.gpus is not None else None,
            powercap_root=str(self.powercap_root) if self.powercap_root else None,
            codecarbon=cc,
        )

    def idle_job(self, skipped: str = "") -> jobs.IdleJob:
        """The job that measures the idle baseline of the machine jobs run on (``skipped``: why
        it is not measured)."""
        e = self.suite.measure.energy
        meters = dataclasses.replace(self.meter_spec(), codecarbon=None)  # CodeCarbon checks stages only
        return jobs.IdleJob(
            **self.base("idle"),
            energy=meters,
            seconds=e.idle_s,
            skipped=skipped,
            context=str(self.suite.path),
        )

    def round_job(self, index: int, arms: list[jobs.ArmSpec]) -> jobs.RoundJob:
        """Round ``index`` of the interleaved protocol over ``arms`` (one fresh process)."""
        m = self.suite.measure
        return jobs.RoundJob(
            **self.base(f"round{index + 1}"),
            round=index,
            arms=tuple(arms),
            latency=m.latency,
            protocol=m.protocol,
            min_window_s=m.energy.min_window_s,
            imgsz=self.latency_imgsz,
            energy=self.meter_spec(),
            data_yaml=str(self.data.data_yaml),
        )
