"""Record metrics from raw worker results: per-image division, idle subtraction, CO2, methods."""

from __future__ import annotations

from typing import Any

import pytest

from greenbench.measure.carbon import GridIntensity
from greenbench.measure.energy.composite import IdleBaseline, skipped_idle
from greenbench.records import Context, build_metrics, codecarbon_check

GRID = GridIntensity(400.0, "test", "DEU", None)


def window(energy_j: float, duration_s: float, images: int, method: str = "measured") -> dict[str, Any]:
    return {
        "energy_j": energy_j, "duration_s": duration_s, "images": images, "method": method,
        "source": "rapl:x", "invalid_samples": 0,
        "domains": [{"domain": "package-0", "energy_j": energy_j, "method": method, "source": "rapl:x"}],
    }  # fmt: skip


def measured(windows: list[dict[str, Any]]) -> dict[str, Any]:
    summary = {"median": 10.0, "ci_low": 9.5, "ci_high": 10.5, "iqr": 0.4, "p90": 11.0, "p99": 12.0,
               "mean": 10.1, "std": 0.3, "n": 50, "noisy": False}  # fmt: skip
    return {
        "accuracy": {"precision": 0.5, "recall": 0.4, "map50": 0.3, "map50_95": 0.1},
        "params": 1_000_000, "macs": 2_500_000_000, "size_mb": 4.0, "peak_rss_mb": 300.0,
        "latency": {"summary": summary, "threads": 1}, "energy_windows": windows,
    }  # fmt: skip


def stage(
    energy_j: float, duration_s: float, notes: dict[str, Any] | None = None, variant: str = "v"
) -> dict[str, Any]:
    w = window(energy_j, duration_s, 0)
    w["notes"] = notes or {}
    return {
        "variant": variant,
        "name": "train",
        "params": {},
        "cached": False,
        "checkpoint": "c.pt",
        "energy": w,
    }


def test_per_image_energy_is_median_over_windows_gross_and_net() -> None:
    idle = IdleBaseline({"package-0": 10.0}, 3.0, "measured")  # 10 W idle
    windows = [window(30.0, 1.0, 100), window(32.0, 1.0, 100), window(60.0, 2.0, 200)]
    metrics, _ = build_metrics(measured(windows), [], "v", Context(idle, GRID, 1.5, 128))
    e = metrics["energy_per_image_j"]
    assert e["value"] == pytest.approx(0.30) and e["min"] == pytest.approx(0.30) and e["max"] == 0.32
    assert e["method"] == "measured" and e["windows"] == 3
    # net: (30 - 10 W × 1 s) / 100, (32 - 10) / 100, (60 - 20) / 200 → median 0.20
    assert metrics["energy_per_image_net_j"]["value"] == pytest.approx(0.20)
    assert metrics["co2_per_1k_images_g"]["value"] == pytest.approx(300.0 / 3.6e6 * 400 * 1.5)


def test_training_totals_stages_and_co2_from_gross() -> None:
    idle = IdleBaseline({"package-0": 2.0}, 3.0, "measured")
    parent = stage(4000.0, 400.0, variant="parent")
    stages_in = [parent, stage(1000.0, 100.0), stage(500.0, 50.0)]
    metrics, stages = build_metrics(measured([window(1, 1, 1)]), stages_in, "v", Context(idle, GRID, 1.0, 64))
    assert [s["energy_net_j"] for s in stages] == [800.0, 400.0]
    assert metrics["train_energy_j"]["value"] == 1500.0 and metrics["train_energy_net_j"]["value"] == 1200.0
    assert metrics["train_energy_j"]["method"] == "measured" and metrics["train_energy_j"]["stages"] == 2
    assert metrics["co2_train_g"]["value"] == pytest.approx(1500.0 / 3.6e6 * 400)
    # what producing the variant cost: the parent's stage too
    assert metrics["train_energy_lineage_j"]["value"] == 5500.0
    assert metrics["train_energy_lineage_net_j"]["value"] == 5500.0 - 2.0 * 550.0
    assert metrics["gflops"]["value"] == 2 * metrics["gmacs"]["value"] == 5.0
    assert metrics["latency_ms"]["ci_low"] == 9.5 and metrics["latency_ms"]["n"] == 50


def test_one_estimated_stage_makes_the_total_estimated() -> None:
    est = stage(10.0, 1.0)
    est["energy"]["domains"][0]["method"] = "estimated"
    ctx = Context(skipped_idle("x"), GRID, 1, 64)
    metrics, _ = build_metrics(measured([window(1, 1, 1)]), [stage(10.0, 1.0), est], "v", ctx)
    assert metrics["train_energy_j"]["method"] == "estimated"
    assert metrics["train_energy_net_j"]["value"] == metrics["train_energy_j"]["value"]  # idle skipped


def test_no_stages_no_training_metrics() -> None:
    ctx = Context(skipped_idle("x"), GRID, 1, 64)
    metrics, stages = build_metrics(measured([window(1, 1, 1)]), [], "v", ctx)
    assert stages == [] and "train_energy_j" not in metrics and "co2_train_g" not in metrics


def test_codecarbon_totals_beside_ours_or_the_reason() -> None:
    ok = codecarbon_check(
        [{"energy_j": 5.0, "co2_g": 0.1, "version": "3.3.2"}, {"energy_j": 1.0, "co2_g": 0.02}]
    )
    assert ok["codecarbon_train_energy_j"]["value"] == 6.0
    assert ok["codecarbon_co2_train_g"]["value"] == pytest.approx(0.12)
    failed = codecarbon_check([{"error": "codecarbon is not installed"}])
    assert failed["codecarbon_train_energy_j"]["value"] is None
    assert failed["codecarbon_train_energy_j"]["error"] == "codecarbon is not installed"
    assert codecarbon_check([None, None]) == {}
