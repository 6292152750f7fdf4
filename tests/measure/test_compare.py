"""Statistics of interleaved blocks, on synthetic samples with known answers."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pytest

from greenbench.measure.compare import (
    hierarchical_median,
    paired_ratio,
    pairs,
    values_by_round,
)
from greenbench.measure.protocol import Block, rotation
from greenbench.measure.stats import bootstrap_median_ci


def _paired(
    factor: float, rounds: int = 3, n: int = 12, noise: float = 0.05, seed: int = 0
) -> list[list[tuple[float, float]]]:
    """Pairs whose variant is ``factor`` × baseline, with a process level per round and lognormal noise."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(rounds):
        level = 20.0 * rng.lognormal(0, 0.2)  # process effect: moves both arms of the round
        drift = level * rng.lognormal(0, 0.15, n)  # host speed of each cycle: both arms again
        base = drift * rng.lognormal(0, noise, n)
        variant = factor * drift * rng.lognormal(0, noise, n)
        out.append(list(zip(variant.tolist(), base.tolist(), strict=True)))
    return out


def test_known_factor_is_covered_and_significant() -> None:
    r = paired_ratio(_paired(1.25))
    assert r.ci_low < 1.25 < r.ci_high
    assert r.ratio == pytest.approx(1.25, rel=0.03)
    assert r.significant and r.ci_low > 1
    assert r.p_value is not None and r.p_value < 1e-3
    assert r.delta_pct == pytest.approx((r.ratio - 1) * 100)
    assert r.delta_ci_low_pct == pytest.approx((r.ci_low - 1) * 100)
    assert (r.pairs, r.rounds, len(r.per_round)) == (36, 3, 3)
    assert not r.rounds_disagree
    assert r.delta_ci_low_pct > 0  # the whole CI above 0: a real slowdown


def test_identical_arms_are_not_significant() -> None:
    r = paired_ratio(_paired(1.0, seed=3))
    assert r.ci_low <= 1 <= r.ci_high
    assert r.significant is False
    assert r.p_value is not None and r.p_value > 0.05


def test_hierarchical_ci_is_wider_than_pooled_and_covers_the_process_mean() -> None:
    """Rounds with their own level: resampling blocks alone pretends 50 independent draws."""
    true_level = 100.0
    covered_h = covered_naive = wider = 0
    trials = 100
    for s in range(trials):
        rng = np.random.default_rng(1000 + s)
        levels = rng.normal(true_level, 10, 5)  # a process effect of ±10 %
        values = [list(level * rng.lognormal(0, 0.02, 10)) for level in levels]
        est = hierarchical_median(values, resamples=1000, seed=s)
        low, high = bootstrap_median_ci([v for r in values for v in r], resamples=1000, seed=s)
        covered_h += est.ci_low <= true_level <= est.ci_high
        covered_naive += low <= true_level <= high
        wider += (est.ci_high - est.ci_low) > (high - low)
    assert wider == trials
    assert covered_h >= 0.8 * trials  # percentile bootstrap over 5 clusters: a bit under 95 %
    assert covered_naive <= 0.7 * trials


def test_hierarchical_median_point_value_and_edges() -> None:
    est = hierarchical_median([[1.0, 2.0], [3.0], [], [10.0, 11.0, 12.0]])
    assert est.value == pytest.approx(np.median([1, 2, 3, 10, 11, 12]))
    assert (est.rounds, est.blocks, est.confidence) == (3, 6, 0.95)
    assert est.ci_low <= est.value <= est.ci_high
    assert json.loads(json.dumps(est.to_dict())) == est.to_dict()

    one = hierarchical_median([[7.5]])
    assert (one.value, one.ci_low, one.ci_high) == (7.5, 7.5, 7.5)

    single_round = hierarchical_median([[1.0, 2.0, 3.0, 4.0, 5.0]])  # blocks resampled only
    assert 1.0 <= single_round.ci_low < 3.0 < single_round.ci_high <= 5.0

    with pytest.raises(ValueError):
        hierarchical_median([[], []])
    with pytest.raises(ValueError):
        hierarchical_median([[1.0, float("nan")]])
    with pytest.raises(ValueError):
        hierarchical_median([[1.0]], confidence=1.0)


def test_same_seed_same_ci_and_seed_matters() -> None:
    data = _paired(1.1, seed=7)
    assert paired_ratio(data, seed=4) == paired_ratio(data, seed=4)
    values = [[a for a, _ in r] for r in data]
    assert hierarchical_median(values, seed=2) == hierarchical_median(values, seed=2)
    a, b = hierarchical_median(values, seed=2), hierarchical_median(values, seed=3)
    assert (a.ci_low, a.ci_high) != (b.ci_low, b.ci_high)


