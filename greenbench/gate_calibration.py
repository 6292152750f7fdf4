"""Calibration of the gate: A/A runs (the same model as both arms) summarised into the false-alarm
rate and the smallest regression the chosen settings detect, so users pick thresholds from data.
Pure (no I/O): verdicts in, a summary out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from greenbench.gate import MetricVerdict, Verdict


@dataclass(frozen=True)
class MetricCalibration:
    """One metric over A/A runs (the same model as both arms), in % of the reference.

    delta_low_pct/delta_high_pct: the range of the A/A point estimates (ratio − 1).
    pass_threshold_pct: the smallest threshold every A/A run's CI upper bound stays within
    (a threshold below it leaves A/A runs inconclusive). detectable_pct: the smallest
    regression whose CI lower bound would clear the threshold (and whose change would clear
    the floor) in every run, with each run's CI width, relative to its ratio, kept; i.e.
    detected every time. detectable_median_pct: the same for the median run (about half).
    None where no run had a ratio or the metric is not gated.
    """

    metric: str
    threshold_pct: float | None
    runs: int
    delta_low_pct: float | None
    delta_high_pct: float | None
    pass_threshold_pct: float | None
    detectable_pct: float | None
    detectable_median_pct: float | None


@dataclass(frozen=True)
class Calibration:
    """A/A runs summarised: outcomes counted (a ``regressed`` A/A run is a false alarm) and the
    per-metric figures users pick thresholds from."""

    runs: int
    false_alarms: int
    inconclusive: int
    passed: int
    metrics: tuple[MetricCalibration, ...]

    @property
    def false_alarm_rate(self) -> float:
        """False alarms / runs (0 for no run)."""
        return self.false_alarms / self.runs if self.runs else 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {**asdict(self), "false_alarm_rate": self.false_alarm_rate}


def _detectable(v: MetricVerdict) -> float | None:
    """The smallest true ratio this run would call regressed (CI lower bound and floor), as %."""
    if v.ratio is None or v.ci_low is None or v.threshold_pct is None or not v.reference or v.ci_low <= 0:
        return None
    by_ci = (1 + v.threshold_pct / 100) * v.ratio / v.ci_low
    by_floor = 1 + v.floor / v.reference
    return (max(by_ci, by_floor) - 1) * 100


def calibration(verdicts: Sequence[Verdict]) -> Calibration:
    """Summarise A/A verdicts (one per run) per metric of their first candidate."""
    outcomes = [v.outcome for v in verdicts]
    metrics: list[MetricCalibration] = []
    names = list(dict.fromkeys(m.metric for v in verdicts for m in v.metrics))
    for name in names:
        mine = [m for v in verdicts for m in v.metrics if m.metric == name]
        rated = [m for m in mine if m.ratio is not None and m.ci_high is not None]
        deltas = [(m.ratio - 1) * 100 for m in rated if m.ratio is not None]
        highs = [(m.ci_high - 1) * 100 for m in rated if m.ci_high is not None]
        found = [d for d in (_detectable(m) for m in rated) if d is not None]
        threshold = mine[0].threshold_pct if mine else None
        metrics.append(
            MetricCalibration(
                metric=name,
                threshold_pct=threshold,
                runs=len(rated),
                delta_low_pct=min(deltas) if deltas else None,
                delta_high_pct=max(deltas) if deltas else None,
                pass_threshold_pct=max(0.0, max(highs)) if highs else None,
                detectable_pct=max(found) if found else None,
                detectable_median_pct=float(np.median(found)) if found else None,
            )
        )
    return Calibration(
        runs=len(verdicts),
        false_alarms=outcomes.count("regressed"),
        inconclusive=outcomes.count("inconclusive"),
        passed=outcomes.count("pass"),
        metrics=tuple(metrics),
    )
