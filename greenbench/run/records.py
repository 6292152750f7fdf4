"""Turn what the worker processes measured into a record: metrics with units, methods and net
energy, the typed ``Measurement`` of how it was measured, and the record itself (``ok_record``,
``failed_record``).

Pure functions (no I/O): the runner passes in the typed results, the blocks of the interleaved
rounds, the idle baseline of the machine that measured them and the grid intensity. Every
energy metric carries ``method`` (``measured``/``estimated``) and ``source``; latency and energy
per image are per-round medians of blocks summarised over rounds with a t-interval (one figure
per fresh process), and their Δ against the baseline comes from time-adjacent block pairs, the
same way (``greenbench.measure.compare``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from greenbench.errors import GreenbenchError, clean_message
from greenbench.measure.carbon import GridIntensity, co2_g
from greenbench.measure.compare import Figure, Value, arm_figures
from greenbench.measure.energy.composite import IdleBaseline
from greenbench.measure.protocol import Block
from greenbench.measure.stats import NOISY_IQR_RATIO
from greenbench.metrics import units
from greenbench.run import jobs
from greenbench.run.jobs import EvaluateResult, StageDone, total_arm
from greenbench.run.prepare import Prepared
from greenbench.store import RunRecord
from greenbench.suite import Suite
from greenbench.tasks.base import DatasetRef

Metrics = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Context:
    """What a run knows besides the worker results: idle baseline, grid intensity, PUE, image
    size; ``units``: every metric's stored unit (``greenbench.metrics.units``, looked up once)."""

    idle: IdleBaseline
    intensity: GridIntensity
    pue: float
    imgsz: int
    units: dict[str, str] = field(default_factory=units)

    def stored(self, name: str, value: float | int | None, **extra: Any) -> dict[str, Any]:
        """Metric ``name`` as a record stores it (``greenbench.metrics.stored``)."""
        return {"value": value, "unit": self.units[name], **extra}


def accuracy_and_complexity(ev: EvaluateResult, ctx: Context) -> Metrics:
    """Accuracy on the evaluation split, parameters, MACs/FLOPs at the image size, size, peak memory."""
    acc, imgsz, stored = ev.accuracy, ctx.imgsz, ctx.stored
    split = acc.get("split", "test")
    metrics = {name: stored(name, acc[name], split=split) for name in acc if name not in ("split", "details")}
    what = "ONNX graph initializers" if ev.artifact.kind == "onnx" else "fused inference model"
    return {
        **metrics,
        "params": stored("params", ev.params, what=what),
        "gmacs": stored("gmacs", ev.macs / 1e9, imgsz=imgsz, counted_by=ev.counted_by),
        "gflops": stored("gflops", 2 * ev.macs / 1e9, convention="GFLOPs = 2 × GMACs", imgsz=imgsz),
        "size_mb": stored("size_mb", ev.size_mb, what=f"{ev.artifact.kind} model file, 10^6 bytes"),
        "peak_rss_mb": stored(
            "peak_rss_mb", ev.peak_rss_mb, what="peak RSS of the process that evaluated it alone"
        ),
    }


def _net_energy(idle: IdleBaseline) -> Callable[[Block], float | None]:
    """A block's energy per image net of the idle power over its window."""

    def value(b: Block) -> float | None:
        if b.reading is None or not b.images:
            return None
        return float(idle.net(b.reading)["energy_net_j"]) / b.images

    return value


def block_values(idle: IdleBaseline) -> dict[str, Value]:
    """The figures taken from the interleaved blocks: latency, gross and net energy per image."""
    return {
        "latency_ms": "latency_ms",
        "energy_per_image_j": "energy_per_image_j",
        "energy_per_image_net_j": _net_energy(idle),
    }


def _interval(name: str, figure: Figure, stat: str, ctx: Context, **extra: Any) -> dict[str, Any]:
    """Metric ``name`` from its figure: median, CI over rounds, τ, IQR, noisy flag."""
    est = figure.estimate
    return ctx.stored(
        name, est.value, ci_low=est.ci_low, ci_high=est.ci_high, ci_method=est.ci_method,
        stat=stat if est.scale == "log" else stat.replace("geometric mean", "mean"),
        rounds=est.rounds, blocks=est.blocks, spread_pct=est.spread_pct, iqr=figure.iqr,
        noisy=bool(est.value > 0 and figure.iqr / est.value > NOISY_IQR_RATIO), **extra,
    )  # fmt: skip


