"""The gate's decision on synthetic blocks with known answers, calibration, and the option parsers."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from greenbench.gate.calibration import calibration, clopper_pearson, detection
from greenbench.gate.decision import (
    DEFAULT_FLOOR,
    DEFAULT_THRESHOLD_PCT,
    DifferenceCheck,
    GateConfig,
    GateUsageError,
    PercentageCheck,
    decide,
    effective_threshold_pct,
    parse_check,
    parse_floor,
    rules,
)
from greenbench.measure.energy.meter import DomainEnergy, EnergyReading
from greenbench.measure.protocol import Block, rotation

SOURCE = "estimate:cpu-time×4W/core"
RAPL = "rapl:package-0"
CONFIG = GateConfig()

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
    method: str = "estimated",
) -> list[Block]:
    """Blocks as the interleaved protocol writes them: reference and candidate(s) in Williams
    order. Latency = base × slowdown (candidates) × process factor × drift × block noise;
    energy per image = latency × 4 W (``method``: estimated, or measured by RAPL), with its own
    small noise."""
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
                        reading=_reading(energy * 20, method, SOURCE if method == "estimated" else RAPL),
                    )
                )  # fmt: skip
    return out


def _reading(energy_j: float, method: str, source: str) -> EnergyReading:
    """One window's reading from one domain of ``method`` and ``source``."""
    return EnergyReading(0.2, (DomainEnergy("package-0", energy_j, method, source),))  # type: ignore[arg-type]


def _by_metric(blocks: list[Block], **kw: object) -> dict[str, object]:
    verdict = decide(blocks, "reference", ["candidate"], rules(**kw), CONFIG)  # type: ignore[arg-type]
    return {m.metric: m for m in verdict.metrics} | {"outcome": verdict.outcome}


def test_no_regression_passes_with_a_ratio_near_one() -> None:
    got = _by_metric(synthetic_blocks(1.0))
    assert got["outcome"] == "pass"
    lat = got["latency_ms"]
    assert lat.outcome == "pass" and lat.ci_low <= 1.0 <= lat.ci_high  # type: ignore[attr-defined]
    assert abs(lat.ratio - 1) < 0.02 and lat.ci_high < 1.05  # type: ignore[attr-defined]


def test_twenty_percent_regression_is_caught_on_both_measured_metrics() -> None:
    got = _by_metric(synthetic_blocks(1.20, method="measured"))
    assert got["outcome"] == "regressed"
    for name in ("latency_ms", "energy_per_image_j"):
        m = got[name]
        assert m.outcome == "regressed", m.reason  # type: ignore[attr-defined]
        assert m.ci_low <= 1.2 <= m.ci_high and m.ci_low > 1.05  # type: ignore[attr-defined]
        assert m.change == pytest.approx(m.reference * (m.ratio - 1))  # type: ignore[attr-defined]
        # two gated metrics: each interval at 97.5 % so both hold together at 95 %
        assert m.interval_confidence == pytest.approx(0.975)  # type: ignore[attr-defined]
    assert got["energy_per_image_j"].method == "measured" and got["energy_per_image_j"].source == RAPL  # type: ignore[attr-defined]


def test_estimated_energy_is_not_gated_twice() -> None:
    """CPU time × W/core is latency again: one metric, gated once (and the family is 1)."""
    got = _by_metric(synthetic_blocks(1.20))
    energy, lat = got["energy_per_image_j"], got["latency_ms"]
    assert energy.outcome == "not gated" and "CPU time" in energy.reason  # type: ignore[attr-defined]
    assert energy.ratio > 1.1 and energy.threshold_pct is None  # type: ignore[attr-defined]
    assert lat.outcome == "regressed" and lat.interval_confidence == pytest.approx(0.95)  # type: ignore[attr-defined]


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


def test_aa_false_alarms_stay_rare_over_many_seeds() -> None:
    outcomes = [_by_metric(synthetic_blocks(1.0, seed=s, rounds=5, cycles=8))["outcome"] for s in range(30)]
    assert outcomes.count("regressed") == 0 and outcomes.count("pass") >= 25


def test_a_process_effect_does_not_make_an_aa_pair_regress() -> None:
    """The candidate's speed relative to the reference moves by ~4 % from process to process:
    the former pooled-pairs test flagged such A/A pairs; the round-level interval does not."""

    flagged = 0
    for seed in range(40):
        rng = np.random.default_rng(seed)
        effects = np.exp(rng.normal(0, 0.04, 5))
        blocks = synthetic_blocks(1.0, rounds=5, seed=seed)
        shifted = [
            Block(**{**b.__dict__, "latency_ms": b.latency_ms * effects[b.round]})
            if b.arm == "candidate"
            else b
            for b in blocks
        ]
        flagged += _by_metric(shifted, fail=["latency:2%", "energy:off"])["outcome"] == "regressed"
    assert flagged <= 2  # a one-sided 2.5 % error at the threshold, far less at 2 % away from it


