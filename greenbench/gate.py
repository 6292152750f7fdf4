"""The regression gate's decision: candidates against a reference measured interleaved. Pure (no I/O).

The blocks come from the interleaved protocol (``greenbench.measure.protocol``): reference and
candidate timed in alternating blocks, in several fresh processes (rounds), in the same job.
For each gated metric (latency per call, gross energy per image) and each candidate:

- **ratio** (candidate/reference): the median of the ratios of time-adjacent block pairs, with
  the 95 % CI of a hierarchical bootstrap over rounds, then pairs
  (``greenbench.measure.compare.paired_ratio``). Pairing is what makes the ratio of medians
  safe on a shared host: a drift of the machine hits both blocks of a pair and cancels in their
  ratio. For a change in scale it equals the ratio of the two arms' medians, which is reported
  beside it (``ratio_of_medians``).
- **test**: a one-sided Wilcoxon signed-rank test of the pairs' log ratios against 0,
  alternative "candidate slower". Signed-rank, not asv's Mann-Whitney: the blocks are paired
  in time, and a two-sample test would count the host's drift as noise. Under no change the
  two arms of a pair are exchangeable (the Williams order gives both every position equally
  often), so each log ratio is symmetric about 0, which is what the signed-rank test assumes;
  it uses ranks, so one stalled block cannot sway it. One-sided: the gate asks "slower?", and
  a faster candidate is never a failure. The p-values of all gated metrics and candidates are
  Holm-corrected together (family-wise error ``alpha``). The test pools pairs across rounds as
  if independent, so on its own it would overstate the evidence when processes differ; it is
  the second lock, after the CI, which covers between-process spread.
- **floor**: an absolute change (in the metric's unit) below which no regression is claimed,
  however sure: 5 % of a 0.1 ms model is not worth a red build.

Outcomes per metric (threshold t, floor f, reference median m):

- ``regressed``: the CI's lower bound is above 1 + t, **and** the Holm-adjusted p < alpha,
  **and** the change m × (ratio − 1) is above f;
- ``pass``: not regressed, and even the CI's upper bound stays within the threshold
  (≤ 1 + t) or within the floor (m × (upper − 1) ≤ f): the data rule out a regression that
  matters;
- ``inconclusive``: neither (the CI straddles 1 + t, or it clears it but the test does not
  agree): measure more rounds;
- ``not gated``: the metric was turned off (``--fail energy:off``); still reported.

The gate's outcome is ``regressed`` if any metric of any candidate regressed, else
``inconclusive`` if any is, else ``pass``.

Looking again after more rounds (``--max-rounds``) is sequential testing at a fixed alpha: it
raises the rank test's false-alarm rate a little above alpha over the (at most a few) looks. The
CI condition, which a regression must pass too, is what keeps A/A runs from failing; the
calibration (``--calibrate``) measures the false-alarm rate that results on this runner.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import scipy.stats

from greenbench.errors import GreenbenchError
from greenbench.measure.compare import MIN_WILCOXON_PAIRS, paired_ratio, pairs, values_by_round
from greenbench.measure.protocol import Block

Outcome = Literal["pass", "regressed", "inconclusive", "not gated"]

#: the gated metrics: the ``Block`` field each is read from, and its unit
GATED: dict[str, str] = {"latency_ms": "ms", "energy_per_image_j": "J"}
ALIASES: dict[str, str] = {
    "latency": "latency_ms",
    "latency_ms": "latency_ms",
    "energy": "energy_per_image_j",
    "energy_j": "energy_per_image_j",
    "energy_per_image": "energy_per_image_j",
    "energy_per_image_j": "energy_per_image_j",
}
#: thresholds when no ``--fail`` names the metric, % (energy readings are noisier than clocks)
DEFAULT_THRESHOLD_PCT: dict[str, float] = {"latency_ms": 5.0, "energy_per_image_j": 8.0}
#: absolute floors when no ``--floor`` names the metric: 0.2 ms; 0.2 mJ per image
DEFAULT_FLOOR: dict[str, float] = {"latency_ms": 0.2, "energy_per_image_j": 2e-4}
#: family-wise error rate of the rank tests (Holm). Small, because the test is the second lock;
#: a real regression over 20+ pairs reaches p < 1e-4, so power costs nothing here
DEFAULT_ALPHA = 0.01
_UNITS: dict[str, dict[str, float]] = {  # suffix -> factor to the stored unit
    "latency_ms": {"ms": 1.0, "us": 1e-3, "µs": 1e-3, "s": 1e3},
    "energy_per_image_j": {"j": 1.0, "mj": 1e-3, "uj": 1e-6, "µj": 1e-6},
}
_NUMBER = re.compile(r"\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-zµ%]*)\s*")


class GateUsageError(GreenbenchError):
    """A bad gate option or side, found before anything is measured (exit code 2)."""

    exit_code = 2


def metric_name(text: str, option: str) -> str:
    """The gated metric ``text`` names (``latency``, ``energy``, or a full name)."""
    key = text.strip().lower()
    if key in ALIASES:
        return ALIASES[key]
    near = difflib.get_close_matches(key, ALIASES, n=1)
    hint = f" Did you mean {near[0]!r}?" if near else ""
    raise GateUsageError(
        f"{option}: unknown metric {text[:40]!r}; the gate compares latency (latency_ms) and energy "
        f"per image (energy, energy_per_image_j).{hint}"
    )


@dataclass(frozen=True)
class RegressionCheck:
    """A threshold on one metric, as pytest-benchmark's ``RegressionCheck``: ``fails(current,
    compared)`` returns why the check fails (or None); subclasses override only ``compute``."""

    metric: str
    threshold: float

    def compute(self, current: float, compared: float) -> float:
        """How far ``current`` is past ``compared``, in the unit of ``threshold``."""
        raise NotImplementedError

    def describe(self, value: float) -> str:
        """``value`` in the unit of ``threshold``, for messages."""
        return f"{value:g}"

    def fails(self, current: float, compared: float) -> str | None:
        """Why ``current`` fails against ``compared`` (more than ``threshold`` past it), or None."""
        value = self.compute(current, compared)
        if value > self.threshold:
            return f"{self.metric}: {self.describe(value)} > {self.describe(self.threshold)}"
        return None


@dataclass(frozen=True)
class PercentageCheck(RegressionCheck):
    """Fails when ``current / compared`` is more than ``threshold`` % above 1 (``--fail latency:5%``)."""

    def compute(self, current: float, compared: float) -> float:
        """(current / compared − 1) × 100; infinite against a non-positive ``compared``."""
        return (current / compared - 1) * 100 if compared > 0 else math.inf

    def describe(self, value: float) -> str:
        """A signed percentage."""
        return f"{value:+.3g} %"


@dataclass(frozen=True)
class DifferenceCheck(RegressionCheck):
    """Fails when ``current − compared`` exceeds ``threshold`` in the metric's unit: the absolute
    floor (``--floor latency:0.2ms``)."""

    def compute(self, current: float, compared: float) -> float:
        """current − compared, in the metric's stored unit (ms, J)."""
        return current - compared

    def describe(self, value: float) -> str:
        """The value with the metric's unit (energy in mJ, where it reads best)."""
        if self.metric == "energy_per_image_j":
            return f"{value * 1e3:.3g} mJ"
        return f"{value:.3g} {GATED.get(self.metric, '')}".strip()