PER_IMAGE = "geometric mean over rounds of the median block energy / images"


def interleaved(
    figures: dict[str, Figure], blocks: Sequence[Block], arm: str, ctx: Context, threads: int
) -> Metrics:
    """Latency and energy per image of ``arm`` from its figures over every round."""
    metrics: Metrics = {}
    if "latency_ms" in figures:
        metrics["latency_ms"] = _interval(
            "latency_ms", figures["latency_ms"], LATENCY_STAT, ctx, threads=threads
        )
    readings = [b.reading for b in blocks if b.arm == arm and b.reading is not None]
    if readings and "energy_per_image_j" in figures:
        tag = {
            "method": readings[0].method,
            "source": readings[0].source,
            "invalid_samples": sum(r.invalid_samples for r in readings),
        }
        for name in ("energy_per_image_j", "energy_per_image_net_j"):
            if name in figures:
                metrics[name] = _interval(name, figures[name], PER_IMAGE, ctx, **tag)
        per_1k_j = metrics["energy_per_image_j"]["value"] * 1000
        metrics["co2_per_1k_images_g"] = ctx.stored(
            "co2_per_1k_images_g", co2_g(per_1k_j, ctx.intensity, ctx.pue),
            method=tag["method"], basis="gross energy per image × 1000 × grid intensity × PUE",
        )  # fmt: skip
    return metrics


