"""Walk a suite's variant DAG: resume from the store, hand each variant's jobs to an executor,
measure the variants interleaved with the baseline, and store one ``RunRecord`` per variant.

A run has three phases: (1) per variant to run, its stages (cached by key) and its evaluation
(accuracy and complexity, deterministic: once); (2) the interleaved protocol: ``rounds`` fresh
processes, each timing the baseline and the variants in alternating blocks; (3) one record per
variant, with latency and energy per image from every block and Δ from time-adjacent pairs.
A failure in any job of a variant is that variant's ``failed`` record; the suite carries on.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from greenbench.errors import GreenbenchError, clean_message
from greenbench.executors.base import Executor, Outcome
from greenbench.executors.local import DEFAULT_STALL_S
from greenbench.executors.rounds import Rounds, run_rounds
from greenbench.measure.carbon import GridIntensity, grid_intensity
from greenbench.measure.device import fingerprint, git_commit
from greenbench.measure.energy.composite import IdleBaseline, measure_idle, select_meters, skipped_idle
from greenbench.run import jobs
from greenbench.run.lock import other_runs
from greenbench.run.records import Context, build_metrics, deltas
from greenbench.runtimes import default_runtime
from greenbench.runtimes.base import SUFFIXES, ArtifactKind, artifact_kind, runtime_label
from greenbench.store import RunRecord, Store, store_pending, store_record
from greenbench.suite import Suite
from greenbench.suite.identity import dataset_ref, stage_plan, synthetic, variant_key
from greenbench.tasks import task_class
from greenbench.tasks.base import DatasetRef


@dataclass
class RunOptions:
    """How to run a suite. ``workdir``: artifacts, logs, datasets and the task's framework files.
    ``executor``: where jobs run, built; else ``executor_name`` names one in the registry
    (``greenbench.executors``; default ``local``: fresh local processes)."""

    workdir: Path
    force: bool = False
    skip_idle: bool | None = None  # None: the suite decides
    powercap_root: Path | None = None
    progress: Callable[[str], None] = lambda _msg: None
    executor: Executor | None = None
    executor_name: str = "local"
    stall_s: float | None = DEFAULT_STALL_S  # a worker silent this long is stopped (None: never)


@dataclass
class RunOutcome:
    """What happened to each variant in one ``run``."""

    run_id: str
    device_id: str
    done: dict[str, str] = field(default_factory=dict)  # variant -> ok | failed | resumed

    @property
    def failed(self) -> list[str]:
        """Variants that failed in this run."""
        return [v for v, s in self.done.items() if s == "failed"]


@dataclass
class Prepared:
    """A variant ready to be measured: its stages' results and its evaluation."""

    stages: tuple[jobs.StageDone, ...]
    evaluated: jobs.EvaluateResult


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def resolve_dataset(suite: Suite, workdir: Path, ref: DatasetRef) -> DatasetRef:
    """``ref`` (from ``identity.dataset_ref``) made usable by workers, by the suite's task:
    synthetic data generated once into the cache, user data staged under ``workdir``."""
    task = task_class(suite.task)
    if suite.dataset.synthetic is not None:
        return DatasetRef(task.synthesize(workdir / "datasets", synthetic(suite)), "test", ref.fingerprint)
    return dataclasses.replace(ref, data_yaml=task.stage_dataset(ref, workdir))  # keeps what was left out


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


def _one_line(error: BaseException) -> str:
    """A stored error: one line (a framework's messages may span lines; tables render errors in
    notes), without terminal escapes (frameworks colour their messages), at most 1000 characters."""
    if isinstance(error, GreenbenchError):
        text = str(error)
    else:
        text = f"internal error: {type(error).__name__}: {error} (please report it)"
    return clean_message(text, limit=1000, one_line=True)


