"""Walk a suite's variant DAG: resume from the store, run each variant's jobs in fresh
processes, turn their results into ``RunRecord``s and store each as soon as it exists."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from greenbench.dataset_ref import DatasetRef, check_dataset, staged_copy
from greenbench.datasets import SynthSpec, cached_synth
from greenbench.errors import GreenbenchError
from greenbench.measure.carbon import GridIntensity, grid_intensity
from greenbench.measure.device import fingerprint, git_commit
from greenbench.measure.energy.composite import (
    IdleBaseline,
    measure_idle,
    select_meters,
    skipped_idle,
)
from greenbench.records import Context, build_metrics
from greenbench.store import RunRecord, Store
from greenbench.suite import Suite


@dataclass
class RunOptions:
    """How to run a suite. ``workdir``: artifacts, logs, datasets and ultralytics files."""

    workdir: Path
    force: bool = False
    skip_idle: bool | None = None  # None: the suite decides
    powercap_root: Path | None = None
    progress: Callable[[str], None] = lambda _msg: None


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


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _sha(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def dataset_ref(suite: Suite) -> DatasetRef:
    """The suite's data, identified without generating anything: the generator spec for
    ``synthetic:`` (its data.yaml is not known yet), the checked user data.yaml otherwise."""
    if suite.dataset.synthetic is not None:
        return DatasetRef(Path(), "test", "synth-" + _synth_spec(suite).key())
    assert suite.dataset.path is not None
    return check_dataset(Path(suite.dataset.path))


def dataset_key(suite: Suite) -> str:
    """What identifies the suite's data: the generator spec, or the user data's content fingerprint."""
    return dataset_ref(suite).fingerprint


def _synth_spec(suite: Suite) -> SynthSpec:
    s = suite.dataset.synthetic
    assert s is not None
    return SynthSpec(classes=s.classes, images=s.images, imgsz=s.imgsz, seed=s.seed)


def resolve_dataset(suite: Suite, workdir: Path, ref: DatasetRef) -> DatasetRef:
    """``ref`` (from ``dataset_ref``) made usable by workers: synthetic data generated once into
    the cache, user data staged under ``workdir``."""
    if suite.dataset.synthetic is not None:
        return DatasetRef(cached_synth(workdir / "datasets", _synth_spec(suite)), "test", ref.fingerprint)
    return DatasetRef(staged_copy(ref, workdir), ref.eval_split, ref.fingerprint)


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


def variant_key(suite: Suite, variant: str, data_key: str) -> str:
    """The resume key of a variant's result: its config hash and the data it ran on."""
    return _sha([suite.variant_hash(variant), data_key])


def stage_plan(suite: Suite, variant: str, workdir: Path, data_key: str) -> list[dict[str, Any]]:
    """Every stage from the root model to ``variant``, each with its cache key and folder.

    A stage's key chains the key of the stage before it, so a stage is shared by every variant
    whose lineage reaches it unchanged (a parent is trained once for all its children), and any
    change upstream (model file, weights, data, defaults, an earlier stage) changes it.
    """
    root = suite.root_model(variant)
    assert root.model is not None  # the lineage's root names a model (the suite checks it)
    key = _sha(
        {
            "task": suite.task,
            "model": suite.file_ref(root.model),  # local files by content, digested once per suite
            "weights": suite.file_ref(root.weights),
            "data": data_key,
            "defaults": suite.defaults,
            "device": suite.measure.device,
            # a cached stage's energy is reused: only under the meter settings it was read with
            "energy": suite.measure.energy.model_dump(include={"meters", "watts_per_core", "gpus"}),
        }
    )
    plan = []
    for name in suite.lineage(variant):
        for i, st in enumerate(suite.variants[name].stages):
            key = _sha([key, st.name, st.params])
            plan.append(
                {
                    "variant": name,
                    "index": i,
                    "name": st.name,
                    "params": st.params,
                    "key": key,
                    "out_dir": str(workdir / "artifacts" / f"{st.name}-{key}"),
                }
            )
    return plan


