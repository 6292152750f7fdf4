"""Statistics of interleaved blocks: hierarchical medians and paired variant/baseline ratios.

Blocks come from several rounds (fresh processes, ``greenbench.measure.protocol``). Blocks of
one round share that process' state, so they are not independent draws: a CI that resamples
blocks as if they were would be too narrow whenever processes differ. Every CI here resamples
rounds first, then blocks (or pairs) within the chosen rounds.
"""

from __future__ import annotations

import difflib
import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import scipy.stats

from greenbench.measure.protocol import Block

#: the fewest pairs for which a Wilcoxon p-value is reported
MIN_WILCOXON_PAIRS = 6
#: values per bootstrap chunk (resamples × pooled size); bounds memory, ~32 MB of float64
_CHUNK_VALUES = 4_000_000


@dataclass(frozen=True)
class Estimate:
    """A median with a 95 % CI that covers between-process and between-block spread.

    value, ci_low, ci_high: in the unit of the input values. rounds/blocks: how many went in.
    confidence: the CI's level (0.95 → 95 %).
    """

    value: float
    ci_low: float
    ci_high: float
    rounds: int
    blocks: int
    confidence: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True)
class PairedRatio:
    """Variant/baseline ratio from time-adjacent block pairs. delta_pct = (ratio-1)*100.

    ratio, ci_low, ci_high: median pair ratio and its hierarchical-bootstrap CI (unitless).
    significant: the CI excludes 1 (the decision; it accounts for rounds). p_value: two-sided
    Wilcoxon signed-rank on the log ratios of all pairs pooled across rounds, as if independent
    (so it ignores process-level clustering and is only a supplementary figure; None under 6
    pairs or when all are equal). rounds_disagree: some round's own
    percentile CI of its median ratio does not overlap another round's. per_round: (median
    ratio, ci_low, ci_high) per round.
    """

    ratio: float
    ci_low: float
    ci_high: float
    delta_pct: float
    delta_ci_low_pct: float
    delta_ci_high_pct: float
    significant: bool
    p_value: float | None
    pairs: int
    rounds: int
    rounds_disagree: bool
    per_round: tuple[tuple[float, float, float], ...]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; ``per_round`` as a list of {ratio, ci_low, ci_high}."""
        d = asdict(self)
        d["per_round"] = [{"ratio": m, "ci_low": lo, "ci_high": hi} for m, lo, hi in self.per_round]
        return d


def _padded(groups: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Ragged groups as one (groups, longest) array padded with +inf, and each group's size."""
    sizes = np.array([g.size for g in groups])
    table = np.full((len(groups), int(sizes.max())), np.inf)
    for i, g in enumerate(groups):
        table[i, : g.size] = g
    return table, sizes