def _number(text: str, option: str, spec: str, example: str) -> tuple[float, str]:
    """A finite number >= 0 and its suffix (unit or %); anything else is a usage error."""
    m = _NUMBER.fullmatch(text)
    value = float(m.group(1)) if m else math.nan
    if not m or not math.isfinite(value) or value < 0:
        raise GateUsageError(f"{option} {spec[:60]!r}: expected a number >= 0 after ':', e.g. {example}.")
    return value, m.group(2)


def parse_check(spec: str) -> tuple[str, PercentageCheck | None]:
    """``METRIC:PCT%`` (``latency:5%``) as a check, or ``METRIC:off`` (reported, not gated)."""
    name, sep, rest = spec.partition(":")
    if not sep:
        raise GateUsageError(f"--fail {spec[:60]!r}: expected METRIC:PERCENT, e.g. --fail latency:5%.")
    metric = metric_name(name, "--fail")
    if rest.strip().lower() == "off":
        return metric, None
    value, suffix = _number(rest, "--fail", spec, "--fail latency:5%")
    if suffix != "%":
        raise GateUsageError(
            f"--fail {spec[:60]!r}: the threshold is a percentage, write it with '%' (e.g. "
            f"--fail {name}:5%); an absolute minimum change is --floor {name}:VALUE."
        )
    if value > 1000:
        raise GateUsageError(f"--fail {spec[:60]!r}: a threshold above 1000 % gates nothing; lower it.")
    return metric, PercentageCheck(metric, value)