class Runner:
    """Runs one suite on one executor into one store."""

    def __init__(self, suite: Suite, store: Store, options: RunOptions) -> None:
        self.suite = suite
        self.store = store
        self.opt = options
        self.workdir = options.workdir.resolve()
        m = suite.measure
        given = options.executor
        self.device = given.device if given is not None else fingerprint(m.device, threads=m.latency.threads)
        self.run_id = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S-") + uuid.uuid4().hex[:6]
        self.logdir = self.workdir / "logs" / self.run_id
        self.git_commit = git_commit(suite.path.parent) or "none"
        # resolved in run(): generating or walking the data is work, not set-up
        self.dataset = DatasetRef(Path(), "test", "")
        self._lat_imgsz = suite.measure.latency.imgsz or int(suite.defaults.get("imgsz", 640))
        self._intensity: GridIntensity | None = None
        self._others: dict[str, dict[str, object]] = {}  # other greenbench runs seen, by pid
        executor = options.executor
        if executor is None:
            from greenbench.executors import factory

            executor = factory(options.executor_name)(
                logdir=self.logdir,
                device=self.device,
                idle=self._measure_idle,
                progress=options.progress,
                cwd=self.workdir,
                stall_s=options.stall_s,
            )
        self.executor: Executor = executor
        # the executor says which device its jobs run on; records and resume key on that one
        self.device = dict(executor.device)

    # --- jobs -------------------------------------------------------------------------
    def _run_job(self, job: jobs.Job) -> Outcome:
        """Run ``job`` on the executor, noting any other greenbench run active on this machine
        meanwhile (its load would move our figures: the records say so)."""
        self._note_other_runs()
        return self.executor.run(job)

    def _note_other_runs(self) -> None:
        for other in other_runs():
            self._others.setdefault(f"{other['pid']}", other)

    def _meter_spec(self) -> jobs.MeterSpec:
        e, c = self.suite.measure.energy, self.suite.measure.carbon
        cc = (
            jobs.CodeCarbonSpec(str(self.logdir / "codecarbon"), c.country, c.region)
            if e.codecarbon
            else None
        )
        return jobs.MeterSpec(
            meters=tuple(e.meters),
            watts_per_core=e.watts_per_core,
            gpus=tuple(e.gpus) if e.gpus is not None else None,
            powercap_root=str(self.opt.powercap_root) if self.opt.powercap_root else None,
            codecarbon=cc,
        )

    def _base(self, label: str) -> dict[str, Any]:
        return {
            "label": label,
            "task": self.suite.task,
            "workdir": str(self.workdir),
            "device": self.suite.measure.device,
        }

    def _runtime(self, name: str, kind: ArtifactKind) -> tuple[str, dict[str, Any]]:
        """The variant's runtime and options (suite ``runtime:``), else the default for ``kind``."""
        spec = self.suite.variants[name].runtime
        return (spec.name, dict(spec.options)) if spec is not None else (default_runtime(kind), {})

    def _key(self, name: str) -> str:
        """The resume (and cache-folder) key of variant ``name``: its config, its lineage's and
        the dataset's fingerprint. The one place the key is worked out."""
        return variant_key(self.suite, name, self.dataset.fingerprint)

    def _stored_ok(self, name: str) -> RunRecord | None:
        """The newest ok record of ``name`` under its key on this run's device, if any."""
        return self.store.latest(self.suite.name, self._key(name), self.device["device_id"], variant=name)

    def _prepare_variant(self, name: str) -> Prepared:
        """Run the variant's stages (cached ones are reused) and evaluate the result once."""
        suite = self.suite
        root = suite.root_model(name)
        assert root.model is not None
        plan = stage_plan(suite, name, self.workdir, self.dataset.fingerprint)
        stages: tuple[jobs.StageDone, ...] = ()
        artifact = None
        if plan:
            # --force retrains this variant's own stages; its ancestors' cached artifacts stay valid
            forced = tuple(p.key for p in plan if p.variant == name) if self.opt.force else ()
            job = jobs.StagesJob(
                **self._base(name),
                energy=self._meter_spec(),
                data_yaml=str(self.dataset.data_yaml),
                defaults=suite.defaults,
                model=root.model,
                weights=root.weights,
                stages=tuple(plan),
                force_keys=forced,
            )
            done = self._run_job(job).result
            assert isinstance(done, jobs.StagesResult)
            stages = done.stages
            if done.checkpoint:  # its kind from the file: an export stage's artifact is ONNX
                artifact = jobs.Artifact(artifact_kind(done.checkpoint), done.checkpoint)
        elif Path(root.model).suffix.lower() in SUFFIXES:
            artifact = jobs.Artifact(artifact_kind(root.model), root.model)
        runtime, runtime_options = self._runtime(name, artifact.kind if artifact else "torch")
        evaluate = jobs.EvaluateJob(
            **self._base(name),
            artifact=artifact,
            model=root.model,
            weights=root.weights,
            data_yaml=str(self.dataset.data_yaml),
            eval_split=self.dataset.eval_split,
            eval_imgsz=int(suite.defaults.get("imgsz", 640)),
            imgsz=self._lat_imgsz,
            out_dir=str(self.workdir / "measure" / f"{name}-{self._key(name)}"),
            runtime=runtime,
            runtime_options=runtime_options,
        )
        evaluated = self._run_job(evaluate).result
        assert isinstance(evaluated, jobs.EvaluateResult)
        return Prepared(stages, evaluated)

    def prepare_artifacts(self, names: list[str]) -> dict[str, jobs.Artifact]:
        """The model file of each of ``names`` as ``run`` would measure it (cached stages reused, a
        variant without stages built and saved by its evaluation), for a caller that measures the
        files itself (``greenbench gate``). Nothing is stored."""
        self._prepare(dataset_ref(self.suite))
        return {name: self._prepare_variant(name).evaluated.artifact for name in names}

    def _measure(self, arms: list[jobs.ArmSpec]) -> Rounds:
        """The interleaved protocol over ``arms``: one fresh process per round."""
        m = self.suite.measure

        def job_of(r: int) -> jobs.RoundJob:
            # the order within cycles comes from one design continued over the rounds (worker)
            return jobs.RoundJob(
                **self._base(f"round{r + 1}"),
                round=r,
                arms=tuple(arms),
                latency=m.latency,
                protocol=m.protocol,
                min_window_s=m.energy.min_window_s,
                imgsz=self._lat_imgsz,
                energy=self._meter_spec(),
            )

        def announce(r: int) -> None:
            self.opt.progress(
                f"interleaved round {r + 1}/{m.protocol.rounds}: {', '.join(a.variant for a in arms)}"
            )
            self._note_other_runs()

        out = run_rounds(self.executor, job_of, range(m.protocol.rounds), Rounds(), announce)
        if out.where is None:  # no round came back at all
            raise GreenbenchError("; ".join(out.lost_rounds))
        return out

    def _groups(self, names: list[str]) -> list[list[str]]:
        """Which variants share processes: all of them, or one group per variant (``pairs``)."""
        others = [n for n in names if n != self.suite.baseline]
        if self.suite.measure.protocol.group == "pairs" and others:
            return [[n] for n in others]
        return [others] if others or self.suite.baseline not in names else [[]]

    # --- records ------------------------------------------------------------------------
    def _identity(self, name: str, started: str) -> dict[str, Any]:
        suite = self.suite
        return {
            "run_id": self.run_id,
            "suite": suite.name,
            "suite_hash": suite.source_hash,
            "variant": name,
            "variant_hash": self._key(name),
            "parent": suite.variants[name].from_,
            "device_id": self.device["device_id"],
            "started_at": started,
            "device": self.device,
            "versions": {**self.device.get("versions", {}), "suite_git_commit": self.git_commit},
            "task": suite.task,
            "baseline": suite.baseline,
            "smoke": suite.smoke,
        }

    def _failed_record(self, name: str, started: str, error: BaseException) -> RunRecord:
        own = [{"name": st.name, "params": st.params} for st in self.suite.variants[name].stages]
        return RunRecord(
            **self._identity(name, started),
            status="failed",
            finished_at=_now(),
            error=_one_line(error),
            stages=own,
        )

    def _ok_record(
        self, name: str, started: str, prep: Prepared, measured: Rounds, paired: bool
    ) -> RunRecord:
        assert self._intensity is not None and measured.where is not None
        suite, where = self.suite, measured.where
        c = suite.measure.carbon
        ctx = Context(where.idle, self._intensity, c.pue, self._lat_imgsz)
        arm = measured.arms.get(name, {})
        metrics, stages = build_metrics(
            prep.evaluated, measured.blocks, prep.stages, name, ctx, int(arm.get("threads", 0))
        )
        found = {}
        if paired and name != suite.baseline:
            pairing = {
                "baseline": suite.baseline,
                "baseline_key": self._key(suite.baseline),
                "run_id": self.run_id,
            }
            found = deltas(measured.blocks, name, suite.baseline, ctx, pairing)
        arms_in_round = sorted({b["arm"] for b in measured.blocks})
        measurement = {
            "protocol": {
                **suite.measure.protocol.model_dump(),
                "min_block_s": suite.measure.energy.min_window_s,
                "arms": arms_in_round,
                "paired_with_baseline": bool(found),
                "lost_rounds": measured.lost_rounds,
            },
            "blocks": [b for b in measured.blocks if b["arm"] == name],
            # the partner blocks the Δ was computed from: a resumed baseline has no record of them
            "baseline_blocks": [b for b in measured.blocks if found and b["arm"] == suite.baseline],
            "runtime": arm,
            "artifact": {"kind": prep.evaluated.artifact.kind, "path": prep.evaluated.artifact.path},
            "idle": where.idle.to_dict(),
            "carbon": {
                "g_per_kwh": self._intensity.g_per_kwh,
                "source": self._intensity.source,
                "pue": c.pue,
            },
            "weights_file": prep.evaluated.artifact.path,
            # every stage from the root model on (the record's `stages` are its own): what made it
            "lineage": [
                {
                    "variant": v,
                    "stages": [{"name": st.name, "params": st.params} for st in suite.variants[v].stages],
                }
                for v in suite.lineage(name)
            ],
            "dataset": {
                "data_yaml": str(self.dataset.data_yaml),
                "eval_split": self.dataset.eval_split,
                "fingerprint": self.dataset.fingerprint,
                "ignored": self.dataset.ignored,
                "ignored_examples": {k: list(v) for k, v in self.dataset.ignored_examples.items()},
            },
            "settings": suite.measure.model_dump(),
            "concurrent_runs": list(self._others.values()),
        }
        return RunRecord(
            **{**self._identity(name, started), "device": where.device, "device_id": where.device_id},
            status="ok",
            finished_at=_now(),
            runtime=runtime_label(*self._runtime(name, prep.evaluated.artifact.kind)),
            stages=stages,
            metrics=metrics,
            deltas=found,
            measurement=measurement,
        )

    # --- the whole suite ----------------------------------------------------------------
    def _measure_idle(self) -> IdleBaseline:
        """The idle baseline of this machine, measured once before any job (or skipped)."""
        suite, opt = self.suite, self.opt
        e = suite.measure.energy
        skip = e.skip_idle if opt.skip_idle is None else opt.skip_idle
        if skip:
            why = "--no-idle" if opt.skip_idle else "measure.energy.skip_idle"
            return skipped_idle(f"skipped by {why}")
        opt.progress(f"idle baseline: {e.idle_s:g} s")
        try:
            meter, _ = select_meters(e.meters, e.watts_per_core, e.gpus, opt.powercap_root)
        except GreenbenchError as err:
            raise type(err)(f"measure.energy.meters in {suite.path}: {err}") from None
        with meter:
            return measure_idle(meter, e.idle_s)

    def _prepare(self, data: DatasetRef) -> None:
        """Carbon intensity, the dataset, the idle baseline: once per run, before any variant."""
        suite = self.suite
        c = suite.measure.carbon
        self._intensity = grid_intensity(c.country, c.region, c.intensity_g_per_kwh)
        check_device(suite.measure.device, suite.path)
        try:
            self.logdir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise GreenbenchError(
                f"cannot create the work folder {self.logdir}: {err.strerror}. Pass --workdir with a "
                f"writable folder."
            ) from None
        self.dataset = resolve_dataset(suite, self.workdir, data)
        self.executor.where()  # the idle baseline, before any work heats the machine

    def _finish(self, outcome: RunOutcome, record: RunRecord) -> None:
        store_record(self.store, record, self.workdir / "pending")  # kept on disk until stored
        outcome.done[record.variant] = record.status
        if record.status == "failed":
            self.opt.progress(f"{record.variant}: FAILED: {record.error}")
        else:
            self.opt.progress(f"{record.variant}: ok")

    def run(self) -> RunOutcome:
        """Run every variant not already stored ``ok`` (all of them with ``force``)."""
        suite, opt = self.suite, self.opt
        outcome = RunOutcome(self.run_id, self.device["device_id"])
        for kept in store_pending(self.store, self.workdir / "pending"):  # measured, never stored
            opt.progress(f"{kept.variant}: stored its {kept.status} record kept from run {kept.run_id}")
        data = dataset_ref(suite)  # walked once: resume keys and staging both use it
        self.dataset = data  # its fingerprint keys resume; _prepare stages it (same fingerprint)
        todo = []
        for name in suite.order():
            done = self._stored_ok(name)
            if done is not None and not opt.force:
                outcome.done[name] = "resumed"
                opt.progress(f"{name}: already stored ok (run {done.run_id}); skipped")
            else:
                todo.append(name)
        if not todo:
            return outcome
        self._prepare(data)
        started: dict[str, str] = {}
        prepared: dict[str, Prepared] = {}
        failed: set[str] = set()
        for name in todo:
            started[name] = _now()
            parent = suite.variants[name].from_
            try:
                if parent is not None and parent in failed:
                    raise GreenbenchError(f"its parent variant '{parent}' failed in this run")
                prepared[name] = self._prepare_variant(name)
            except Exception as e:
                failed.add(name)
                self._finish(outcome, self._failed_record(name, started[name], e))
        if prepared:
            self._measure_all(prepared, started, failed, outcome)
        return outcome

    def _baseline_arm(self, prepared: dict[str, Prepared]) -> tuple[jobs.ArmSpec | None, str | None]:
        """The baseline's arm: prepared in this run, or the model file of its stored record (a
        stored baseline is not a partner in time: it is measured again beside the variants);
        prepared again only when that file is gone."""
        base = self.suite.baseline
        stored = self._stored_ok(base)
        kept = (stored.measurement.get("artifact") or {}) if stored is not None else {}
        usable = kept.get("kind") in ("torch", "onnx") and Path(str(kept.get("path"))).is_file()
        if base not in prepared and usable:
            artifact = jobs.Artifact(kept["kind"], kept["path"])  # the resumed record's own model file
            return jobs.ArmSpec(base, artifact, *self._runtime(base, artifact.kind)), None
        if base not in prepared:
            try:
                prepared_base = self._prepare_variant(base)
            except Exception as e:
                return None, _one_line(e)
        else:
            prepared_base = prepared[base]
        artifact = prepared_base.evaluated.artifact
        return jobs.ArmSpec(base, artifact, *self._runtime(base, artifact.kind)), None

    def _measure_all(
        self, prepared: dict[str, Prepared], started: dict[str, str], failed: set[str], outcome: RunOutcome
    ) -> None:
        suite = self.suite
        base = suite.baseline
        baseline_arm, base_error = (None, None) if base in failed else self._baseline_arm(prepared)
        if base in failed:
            base_error = "it failed in this run"
        for group in self._groups(list(prepared)):
            arms = [baseline_arm] if baseline_arm is not None else []
            for name in group:
                artifact = prepared[name].evaluated.artifact
                arms.append(jobs.ArmSpec(name, artifact, *self._runtime(name, artifact.kind)))
            members = group + ([base] if base in prepared and base not in group else [])
            prepared_base = prepared.pop(base, None)  # the baseline's record: once, with its first group
            try:
                measured = self._measure([a for a in arms if a is not None])
            except Exception as e:
                for name in members:
                    self._finish(outcome, self._failed_record(name, started[name], e))
                continue
            paired = baseline_arm is not None and base not in measured.failed
            if not paired and group:
                why = measured.failed.get(base, base_error)
                self.opt.progress(f"baseline '{base}' not measured ({why}): Δ of {', '.join(group)} unpaired")
            order = self.suite.order()
            for name in sorted(members, key=order.index):  # records in suite order
                if name in measured.failed or not any(b["arm"] == name for b in measured.blocks):
                    error = GreenbenchError(measured.failed.get(name, "no block was measured"))
                    self._finish(outcome, self._failed_record(name, started[name], error))
                else:
                    prep = prepared_base if name == base else prepared[name]
                    assert prep is not None
                    try:
                        record = self._ok_record(name, started[name], prep, measured, paired)
                    except Exception as e:  # a figure that cannot be computed: this variant fails
                        record = self._failed_record(name, started[name], e)
                    self._finish(outcome, record)