def _pooled_medians(resampled: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Median of each row's first ``counts[row]`` finite values (the rest is +inf padding)."""
    ordered = np.sort(resampled, axis=1)  # +inf padding sorts last, so the real values lead
    low = ((counts - 1) // 2)[:, None]
    high = (counts // 2)[:, None]
    return (np.take_along_axis(ordered, low, 1) + np.take_along_axis(ordered, high, 1))[:, 0] / 2


def _hierarchical_medians(groups: Sequence[np.ndarray], resamples: int, seed: int) -> np.ndarray:
    """Bootstrap distribution of the pooled median: rounds with replacement, then values within each.

    scipy.stats.bootstrap resamples independent observations only; it has no cluster
    (two-level) resampling, so this is written out in numpy, vectorised over resamples: rounds
    are padded to a rectangle and each resample's pooled median is read off one sort.
    """
    rng = np.random.default_rng(seed)
    table, sizes = _padded(groups)
    n_rounds, width = table.shape
    chunk = max(1, _CHUNK_VALUES // (n_rounds * width))
    out = []
    for done in range(0, resamples, chunk):
        b = min(chunk, resamples - done)
        rounds = rng.integers(0, n_rounds, size=(b, n_rounds))
        chosen_sizes = sizes[rounds]  # (b, n_rounds)
        # a uniform index below each chosen round's own size; slots past the size stay padding
        picks = (rng.random((b, n_rounds, width)) * chosen_sizes[:, :, None]).astype(np.int64)
        values = table[rounds[:, :, None], picks]
        values[np.arange(width)[None, None, :] >= chosen_sizes[:, :, None]] = np.inf
        out.append(_pooled_medians(values.reshape(b, -1), chosen_sizes.sum(axis=1)))
    return np.concatenate(out)


def _groups(values_by_round: Sequence[Sequence[float]]) -> list[np.ndarray]:
    """Non-empty rounds as float arrays; a NaN or infinite value is an error."""
    groups = [np.asarray(v, dtype=float) for v in values_by_round if len(v) > 0]
    if not groups:
        raise ValueError("no values: every round is empty")
    if not all(np.isfinite(g).all() for g in groups):
        raise ValueError("values must be finite")
    return groups


def _check(confidence: float, resamples: int) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")


def _estimate(groups: list[np.ndarray], confidence: float, resamples: int, seed: int) -> Estimate:
    """``hierarchical_median`` of groups already checked by ``_groups``."""
    pooled = np.concatenate(groups)
    value = float(np.median(pooled))
    if pooled.size == 1:
        low = high = value
    else:
        alpha = (1 - confidence) / 2
        q = np.quantile(_hierarchical_medians(groups, resamples, seed), [alpha, 1 - alpha])
        low, high = float(q[0]), float(q[1])
    return Estimate(value, low, high, len(groups), int(pooled.size), confidence)


def hierarchical_median(
    values_by_round: Sequence[Sequence[float]],
    confidence: float = 0.95,
    resamples: int = 4000,
    seed: int = 0,
) -> Estimate:
    """Median of all values pooled, with a percentile CI from a rounds-then-blocks bootstrap (seeded)."""
    _check(confidence, resamples)
    return _estimate(_groups(values_by_round), confidence, resamples, seed)


def _round_ci(ratios: np.ndarray, confidence: float, resamples: int, seed: int) -> tuple[float, float, float]:
    """One round's median ratio and its percentile-bootstrap CI (scipy; blocks within one process)."""
    median = float(np.median(ratios))
    if ratios.size < 2 or np.ptp(ratios) == 0:
        return median, median, median  # scipy needs two distinct values to resample
    result = scipy.stats.bootstrap(
        (ratios,),
        np.median,
        n_resamples=resamples,
        confidence_level=confidence,
        method="percentile",
        # random_state, not rng: the latter only exists from scipy 1.15 and scipy is not pinned
        random_state=np.random.default_rng(seed),
    )
    ci = result.confidence_interval
    return median, float(ci.low), float(ci.high)


def _wilcoxon_p(log_ratios: np.ndarray) -> float | None:
    """Two-sided signed-rank p of log ratios against 0; None when too few or every pair is equal."""
    if log_ratios.size < MIN_WILCOXON_PAIRS or np.count_nonzero(log_ratios) == 0:
        return None  # all-zero differences leave the signed-rank statistic undefined
    p = float(scipy.stats.wilcoxon(log_ratios, alternative="two-sided").pvalue)
    return None if math.isnan(p) else p


def paired_ratio(
    pairs_by_round: Sequence[Sequence[tuple[float, float]]],
    confidence: float = 0.95,
    resamples: int = 4000,
    seed: int = 0,
) -> PairedRatio:
    """Median of variant/baseline pair ratios with a hierarchical CI (rounds, then pairs).

    A pair is (variant_value, baseline_value) of one cycle. Pairs where either value is not a
    positive finite number are skipped: a ratio or its log is meaningless there.
    """
    _check(confidence, resamples)
    ratios_by_round: list[np.ndarray] = []
    for round_pairs in pairs_by_round:
        arr = np.asarray(round_pairs, dtype=float).reshape(-1, 2)
        ok = np.isfinite(arr).all(axis=1) & (arr > 0).all(axis=1)
        if ok.any():
            ratios_by_round.append(arr[ok, 0] / arr[ok, 1])
    if not ratios_by_round:
        raise ValueError("no usable pairs (each needs a positive variant and baseline value)")
    est = _estimate(ratios_by_round, confidence, resamples, seed)
    per_round = tuple(
        _round_ci(r, confidence, resamples, seed + 1 + i) for i, r in enumerate(ratios_by_round)
    )
    # two intervals overlap iff each starts before the other ends; all do iff max(low) <= min(high)
    disagree = len(per_round) > 1 and max(lo for _, lo, _ in per_round) > min(hi for _, _, hi in per_round)
    return PairedRatio(
        ratio=est.value,
        ci_low=est.ci_low,
        ci_high=est.ci_high,
        delta_pct=(est.value - 1) * 100,
        delta_ci_low_pct=(est.ci_low - 1) * 100,
        delta_ci_high_pct=(est.ci_high - 1) * 100,
        significant=est.ci_low > 1 or est.ci_high < 1,
        p_value=_wilcoxon_p(np.log(np.concatenate(ratios_by_round))),
        pairs=est.blocks,
        rounds=est.rounds,
        rounds_disagree=disagree,
        per_round=per_round,
    )


# field types are strings here: protocol.py uses `from __future__ import annotations`
_NUMERIC_FIELDS = tuple(f.name for f in fields(Block) if f.type in ("float", "float | None"))


Value = str | Callable[[Block], "float | None"]


def _field_value(block: Block, field: Value) -> float | None:
    """``block.<field>`` (or ``field(block)``) as a float, or None; an unknown field name is an
    error with suggestions."""
    if callable(field):
        got = field(block)
        return None if got is None else float(got)
    if field not in _NUMERIC_FIELDS:
        near = difflib.get_close_matches(field, _NUMERIC_FIELDS, n=1)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        raise ValueError(f"unknown block field {field!r} (one of {', '.join(_NUMERIC_FIELDS)}){hint}")
    value = getattr(block, field)
    return None if value is None else float(value)


def pairs(
    blocks: Sequence[Block], arm: str, baseline: str, field: Value = "latency_ms"
) -> list[list[tuple[float, float]]]:
    """(arm value, baseline value) per cycle where both have a value, one list per round (by round):
    time-adjacent blocks of one process. ``field``: a numeric ``Block`` field, or a function of
    a block (e.g. its idle-netted energy per image). Rounds without a single pair are left out.
    """
    by_key: dict[tuple[int, int, str], float | None] = {}
    for b in blocks:
        if b.arm not in (arm, baseline):
            continue
        key = (b.round, b.cycle, b.arm)
        if key in by_key:
            raise ValueError(f"two blocks of arm {b.arm!r} in round {b.round}, cycle {b.cycle}")
        by_key[key] = _field_value(b, field)
    out: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for (rnd, cycle, name), value in sorted(by_key.items()):
        if name != arm or value is None:
            continue
        base = by_key.get((rnd, cycle, baseline))
        if base is not None:
            out[rnd].append((value, base))
    return [out[r] for r in sorted(out)]


def values_by_round(blocks: Sequence[Block], arm: str, field: Value = "latency_ms") -> list[list[float]]:
    """``field`` of ``arm``'s blocks (None skipped), one list per round in round order, by cycle."""
    out: dict[int, list[tuple[int, float]]] = defaultdict(list)
    for b in blocks:
        if b.arm == arm:
            value = _field_value(b, field)
            if value is not None:
                out[b.round].append((b.cycle, value))
    return [[v for _, v in sorted(out[r])] for r in sorted(out)]
