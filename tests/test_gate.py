"""The gate's decision on synthetic blocks with known answers, Holm, and the option parsers."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from greenbench.gate import (
    DEFAULT_FLOOR,
    DEFAULT_THRESHOLD_PCT,
    DifferenceCheck,
    GateConfig,
    GateUsageError,
    PercentageCheck,
    decide,
    holm,
    one_sided_p,
    parse_check,
    parse_floor,
    rules,
)
from greenbench.gate_calibration import calibration
from greenbench.measure.protocol import Block, rotation

SOURCE = "estimate:cpu-time×4W/core"
FAST = GateConfig(resamples=1000)

# one process' speed multiplier for (round, cycle, position): the host, the same for both arms
Drift = Callable[[np.random.Generator, int, int, int], float]


def _no_drift(_rng: np.random.Generator, _r: int, _c: int, _p: int) -> float:
    return 1.0


def synthetic_blocks(
    slowdown: float = 1.0,
    rounds: int = 4,
    cycles: int = 10,
    base_ms: float = 10.0,
    noise: Callable[[np.random.Generator], float] | None = None,
    drift: Drift = _no_drift,
    seed: int = 0,
    candidates: tuple[str, ...] = ("candidate",),
) -> list[Block]:
    """Blocks as the interleaved protocol writes them: reference and candidate(s) in Williams
    order. Latency = base × slowdown (candidates) × process factor × drift × block noise;
    energy per image = latency × 4 W (estimated), with its own small noise."""
    rng = np.random.default_rng(seed)
    noise = noise or (lambda g: float(np.exp(g.normal(0, 0.02))))
    arms = ("reference", *candidates)
    out = []
    for r in range(rounds):
        process = float(np.exp(rng.normal(0, 0.10)))  # fresh processes differ by ~10 %
        for c in range(cycles):
            for position, index in enumerate(rotation(len(arms), r * cycles + c)):
                arm = arms[index]
                factor = slowdown if arm != "reference" else 1.0
                ms = base_ms * factor * process * drift(rng, r, c, position) * noise(rng)
                energy = ms * 1e-3 * 4.0 * float(np.exp(rng.normal(0, 0.01)))
                out.append(
                    Block(
                        arm=arm, round=r, cycle=c, position=position, start_s=float(c), duration_s=0.2,
                        calls=20, images=20, samples_ms=(ms,), latency_ms=ms, energy_j=energy * 20,
                        energy_per_image_j=energy,
                        reading={"method": "estimated", "source": SOURCE, "energy_j": energy * 20},
                    )
                )  # fmt: skip
    return out


def _by_metric(blocks: list[Block], **kw: object) -> dict[str, object]:
    verdict = decide(blocks, "reference", ["candidate"], rules(**kw), FAST)  # type: ignore[arg-type]
    return {m.metric: m for m in verdict.metrics} | {"outcome": verdict.outcome}


def test_no_regression_passes_with_a_ratio_near_one() -> None:
    got = _by_metric(synthetic_blocks(1.0))
    assert got["outcome"] == "pass"
    lat = got["latency_ms"]
    assert lat.outcome == "pass" and lat.ci_low <= 1.0 <= lat.ci_high  # type: ignore[attr-defined]
    assert abs(lat.ratio - 1) < 0.02 and lat.ci_high < 1.05  # type: ignore[attr-defined]


def test_twenty_percent_regression_is_caught_on_both_metrics() -> None:
    got = _by_metric(synthetic_blocks(1.20))
    assert got["outcome"] == "regressed"
    for name in ("latency_ms", "energy_per_image_j"):
        m = got[name]
        assert m.outcome == "regressed", m.reason  # type: ignore[attr-defined]
        assert m.ci_low <= 1.2 <= m.ci_high and m.ci_low > 1.05  # type: ignore[attr-defined]
        assert m.p_holm < 0.01 and m.p_holm >= m.p_value  # type: ignore[attr-defined]
        assert m.change == pytest.approx(m.reference * (m.ratio - 1))  # type: ignore[attr-defined]
    assert got["energy_per_image_j"].method == "estimated" and got["energy_per_image_j"].source == SOURCE  # type: ignore[attr-defined]


def test_five_percent_regression_against_three_thresholds() -> None:
    blocks = synthetic_blocks(1.05, rounds=6, cycles=12)
    # a threshold well below the change: regressed; at the change: the CI straddles it; well above: pass
    assert _by_metric(blocks, fail=["latency:1%", "energy:off"])["outcome"] == "regressed"
    at = _by_metric(blocks, fail=["latency:5%", "energy:off"])
    assert at["outcome"] == "inconclusive" and "straddles" in at["latency_ms"].reason  # type: ignore[attr-defined]
    assert _by_metric(blocks, fail=["latency:10%", "energy:off"])["outcome"] == "pass"


def test_heavy_tailed_noise_neither_cries_wolf_nor_hides_a_regression() -> None:
    def spiky(g: np.random.Generator) -> float:  # Student t (df 2) on the log scale, plus stalls
        stall = 3.0 if g.random() < 0.08 else 1.0
        return float(np.exp(0.03 * g.standard_t(2))) * stall

    for seed in range(5):
        assert _by_metric(synthetic_blocks(1.0, noise=spiky, seed=seed))["outcome"] != "regressed"
        slow = _by_metric(synthetic_blocks(1.2, noise=spiky, seed=seed, rounds=5))
        assert slow["outcome"] == "regressed" and 1.1 < slow["latency_ms"].ratio < 1.3  # type: ignore[attr-defined]


def test_drift_that_moves_both_arms_cancels_in_the_pairs() -> None:
    def host(_g: np.random.Generator, r: int, c: int, _p: int) -> float:
        return (1.5 if (c // 3) % 2 else 1.0) * (1 + 0.04 * c)  # steps of +50 % and a slow climb

    same = _by_metric(synthetic_blocks(1.0, drift=host))
    assert same["outcome"] == "pass" and abs(same["latency_ms"].ratio - 1) < 0.02  # type: ignore[attr-defined]
    slow = _by_metric(synthetic_blocks(1.2, drift=host))
    assert slow["outcome"] == "regressed"
    assert slow["latency_ms"].ratio == pytest.approx(1.2, abs=0.02)  # type: ignore[attr-defined]
    # the arms' own medians are spread by the drift; their pairs are not
    assert abs(slow["latency_ms"].ratio_of_medians - 1.2) > abs(slow["latency_ms"].ratio - 1.2)  # type: ignore[attr-defined]


def test_aa_false_alarms_stay_rare_over_many_seeds() -> None:
    outcomes = [_by_metric(synthetic_blocks(1.0, seed=s, rounds=3, cycles=8))["outcome"] for s in range(30)]
    assert outcomes.count("regressed") == 0 and outcomes.count("pass") >= 25


def test_floor_keeps_a_tiny_model_green() -> None:
    blocks = synthetic_blocks(1.2, base_ms=0.1)  # +20 % of 0.1 ms = 0.02 ms < 0.2 ms floor
    got = _by_metric(blocks, fail=["energy:off"])
    assert got["outcome"] == "pass" and "floor" in got["latency_ms"].reason  # type: ignore[attr-defined]
    assert _by_metric(blocks, fail=["energy:off"], floor=["latency:0.005ms"])["outcome"] == "regressed"


def test_too_few_pairs_cannot_regress() -> None:
    got = _by_metric(synthetic_blocks(2.0, rounds=1, cycles=4), fail=["energy:off"])
    lat = got["latency_ms"]
    assert lat.p_value is None and lat.outcome == "inconclusive"  # type: ignore[attr-defined]


def test_not_gated_metric_is_reported_but_does_not_decide() -> None:
    got = _by_metric(synthetic_blocks(1.2), fail=["latency:off", "energy:off"])
    assert got["outcome"] == "pass" and got["latency_ms"].outcome == "not gated"  # type: ignore[attr-defined]
    assert got["latency_ms"].ratio > 1.1 and got["latency_ms"].p_holm is None  # type: ignore[attr-defined]


def test_holm_matches_the_step_down_definition() -> None:
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.001]) == pytest.approx([0.5, 0.002])
    assert holm([0.9, 0.8]) == [1.0, 1.0]  # 2 × 0.8 capped at 1; monotone in p
    assert holm([]) == []
    rng = np.random.default_rng(3)
    p = list(rng.random(6))
    adjusted = holm(p)
    assert all(a >= q for a, q in zip(adjusted, p, strict=True)) and max(adjusted) <= 1.0
    order = np.argsort(p)
    assert all(adjusted[order[i]] <= adjusted[order[i + 1]] for i in range(5))


def test_holm_spans_metrics_and_candidates() -> None:
    blocks = synthetic_blocks(1.2, candidates=("b", "c"))
    verdict = decide(blocks, "reference", ["b", "c"], rules(), FAST)
    assert {m.candidate for m in verdict.metrics} == {"b", "c"} and len(verdict.metrics) == 4
    raw = [m.p_value for m in verdict.metrics]
    assert [m.p_holm for m in verdict.metrics] == pytest.approx(holm(raw))  # type: ignore[arg-type]
    assert verdict.outcome == "regressed"


def test_one_sided_test_ignores_a_faster_candidate() -> None:
    faster = np.log(np.full(20, 0.8) * np.exp(np.random.default_rng(0).normal(0, 0.01, 20)))
    slower = -faster
    assert one_sided_p(faster) > 0.99 and one_sided_p(slower) < 1e-4  # type: ignore[operator]
    assert one_sided_p(np.zeros(20)) is None and one_sided_p(slower[:5]) is None
    assert _by_metric(synthetic_blocks(0.7))["outcome"] == "pass"


def test_calibration_counts_false_alarms_and_the_detectable_effect() -> None:
    verdicts = [
        decide(synthetic_blocks(1.0, seed=s, rounds=3), "reference", ["candidate"], rules(), FAST)
        for s in range(4)
    ]
    summary = calibration(verdicts)
    assert summary.runs == 4 and summary.false_alarms + summary.inconclusive + summary.passed == 4
    lat = next(m for m in summary.metrics if m.metric == "latency_ms")
    assert lat.runs == 4 and lat.threshold_pct == 5.0
    assert lat.delta_low_pct <= lat.delta_high_pct  # type: ignore[operator]
    # detecting every run needs at least the threshold, and at least the median run's figure
    assert lat.detectable_pct >= lat.detectable_median_pct >= 5.0  # type: ignore[operator]
    assert 0 <= summary.false_alarm_rate <= 1


@pytest.mark.parametrize(
    ("spec", "metric", "pct"),
    [("latency:5%", "latency_ms", 5.0), ("energy:8%", "energy_per_image_j", 8.0),
     ("LATENCY_MS: 2.5 %", "latency_ms", 2.5), ("energy_j:0%", "energy_per_image_j", 0.0)],
)  # fmt: skip
def test_parse_check(spec: str, metric: str, pct: float) -> None:
    name, check = parse_check(spec)
    assert name == metric and isinstance(check, PercentageCheck) and check.threshold == pct
    assert check.fails(1 + (pct + 1) / 100, 1.0) is not None and check.fails(1 + pct / 200, 1.0) is None


@pytest.mark.parametrize(
    ("spec", "needle"),
    [("latency", "METRIC:PERCENT"), ("latency:5", "'%'"), ("latncy:5%", "Did you mean 'latency'"),
     ("latency:-1%", "number >= 0"), ("latency:nan%", "number >= 0"), ("latency:abc", "number >= 0"),
     ("speed:5%", "unknown metric"), ("latency:5000%", "1000 %")],
)  # fmt: skip
def test_bad_checks_are_usage_errors(spec: str, needle: str) -> None:
    with pytest.raises(GateUsageError) as e:
        parse_check(spec)
    assert needle in str(e.value) and e.value.exit_code == 2


def test_parse_floor_units() -> None:
    assert parse_floor("latency:0.2ms").threshold == pytest.approx(0.2)
    assert parse_floor("latency:200us").threshold == pytest.approx(0.2)
    assert parse_floor("latency:0.001s").threshold == pytest.approx(1.0)
    assert parse_floor("energy:0.5mJ").threshold == pytest.approx(5e-4)
    assert parse_floor("energy:0.002").threshold == pytest.approx(0.002)
    f = parse_floor("energy:3uJ")
    assert isinstance(f, DifferenceCheck) and f.threshold == pytest.approx(3e-6)
    for bad in ("latency:2kg", "latency", "energy:-1mJ", "energy:inf"):
        with pytest.raises(GateUsageError):
            parse_floor(bad)


def test_rules_defaults_overrides_and_duplicates() -> None:
    default = {r.metric: r for r in rules()}
    for metric, rule in default.items():
        assert rule.check is not None and rule.check.threshold == DEFAULT_THRESHOLD_PCT[metric]
        assert rule.floor.threshold == DEFAULT_FLOOR[metric]
    got = {r.metric: r for r in rules(["energy:off", "latency:3%"], ["latency:1ms"])}
    assert got["energy_per_image_j"].check is None and got["latency_ms"].check.threshold == 3.0  # type: ignore[union-attr]
    assert got["latency_ms"].floor.threshold == 1.0
    with pytest.raises(GateUsageError, match="twice"):
        rules(["latency:3%", "latency_ms:4%"])
    with pytest.raises(GateUsageError, match="twice"):
        rules([], ["energy:1mJ", "energy_j:2mJ"])


def test_difference_check_is_the_floor() -> None:
    floor = DifferenceCheck("latency_ms", 0.2)
    assert floor.fails(10.3, 10.0) is not None and floor.fails(10.1, 10.0) is None
    assert PercentageCheck("latency_ms", 5).compute(1.0, 0.0) == math.inf
