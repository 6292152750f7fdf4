"""Record metrics from typed results and blocks: per-image division, idle subtraction, CO2,
methods, and Δ from time-adjacent block pairs."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from greenbench.measure.carbon import GridIntensity
from greenbench.measure.compare import pairs
from greenbench.measure.energy.composite import IdleBaseline, skipped_idle
from greenbench.measure.energy.meter import EnergyReading
from greenbench.measure.protocol import Block
from greenbench.run.jobs import EvaluateResult, StageDone
from greenbench.run.records import Context, build_metrics, codecarbon_check, deltas
from greenbench.runtimes.base import Artifact

GRID = GridIntensity(400.0, "test", "DEU", None)


def window(energy_j: float, duration_s: float, images: int, method: str = "measured") -> dict[str, Any]:
    return {
        "energy_j": energy_j, "duration_s": duration_s, "images": images, "method": method,
        "source": "rapl:x", "invalid_samples": 0,
        "domains": [{"domain": "package-0", "energy_j": energy_j, "method": method, "source": "rapl:x"}],
    }  # fmt: skip


def block(
    arm: str, rnd: int, cycle: int, latency_ms: float, energy_j: float = 30.0, duration_s: float = 1.0
) -> Block:
    """A block of 100 images and one energy window (made from what ``Block.to_dict`` writes)."""
    return Block.from_dict({
        "arm": arm, "round": rnd, "cycle": cycle, "position": 0, "start_s": float(cycle),
        "duration_s": duration_s, "calls": 100, "images": 100, "samples_ms": [latency_ms] * 3,
        "latency_ms": latency_ms, "energy_j": energy_j, "energy_per_image_j": energy_j / 100,
        "reading": window(energy_j, duration_s, 100),
    })  # fmt: skip


def evaluated(kind: str = "torch") -> EvaluateResult:
    accuracy = {"precision": 0.5, "recall": 0.4, "map50": 0.3, "map50_95": 0.1, "split": "test"}
    return EvaluateResult(Artifact(kind, "m.pt"), 1_000_000, 2_500_000_000, "hooks", 4.0, 300.0, accuracy)


def stage(
    energy_j: float,
    duration_s: float,
    notes: dict[str, Any] | None = None,
    variant: str = "v",
    method: str = "measured",
) -> StageDone:
    w = window(energy_j, duration_s, 0, method)
    w["notes"] = notes or {}
    return StageDone("k", "train", variant, {}, "c.pt", EnergyReading.from_dict(w), {}, ())


def test_per_image_energy_is_median_over_blocks_gross_and_net() -> None:
    idle = IdleBaseline({"package-0": 10.0}, 3.0, "measured")  # 10 W idle
    blocks = [block("v", 0, 0, 5.0, 30.0), block("v", 0, 1, 5.0, 32.0), block("v", 1, 0, 5.0, 60.0, 2.0)]
    metrics, _ = build_metrics(evaluated(), blocks, [], "v", Context(idle, GRID, 1.5, 128), threads=1)
    e = metrics["energy_per_image_j"]
    # round medians 0.31 (blocks 0.30, 0.32) and 0.60; their geometric mean, with a 1-df t-interval
    gross = float(np.sqrt(0.31 * 0.60))
    assert e["value"] == pytest.approx(gross) and e["ci_low"] <= gross <= e["ci_high"]
    assert e["method"] == "measured" and e["rounds"] == 2 and e["blocks"] == 3
    assert e["spread_pct"] == pytest.approx(abs(np.log(0.60 / 0.31)) / np.sqrt(2) * 100)
    # net: (30 - 10 W × 1 s) / 100, (32 - 10) / 100 → round median 0.21; (60 - 20) / 100 = 0.40
    assert metrics["energy_per_image_net_j"]["value"] == pytest.approx(float(np.sqrt(0.21 * 0.40)))
    assert metrics["co2_per_1k_images_g"]["value"] == pytest.approx(gross * 1000 / 3.6e6 * 400 * 1.5)
    assert metrics["latency_ms"]["value"] == 5.0 and metrics["latency_ms"]["threads"] == 1


def test_deltas_pair_time_adjacent_blocks_of_the_same_round_and_cycle() -> None:
    # the host slows down 40 % in round 1: both arms alike, so the ratio stays 1.25
    blocks = []
    for rnd, host in ((0, 1.0), (1, 1.4)):
        for cycle in range(6):
            jitter = 1 + 0.01 * ((cycle * 7) % 3 - 1)
            blocks += [
                block("base", rnd, cycle, 10 * host * jitter),
                block("v", rnd, cycle, 12.5 * host * jitter),
            ]
    ctx = Context(skipped_idle("x"), GRID, 1.0, 64)
    found = deltas(blocks, "v", "base", ctx, {"baseline": "base", "baseline_key": "k", "run_id": "r"})
    lat = found["latency_ms"]
    assert lat["paired"] and lat["baseline_key"] == "k" and lat["pairs"] == 12 and lat["rounds"] == 2
    assert lat["delta_pct"] == pytest.approx(25.0) and lat["significant"]
    assert lat["delta_ci_low_pct"] <= 25.0 <= lat["delta_ci_high_pct"]
    # same energy in every block: Δ 0, not significant
    assert found["energy_per_image_j"]["delta_pct"] == pytest.approx(0.0)
    assert not found["energy_per_image_j"]["significant"]
    # unpaired blocks (another round or cycle) never pair
    apart = [block("v", 0, 0, 1.0), block("base", 1, 0, 1.0)]
    assert pairs(apart, "v", "base") == []


def test_training_totals_stages_and_co2_from_gross() -> None:
    idle = IdleBaseline({"package-0": 2.0}, 3.0, "measured")
    parent = stage(4000.0, 400.0, variant="parent")
    stages_in = [parent, stage(1000.0, 100.0), stage(500.0, 50.0)]
    ctx = Context(idle, GRID, 1.0, 64)
    metrics, stages = build_metrics(evaluated(), [block("v", 0, 0, 9.5)], stages_in, "v", ctx, threads=1)
    assert [s["energy_net_j"] for s in stages] == [800.0, 400.0]
    assert metrics["train_energy_j"]["value"] == 1500.0 and metrics["train_energy_net_j"]["value"] == 1200.0
    assert metrics["train_energy_j"]["method"] == "measured" and metrics["train_energy_j"]["stages"] == 2
    assert metrics["co2_train_g"]["value"] == pytest.approx(1500.0 / 3.6e6 * 400)
    # what producing the variant cost: the parent's stage too
    assert metrics["train_energy_lineage_j"]["value"] == 5500.0
    assert metrics["train_energy_lineage_net_j"]["value"] == 5500.0 - 2.0 * 550.0
    assert metrics["gflops"]["value"] == 2 * metrics["gmacs"]["value"] == 5.0
    # one round: the figure, and no interval over processes
    lat = metrics["latency_ms"]
    assert lat["value"] == 9.5 and lat["ci_low"] is None and lat["ci_high"] is None and lat["blocks"] == 1


def test_one_estimated_stage_makes_the_total_estimated() -> None:
    est = stage(10.0, 1.0, method="estimated")
    ctx = Context(skipped_idle("x"), GRID, 1, 64)
    metrics, _ = build_metrics(evaluated(), [], [stage(10.0, 1.0), est], "v", ctx, 1)
    assert metrics["train_energy_j"]["method"] == "estimated"
    assert metrics["train_energy_net_j"]["value"] == metrics["train_energy_j"]["value"]  # idle skipped


def test_no_stages_no_training_metrics() -> None:
    ctx = Context(skipped_idle("x"), GRID, 1, 64)
    metrics, stages = build_metrics(evaluated(), [], [], "v", ctx, 1)
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


def test_parent_deltas_pair_a_variant_with_its_parent_when_measured_together() -> None:
    from greenbench.run.records import Keys, parent_deltas

    blocks = []
    for rnd in range(2):
        for cycle in range(4):
            blocks += [block(arm, rnd, cycle, ms) for arm, ms in (("base", 10.0), ("mid", 8.0), ("v", 6.0))]
    ctx = Context(skipped_idle("x"), GRID, 1.0, 64)
    keys = Keys("kv", "kb", "torch", None, 64, parent_key="km")  # type: ignore[arg-type]
    found = parent_deltas(blocks, "v", "mid", ctx, keys, "r")
    lat = found["latency_ms"]
    assert lat["delta_pct"] == pytest.approx(-25.0) and lat["parent"] == "mid" and lat["parent_key"] == "km"
    assert lat["paired"] and lat["pairs"] == 8 and "baseline_key" not in lat
    # a parent that was not one of the arms, or a root variant: nothing to pair with
    assert parent_deltas([b for b in blocks if b.arm != "mid"], "v", "mid", ctx, keys, "r") == {}
    assert parent_deltas(blocks, "v", None, ctx, keys, "r") == {}


def test_scope_both_times_a_second_arm_per_variant_paired_with_the_partners_second_arm() -> None:
    from greenbench.run.jobs import total_arm
    from greenbench.run.records import total_latency

    blocks = []
    for rnd, host in ((0, 1.0), (1, 1.3)):
        for cycle in range(4):
            for arm, ms in (("base", 10.0), ("v", 5.0), ("base@total", 40.0), ("v@total", 30.0)):
                blocks.append(block(arm, rnd, cycle, ms * host))
    assert total_arm("v") == "v@total"
    found = total_latency(blocks, "v", "base")
    fig = found["latency_total_ms"]
    assert fig.estimate.value == pytest.approx(30.0 * np.sqrt(1.3))  # geometric mean of the rounds
    assert fig.ratio is not None and fig.ratio.delta_pct == pytest.approx(-25.0)  # 30 vs 40, not 5 vs 10
    assert total_latency(blocks, "v", None)["latency_total_ms"].ratio is None
    assert total_latency([b for b in blocks if "@" not in b.arm], "v", "base") == {}  # scope model or total
