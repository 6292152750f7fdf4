"""Turn what the worker processes measured into a record's metrics: units, methods, net energy.

Pure functions (no I/O): the runner passes in the typed results, the blocks of the interleaved
rounds, the idle baseline of the machine that measured them and the grid intensity. Every
energy metric carries ``method`` (``measured``/``estimated``) and ``source``; latency and energy
per image are medians of blocks with a hierarchical-bootstrap CI (rounds, then blocks), and
their Δ against the baseline comes from time-adjacent block pairs (``greenbench.measure.compare``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from greenbench.jobs import EvaluateResult, StageDone
from greenbench.measure.carbon import GridIntensity, co2_g
from greenbench.measure.compare import hierarchical_median, paired_ratio
from greenbench.measure.energy.composite import IdleBaseline
from greenbench.measure.energy.meter import DomainEnergy, EnergyReading
from greenbench.measure.stats import NOISY_IQR_RATIO
from greenbench.metrics import stored

Metrics = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Context:
    """What a run knows besides the worker results: idle baseline, grid intensity, PUE, image size."""

    idle: IdleBaseline
    intensity: GridIntensity
    pue: float
    imgsz: int


def reading_from_dict(d: dict[str, Any]) -> EnergyReading:
    """Inverse of ``EnergyReading.to_dict`` (notes dropped)."""
    domains = tuple(
        DomainEnergy(x["domain"], x["energy_j"], x["method"], x["source"], x.get("scope", "system"))
        for x in d["domains"]
    )
    return EnergyReading(d["duration_s"], domains, d.get("invalid_samples", 0))


def accuracy_and_complexity(ev: EvaluateResult, imgsz: int) -> Metrics:
    """Accuracy on the evaluation split, parameters, MACs/FLOPs at ``imgsz``, size, peak memory."""
    acc = ev.accuracy
    split = acc.get("split", "test")
    metrics = {name: stored(name, acc[name], split=split) for name in acc if name != "split"}
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


Value = Callable[[dict[str, Any]], "float | None"]


def _latency(b: dict[str, Any]) -> float | None:
    return float(b["latency_ms"])


def _energy(b: dict[str, Any]) -> float | None:
    e = b.get("energy_per_image_j")
    return None if e is None else float(e)


def _net_energy(idle: IdleBaseline) -> Value:
    def value(b: dict[str, Any]) -> float | None:
        if b.get("reading") is None or not b.get("images"):
            return None
        return float(idle.net(reading_from_dict(b["reading"]))["energy_net_j"]) / b["images"]

    return value


def by_round(blocks: Sequence[dict[str, Any]], arm: str, value: Value) -> list[list[float]]:
    """``arm``'s block values grouped per round (rounds in order), None values left out."""
    rounds: dict[int, list[float]] = {}
    for b in blocks:
        v = value(b) if b["arm"] == arm else None
        if v is not None:
            rounds.setdefault(int(b["round"]), []).append(v)
    return [rounds[r] for r in sorted(rounds)]


def paired_by_round(
    blocks: Sequence[dict[str, Any]], arm: str, baseline: str, value: Value
) -> list[list[tuple[float, float]]]:
    """(arm, baseline) values of the same round and cycle: time-adjacent blocks."""
    cells: dict[tuple[int, int, str], float] = {}
    for b in blocks:
        v = value(b)
        if v is not None and b["arm"] in (arm, baseline):
            cells[(int(b["round"]), int(b["cycle"]), b["arm"])] = v
    rounds: dict[int, list[tuple[float, float]]] = {}
    for (r, c, who), v in sorted(cells.items()):
        if who == arm and (r, c, baseline) in cells:
            rounds.setdefault(r, []).append((v, cells[(r, c, baseline)]))
    return [rounds[r] for r in sorted(rounds)]


def _interval(name: str, values: list[list[float]], stat: str, **extra: Any) -> dict[str, Any]:
    """Metric ``name`` from block values per round: median, hierarchical CI, IQR, noisy flag."""
    est = hierarchical_median(values)
    pooled = np.concatenate([np.asarray(v, dtype=float) for v in values])
    q1, q3 = np.quantile(pooled, [0.25, 0.75])
    return stored(
        name, est.value, ci_low=est.ci_low, ci_high=est.ci_high, stat=stat, ci_method=CI_METHOD,
        rounds=est.rounds, blocks=est.blocks, iqr=float(q3 - q1),
        noisy=bool(est.value > 0 and (q3 - q1) / est.value > NOISY_IQR_RATIO), **extra,
    )  # fmt: skip


CI_METHOD = "95 % hierarchical bootstrap over processes (rounds), then blocks"
PER_IMAGE = "median over blocks of block energy / images"