def parse_floor(spec: str) -> DifferenceCheck:
    """``METRIC:VALUE[UNIT]`` (``latency:0.2ms``, ``energy:0.5mJ``; no unit = ms or J) as a floor."""
    name, sep, rest = spec.partition(":")
    if not sep:
        raise GateUsageError(f"--floor {spec[:60]!r}: expected METRIC:VALUE, e.g. --floor latency:0.2ms.")
    metric = metric_name(name, "--floor")
    value, suffix = _number(rest, "--floor", spec, "--floor latency:0.2ms or --floor energy:0.5mJ")
    units = _UNITS[metric]
    unit = suffix.lower() if metric == "energy_per_image_j" else suffix
    if unit and unit not in units:
        raise GateUsageError(
            f"--floor {spec[:60]!r}: unknown unit {suffix!r} for {metric}; use one of "
            f"{', '.join(u for u in units if u.isascii())}."
        )
    return DifferenceCheck(metric, value * units.get(unit, 1.0))


@dataclass(frozen=True)
class MetricRule:
    """How one metric is gated: its threshold check (None: reported, not gated) and its floor."""

    metric: str
    check: PercentageCheck | None
    floor: DifferenceCheck


def rules(fail: Iterable[str] = (), floor: Iterable[str] = ()) -> tuple[MetricRule, ...]:
    """The rule of every gated metric: ``--fail``/``--floor`` specs over the defaults; a metric
    named twice by the same option is a usage error."""
    checks: dict[str, PercentageCheck | None] = {}
    for spec in fail:
        metric, check = parse_check(spec)
        if metric in checks:
            raise GateUsageError(f"--fail names {metric} twice; keep one threshold per metric.")
        checks[metric] = check
    floors: dict[str, DifferenceCheck] = {}
    for spec in floor:
        f = parse_floor(spec)
        if f.metric in floors:
            raise GateUsageError(f"--floor names {f.metric} twice; keep one floor per metric.")
        floors[f.metric] = f
    return tuple(
        MetricRule(
            metric,
            checks[metric] if metric in checks else PercentageCheck(metric, DEFAULT_THRESHOLD_PCT[metric]),
            floors.get(metric, DifferenceCheck(metric, DEFAULT_FLOOR[metric])),
        )
        for metric in GATED
    )


@dataclass(frozen=True)
class GateConfig:
    """alpha: family-wise error of the rank tests (Holm). confidence: the ratio CI's level.
    resamples, seed: of the bootstrap (seeded: the same blocks give the same decision)."""

    alpha: float = DEFAULT_ALPHA
    confidence: float = 0.95
    resamples: int = 4000
    seed: int = 0


@dataclass(frozen=True)
class MetricVerdict:
    """One metric of one candidate. Values in the metric's ``unit``; ratios candidate/reference.

    reference/candidate: pooled median of each arm's blocks. ratio, ci_low, ci_high: median of
    the pair ratios and its hierarchical 95 % CI. change, change_high: reference × (ratio − 1)
    and × (ci_high − 1), in ``unit``. p_value: one-sided signed-rank p (None under 6 pairs or
    all ties); p_holm: Holm-adjusted. threshold_pct: None when not gated. floor: in ``unit``.
    method/source: the energy readings' provenance (None for latency).
    """

    candidate: str
    metric: str
    unit: str
    outcome: Outcome
    reason: str
    reference: float | None
    candidate_value: float | None
    ratio: float | None
    ci_low: float | None
    ci_high: float | None
    ratio_of_medians: float | None
    change: float | None
    change_high: float | None
    p_value: float | None
    p_holm: float | None
    threshold_pct: float | None
    floor: float
    pairs: int
    rounds: int
    rounds_disagree: bool
    method: str | None = None
    source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True)