def test_floor_raises_the_threshold_of_a_tiny_model_only() -> None:
    blocks = synthetic_blocks(1.2, base_ms=0.1)  # +20 % of 0.1 ms = 0.02 ms; the floor 0.05 ms is +50 %
    got = _by_metric(blocks, fail=["energy:off"])
    lat = got["latency_ms"]
    assert got["outcome"] == "pass" and "floor" in lat.reason  # type: ignore[attr-defined]
    assert lat.effective_threshold_pct == pytest.approx(50.0, rel=0.05)  # type: ignore[attr-defined]
    assert _by_metric(blocks, fail=["energy:off"], floor=["latency:0.005ms"])["outcome"] == "regressed"
    # a 1.5 ms model: the floor (3.3 %) is under the threshold and changes nothing, so +10 % fails
    mid = _by_metric(synthetic_blocks(1.10, base_ms=1.5, rounds=6), fail=["energy:off"])
    assert mid["outcome"] == "regressed" and mid["latency_ms"].effective_threshold_pct == 5.0  # type: ignore[attr-defined]
    rule = rules()[0]
    assert effective_threshold_pct(rule, 1.5) == 5.0 and effective_threshold_pct(rule, 0.5) == pytest.approx(
        10.0
    )


def test_one_round_gives_no_interval_and_cannot_regress() -> None:
    got = _by_metric(synthetic_blocks(2.0, rounds=1, cycles=4), fail=["energy:off"])
    lat = got["latency_ms"]
    assert lat.ci_low is None and lat.outcome == "inconclusive" and "no interval" in lat.reason  # type: ignore[attr-defined]


def test_not_gated_metric_is_reported_but_does_not_decide() -> None:
    got = _by_metric(synthetic_blocks(1.2), fail=["latency:off", "energy:off"])
    assert got["outcome"] == "pass" and got["latency_ms"].outcome == "not gated"  # type: ignore[attr-defined]
    assert got["latency_ms"].ratio > 1.1 and got["latency_ms"].threshold_pct is None  # type: ignore[attr-defined]


def test_the_family_spans_metrics_and_candidates() -> None:
    blocks = synthetic_blocks(1.2, candidates=("b", "c"), method="measured")
    verdict = decide(blocks, "reference", ["b", "c"], rules(), CONFIG)
    assert {m.candidate for m in verdict.metrics} == {"b", "c"} and len(verdict.metrics) == 4
    assert verdict.interval_confidence == pytest.approx(1 - 0.05 / 4)
    assert all(m.interval_confidence == verdict.interval_confidence for m in verdict.metrics)
    assert verdict.outcome == "regressed"


def test_a_faster_candidate_passes() -> None:
    assert _by_metric(synthetic_blocks(0.7))["outcome"] == "pass"


def test_calibration_counts_false_alarms_with_an_exact_interval() -> None:
    verdicts = [
        decide(synthetic_blocks(1.0, seed=s, rounds=3), "reference", ["candidate"], rules(), CONFIG)
        for s in range(4)
    ]
    summary = calibration(verdicts)
    assert summary.runs == 4 and summary.false_alarms + summary.inconclusive + summary.passed == 4
    lat = next(m for m in summary.metrics if m.metric == "latency_ms")
    assert lat.runs == 4 and lat.threshold_pct == 5.0
    assert lat.delta_low_pct <= lat.delta_high_pct  # type: ignore[operator]
    assert lat.detectable_pct >= lat.detectable_median_pct > 0  # type: ignore[operator]
    assert 0 <= summary.false_alarm_rate <= 1
    low, high = summary.false_alarm_ci
    assert low <= summary.false_alarm_rate <= high
    # 0 of 20 still allows 17 %, 0 of 5 over 45 %: few runs prove little
    assert clopper_pearson(0, 20)[1] == pytest.approx(0.1684, abs=1e-3)
    assert clopper_pearson(0, 5)[1] > 0.45
    assert summary.to_dict()["false_alarm_ci"] == [low, high]


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


def test_reports_print_the_effective_threshold_tau_and_the_level() -> None:
    from greenbench.report.gate_report import render_calibration, render_markdown, render_text

    verdict = decide(synthetic_blocks(1.2, base_ms=0.1), "reference", ["candidate"], rules(), CONFIG)
    doc = {
        "outcome": verdict.outcome, "reference": {"spec": "a.onnx"}, "candidate": {"spec": "b.onnx"},
        "settings": {"threads": 1, "blocks": 10, "rounds": 4, "max_rounds": 12, "device": "cpu", "imgsz": 64,
                     "batch": 1},
        "rounds": 4, "wall_s": 1.0,
    }  # fmt: skip
    text = render_text(doc, verdict)
    assert "+5 % → +50.2 % (floor)" in text and "τ" in text and "95 % CI" in text
    assert "as latency (CPU time)" in text
    assert "t-interval over rounds" in text and "not gated" in text  # estimated energy
    assert "t-interval over rounds" in render_markdown(doc, verdict)
    runs = [
        decide(synthetic_blocks(1.0, seed=s), "reference", ["candidate"], rules(), CONFIG) for s in range(3)
    ]
    cal_doc = {**doc, "model": {"spec": "m.onnx"}, "runs": [{"rounds": 4, "wall_s": 1.0}] * 3}
    cal = render_calibration(cal_doc, calibration(runs), runs)
    assert "false alarms (A/A regressed): 0/3 (0%, 95 % CI 0%–71%, Clopper–Pearson)" in cal
    assert "the model alone" in text and "not the suite's scope" not in text


