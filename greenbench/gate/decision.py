"""The regression gate's decision: candidates against a reference measured interleaved. Pure (no I/O).

The blocks come from the interleaved protocol (``greenbench.measure.protocol``): reference and
candidate timed in alternating blocks, in several fresh processes (rounds), in the same job.
For each gated metric (latency per call, gross energy per image) and each candidate:

- **ratio** (candidate/reference): per round, the median of the ratios of time-adjacent block
  pairs; over rounds, their geometric mean with a Student t-interval on the log scale, R − 1
  degrees of freedom (``greenbench.measure.compare.paired_ratio``). The round (a fresh process)
  is the unit of replication: pairs of one process share its state, so the interval is made
  from one figure per process, and it covers when processes differ (``benchmarks/coverage.py``).
  Pairing is what makes each round's ratio safe on a shared host: a drift of the machine hits
  both blocks of a pair and cancels in their ratio.
- **effective threshold**: the ``--fail`` percentage t, raised to the floor where the floor is
  the larger change: ``max(t, floor / reference)``. The floor (``--floor``, default 0.05 ms)
  keeps a 5 % change of a 0.2 ms model from failing a build; on a 1.5 ms model it is 3.3 %, under
  the threshold, and changes nothing. Both are printed.
- **family**: every gated interval is at level 1 − (1 − confidence)/k, k = the number of gated
  metric × candidate comparisons (Bonferroni), so at one look the chance that any of them
  wrongly claims a regression at the threshold is at most (1 − confidence)/2.

Outcomes per metric (effective threshold e, interval [low, high] of the ratio):

- ``regressed``: low > 1 + e: the data rule out a change within the threshold;
- ``pass``: high ≤ 1 + e: the data rule out a regression beyond the threshold;
- ``inconclusive``: the interval straddles 1 + e, or there are fewer than 2 rounds (no
  interval): measure more rounds;
- ``not gated``: the metric was turned off (``--fail energy:off``), or its energy is estimated
  from CPU time (then its Δ is the CPU-time Δ, which the latency gate already judges: one
  metric, gated once); still reported.

The gate's outcome is ``regressed`` if any metric of any candidate regressed, else
``inconclusive`` if any is, else ``pass``. An inconclusive gate is not a green one: the CLI
exits 3 unless ``--inconclusive-passes``.

Adding rounds while inconclusive (``--max-rounds``) looks at the data again (5, 7, 9, 11, 12
rounds by default); each look is at the family level above, so the chance of a false
``regressed`` grows with the looks: at a true change exactly at the threshold it is 6 % in
``benchmarks/coverage.py`` rather than 2.5 %, and it falls fast below the threshold (0 of 400
at +3 %, 0 of 400 for A/A). ``--calibrate`` measures the false-alarm rate on this runner.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from greenbench.errors import GreenbenchError
from greenbench.measure.compare import paired_ratio, pairs, values_by_round
from greenbench.measure.energy.meter import cpu_time_only
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
#: thresholds when no ``--fail`` names the metric, %
DEFAULT_THRESHOLD_PCT: dict[str, float] = {"latency_ms": 5.0, "energy_per_image_j": 5.0}
#: absolute floors when no ``--floor`` names the metric: 0.05 ms; 0.2 mJ per image. A floor only
#: raises the threshold where it is the larger change (a model under 1 ms at 5 %)
DEFAULT_FLOOR: dict[str, float] = {"latency_ms": 0.05, "energy_per_image_j": 2e-4}
#: the gate's family-wise confidence (its intervals are Bonferroni-adjusted to it)
DEFAULT_CONFIDENCE = 0.95
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
    """confidence: the family-wise level of the gate's intervals (each gated one is at
    1 − (1 − confidence)/k for k gated comparisons)."""

    confidence: float = DEFAULT_CONFIDENCE


@dataclass(frozen=True)
class MetricVerdict:
    """One metric of one candidate. Values in the metric's ``unit``; ratios candidate/reference.

    reference/candidate: each arm's median (geometric mean over rounds of its round medians).
    ratio, ci_low, ci_high: the round-level paired ratio and its t-interval at
    ``interval_confidence`` (None under 2 rounds). change, change_high: reference × (ratio − 1)
    and × (ci_high − 1), in ``unit``. threshold_pct: the ``--fail`` threshold (None when not
    gated); effective_threshold_pct: max(threshold, floor / reference) in %. floor: in ``unit``.
    spread_pct: τ, the SD over rounds of the log round ratios, %. method/source: the energy
    readings' provenance (None for latency).
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
    threshold_pct: float | None
    effective_threshold_pct: float | None
    floor: float
    pairs: int
    rounds: int
    spread_pct: float | None
    interval_confidence: float
    method: str | None = None
    source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True)
class Verdict:
    """The gate's outcome and every metric's verdict, with the confidence it was decided under
    (family-wise) and the level of each gated interval."""

    outcome: Outcome
    metrics: tuple[MetricVerdict, ...]
    confidence: float
    interval_confidence: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "outcome": self.outcome,
            "confidence": self.confidence,
            "interval_confidence": self.interval_confidence,
            "metrics": [m.to_dict() for m in self.metrics],
        }


@dataclass
class _Measured:
    """What the blocks say about one metric of one candidate, before the decision."""

    candidate: str
    rule: MetricRule
    gated: bool
    reference: float | None = None
    candidate_value: float | None = None
    found: list[list[tuple[float, float]]] | None = None
    pairs: int = 0
    rounds: int = 0
    method: str | None = None
    source: str | None = None