class Verdict:
    """The gate's outcome and every metric's verdict, with the config it was decided under."""

    outcome: Outcome
    metrics: tuple[MetricVerdict, ...]
    alpha: float
    confidence: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "outcome": self.outcome,
            "alpha": self.alpha,
            "confidence": self.confidence,
            "metrics": [m.to_dict() for m in self.metrics],
        }


def one_sided_p(log_ratios: Sequence[float] | np.ndarray) -> float | None:
    """Wilcoxon signed-rank p that the log ratios sit above 0 (candidate slower); None when there
    are fewer than ``MIN_WILCOXON_PAIRS`` or all are 0 (the statistic is then undefined)."""
    x = np.asarray(log_ratios, dtype=float)
    if x.size < MIN_WILCOXON_PAIRS or np.count_nonzero(x) == 0:
        return None
    p = float(scipy.stats.wilcoxon(x, alternative="greater").pvalue)
    return None if math.isnan(p) else p


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input order.

    Written out (eight lines) because scipy has only Benjamini-Hochberg
    (``false_discovery_control``), which controls the false discovery rate, not the
    family-wise error a gate needs, and statsmodels is not a dependency.
    """
    m = len(p_values)
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(sorted(range(m), key=lambda k: p_values[k])):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


@dataclass
class _Measured:
    """What the blocks say about one metric of one candidate, before the decision."""

    candidate: str
    rule: MetricRule
    reference: float | None = None
    candidate_value: float | None = None
    ratio: tuple[float, float, float] | None = None  # ratio, ci_low, ci_high
    p_value: float | None = None
    pairs: int = 0
    rounds: int = 0
    disagree: bool = False
    method: str | None = None
    source: str | None = None


def _provenance(blocks: Sequence[Block], arms: set[str]) -> tuple[str | None, str | None]:
    """The energy method (``estimated`` if any block's is) and the distinct sources of ``arms``."""
    readings = [b.reading for b in blocks if b.arm in arms and b.reading]
    if not readings:
        return None, None
    methods = {str(r.get("method")) for r in readings}
    method = "measured" if methods == {"measured"} else "estimated"
    return method, "+".join(dict.fromkeys(str(r.get("source")) for r in readings))


def _median(values: list[list[float]]) -> float | None:
    pooled = [v for r in values for v in r]
    return float(np.median(pooled)) if pooled else None


def _measure(
    blocks: Sequence[Block], reference: str, candidate: str, rule: MetricRule, config: GateConfig
) -> _Measured:
    out = _Measured(candidate, rule)
    field = rule.metric
    out.reference = _median(values_by_round(blocks, reference, field))
    out.candidate_value = _median(values_by_round(blocks, candidate, field))
    if field == "energy_per_image_j":
        out.method, out.source = _provenance(blocks, {reference, candidate})
    found = [
        [(c, r) for c, r in rnd if c > 0 and r > 0] for rnd in pairs(blocks, candidate, reference, field)
    ]
    found = [rnd for rnd in found if rnd]
    out.pairs = sum(len(r) for r in found)
    out.rounds = len(found)
    if out.pairs < 2:
        return out
    pr = paired_ratio(found, config.confidence, config.resamples, config.seed)
    out.ratio = (pr.ratio, pr.ci_low, pr.ci_high)
    out.disagree = pr.rounds_disagree
    out.p_value = one_sided_p(np.log([c / r for rnd in found for c, r in rnd]))
    return out


def _pct(ratio: float) -> str:
    return f"{(ratio - 1) * 100:+.1f} %"


def _judge(m: _Measured, p_holm: float | None, alpha: float) -> tuple[Outcome, str]:
    """The outcome of one metric and why, in one line."""
    rule = m.rule
    if m.ratio is None or m.reference is None:
        why = f"only {m.pairs} paired block(s) with a positive value: nothing to compare"
        return ("not gated" if rule.check is None else "inconclusive"), why
    ratio, low, high = m.ratio
    ci = f"{_pct(ratio)} [{_pct(low)}, {_pct(high)}]"
    if rule.check is None:
        return "not gated", f"{ci}; not gated (off)"
    check, floor = rule.check, rule.floor
    limit = check.describe(check.threshold)
    above = check.fails(low, 1.0) is not None
    significant = p_holm is not None and p_holm < alpha
    big = floor.fails(m.reference * ratio, m.reference) is not None
    p_text = "n/a (too few pairs)" if p_holm is None else f"{p_holm:.2g}"
    if above and significant and big:
        change = floor.describe(m.reference * (ratio - 1))
        return "regressed", f"{ci}: CI above {limit}, p = {p_text} < {alpha:g}, change {change} > floor"
    if check.fails(high, 1.0) is None:
        return "pass", f"{ci}: CI upper bound within {limit}"
    worst = m.reference * (high - 1)
    if floor.fails(m.reference + worst, m.reference) is None:
        return (
            "pass",
            f"{ci}: at most {floor.describe(worst)}, within the floor {floor.describe(floor.threshold)}",
        )
    if above and not significant:
        return "inconclusive", f"{ci}: CI above {limit} but the rank test is not significant (p = {p_text})"
    if above:
        return "inconclusive", f"{ci}: CI above {limit} but the change may be below the floor"
    return "inconclusive", f"{ci}: CI straddles {limit}"


def decide(
    blocks: Sequence[Block],
    reference: str,
    candidates: Sequence[str],
    metric_rules: Sequence[MetricRule],
    config: GateConfig | None = None,
) -> Verdict:
    """Judge every candidate arm against ``reference`` on every rule's metric (see the module doc)."""
    config = config or GateConfig()
    if not candidates:
        raise ValueError("decide needs at least one candidate")
    measured = [_measure(blocks, reference, c, r, config) for c in candidates for r in metric_rules]
    # the Holm family: every gated test; a test that could not be run counts as p = 1
    family = [i for i, m in enumerate(measured) if m.rule.check is not None]
    raw = [measured[i].p_value for i in family]
    adjusted = holm([1.0 if p is None else p for p in raw])
    p_holm: dict[int, float | None] = {
        i: (adj if measured[i].p_value is not None else None) for i, adj in zip(family, adjusted, strict=True)
    }
    verdicts = []
    for i, m in enumerate(measured):
        outcome, reason = _judge(m, p_holm.get(i), config.alpha)
        ratio, low, high = m.ratio if m.ratio is not None else (None, None, None)
        ref = m.reference
        verdicts.append(
            MetricVerdict(
                candidate=m.candidate,
                metric=m.rule.metric,
                unit=GATED[m.rule.metric],
                outcome=outcome,
                reason=reason,
                reference=ref,
                candidate_value=m.candidate_value,
                ratio=ratio,
                ci_low=low,
                ci_high=high,
                ratio_of_medians=(m.candidate_value / ref) if ref and m.candidate_value is not None else None,
                change=ref * (ratio - 1) if ref is not None and ratio is not None else None,
                change_high=ref * (high - 1) if ref is not None and high is not None else None,
                p_value=m.p_value,
                p_holm=p_holm.get(i),
                threshold_pct=m.rule.check.threshold if m.rule.check is not None else None,
                floor=m.rule.floor.threshold,
                pairs=m.pairs,
                rounds=m.rounds,
                rounds_disagree=m.disagree,
                method=m.method,
                source=m.source,
            )
        )
    outcomes = {v.outcome for v in verdicts}
    overall: Outcome = (
        "regressed" if "regressed" in outcomes else "inconclusive" if "inconclusive" in outcomes else "pass"
    )
    return Verdict(overall, tuple(verdicts), config.alpha, config.confidence)
