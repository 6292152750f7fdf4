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

from greenbench.datasets import SynthSpec, cached_synth
from greenbench.errors import GreenbenchError
from greenbench.measure.carbon import GridIntensity, co2_g, grid_intensity
from greenbench.measure.device import fingerprint, git_commit
from greenbench.measure.energy.composite import (
    IdleBaseline,
    measure_idle,
    select_meters,
    skipped_idle,
)
from greenbench.measure.energy.meter import DomainEnergy, EnergyReading
from greenbench.measure.stats import summarize
from greenbench.store import RunRecord, Store, metric
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


def resolve_dataset(suite: Suite, workdir: Path) -> Path:
    """The data.yaml of the suite: generated once into the cache for ``synthetic:``."""
    ds = suite.dataset
    if ds.synthetic is not None:
        s = ds.synthetic
        spec = SynthSpec(classes=s.classes, images=s.images, imgsz=s.imgsz, seed=s.seed)
        return cached_synth(workdir / "datasets", spec)
    assert ds.path is not None
    path = Path(ds.path)
    if not path.is_file():
        raise GreenbenchError(
            f"dataset {path} (dataset.path in {suite.path}) does not exist; fix the path or "
            f"use a 'synthetic:' dataset."
        )
    return path


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def stage_plan(suite: Suite, variant: str, workdir: Path, data_yaml: Path) -> list[dict[str, Any]]:
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
            "model": root.model,
            "model_file": _file_digest(Path(root.model)) if Path(root.model).is_file() else None,
            "weights": _file_digest(Path(root.weights)) if root.weights else None,
            "data": _file_digest(data_yaml),
            "defaults": suite.defaults,
            "device": suite.measure.device,
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
        self.data_yaml = Path()  # resolved in run(): generating data is work, not set-up
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
            while proc.poll() is None:
                time.sleep(0.2)
                seen = self._relay(events, seen)
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

    def _energy_metrics(self, reading: dict[str, Any], prefix: str) -> dict[str, dict[str, Any]]:
        assert self._idle is not None
        r = EnergyReading(
            reading["duration_s"],
            tuple(
                DomainEnergy(d["domain"], d["energy_j"], d["method"], d["source"]) for d in reading["domains"]
            ),
            reading.get("invalid_samples", 0),
        )
        n = self._idle.net(r)
        tag = {"method": n["method"], "source": n["source"]}
        return {
            f"{prefix}_j": metric(n["energy_j"], "J", **tag),
            f"{prefix}_net_j": metric(n["energy_net_j"], "J", idle_j=n["idle_j"], **tag),
        }

    # --- one variant --------------------------------------------------------------------
    def _run_variant(self, name: str) -> RunRecord:
        suite, started = self.suite, _now()
        spec = suite.variants[name]
        parent = spec.from_
        root = suite.root_model(name)
        base = {
            "run_id": self.run_id,
            "suite": suite.name,
            "suite_hash": suite.source_hash,
            "variant": name,
            "variant_hash": suite.variant_hash(name),
            "parent": parent,
            "device_id": self.device["device_id"],
            "started_at": started,
            "device": self.device,
            "versions": {**self.device["versions"], "suite_git_commit": self.git_commit},
        }
        plan = stage_plan(self.suite, name, self.workdir, self.data_yaml)
        try:
            if parent is not None and parent in self._failed:
                raise GreenbenchError(f"its parent variant '{parent}' failed in this run")
            common = {
                "workdir": str(self.workdir),
                "device": suite.measure.device,
                "energy": self._energy_job(),
            }
            checkpoint = None
            stage_results: list[dict[str, Any]] = []
            if plan:
                out = self._spawn(
                    name,
                    {
                        "kind": "stages",
                        **common,
                        "data_yaml": str(self.data_yaml),
                        "defaults": suite.defaults,
                        "model": root.model,
                        "weights": root.weights,
                        "stages": plan,
                    },
                )
                checkpoint = out["checkpoint"]
                stage_results = [s for s in out["stages"] if s["variant"] == name]
            lat = suite.measure.latency
            imgsz = int(suite.defaults.get("imgsz", 640))
            measured = self._spawn(
                name,
                {
                    "kind": "measure",
                    **common,
                    "variant": name,
                    "checkpoint": checkpoint,
                    "model": root.model,
                    "weights": root.weights,
                    "data_yaml": str(self.data_yaml),
                    "eval_imgsz": imgsz,
                    "out_dir": str(self.workdir / "measure" / f"{name}-{suite.variant_hash(name)}"),
                    "latency": {
                        "warmup": lat.warmup,
                        "min_repeats": lat.min_repeats,
                        "min_time_s": lat.min_time_s,
                        "max_time_s": lat.max_time_s,
                        "batch": lat.batch,
                        "imgsz": lat.imgsz or imgsz,
                        "threads": lat.threads,
                    },
                    "energy": {
                        **self._energy_job(),
                        "min_window_s": suite.measure.energy.min_window_s,
                        "windows": suite.measure.energy.windows,
                    },
                },
            )
            metrics, measurement, stages = self._metrics(measured, stage_results)
            return RunRecord(
                **base,
                status="ok",
                finished_at=_now(),
                stages=stages,
                metrics=metrics,
                measurement=measurement,
            )
        except GreenbenchError as e:
            return RunRecord(
                **base,
                status="failed",
                finished_at=_now(),
                error=str(e),
                stages=[{"name": p["name"], "params": p["params"]} for p in plan if p["variant"] == name],
            )

    def _metrics(
        self, m: dict[str, Any], stage_results: list[dict[str, Any]]
    ) -> tuple[dict[str, dict[str, Any]], dict[str, Any], list[dict[str, Any]]]:
        assert self._intensity is not None and self._idle is not None
        pue = self.suite.measure.carbon.pue
        acc = m["accuracy"]
        lat = m["latency"]["summary"]
        metrics: dict[str, dict[str, Any]] = {
            "precision": metric(acc["precision"], "fraction", split="test"),
            "recall": metric(acc["recall"], "fraction", split="test"),
            "map50": metric(acc["map50"], "fraction", split="test"),
            "map50_95": metric(acc["map50_95"], "fraction", split="test"),
            "params": metric(m["params"], "count"),
            "gmacs": metric(m["macs"] / 1e9, "GMAC", imgsz=self._lat_imgsz),
            "gflops": metric(
                2 * m["macs"] / 1e9, "GFLOP", convention="GFLOPs = 2 × GMACs", imgsz=self._lat_imgsz
            ),
            "size_mb": metric(m["size_mb"], "MB"),
            "peak_rss_mb": metric(m["peak_rss_mb"], "MB", what="peak RSS of the measuring process"),
            "latency_ms": metric(
                lat["median"],
                "ms",
                stat="median",
                ci_low=lat["ci_low"],
                ci_high=lat["ci_high"],
                iqr=lat["iqr"],
                p90=lat["p90"],
                p99=lat["p99"],
                mean=lat["mean"],
                std=lat["std"],
                n=lat["n"],
                noisy=lat["noisy"],
                threads=m["latency"]["threads"],
            ),
        }
        # energy per image: median over windows, gross and net, with the spread
        windows = m["energy_windows"]
        per_img_gross = [w["energy_j"] / w["images"] for w in windows]
        nets = [self._energy_metrics(w, "e")["e_net_j"]["value"] / w["images"] for w in windows]
        gs, ns = summarize(per_img_gross), summarize(nets)
        tag = {"method": windows[0]["method"], "source": windows[0]["source"]}
        metrics["energy_per_image_j"] = metric(
            gs.median, "J", stat="median over windows", min=gs.min, max=gs.max, windows=gs.n, **tag
        )
        metrics["energy_per_image_net_j"] = metric(
            ns.median, "J", stat="median over windows", min=ns.min, max=ns.max, windows=ns.n, **tag
        )
        stages = []
        train_gross = train_net = 0.0
        methods = set()
        for s in stage_results:
            em = self._energy_metrics(s["energy"], "energy")
            train_gross += em["energy_j"]["value"]
            train_net += em["energy_net_j"]["value"]
            methods.add(em["energy_j"]["method"])
            stages.append(
                {
                    "name": s["name"],
                    "params": s["params"],
                    "cached": s["cached"],
                    "checkpoint": s["checkpoint"],
                    "duration_s": s["energy"]["duration_s"],
                    "energy": s["energy"],
                    "energy_j": em["energy_j"]["value"],
                    "energy_net_j": em["energy_net_j"]["value"],
                    "method": em["energy_j"]["method"],
                }
            )
        checks = [s["energy"].get("notes", {}).get("codecarbon") for s in stage_results]
        if checks and all(c and "energy_j" in c for c in checks):
            metrics["codecarbon_train_energy_j"] = metric(
                sum(c["energy_j"] for c in checks),
                "J",
                method="codecarbon",
                source=f"codecarbon {checks[0].get('version', '')} OfflineEmissionsTracker, same windows",
                csv=checks[0].get("csv"),
            )
            metrics["codecarbon_co2_train_g"] = metric(
                sum(c["co2_g"] for c in checks), "g", method="codecarbon"
            )
        elif any(checks):
            metrics["codecarbon_train_energy_j"] = metric(
                None, "J", method="codecarbon", error="; ".join(str(c.get("error")) for c in checks if c)
            )
        if stage_results:
            method = "measured" if methods == {"measured"} else "estimated"
            src = stage_results[0]["energy"]["source"]
            metrics["train_energy_j"] = metric(
                train_gross, "J", method=method, source=src, stages=len(stages)
            )
            metrics["train_energy_net_j"] = metric(
                train_net, "J", method=method, source=src, stages=len(stages)
            )
            metrics["co2_train_g"] = metric(
                co2_g(train_gross, self._intensity, pue),
                "g",
                method=method,
                basis="gross training energy × grid intensity × PUE",
            )
        metrics["co2_per_1k_images_g"] = metric(
            co2_g(gs.median * 1000, self._intensity, pue),
            "g",
            method=tag["method"],
            basis="gross energy per image × 1000",
        )
        measurement = {
            "latency": m["latency"],
            "energy_windows": windows,
            "idle": self._idle.to_dict(),
            "meters": m["meters"],
            "carbon": {"g_per_kwh": self._intensity.g_per_kwh, "source": self._intensity.source, "pue": pue},
            "weights_file": m["weights_file"],
            "settings": self.suite.measure.model_dump(),
        }
        return metrics, measurement, stages

    # --- the whole suite ----------------------------------------------------------------
    def run(self) -> RunOutcome:
        """Run every variant not already stored ``ok`` (all of them with ``force``)."""
        suite, opt = self.suite, self.opt
        outcome = RunOutcome(self.run_id, self.device["device_id"])
        todo = []
        for name in suite.order():
            done = self.store.latest(suite.name, suite.variant_hash(name), self.device["device_id"])
            if done is not None and not opt.force:
                outcome.done[name] = "resumed"
                opt.progress(f"{name}: already stored ok (run {done.run_id}); skipped")
            else:
                todo.append(name)
        if not todo:
            return outcome
        c = suite.measure.carbon
        self._intensity = grid_intensity(c.country, c.region, c.intensity_g_per_kwh)
        self.data_yaml = resolve_dataset(suite, self.workdir)
        e = suite.measure.energy
        skip = e.skip_idle if opt.skip_idle is None else opt.skip_idle
        if skip:
            self._idle = skipped_idle(
                "skipped by " + ("--no-idle" if opt.skip_idle else "measure.energy.skip_idle")
            )
        else:
            opt.progress(f"idle baseline: {e.idle_s:g} s")
            meter, _ = select_meters(e.meters, e.watts_per_core, e.gpus, opt.powercap_root)
            with meter:
                self._idle = measure_idle(meter, e.idle_s)
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
