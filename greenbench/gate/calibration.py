"""Calibration of the gate: A/A runs (the same model as both arms) summarised into the false-alarm
rate with its exact (Clopper–Pearson) interval and the spread of the A/A intervals, so users pick
thresholds from data. Pure (no I/O): verdicts in, a summary out.

Detection is not inferred from the A/A runs (a single run's point estimate says nothing certain
about how often an interval clears the threshold): it is counted, by gating the calibration
model against a heavier copy of its graph whose extra work is known by construction
(``Detection``); ``benchmarks/gate_aab.py`` does the same over a range of slowdowns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import scipy.stats

from greenbench.gate.decision import Verdict


@dataclass(frozen=True)
class MetricCalibration:
    """One metric over A/A runs (the same model as both arms), in % of the reference.

    delta_low_pct/delta_high_pct: the range of the A/A point estimates (ratio − 1).
    pass_threshold_pct: the smallest threshold every A/A run's CI upper bound stays within
    (a threshold below it leaves A/A runs inconclusive). detectable_pct /
    detectable_median_pct: the widest and the median CI half-width (in % of the ratio) over
    the runs; a true regression needs about threshold + half-width to be called half the
    time. None where no run had an interval or the metric is not gated.
    """

    metric: str
    threshold_pct: float | None
    runs: int
    delta_low_pct: float | None
    delta_high_pct: float | None
    pass_threshold_pct: float | None
    detectable_pct: float | None
    detectable_median_pct: float | None


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The exact binomial interval of k successes in n trials (scipy's ``binomtest``)."""
    if n == 0:
        return 0.0, 1.0
    ci = scipy.stats.binomtest(k, n).proportion_ci(confidence_level=confidence, method="exact")
    return float(ci.low), float(ci.high)


@dataclass(frozen=True)
class Detection:
    """Gates of the calibration model against a heavier copy of its graph (``injected_pct`` more
    work, known by construction): how often each outcome came, and the detection rate's 95 %
    Clopper–Pearson interval."""

    injected_pct: float
    runs: int
    detected: int
    inconclusive: int
    passed: int

    @property
    def rate(self) -> float:
        """Detected (regressed) / runs."""
        return self.detected / self.runs if self.runs else 0.0

    @property
    def ci(self) -> tuple[float, float]:
        """95 % Clopper–Pearson interval of the detection rate."""
        return clopper_pearson(self.detected, self.runs)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {**asdict(self), "rate": self.rate, "ci": list(self.ci)}


def detection(verdicts: Sequence[Verdict], injected_pct: float) -> Detection:
    """Count the outcomes of gates against a known, injected slowdown."""
    outcomes = [v.outcome for v in verdicts]
    return Detection(
        injected_pct,
        len(outcomes),
        outcomes.count("regressed"),
        outcomes.count("inconclusive"),
        outcomes.count("pass"),
    )


@dataclass(frozen=True)
class Calibration:
    """A/A runs summarised: outcomes counted (a ``regressed`` A/A run is a false alarm), the
    false-alarm rate's 95 % Clopper–Pearson interval, and the per-metric spreads."""

    runs: int
    false_alarms: int
    inconclusive: int
    passed: int
    metrics: tuple[MetricCalibration, ...]
    detection: Detection | None = None

    @property
    def false_alarm_rate(self) -> float:
        """False alarms / runs (0 for no run)."""
        return self.false_alarms / self.runs if self.runs else 0.0

    @property
    def false_alarm_ci(self) -> tuple[float, float]:
        """95 % Clopper–Pearson interval of the false-alarm rate (0 of 20 runs: 0 to 17 %)."""
        return clopper_pearson(self.false_alarms, self.runs)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            **asdict(self),
            "false_alarm_rate": self.false_alarm_rate,
            "false_alarm_ci": list(self.false_alarm_ci),
            "detection": None if self.detection is None else self.detection.to_dict(),
        }


def calibration(verdicts: Sequence[Verdict], found: Detection | None = None) -> Calibration:
    """Summarise A/A verdicts (one per run) per metric of their first candidate, with the
    detection counted against an injected slowdown if there was one."""
    outcomes = [v.outcome for v in verdicts]
    metrics: list[MetricCalibration] = []
    names = list(dict.fromkeys(m.metric for v in verdicts for m in v.metrics))
    for name in names:
        mine = [m for v in verdicts for m in v.metrics if m.metric == name]
        rated = [m for m in mine if m.ratio is not None and m.ci_high is not None and m.ci_low is not None]
        deltas = [(m.ratio - 1) * 100 for m in rated if m.ratio is not None]
        highs = [(m.ci_high - 1) * 100 for m in rated if m.ci_high is not None]
        halves = [
            (m.ci_high - m.ci_low) / 2 / m.ratio * 100
            for m in rated
            if m.ci_high is not None and m.ci_low is not None and m.ratio
        ]
        threshold = mine[0].threshold_pct if mine else None
        metrics.append(
            MetricCalibration(
                metric=name,
                threshold_pct=threshold,
                runs=len(rated),
                delta_low_pct=min(deltas) if deltas else None,
                delta_high_pct=max(deltas) if deltas else None,
                pass_threshold_pct=max(0.0, max(highs)) if highs else None,
                detectable_pct=max(halves) if halves and threshold is not None else None,
                detectable_median_pct=float(np.median(halves)) if halves and threshold is not None else None,
            )
        )
    return Calibration(
        runs=len(verdicts),
        false_alarms=outcomes.count("regressed"),
        inconclusive=outcomes.count("inconclusive"),
        passed=outcomes.count("pass"),
        metrics=tuple(metrics),
        detection=found,
    )