def paired_deltas(figures: dict[str, Figure], pairing: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Δ against the baseline, per metric whose figure has a paired ratio. ``pairing``: what
    identifies the partner in time (baseline name and key, run id)."""
    return {
        name: {"paired": True, **pairing, **f.ratio.to_dict()}
        for name, f in figures.items()
        if f.ratio is not None
    }


def deltas(
    blocks: Sequence[Block], arm: str, baseline: str, ctx: Context, pairing: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """Δ of ``arm`` against ``baseline`` from their time-adjacent blocks, per metric (no Δ where a
    pair is not positive: net energy in noise)."""
    return paired_deltas(arm_figures(blocks, arm, block_values(ctx.idle), baseline), pairing)


def parent_deltas(
    blocks: Sequence[Block], arm: str, parent: str | None, ctx: Context, keys: Keys, run_id: str
) -> dict[str, dict[str, Any]]:
    """Δ of ``arm`` against its ``from:`` variant from their time-adjacent blocks, when the parent
    was one of the arms measured with it (empty otherwise: a table then says its Δ is unpaired)."""
    if parent is None or keys.parent_key is None or not any(b.arm == parent for b in blocks):
        return {}
    pairing = {"parent": parent, "parent_key": keys.parent_key, "run_id": run_id}
    found = deltas(blocks, arm, parent, ctx, pairing)
    return {**found, **paired_deltas(total_latency(blocks, arm, parent), pairing)}


LATENCY_STAT = "geometric mean over rounds of the median block latency"


def total_latency(blocks: Sequence[Block], variant: str, against: str | None) -> dict[str, Figure]:
    """``latency_total_ms`` of ``variant`` from its ``@total`` arm (``latency.scope: both``), with
    its paired ratio against ``against``'s ``@total`` arm; empty when the variant has no such arm."""
    arm = total_arm(variant)
    if not any(b.arm == arm for b in blocks):
        return {}
    partner = None if against is None else total_arm(against)
    return arm_figures(blocks, arm, {"latency_total_ms": "latency_ms"}, partner)


def _stage_entry(s: StageDone, idle: IdleBaseline) -> dict[str, Any]:
    n = idle.net(s.energy)
    return {
        "variant": s.variant,
        "name": s.name,
        "params": s.params,
        "cached": s.cached,
        "checkpoint": s.checkpoint,
        "duration_s": s.energy.duration_s,
        "energy": s.energy.to_dict(),
        "energy_j": n["energy_j"],
        "energy_net_j": n["energy_net_j"],
        "method": n["method"],
        "invalid_samples": s.energy.invalid_samples,
        "info": s.info,
    }


def _totals(stages: list[dict[str, Any]], prefix: str, what: str, ctx: Context) -> Metrics:
    method = "measured" if all(s["method"] == "measured" for s in stages) else "estimated"
    tag = {
        "method": method,
        "source": "+".join(dict.fromkeys(s["energy"]["source"] for s in stages)),
        "stages": len(stages),
        "what": what,
        "invalid_samples": sum(s["invalid_samples"] for s in stages),
    }
    return {
        f"{prefix}_j": ctx.stored(f"{prefix}_j", sum(s["energy_j"] for s in stages), **tag),
        f"{prefix}_net_j": ctx.stored(f"{prefix}_net_j", sum(s["energy_net_j"] for s in stages), **tag),
    }


def training(
    stage_results: Sequence[StageDone], variant: str, ctx: Context
) -> tuple[Metrics, list[dict[str, Any]]]:
    """Per-stage energy (gross, net) of the variant's own stages, and training totals with CO2:
    ``train_energy_*`` for its own stages, ``train_energy_lineage_*`` for every stage from the
    root model on (what producing this variant cost, parents included)."""
    lineage = [_stage_entry(s, ctx.idle) for s in stage_results]
    own = [s for s in lineage if s["variant"] == variant]
    metrics: Metrics = {}
    if own:
        metrics.update(_totals(own, "train_energy", "this variant's own stages", ctx))
        gross = metrics["train_energy_j"]["value"]
        metrics["co2_train_g"] = ctx.stored(
            "co2_train_g", co2_g(gross, ctx.intensity, ctx.pue), method=metrics["train_energy_j"]["method"],
            basis="gross energy of this variant's own stages × grid intensity × PUE",
        )  # fmt: skip
    if lineage:
        metrics.update(_totals(lineage, "train_energy_lineage", "every stage from the root model on", ctx))
    metrics.update(codecarbon_check([s["energy"].get("notes", {}).get("codecarbon") for s in own], ctx.units))
    return metrics, own


def codecarbon_check(checks: list[dict[str, Any] | None], unit_of: dict[str, str] | None = None) -> Metrics:
    """CodeCarbon's totals over the same training windows, kept beside (never in) ours
    (``unit_of``: the metrics' units, looked up here if not given)."""
    found = unit_of or units()

    def stored(name: str, value: float | None, **extra: Any) -> dict[str, Any]:
        return {"value": value, "unit": found[name], **extra}

    if not any(checks):
        return {}
    if all(c and "energy_j" in c for c in checks):
        ok = [c for c in checks if c]
        return {
            "codecarbon_train_energy_j": stored(
                "codecarbon_train_energy_j", sum(c["energy_j"] for c in ok), method="codecarbon",
                csv=ok[0].get("csv"),
                source=f"codecarbon {ok[0].get('version', '')} OfflineEmissionsTracker, same windows",
            ),
            "codecarbon_co2_train_g": stored(
                "codecarbon_co2_train_g", sum(c["co2_g"] for c in ok), method="codecarbon"
            ),
        }  # fmt: skip
    errors = "; ".join(str(c.get("error")) for c in checks if c and "error" in c)
    return {
        "codecarbon_train_energy_j": stored(
            "codecarbon_train_energy_j", None, method="codecarbon", error=errors
        )
    }


def build_metrics(
    ev: EvaluateResult,
    blocks: Sequence[Block],
    stage_results: Sequence[StageDone],
    variant: str,
    ctx: Context,
    threads: int,
) -> tuple[Metrics, list[dict[str, Any]]]:
    """All metrics of one variant and the entries of its own stages."""
    figures = arm_figures(blocks, variant, block_values(ctx.idle))
    return variant_metrics(ev, figures, blocks, stage_results, variant, ctx, threads)


def variant_metrics(
    ev: EvaluateResult,
    figures: dict[str, Figure],
    blocks: Sequence[Block],
    stage_results: Sequence[StageDone],
    variant: str,
    ctx: Context,
    threads: int,
) -> tuple[Metrics, list[dict[str, Any]]]:
    """``build_metrics`` from the variant's ``arm_figures``, already made."""
    metrics = {**accuracy_and_complexity(ev, ctx), **interleaved(figures, blocks, variant, ctx, threads)}
    train_metrics, stages = training(stage_results, variant, ctx)
    return {**metrics, **train_metrics}, stages


# --- records -------------------------------------------------------------------------------


def now() -> str:
    """The time a record states, UTC to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def one_line_error(error: BaseException) -> str:
    """A stored error: one line (a framework's messages may span lines; tables render errors in
    notes), without terminal escapes (frameworks colour their messages), at most 1000 characters."""
    if isinstance(error, GreenbenchError):
        text = str(error)
    else:
        text = f"internal error: {type(error).__name__}: {error} (please report it)"
    return clean_message(text, limit=1000, one_line=True)


@dataclass(frozen=True)
class RunIdentity:
    """What every record of one run states about the run: its id, the suite, the device the
    executor reports, the suite's git commit."""

    run_id: str
    suite: Suite
    device: dict[str, Any]
    git_commit: str

    def of(self, name: str, key: str, started: str) -> dict[str, Any]:
        """The identity fields of variant ``name``'s record (``key``: its resume key)."""
        suite = self.suite
        return {
            "run_id": self.run_id,
            "suite": suite.name,
            "suite_hash": suite.source_hash,
            "variant": name,
            "variant_hash": key,
            "parent": suite.variants[name].from_,
            "device_id": self.device["device_id"],
            "started_at": started,
            "device": self.device,
            "versions": {**self.device.get("versions", {}), "suite_git_commit": self.git_commit},
            "task": suite.task,
            "baseline": suite.baseline,
            "smoke": suite.smoke,
        }


def failed_record(
    identity: RunIdentity, name: str, key: str, started: str, error: BaseException
) -> RunRecord:
    """Variant ``name``'s record of a failure: its own stages as planned, the error in one line."""
    own = [{"name": st.name, "params": st.params} for st in identity.suite.variants[name].stages]
    return RunRecord(
        **identity.of(name, key, started),
        status="failed",
        finished_at=now(),
        error=one_line_error(error),
        stages=own,
    )


@dataclass(frozen=True)
class Measurement:
    """How a variant was measured (``RunRecord.measurement``): the protocol and its blocks, the
    model file and its runtime, the idle baseline and grid intensity, the lineage of stages, the
    data, the settings and any other greenbench run seen meanwhile."""

    protocol: dict[str, Any]
    blocks: list[Block]
    baseline_blocks: list[Block]
    runtime: dict[str, Any]
    artifact: jobs.Artifact
    idle: IdleBaseline
    intensity: GridIntensity
    pue: float
    lineage: list[dict[str, Any]]
    dataset: DatasetRef
    settings: dict[str, Any]
    concurrent_runs: list[dict[str, object]] = field(default_factory=list)
    accuracy_details: dict[str, Any] | None = None  # the task's figures beyond one number
    #: Δ against the ``from:`` variant where it was measured interleaved with this one (as ``deltas``
    #: against the baseline, with ``parent`` and ``parent_key``); tables with ``delta: parent`` show it
    parent_deltas: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: ``latency.scope: both``: the blocks and runtime description of the variant's ``@total`` arm
    total_blocks: list[Block] = field(default_factory=list)
    total_runtime: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """As the store keeps it."""
        d = self.dataset
        return {
            "protocol": self.protocol,
            "blocks": [b.to_dict() for b in self.blocks],
            # the partner blocks the Δ was computed from: a resumed baseline has no record of them
            "baseline_blocks": [b.to_dict() for b in self.baseline_blocks],
            "runtime": self.runtime,
            "artifact": {"kind": self.artifact.kind, "path": self.artifact.path},
            "idle": self.idle.to_dict(),
            "carbon": {
                "g_per_kwh": self.intensity.g_per_kwh,
                "source": self.intensity.source,
                "pue": self.pue,
            },
            "weights_file": self.artifact.path,
            # every stage from the root model on (the record's `stages` are its own): what made it
            "lineage": self.lineage,
            "dataset": {
                "data_yaml": str(d.data_yaml),
                "eval_split": d.eval_split,
                "fingerprint": d.fingerprint,
                "ignored": d.ignored,
                "ignored_examples": {k: list(v) for k, v in d.ignored_examples.items()},
            },
            "settings": self.settings,
            "concurrent_runs": self.concurrent_runs,
            **({"accuracy_details": self.accuracy_details} if self.accuracy_details else {}),
            **({"parent_deltas": self.parent_deltas} if self.parent_deltas else {}),
            **(
                {
                    "total_blocks": [b.to_dict() for b in self.total_blocks],
                    "total_runtime": self.total_runtime,
                }
                if self.total_blocks
                else {}
            ),
        }


@dataclass(frozen=True)
class Measured:
    """What the interleaved rounds of one group gave: every block, the arms' runtime
    descriptions, the rounds lost, and the machine they ran on."""

    blocks: list[Block]
    arms: dict[str, dict[str, Any]]
    lost_rounds: list[str]
    idle: IdleBaseline
    device: dict[str, Any]


@dataclass(frozen=True)
class Keys:
    """What the plan decided about one variant that its record states: its resume key, the
    baseline's (its Δ is paired with that one), the runtime label, the data it ran on and the
    image size latency was timed at."""

    key: str
    baseline_key: str
    runtime: str
    dataset: DatasetRef
    latency_imgsz: int
    parent_key: str | None = None  # the ``from:`` variant's key: its Δ against the parent is paired with it


def ok_record(
    identity: RunIdentity,
    keys: Keys,
    name: str,
    started: str,
    prepared: Prepared,
    measured: Measured,
    paired: bool,
    intensity: GridIntensity,
    concurrent_runs: list[dict[str, object]],
) -> RunRecord:
    """Variant ``name``'s record of a measurement: metrics from its evaluation, blocks and stages;
    its Δ against the baseline when the two were measured interleaved (``paired``)."""
    suite = identity.suite
    pue = suite.measure.carbon.pue
    ctx = Context(measured.idle, intensity, pue, keys.latency_imgsz)
    arm = measured.arms.get(name, {})
    partner = suite.baseline if paired and name != suite.baseline else None
    # every statistic of the blocks at once: estimates, and the Δ against the partner in time
    figures = arm_figures(measured.blocks, name, block_values(ctx.idle), partner)
    metrics, stages = variant_metrics(
        prepared.evaluated, figures, measured.blocks, prepared.stages, name, ctx, int(arm.get("threads", 0))
    )
    pairing = {"baseline": suite.baseline, "baseline_key": keys.baseline_key, "run_id": identity.run_id}
    found = paired_deltas(figures, pairing) if partner is not None else {}
    parent = suite.variants[name].from_
    parent_found = parent_deltas(measured.blocks, name, parent, ctx, keys, identity.run_id)
    total = total_latency(measured.blocks, name, partner)  # latency.scope: both
    total_described = measured.arms.get(total_arm(name), {})
    if total:
        metrics["latency_total_ms"] = _interval(
            "latency_total_ms", total["latency_total_ms"], LATENCY_STAT, ctx,
            threads=int(total_described.get("threads", 0)), per_call=total_described.get("per_call"),
        )  # fmt: skip
        found.update(paired_deltas(total, pairing) if partner is not None else {})
    measurement = Measurement(
        protocol={
            **suite.measure.protocol.model_dump(),
            "min_block_s": suite.measure.energy.min_window_s,
            "arms": sorted({b.arm for b in measured.blocks}),
            "paired_with_baseline": bool(found),
            "lost_rounds": measured.lost_rounds,
        },
        blocks=[b for b in measured.blocks if b.arm == name],
        total_blocks=[b for b in measured.blocks if b.arm == total_arm(name)],
        total_runtime=total_described,
        baseline_blocks=[b for b in measured.blocks if found and b.arm == suite.baseline],
        runtime=arm,
        artifact=prepared.artifact,
        idle=measured.idle,
        intensity=intensity,
        pue=pue,
        lineage=[
            {"variant": v, "stages": [{"name": s.name, "params": s.params} for s in suite.variants[v].stages]}
            for v in suite.lineage(name)
        ],
        dataset=keys.dataset,
        settings=suite.measure.model_dump(),
        concurrent_runs=concurrent_runs,
        accuracy_details=prepared.evaluated.accuracy.get("details"),
        parent_deltas=parent_found,
    )
    where = {"device": measured.device, "device_id": measured.device["device_id"]}
    return RunRecord(
        **{**identity.of(name, keys.key, started), **where},
        status="ok",
        finished_at=now(),
        runtime=keys.runtime,
        stages=stages,
        metrics=metrics,
        deltas=found,
        measurement=measurement.to_dict(),
    )
