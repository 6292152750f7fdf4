"""Pareto fronts of accuracy (higher is better) against a cost (lower is better).

Pure functions on plain sequences, shared by the leaderboard, ``load_results`` and the report's
plots. A point is *dominated* when another point is at least as accurate and at most as costly,
and strictly better in one of the two. Equal points do not dominate each other: both stay on
the front. A point whose accuracy or cost is missing (None or NaN) is never optimal and has no
rank. The pairwise comparison is written out with numpy (O(n²) for n points, n is a few hundred
at most): scipy and pandas have no non-dominated sort, and the rule is two lines.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

Number = float | int | None


def _arrays(accuracy: Sequence[Number], cost: Sequence[Number]) -> tuple[npt.NDArray[np.float64], ...]:
    """Both sequences as float arrays (None → NaN) and the mask of points with both values."""
    if len(accuracy) != len(cost):
        raise ValueError(f"accuracy has {len(accuracy)} values but cost has {len(cost)}")
    acc = np.array([np.nan if a is None else float(a) for a in accuracy], dtype=float)
    cst = np.array([np.nan if c is None else float(c) for c in cost], dtype=float)
    return acc, cst, np.isfinite(acc) & np.isfinite(cst)


def _dominated(acc: npt.NDArray[np.float64], cst: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    """Per point of finite ``acc``/``cst``: whether any other point dominates it."""
    # [i, j]: point j dominates point i
    no_worse = (acc[None, :] >= acc[:, None]) & (cst[None, :] <= cst[:, None])
    better = (acc[None, :] > acc[:, None]) | (cst[None, :] < cst[:, None])
    return np.asarray((no_worse & better).any(axis=1), dtype=bool)


def pareto_mask(accuracy: Sequence[Number], cost: Sequence[Number]) -> list[bool]:
    """Per point, whether it is on the Pareto front (maximise ``accuracy``, minimise ``cost``).

    Points with a missing (None/NaN/inf) accuracy or cost are never on the front and do not
    dominate anything. ValueError if the sequences differ in length.
    """
    acc, cst, valid = _arrays(accuracy, cost)
    out = np.zeros(len(acc), dtype=bool)
    idx = np.flatnonzero(valid)
    if idx.size:
        out[idx] = ~_dominated(acc[idx], cst[idx])
    return [bool(x) for x in out]


def pareto_rank(accuracy: Sequence[Number], cost: Sequence[Number]) -> list[int | None]:
    """Per point, its non-dominated sorting layer: 1 for the front, 2 for the front of what is
    left once layer 1 is removed, and so on; None for a point with a missing value."""
    acc, cst, valid = _arrays(accuracy, cost)
    ranks: list[int | None] = [None] * len(acc)
    left = np.flatnonzero(valid)
    layer = 0
    while left.size:
        layer += 1
        front = ~_dominated(acc[left], cst[left])  # never empty: some point is undominated
        for i in left[front]:
            ranks[int(i)] = layer
        left = left[~front]
    return ranks