def _provenance(blocks: Sequence[Block], arms: set[str]) -> tuple[str | None, str | None]:
    """The energy method (``estimated`` if any block's is) and the distinct sources of ``arms``."""
    readings = [b.reading for b in blocks if b.arm in arms and b.reading]
    if not readings:
        return None, None
    methods = {r.method for r in readings}
    method = "measured" if methods == {"measured"} else "estimated"
    return method, "+".join(dict.fromkeys(r.source for r in readings))


def _median(values: list[list[float]]) -> float | None:
    """An arm's figure: the geometric mean over rounds of its round medians (as the ratio's)."""
    rounds = [float(np.median(r)) for r in values if r]
    if not rounds or min(rounds) <= 0:
        pooled = [v for r in values for v in r]
        return float(np.median(pooled)) if pooled else None
    return float(np.exp(np.mean(np.log(rounds))))


#: why estimated energy is not gated on its own
ESTIMATED_NOT_GATED = (
    "estimated from CPU time × W/core: its Δ is the CPU-time Δ, which the latency gate already "
    "judges; not gated separately"
)


def _measure(blocks: Sequence[Block], reference: str, candidate: str, rule: MetricRule) -> _Measured:
    field = rule.metric
    out = _Measured(candidate, rule, gated=rule.check is not None)
    out.reference = _median(values_by_round(blocks, reference, field))
    out.candidate_value = _median(values_by_round(blocks, candidate, field))
    if field == "energy_per_image_j":
        out.method, out.source = _provenance(blocks, {reference, candidate})
        if cpu_time_only(out.source):
            out.gated = False
    found = [
        [(c, r) for c, r in rnd if c > 0 and r > 0] for rnd in pairs(blocks, candidate, reference, field)
    ]
    out.found = [rnd for rnd in found if rnd]
    out.pairs = sum(len(r) for r in out.found)
    out.rounds = len(out.found)
    return out


def _pct(ratio: float) -> str:
    return f"{(ratio - 1) * 100:+.1f} %"


def effective_threshold_pct(rule: MetricRule, reference: float | None) -> float | None:
    """max(threshold, floor / reference) in %; None when the metric is not gated."""
    if rule.check is None:
        return None
    if not reference or reference <= 0:
        return rule.check.threshold
    return max(rule.check.threshold, rule.floor.threshold / reference * 100)


def _judge(
    m: _Measured, ratio: tuple[float, float | None, float | None] | None, level: float
) -> tuple[Outcome, str]:
    """The outcome of one metric and why, in one line."""
    rule = m.rule
    if ratio is None or m.reference is None:
        why = f"only {m.pairs} paired block(s) with a positive value: nothing to compare"
        return ("inconclusive" if m.gated else "not gated"), why
    value, low, high = ratio
    ci = _pct(value) if low is None or high is None else f"{_pct(value)} [{_pct(low)}, {_pct(high)}]"
    if rule.check is None:
        return "not gated", f"{ci}; not gated (off)"
    if not m.gated:
        return "not gated", f"{ci}; {ESTIMATED_NOT_GATED}"
    if low is None or high is None:
        return "inconclusive", f"{ci}: {m.rounds} round(s) give no interval (2 at least)"
    eff = effective_threshold_pct(rule, m.reference)
    assert eff is not None
    limit = f"+{eff:.3g} %"
    if eff > rule.check.threshold:
        floor, ref = rule.floor.describe(rule.floor.threshold), f"{m.reference:.3g} {GATED[rule.metric]}"
        limit += f" (the floor {floor} of {ref})"
    level_text = f"{level * 100:.3g} % CI"
    if low > 1 + eff / 100:
        return "regressed", f"{ci}: the {level_text} is above {limit}"
    if high <= 1 + eff / 100:
        return "pass", f"{ci}: the {level_text} is within {limit}"
    return "inconclusive", f"{ci}: the {level_text} straddles {limit}"


def decide(
    blocks: Sequence[Block],
    reference: str,
    candidates: Sequence[str],
    metric_rules: Sequence[MetricRule],
    config: GateConfig | None = None,
) -> Verdict:
    """Judge every candidate arm against ``reference`` on every rule's metric (see the module doc)."""
    config = config or GateConfig()
    if not 0 < config.confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {config.confidence}")
    if not candidates:
        raise ValueError("decide needs at least one candidate")
    measured = [_measure(blocks, reference, c, r) for c in candidates for r in metric_rules]
    k = max(1, sum(m.gated for m in measured))
    level = 1 - (1 - config.confidence) / k
    verdicts = []
    for m in measured:
        ratio = None
        spread = None
        if m.found and m.pairs >= 2:
            pr = paired_ratio(m.found, level)
            ratio, spread = (pr.ratio, pr.ci_low, pr.ci_high), pr.spread_pct
        outcome, reason = _judge(m, ratio, level)
        value, low, high = ratio if ratio is not None else (None, None, None)
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
                ratio=value,
                ci_low=low,
                ci_high=high,
                ratio_of_medians=(m.candidate_value / ref) if ref and m.candidate_value is not None else None,
                change=ref * (value - 1) if ref is not None and value is not None else None,
                change_high=ref * (high - 1) if ref is not None and high is not None else None,
                threshold_pct=m.rule.check.threshold if m.gated and m.rule.check is not None else None,
                effective_threshold_pct=effective_threshold_pct(m.rule, ref) if m.gated else None,
                floor=m.rule.floor.threshold,
                pairs=m.pairs,
                rounds=m.rounds,
                spread_pct=spread,
                interval_confidence=level,
                method=m.method,
                source=m.source,
            )
        )
    outcomes = {v.outcome for v in verdicts}
    overall: Outcome = (
        "regressed" if "regressed" in outcomes else "inconclusive" if "inconclusive" in outcomes else "pass"
    )
    return Verdict(overall, tuple(verdicts), config.confidence, level)
