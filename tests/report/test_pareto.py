"""Pareto front and non-dominated sorting layers."""

from __future__ import annotations

import math
import random

import pytest

from greenbench.report.pareto import pareto_mask, pareto_rank


def _dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] >= b[0] and a[1] <= b[1] and (a[0] > b[0] or a[1] < b[1])


def test_front_of_known_points() -> None:
    acc = [0.9, 0.8, 0.7, 0.85, 0.6]
    cost = [10.0, 5.0, 6.0, 12.0, 1.0]
    # 0.7@6 is dominated by 0.8@5; 0.85@12 by 0.9@10
    assert pareto_mask(acc, cost) == [True, True, False, False, True]
    assert pareto_rank(acc, cost) == [1, 1, 2, 2, 1]


def test_missing_values_never_optimal_and_unranked() -> None:
    acc = [0.5, None, math.nan, 0.4]
    cost = [1.0, 0.1, 0.1, None]
    assert pareto_mask(acc, cost) == [True, False, False, False]
    assert pareto_rank(acc, cost) == [1, None, None, None]


def test_equal_points_share_the_front() -> None:
    assert pareto_mask([0.5, 0.5], [2.0, 2.0]) == [True, True]
    assert pareto_rank([0.5, 0.5, 0.4], [2.0, 2.0, 2.0]) == [1, 1, 2]


def test_empty_and_length_mismatch() -> None:
    assert pareto_mask([], []) == [] and pareto_rank([], []) == []
    with pytest.raises(ValueError, match="has 1 values but cost has 2"):
        pareto_mask([1.0], [1.0, 2.0])


def test_layers_agree_with_definition_on_random_points() -> None:
    rng = random.Random(7)
    pts = [(round(rng.random(), 2), round(rng.random(), 2)) for _ in range(60)]
    acc, cost = [p[0] for p in pts], [p[1] for p in pts]
    mask, ranks = pareto_mask(acc, cost), pareto_rank(acc, cost)
    for i, p in enumerate(pts):
        assert mask[i] == (not any(_dominates(q, p) for q in pts))
        assert (ranks[i] == 1) == mask[i]
        r = ranks[i]
        assert r is not None
        # a point of layer r > 1 is dominated by some point of layer r - 1, and by none of layer >= r
        if r > 1:
            assert any(ranks[j] == r - 1 and _dominates(q, p) for j, q in enumerate(pts))
        assert not any(_dominates(q, p) for j, q in enumerate(pts) if (ranks[j] or 0) >= r)
