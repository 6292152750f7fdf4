"""Statistics of interleaved blocks: round-level medians and paired variant/baseline ratios.

Blocks come from several rounds (fresh processes, ``greenbench.measure.protocol``). Blocks of
one round share that process' state (its memory layout, its core, its frequency), so they are
not independent draws: the unit of replication is the round. Every interval here is therefore
made from **one statistic per round** (the median of that round's blocks, or of its pair
ratios), on the log scale, as a Student t-interval with R − 1 degrees of freedom (R rounds):

    centre = mean of the R log round-medians,  half-width = t(R−1) · sd / √R,

reported back on the original scale (a geometric mean of round medians with a multiplicative
CI). Why not a bootstrap: with 3 processes a percentile bootstrap over rounds is about the
range of three round medians; it covered the true ratio only 75–86 % of the time once the arms'
speed differed a little from process to process (``benchmarks/coverage.py`` reproduces that
and shows the t-interval at 0.93–0.97). Why not a signed-rank test over pooled pairs: it counts
pairs of one process as independent and flagged A/A pairs "significant" in 38–53 % of runs.

Fewer than ``MIN_ROUNDS_FOR_CI`` rounds give figures without an interval (``ci_low`` and
``ci_high`` None), never an interval that only covers one process. ``spread_pct`` (τ) is the
between-process spread: the standard deviation of the log round statistics, in % (it holds
each round's own sampling noise too, so it is an upper bound on the process effect).
Values that are not all positive (net energy can dip to 0 in noise) are summarised on the
linear scale instead (``scale: linear``).
"""

from __future__ import annotations

import difflib
import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

import numpy as np
import scipy.stats

from greenbench.measure.protocol import Block

#: the fewest rounds (fresh processes) an interval is made from
MIN_ROUNDS_FOR_CI = 2
CI_METHOD = "95 % t-interval over processes (rounds): one median per round, log scale, R − 1 df"
#: the same where a round's figure is not positive (net energy in noise): the linear scale
CI_METHOD_LINEAR = "95 % t-interval over processes (rounds): one median per round, linear scale, R − 1 df"

Scale = Literal["log", "linear"]


@dataclass(frozen=True)
class RoundInterval:
    """A centre and its CI from one statistic per round (see the module doc).

    value: geometric mean of the round statistics (``scale`` log) or their mean (linear).
    ci_low, ci_high: the t-interval, None under ``MIN_ROUNDS_FOR_CI`` rounds. spread_pct: the SD
    of the round statistics (log: × 100, a % of the value; linear: in % of |value|), None for
    one round. rounds: R. confidence: the CI's level (0.95 → 95 %).
    """

    value: float
    ci_low: float | None
    ci_high: float | None
    spread_pct: float | None
    rounds: int
    confidence: float
    scale: Scale


def round_interval(round_stats: Sequence[float], confidence: float = 0.95) -> RoundInterval:
    """The t-interval of one statistic per round (log scale when all are positive)."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    x = np.asarray(round_stats, dtype=float)
    if x.size == 0:
        raise ValueError("no rounds")
    if not np.isfinite(x).all():
        raise ValueError("values must be finite")
    scale: Scale = "log" if (x > 0).all() else "linear"
    y = np.log(x) if scale == "log" else x
    centre = float(y.mean())
    r = int(x.size)
    sd = float(y.std(ddof=1)) if r > 1 else None
    low = high = None
    if r >= MIN_ROUNDS_FOR_CI and sd is not None:
        half = float(scipy.stats.t.ppf((1 + confidence) / 2, r - 1)) * sd / math.sqrt(r)
        low, high = centre - half, centre + half
    if scale == "log":
        back = math.exp
        spread = None if sd is None else sd * 100
    else:
        back = float
        spread = None if sd is None or centre == 0 else sd / abs(centre) * 100
    if np.ptp(x) == 0:  # equal rounds: their figure exactly (no exp(log(x)) rounding)
        value = float(x[0])
        low = high = None if low is None else value
        return RoundInterval(value, low, high, spread, r, confidence, scale)
    return RoundInterval(
        back(centre),
        None if low is None else back(low),
        None if high is None else back(high),
        spread,
        r,
        confidence,
        scale,
    )


@dataclass(frozen=True)
class Estimate:
    """A median with a 95 % CI over processes: the round-level t-interval of the rounds' medians.

    value, ci_low, ci_high: in the unit of the input values (CI None under 2 rounds).
    rounds/blocks: how many went in. spread_pct: τ, the between-process SD in %.
    confidence: the CI's level (0.95 → 95 %).
    """

    value: float
    ci_low: float | None
    ci_high: float | None
    rounds: int
    blocks: int
    confidence: float
    spread_pct: float | None = None
    scale: Scale = "log"

    @property
    def ci_method(self) -> str:
        """How the CI was made, in words."""
        return CI_METHOD if self.scale == "log" else CI_METHOD_LINEAR

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True)
class PairedRatio:
    """Variant/baseline ratio from time-adjacent block pairs. delta_pct = (ratio-1)*100.

    ratio, ci_low, ci_high: the geometric mean over rounds of each round's median pair ratio,
    and its t-interval with R − 1 df (unitless; CI None under 2 rounds). significant: the CI
    excludes 1 (None without a CI). spread_pct: τ, the SD of the rounds' log median ratios, %.
    per_round: each round's median ratio.
    """

    ratio: float
    ci_low: float | None
    ci_high: float | None
    delta_pct: float
    delta_ci_low_pct: float | None
    delta_ci_high_pct: float | None
    significant: bool | None
    pairs: int
    rounds: int
    spread_pct: float | None
    per_round: tuple[float, ...]
    ci_method: str = CI_METHOD

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; ``per_round`` as a list of {ratio}."""
        d = asdict(self)
        d["per_round"] = [{"ratio": m} for m in self.per_round]
        return d