def test_shifted_round_flags_rounds_disagree() -> None:
    data = _paired(1.2, rounds=3, noise=0.01, seed=11)
    shifted = [(v / 1.2, b) for v, b in data[2]]  # that process ran the variant at baseline speed
    r = paired_ratio([*data[:2], shifted])
    assert r.rounds_disagree
    assert r.per_round[2][0] == pytest.approx(1.0, rel=0.02)
    assert paired_ratio(data).rounds_disagree is False
    assert paired_ratio(data[:1]).rounds_disagree is False  # one round cannot disagree


def test_non_positive_baselines_are_skipped_and_few_pairs_have_no_p() -> None:
    r = paired_ratio([[(2.0, 1.0), (2.0, 0.0), (2.0, -1.0), (4.0, 2.0), (float("nan"), 1.0)]])
    assert (r.pairs, r.ratio, r.p_value) == (2, 2.0, None)
    equal = paired_ratio([[(3.0, 3.0)] * 8])
    assert (equal.ratio, equal.ci_low, equal.ci_high, equal.p_value) == (1.0, 1.0, 1.0, None)
    assert equal.significant is False
    with pytest.raises(ValueError):
        paired_ratio([[(1.0, 0.0)]])
    d = r.to_dict()
    assert d["per_round"] == [{"ratio": 2.0, "ci_low": 2.0, "ci_high": 2.0}]
    assert json.loads(json.dumps(d)) == d


def _block(arm: str, rnd: int, cycle: int, position: int, start_s: float, latency_ms: float) -> Block:
    """A block of one call; only what ``pairs`` and ``values_by_round`` read is meaningful."""
    return Block(
        arm=arm,
        round=rnd,
        cycle=cycle,
        position=position,
        start_s=start_s,
        duration_s=0.5,
        calls=1,
        images=1,
        samples_ms=(latency_ms,),
        latency_ms=latency_ms,
        energy_j=None,
        energy_per_image_j=None,
        reading=None,
    )


def _drifting_blocks(host_factor: Callable[[float], float], rounds: int = 3, cycles: int = 20) -> list[Block]:
    """Two equal arms (10 ms at factor 1) in rotated 0.5 s blocks; the host slows both alike."""
    blocks = []
    for rnd in range(rounds):
        for cycle in range(cycles):
            for position, index in enumerate(rotation(2, cycle)):
                start_s = (cycle * 2 + position) * 0.5
                arm = "ab"[index]
                blocks.append(_block(arm, rnd, cycle, position, start_s, 10.0 * host_factor(start_s)))
    return blocks


@pytest.mark.parametrize(
    "host_factor",
    [
        lambda t: 1.0 + 0.02 * t,  # linear: 20 s → 40 % slower
        lambda t: 1.0 if t < 7.3 else 1.4,  # a co-tenant arrives
        lambda t: 1.0 + 0.4 * ((t // 3.0) % 2),  # a co-tenant comes and goes every 3 s
    ],
    ids=["linear", "step", "square"],
)
def test_drift_hitting_both_arms_cancels(host_factor: Callable[[float], float]) -> None:
    blocks = _drifting_blocks(host_factor)
    r = paired_ratio(pairs(blocks, "a", "b"))
    assert r.ratio == pytest.approx(1.0, abs=0.01)
    assert abs(r.delta_pct) < 1.0 and r.ci_low <= 1.0 <= r.ci_high
    assert r.significant is False
    levels = [v for r in values_by_round(blocks, "a") for v in r]
    assert max(levels) / min(levels) > 1.3  # while the arm's own latency moves by 30-40 %


def test_pairs_and_values_by_round_select_and_order() -> None:
    blocks = [
        _block("b", 1, 0, 0, 0.0, 20.0),
        _block("a", 1, 0, 1, 0.5, 30.0),
        _block("a", 0, 1, 0, 1.0, 12.0),
        _block("b", 0, 1, 1, 1.5, 6.0),
        _block("a", 0, 0, 1, 0.5, 11.0),
        _block("b", 0, 0, 0, 0.0, 5.0),
        _block("a", 0, 2, 0, 2.0, 13.0),  # no baseline in this cycle: no pair
        _block("c", 0, 0, 2, 1.0, 99.0),  # another arm: ignored
        _block("a", 2, 0, 0, 0.0, 1.0),  # a round without baseline: left out of pairs
    ]
    assert pairs(blocks, "a", "b") == [[(11.0, 5.0), (12.0, 6.0)], [(30.0, 20.0)]]
    assert values_by_round(blocks, "a") == [[11.0, 12.0, 13.0], [30.0], [1.0]]
    assert pairs(blocks, "a", "b", field="energy_j") == []
    assert values_by_round(blocks, "a", field="energy_per_image_j") == []
    with pytest.raises(ValueError, match="did you mean 'latency_ms'"):
        pairs(blocks, "a", "b", field="latency")
    with pytest.raises(ValueError, match="two blocks"):
        pairs([*blocks, _block("a", 0, 0, 1, 0.5, 11.0)], "a", "b")
