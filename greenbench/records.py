"""Turn what the worker processes measured into a record's metrics: units, methods, net energy.

Pure functions (no I/O): the runner passes in the raw results, the run's idle baseline and grid
intensity. Every energy metric carries ``method`` (``measured``/``estimated``) and ``source``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from greenbench.measure.carbon import GridIntensity, co2_g
from greenbench.measure.energy.composite import IdleBaseline
from greenbench.measure.energy.meter import DomainEnergy, EnergyReading
from greenbench.measure.stats import summarize
from greenbench.store import metric

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


def accuracy_and_complexity(m: dict[str, Any], imgsz: int) -> Metrics:
    """Accuracy on the test split, parameters, MACs/FLOPs at ``imgsz``, size, peak memory."""
    acc = m["accuracy"]
    split = acc.get("split", "test")
    return {
        "precision": metric(acc["precision"], "fraction", split=split),
        "recall": metric(acc["recall"], "fraction", split=split),
        "map50": metric(acc["map50"], "fraction", split=split),
        "map50_95": metric(acc["map50_95"], "fraction", split=split),
        "params": metric(m["params"], "count", what="fused inference model"),
        "gmacs": metric(m["macs"] / 1e9, "GMAC", imgsz=imgsz),
        "gflops": metric(2 * m["macs"] / 1e9, "GFLOP", convention="GFLOPs = 2 × GMACs", imgsz=imgsz),
        "size_mb": metric(m["size_mb"], "MB", what="checkpoint file, 10^6 bytes"),
        "peak_rss_mb": metric(m["peak_rss_mb"], "MB", what="peak RSS of the measuring process"),
    }


def latency(m: dict[str, Any]) -> Metrics:
    """The latency median with its CI and the rest of its summary."""
    s = m["latency"]["summary"]
    extra = {k: s[k] for k in ("ci_low", "ci_high", "iqr", "p90", "p99", "mean", "std", "n", "noisy")}
    return {"latency_ms": metric(s["median"], "ms", stat="median", threads=m["latency"]["threads"], **extra)}


def inference_energy(m: dict[str, Any], idle: IdleBaseline, intensity: GridIntensity, pue: float) -> Metrics:
    """Energy per image (gross and net of idle): median over windows, with their spread."""
    windows = m["energy_windows"]
    gross = [w["energy_j"] / w["images"] for w in windows]
    net = [idle.net(reading_from_dict(w))["energy_net_j"] / w["images"] for w in windows]
    g, n = summarize(gross), summarize(net)
    tag = {
        "method": windows[0]["method"],
        "source": windows[0]["source"],
        "stat": "median over windows",
        "invalid_samples": sum(w.get("invalid_samples", 0) for w in windows),
    }
    return {
        "energy_per_image_j": metric(g.median, "J", min=g.min, max=g.max, windows=g.n, **tag),
        "energy_per_image_net_j": metric(n.median, "J", min=n.min, max=n.max, windows=n.n, **tag),
        "co2_per_1k_images_g": metric(
            co2_g(g.median * 1000, intensity, pue), "g", method=tag["method"],
            basis="gross energy per image × 1000 × grid intensity × PUE",
        ),
    }  # fmt: skip


def _stage_entry(s: dict[str, Any], idle: IdleBaseline) -> dict[str, Any]:
    n = idle.net(reading_from_dict(s["energy"]))
    return {
        "variant": s.get("variant"),
        "name": s["name"],
        "params": s["params"],
        "cached": s["cached"],
        "checkpoint": s["checkpoint"],
        "duration_s": s["energy"]["duration_s"],
        "energy": s["energy"],
        "energy_j": n["energy_j"],
        "energy_net_j": n["energy_net_j"],
        "method": n["method"],
        "invalid_samples": s["energy"].get("invalid_samples", 0),
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
        f"{prefix}_j": metric(sum(s["energy_j"] for s in stages), "J", **tag),
        f"{prefix}_net_j": metric(sum(s["energy_net_j"] for s in stages), "J", **tag),
    }


def training(
    stage_results: list[dict[str, Any]], variant: str, ctx: Context
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
        metrics["co2_train_g"] = metric(
            co2_g(gross, ctx.intensity, ctx.pue), "g", method=metrics["train_energy_j"]["method"],
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
            "codecarbon_train_energy_j": metric(
                sum(c["energy_j"] for c in ok), "J", method="codecarbon", csv=ok[0].get("csv"),
                source=f"codecarbon {ok[0].get('version', '')} OfflineEmissionsTracker, same windows",
            ),
            "codecarbon_co2_train_g": metric(sum(c["co2_g"] for c in ok), "g", method="codecarbon"),
        }  # fmt: skip
    errors = "; ".join(str(c.get("error")) for c in checks if c and "error" in c)
    return {"codecarbon_train_energy_j": metric(None, "J", method="codecarbon", error=errors)}


def build_metrics(
    m: dict[str, Any], stage_results: list[dict[str, Any]], variant: str, ctx: Context
) -> tuple[Metrics, list[dict[str, Any]]]:
    """All metrics of one variant and the entries of its own stages."""
    metrics = {
        **accuracy_and_complexity(m, ctx.imgsz),
        **latency(m),
        **inference_energy(m, ctx.idle, ctx.intensity, ctx.pue),
    }
    train_metrics, stages = training(stage_results, variant, ctx)
    return {**metrics, **train_metrics}, stages