def interleaved(blocks: Sequence[dict[str, Any]], arm: str, ctx: Context, threads: int) -> Metrics:
    """Latency and energy per image of ``arm`` from its blocks in every round."""
    metrics: Metrics = {}
    lat = by_round(blocks, arm, _latency)
    if lat:
        metrics["latency_ms"] = _interval("latency_ms", lat, "median of block medians", threads=threads)
    mine = [b for b in blocks if b["arm"] == arm and b.get("reading")]
    gross = by_round(blocks, arm, _energy)
    if mine and gross:
        readings = [reading_from_dict(b["reading"]) for b in mine]
        tag = {
            "method": readings[0].method,
            "source": readings[0].source,
            "invalid_samples": sum(r.invalid_samples for r in readings),
        }
        metrics["energy_per_image_j"] = _interval("energy_per_image_j", gross, PER_IMAGE, **tag)
        net = by_round(blocks, arm, _net_energy(ctx.idle))
        metrics["energy_per_image_net_j"] = _interval("energy_per_image_net_j", net, PER_IMAGE, **tag)
        per_1k_j = metrics["energy_per_image_j"]["value"] * 1000
        metrics["co2_per_1k_images_g"] = stored(
            "co2_per_1k_images_g", co2_g(per_1k_j, ctx.intensity, ctx.pue),
            method=tag["method"], basis="gross energy per image × 1000 × grid intensity × PUE",
        )  # fmt: skip
    return metrics


def deltas(
    blocks: Sequence[dict[str, Any]], arm: str, baseline: str, ctx: Context, pairing: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """Δ of ``arm`` against ``baseline`` from their time-adjacent blocks, per metric.

    ``pairing``: what identifies the partner in time (baseline name and key, run id).
    """
    out = {}
    for name, value in (
        ("latency_ms", _latency),
        ("energy_per_image_j", _energy),
        ("energy_per_image_net_j", _net_energy(ctx.idle)),
    ):
        pairs = paired_by_round(blocks, arm, baseline, value)
        if sum(len(p) for p in pairs) >= 2:
            out[name] = {"paired": True, **pairing, **paired_ratio(pairs).to_dict()}
    return out


def _stage_entry(s: StageDone, idle: IdleBaseline) -> dict[str, Any]:
    n = idle.net(reading_from_dict(s.energy))
    return {
        "variant": s.variant,
        "name": s.name,
        "params": s.params,
        "cached": s.cached,
        "checkpoint": s.checkpoint,
        "duration_s": s.energy["duration_s"],
        "energy": s.energy,
        "energy_j": n["energy_j"],
        "energy_net_j": n["energy_net_j"],
        "method": n["method"],
        "invalid_samples": s.energy.get("invalid_samples", 0),
        "info": s.info,
    }


def _totals(stages: list[dict[str, Any]], prefix: str, what: str) -> Metrics:
    method = "measured" if all(s["method"] == "measured" for s in stages) else "estimated"
    tag = {
        "method": method,
        "source": "+".join(dict.fromkeys(s["energy"]["source"] for s in stages)),
        "stages": len(stages),
        "what": what,
        "invalid_samples": sum(s["invalid_samples"] for s in stages),
    }
    return {
        f"{prefix}_j": stored(f"{prefix}_j", sum(s["energy_j"] for s in stages), **tag),
        f"{prefix}_net_j": stored(f"{prefix}_net_j", sum(s["energy_net_j"] for s in stages), **tag),
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
        metrics.update(_totals(own, "train_energy", "this variant's own stages"))
        gross = metrics["train_energy_j"]["value"]
        metrics["co2_train_g"] = stored(
            "co2_train_g", co2_g(gross, ctx.intensity, ctx.pue), method=metrics["train_energy_j"]["method"],
            basis="gross energy of this variant's own stages × grid intensity × PUE",
        )  # fmt: skip
    if lineage:
        metrics.update(_totals(lineage, "train_energy_lineage", "every stage from the root model on"))
    metrics.update(codecarbon_check([s["energy"].get("notes", {}).get("codecarbon") for s in own]))
    return metrics, own


def codecarbon_check(checks: list[dict[str, Any] | None]) -> Metrics:
    """CodeCarbon's totals over the same training windows, kept beside (never in) ours."""
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
    blocks: Sequence[dict[str, Any]],
    stage_results: Sequence[StageDone],
    variant: str,
    ctx: Context,
    threads: int,
) -> tuple[Metrics, list[dict[str, Any]]]:
    """All metrics of one variant and the entries of its own stages."""
    metrics = {**accuracy_and_complexity(ev, ctx.imgsz), **interleaved(blocks, variant, ctx, threads)}
    train_metrics, stages = training(stage_results, variant, ctx)
    return {**metrics, **train_metrics}, stages