def test_a_suite_timed_end_to_end_is_said_not_gated_so() -> None:
    """The gate times the model alone; a suite side whose suite asks for scope total or both gets
    that said in the report's settings line, not silently another quantity."""
    from types import SimpleNamespace

    from greenbench.gate.session import GateSettings, settings_from_suite
    from greenbench.report.gate_report import render_text
    from greenbench.suite import LatencySettings, ProtocolSettings

    suite = SimpleNamespace(
        measure=SimpleNamespace(
            latency=LatencySettings(scope="both"),
            protocol=ProtocolSettings(),
            energy=SimpleNamespace(min_window_s=0.5, meters=["auto"], watts_per_core=4.0),
            device="cpu",
        ),
        defaults={"imgsz": 64},
    )
    settings = settings_from_suite(suite, GateSettings())
    assert settings.suite_scope == "both"
    verdict = decide(synthetic_blocks(1.0), "reference", ["candidate"], rules(), CONFIG)
    doc = {"outcome": verdict.outcome, "reference": {"spec": "s.yaml:a"}, "candidate": {"spec": "s.yaml:b"},
           "settings": settings.to_dict(), "rounds": 4, "wall_s": 1.0}  # fmt: skip
    assert "not the suite's scope both" in render_text(doc, verdict)


def test_detection_counts_gates_against_a_known_slowdown() -> None:
    slow = [
        decide(synthetic_blocks(1.2, seed=s), "reference", ["candidate"], rules(), CONFIG) for s in range(3)
    ]
    found = detection(slow, 20.0)
    assert (found.runs, found.detected, found.injected_pct) == (3, 3, 20.0) and found.rate == 1.0
    low, high = found.ci
    assert high == 1.0 and 0.25 < low < 0.35  # 3 of 3: the exact interval still reaches down to 29 %
    summary = calibration(slow[:1], found)
    assert summary.to_dict()["detection"]["detected"] == 3 and summary.detection is found


def test_energy_with_a_measured_part_is_gated() -> None:
    """A GPU counter beside the CPU-time estimate is mostly measured energy: it is gated."""
    from greenbench.measure.energy.meter import cpu_time_only

    assert cpu_time_only("estimate:cpu-time×4W/core") and cpu_time_only("estimate")
    assert not cpu_time_only("nvml:gpu0+estimate:cpu-time×4W/core") and not cpu_time_only("")
    assert not cpu_time_only("estimated-source") and not cpu_time_only(None)
    blocks = synthetic_blocks(1.2)
    mixed = [
        Block(**{**b.__dict__, "reading": _reading(b.energy_j or 0.0, "estimated", "nvml:gpu0+estimate:cpu")})
        for b in blocks
    ]
    energy = _by_metric(mixed)["energy_per_image_j"]
    assert energy.outcome == "regressed" and energy.method == "estimated"  # type: ignore[attr-defined]


def _declared_onnx(path: Path, batch: int, side: int) -> Path:
    """An ONNX model (one Identity) whose fixed input is batch x 3 x side x side: declared only."""
    import onnx
    from onnx import TensorProto, helper

    shape = [batch, 3, side, side]
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "declared",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)],
    )
    onnx.save(helper.make_model(graph), str(path))
    return path


def test_a_models_declared_input_beyond_range_names_the_file_not_a_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from greenbench.cli import main

    huge = _declared_onnx(tmp_path / "huge.onnx", 1, 200_000)
    assert main(["gate", str(huge), str(huge)]) == 2
    err = capsys.readouterr().err
    assert f"{huge} declares a fixed input of 1x3x200000x200000" in err and "8 to 8192" in err
    assert "--imgsz must be" not in err
    wide = _declared_onnx(tmp_path / "wide.onnx", 5000, 64)
    assert main(["gate", str(wide), str(wide)]) == 2
    assert f"{wide} declares a fixed input of 5000x3x64x64" in capsys.readouterr().err
    assert main(["gate", str(huge), str(huge), "--imgsz", "100000"]) == 2  # a flag given: the flag
    assert "--imgsz must be an integer from 8 to 8192, got 100000" in capsys.readouterr().err