def _groups(values_by_round: Sequence[Sequence[float]]) -> list[np.ndarray]:
    """Non-empty rounds as float arrays; a NaN or infinite value is an error."""
    groups = [np.asarray(v, dtype=float) for v in values_by_round if len(v) > 0]
    if not groups:
        raise ValueError("no values: every round is empty")
    if not all(np.isfinite(g).all() for g in groups):
        raise ValueError("values must be finite")
    return groups


def round_median(values_by_round: Sequence[Sequence[float]], confidence: float = 0.95) -> Estimate:
    """The rounds' medians summarised by ``round_interval``: a median with a CI over processes."""
    groups = _groups(values_by_round)
    ri = round_interval([float(np.median(g)) for g in groups], confidence)
    blocks = sum(int(g.size) for g in groups)
    return Estimate(ri.value, ri.ci_low, ri.ci_high, ri.rounds, blocks, confidence, ri.spread_pct, ri.scale)


def _pct(ratio: float | None) -> float | None:
    return None if ratio is None else (ratio - 1) * 100


def paired_ratio(
    pairs_by_round: Sequence[Sequence[tuple[float, float]]], confidence: float = 0.95
) -> PairedRatio:
    """Round-level ratio of variant to baseline with its t-interval over rounds.

    A pair is (variant_value, baseline_value) of one cycle. Pairs where either value is not a
    positive finite number are skipped: a ratio or its log is meaningless there.
    """
    ratios_by_round: list[np.ndarray] = []
    for round_pairs in pairs_by_round:
        arr = np.asarray(round_pairs, dtype=float).reshape(-1, 2)
        ok = np.isfinite(arr).all(axis=1) & (arr > 0).all(axis=1)
        if ok.any():
            ratios_by_round.append(arr[ok, 0] / arr[ok, 1])
    if not ratios_by_round:
        raise ValueError("no usable pairs (each needs a positive variant and baseline value)")
    per_round = tuple(float(np.median(r)) for r in ratios_by_round)
    ri = round_interval(per_round, confidence)
    low, high = ri.ci_low, ri.ci_high
    return PairedRatio(
        ratio=ri.value,
        ci_low=low,
        ci_high=high,
        delta_pct=(ri.value - 1) * 100,
        delta_ci_low_pct=_pct(low),
        delta_ci_high_pct=_pct(high),
        significant=None if low is None or high is None else bool(low > 1 or high < 1),
        pairs=sum(int(r.size) for r in ratios_by_round),
        rounds=ri.rounds,
        spread_pct=ri.spread_pct,
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


@dataclass(frozen=True)
class Figure:
    """One value of one arm over its rounds: the estimate, the interquartile range of its pooled
    blocks and (against a baseline) the paired ratio, None where fewer than 2 pairs, or any pair
    not positive, allow one (net energy can dip to 0 in noise; dropping those pairs would bias
    the rest)."""

    estimate: Estimate
    iqr: float
    ratio: PairedRatio | None = None


def arm_figures(
    blocks: Sequence[Block], arm: str, values: dict[str, Value], baseline: str | None = None
) -> dict[str, Figure]:
    """What the interleaved blocks say about ``arm``, per named value (a ``Block`` field or a
    function of a block): its ``round_median`` estimate, the IQR of the pooled blocks and, when
    ``baseline`` is given, its ``paired_ratio`` against the baseline's time-adjacent blocks.
    Values ``arm`` has no block of are left out."""
    out: dict[str, Figure] = {}
    for name, value in values.items():
        rounds = values_by_round(blocks, arm, value)
        if not rounds:
            continue
        pooled = np.concatenate([np.asarray(v, dtype=float) for v in rounds])
        q1, q3 = np.quantile(pooled, [0.25, 0.75])
        ratio = None
        if baseline is not None:
            found = pairs(blocks, arm, baseline, value)
            usable = not any(v <= 0 or b <= 0 for r in found for v, b in r)
            if usable and sum(len(p) for p in found) >= 2:
                ratio = paired_ratio(found)
        out[name] = Figure(round_median(rounds), float(q3 - q1), ratio)
    return out
