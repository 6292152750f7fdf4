"""Builders of test records, shared by the store and report tests."""

from __future__ import annotations

from typing import Any

from greenbench.store import RunRecord


def make_record(**fields: Any) -> RunRecord:
    """A ``RunRecord`` with placeholder identity; ``fields`` override any of them."""
    base: dict[str, Any] = {
        "run_id": "r1",
        "suite": "s",
        "suite_hash": "x",
        "variant": "a",
        "variant_hash": "h1",
        "parent": None,
        "status": "ok",
        "device_id": "dev",
        "started_at": "t0",
        "finished_at": "t1",
    }
    return RunRecord(**{**base, **fields})


def make_measured_record(
    variant: str = "a",
    *,
    map50: float | None = 0.5,
    latency_ms: float | None = 10.0,
    energy_j: float | None = 0.05,
    gflops: float = 4.0,
    **fields: Any,
) -> RunRecord:
    """An ``ok`` detection record with the metrics a run stores (accuracy, latency and energy per
    image with CIs, complexity, training energy, CO2) in the registry's units; ``fields``
    override any record field (``suite``, ``device_id``, ``runtime``, ``deltas``, …)."""
    from greenbench.metrics import stored

    metrics: dict[str, Any] = {
        "precision": stored("precision", 0.6),
        "recall": stored("recall", 0.55),
        "params": stored("params", 1_760_000),
        "gmacs": stored("gmacs", gflops / 2, imgsz=64),
        "gflops": stored("gflops", gflops, convention="GFLOPs = 2 × GMACs", imgsz=64),
        "size_mb": stored("size_mb", 3.9),
        "train_energy_j": stored("train_energy_j", 1200.0, method="estimated", source="estimate"),
        "co2_train_g": stored("co2_train_g", 0.12, method="estimated"),
    }
    if map50 is not None:
        metrics["map50"] = stored("map50", map50)
        metrics["map50_95"] = stored("map50_95", map50 / 2)
    if latency_ms is not None:
        metrics["latency_ms"] = stored(
            "latency_ms", latency_ms, ci_low=latency_ms * 0.95, ci_high=latency_ms * 1.05, threads=1,
            noisy=False,
        )  # fmt: skip
    if energy_j is not None:
        tag = {"method": "estimated", "source": "estimate"}
        metrics["energy_per_image_j"] = stored(
            "energy_per_image_j", energy_j, ci_low=energy_j * 0.9, ci_high=energy_j * 1.1, noisy=False, **tag
        )
        metrics["energy_per_image_net_j"] = stored("energy_per_image_net_j", energy_j * 0.6, **tag)
        metrics["co2_per_1k_images_g"] = stored("co2_per_1k_images_g", energy_j * 0.1, method="estimated")
    base: dict[str, Any] = {
        "variant": variant,
        "variant_hash": f"h-{variant}",
        "task": "detect",
        "baseline": "base",
        "runtime": "torch",
        "started_at": "2026-01-01T00:00:00+00:00",
        "finished_at": "2026-01-01T00:01:00+00:00",
        "metrics": metrics,
        "measurement": {
            "settings": {"latency": {"batch": 1, "imgsz": 64, "threads": 1}},
            "carbon": {"g_per_kwh": 350.0, "source": "test", "pue": 1.0},
        },
        "device": {"device": "cpu", "cpu_model": "Test CPU", "logical_cores": 2, "ram_gib": 8.0, "gpus": []},
        "versions": {"greenbench": "0.1.0", "suite_git_commit": "abc123"},
    }
    return make_record(**{**base, **fields})