class Runner:
    """Runs one suite on this machine into one store."""

    def __init__(self, suite: Suite, store: Store, options: RunOptions) -> None:
        self.suite = suite
        self.store = store
        self.opt = options
        self.workdir = options.workdir.resolve()
        m = suite.measure
        self.device = fingerprint(m.device, threads=m.latency.threads)
        self.run_id = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S-") + uuid.uuid4().hex[:6]
        self.logdir = self.workdir / "logs" / self.run_id
        self.git_commit = git_commit(suite.path.parent) or "none"
        # resolved in run(): generating or walking the data is work, not set-up
        self.dataset = DatasetRef(Path(), "test", "")
        self._lat_imgsz = suite.measure.latency.imgsz or int(suite.defaults.get("imgsz", 640))
        self._failed: set[str] = set()
        self._idle: IdleBaseline | None = None
        self._intensity: GridIntensity | None = None

    # --- helpers ------------------------------------------------------------------------
    def _energy_job(self) -> dict[str, Any]:
        e, c = self.suite.measure.energy, self.suite.measure.carbon
        return {
            "meters": list(e.meters),
            "watts_per_core": e.watts_per_core,
            "gpus": e.gpus,
            "powercap_root": str(self.opt.powercap_root) if self.opt.powercap_root else None,
            "codecarbon": (
                {"out_dir": str(self.logdir / "codecarbon"), "country": c.country, "region": c.region}
                if e.codecarbon
                else None
            ),
        }

    def _spawn(self, variant: str, job: dict[str, Any]) -> dict[str, Any]:
        """Run ``job`` in a fresh Python process; return its result (raises on failure)."""
        self.logdir.mkdir(parents=True, exist_ok=True)
        stem = self.logdir / f"{variant}-{job['kind']}"
        job_file, result_file, log_file = (stem.with_suffix(s) for s in (".job.json", ".result.json", ".log"))
        events = stem.with_suffix(".events")
        job = {**job, "events": str(events)}
        job_file.write_text(json.dumps(job, indent=1, default=str))
        with log_file.open("w") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "greenbench.worker", str(job_file), str(result_file)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )
            seen = 0
            try:
                while proc.poll() is None:
                    time.sleep(0.2)
                    seen = self._relay(events, seen)
            finally:  # interrupted or killed: never leave a worker training on its own
                if proc.poll() is None:
                    proc.terminate()
                    try:
                        proc.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
            self._relay(events, seen)
        if not result_file.exists():
            raise GreenbenchError(
                f"the {job['kind']} process of variant '{variant}' died with exit code "
                f"{proc.returncode} before writing a result; see {log_file}."
            )
        result: dict[str, Any] = json.loads(result_file.read_text())
        if not result.get("ok"):
            hint = "" if result.get("user") else f" (traceback in {log_file})"
            raise GreenbenchError(f"{result.get('error')}{hint}")
        return result

    def _relay(self, events: Path, seen: int) -> int:
        if not events.exists():
            return seen
        lines = events.read_text().splitlines()
        for line in lines[seen:]:
            self.opt.progress(line)
        return len(lines)

    # --- jobs -------------------------------------------------------------------------
    def _stages_job(self, name: str, plan: list[dict[str, Any]]) -> dict[str, Any]:
        suite = self.suite
        root = suite.root_model(name)
        # --force retrains this variant's own stages; its ancestors' cached artifacts stay valid
        forced = [p["key"] for p in plan if p["variant"] == name] if self.opt.force else []
        return {
            "kind": "stages",
            "workdir": str(self.workdir),
            "device": suite.measure.device,
            "energy": self._energy_job(),
            "data_yaml": str(self.dataset.data_yaml),
            "defaults": suite.defaults,
            "model": root.model,
            "weights": root.weights,
            "stages": plan,
            "force_keys": forced,
        }

    def _measure_job(self, name: str, checkpoint: str | None) -> dict[str, Any]:
        suite = self.suite
        root = suite.root_model(name)
        lat, e = suite.measure.latency, suite.measure.energy
        return {
            "kind": "measure",
            "workdir": str(self.workdir),
            "device": suite.measure.device,
            "variant": name,
            "checkpoint": checkpoint,
            "model": root.model,
            "weights": root.weights,
            "data_yaml": str(self.dataset.data_yaml),
            "eval_split": self.dataset.eval_split,
            "eval_imgsz": int(suite.defaults.get("imgsz", 640)),
            "out_dir": str(self.workdir / "measure" / f"{name}-{self._key(name)}"),
            "latency": {
                "warmup": lat.warmup,
                "min_repeats": lat.min_repeats,
                "min_time_s": lat.min_time_s,
                "max_time_s": lat.max_time_s,
                "batch": lat.batch,
                "imgsz": self._lat_imgsz,
                "threads": lat.threads,
            },
            "energy": {**self._energy_job(), "min_window_s": e.min_window_s, "windows": e.windows},
        }

    def _key(self, name: str) -> str:
        return variant_key(self.suite, name, self.dataset.fingerprint)

    # --- one variant --------------------------------------------------------------------
    def _run_variant(self, name: str) -> RunRecord:
        suite, started = self.suite, _now()
        parent = suite.variants[name].from_
        identity = {
            "run_id": self.run_id,
            "suite": suite.name,
            "suite_hash": suite.source_hash,
            "variant": name,
            "variant_hash": self._key(name),
            "parent": parent,
            "device_id": self.device["device_id"],
            "started_at": started,
            "device": self.device,
            "versions": {**self.device["versions"], "suite_git_commit": self.git_commit},
        }
        own_stages = [{"name": st.name, "params": st.params} for st in suite.variants[name].stages]
        try:
            if parent is not None and parent in self._failed:
                raise GreenbenchError(f"its parent variant '{parent}' failed in this run")
            plan = stage_plan(suite, name, self.workdir, self.dataset.fingerprint)
            checkpoint, stage_results = None, []
            if plan:
                out = self._spawn(name, self._stages_job(name, plan))
                checkpoint, stage_results = out["checkpoint"], out["stages"]
            measured = self._spawn(name, self._measure_job(name, checkpoint))
            return self._ok_record(identity, measured, stage_results)
        except GreenbenchError as e:
            error = str(e)
        except Exception as e:
            error = f"internal error: {type(e).__name__}: {e} (please report it)"
        # one line: ultralytics' messages span lines, and tables render errors inside notes
        error = " ".join(error.split())
        return RunRecord(**identity, status="failed", finished_at=_now(), error=error, stages=own_stages)

    def _ok_record(
        self, identity: dict[str, Any], measured: dict[str, Any], stage_results: list[dict[str, Any]]
    ) -> RunRecord:
        assert self._idle is not None and self._intensity is not None
        c = self.suite.measure.carbon
        metrics, stages = build_metrics(
            measured,
            stage_results,
            identity["variant"],
            Context(self._idle, self._intensity, c.pue, self._lat_imgsz),
        )
        measurement = {
            "latency": measured["latency"],
            "energy_windows": measured["energy_windows"],
            "idle": self._idle.to_dict(),
            "meters": measured["meters"],
            "carbon": {
                "g_per_kwh": self._intensity.g_per_kwh,
                "source": self._intensity.source,
                "pue": c.pue,
            },
            "weights_file": measured["weights_file"],
            "dataset": {
                "data_yaml": str(self.dataset.data_yaml),
                "eval_split": self.dataset.eval_split,
                "fingerprint": self.dataset.fingerprint,
            },
            "settings": self.suite.measure.model_dump(),
        }
        return RunRecord(
            **identity,
            status="ok",
            finished_at=_now(),
            stages=stages,
            metrics=metrics,
            measurement=measurement,
        )

    # --- the whole suite ----------------------------------------------------------------
    def _prepare(self, data: DatasetRef) -> None:
        """Carbon intensity, the dataset, the idle baseline: once per run, before any variant."""
        suite, opt = self.suite, self.opt
        c, e = suite.measure.carbon, suite.measure.energy
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
        skip = e.skip_idle if opt.skip_idle is None else opt.skip_idle
        if skip:
            why = "--no-idle" if opt.skip_idle else "measure.energy.skip_idle"
            self._idle = skipped_idle(f"skipped by {why}")
        else:
            opt.progress(f"idle baseline: {e.idle_s:g} s")
            try:
                meter, _ = select_meters(e.meters, e.watts_per_core, e.gpus, opt.powercap_root)
            except GreenbenchError as err:
                raise type(err)(f"measure.energy.meters in {suite.path}: {err}") from None
            with meter:
                self._idle = measure_idle(meter, e.idle_s)

    def run(self) -> RunOutcome:
        """Run every variant not already stored ``ok`` (all of them with ``force``)."""
        suite, opt = self.suite, self.opt
        outcome = RunOutcome(self.run_id, self.device["device_id"])
        data = dataset_ref(suite)  # walked once: resume keys and staging both use it
        todo = []
        for name in suite.order():
            done = self.store.latest(
                suite.name, variant_key(suite, name, data.fingerprint), self.device["device_id"]
            )
            if done is not None and not opt.force:
                outcome.done[name] = "resumed"
                opt.progress(f"{name}: already stored ok (run {done.run_id}); skipped")
            else:
                todo.append(name)
        if not todo:
            return outcome
        self._prepare(data)
        for name in todo:
            record = self._run_variant(name)
            self.store.add(record)
            outcome.done[name] = record.status
            if record.status == "failed":
                self._failed.add(name)
                opt.progress(f"{name}: FAILED: {record.error}")
            else:
                opt.progress(f"{name}: ok")
        return outcome
