"""Turn what the worker processes measured into a record's metrics: units, methods, net energy.

Pure functions (no I/O): the runner passes in the raw results, the run's idle baseline and grid
intensity. Every energy metric carries ``method`` (``measured``/``estimated``) and ``source``.
"""

from __future__ import annotations

from typing import Any

from greenbench.measure.carbon import GridIntensity, co2_g
from greenbench.measure.energy.composite import IdleBaseline
from greenbench.measure.energy.meter import DomainEnergy, EnergyReading
from greenbench.measure.stats import summarize
from greenbench.store import metric

Metrics = dict[str, dict[str, Any]]


def reading_from_dict(d: dict[str, Any]) -> EnergyReading:
    """Inverse of ``EnergyReading.to_dict`` (notes dropped)."""
    domains = tuple(DomainEnergy(x["domain"], x["energy_j"], x["method"], x["source"]) for x in d["domains"])
    return EnergyReading(d["duration_s"], domains, d.get("invalid_samples", 0))


def accuracy_and_complexity(m: dict[str, Any], imgsz: int) -> Metrics:
    """Accuracy on the test split, parameters, MACs/FLOPs at ``imgsz``, size, peak memory."""
    acc = m["accuracy"]
    return {
        "precision": metric(acc["precision"], "fraction", split="test"),
        "recall": metric(acc["recall"], "fraction", split="test"),
        "map50": metric(acc["map50"], "fraction", split="test"),
        "map50_95": metric(acc["map50_95"], "fraction", split="test"),
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
    tag = {"method": windows[0]["method"], "source": windows[0]["source"], "stat": "median over windows"}
    return {
        "energy_per_image_j": metric(g.median, "J", min=g.min, max=g.max, windows=g.n, **tag),
        "energy_per_image_net_j": metric(n.median, "J", min=n.min, max=n.max, windows=n.n, **tag),
        "co2_per_1k_images_g": metric(
            co2_g(g.median * 1000, intensity, pue), "g", method=tag["method"],
            basis="gross energy per image × 1000 × grid intensity × PUE",
        ),
    }  # fmt: skip


def training(
    stage_results: list[dict[str, Any]], idle: IdleBaseline, intensity: GridIntensity, pue: float
) -> tuple[Metrics, list[dict[str, Any]]]:
    """Per-stage energy (gross, net) and the variant's training totals with CO2."""
    stages, metrics = [], {}
    for s in stage_results:
        n = idle.net(reading_from_dict(s["energy"]))
        stages.append(
            {
                "name": s["name"],
                "params": s["params"],
                "cached": s["cached"],
                "checkpoint": s["checkpoint"],
                "duration_s": s["energy"]["duration_s"],
                "energy": s["energy"],
                "energy_j": n["energy_j"],
                "energy_net_j": n["energy_net_j"],
                "method": n["method"],
            }
        )
    if stages:
        method = "measured" if all(s["method"] == "measured" for s in stages) else "estimated"
        tag = {"method": method, "source": stage_results[0]["energy"]["source"], "stages": len(stages)}
        gross = sum(s["energy_j"] for s in stages)
        metrics["train_energy_j"] = metric(gross, "J", **tag)
        metrics["train_energy_net_j"] = metric(sum(s["energy_net_j"] for s in stages), "J", **tag)
        metrics["co2_train_g"] = metric(
            co2_g(gross, intensity, pue), "g", method=method,
            basis="gross training energy × grid intensity × PUE",
        )  # fmt: skip
    metrics.update(codecarbon_check([s["energy"].get("notes", {}).get("codecarbon") for s in stage_results]))
    return metrics, stages


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
    m: dict[str, Any],
    stage_results: list[dict[str, Any]],
    idle: IdleBaseline,
    intensity: GridIntensity,
    pue: float,
    imgsz: int,
) -> tuple[Metrics, list[dict[str, Any]]]:
    """All metrics of one variant and its per-stage entries."""
    metrics = {**accuracy_and_complexity(m, imgsz), **latency(m), **inference_energy(m, idle, intensity, pue)}
    train_metrics, stages = training(stage_results, idle, intensity, pue)
    return {**metrics, **train_metrics}, stages
