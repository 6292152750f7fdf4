"""Summary statistics of raw samples: median, IQR, percentiles, bootstrap CI of the median."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

#: a result whose IQR exceeds this fraction of its median is flagged noisy
NOISY_IQR_RATIO = 0.10


@dataclass(frozen=True)
class Summary:
    """Statistics of a sample, in the sample's own unit.

    ci_low/ci_high: percentile-bootstrap 95 % confidence interval of the median.
    noisy: IQR / median > 10 % (pyperf warns likewise when a result is unstable).
    """

    n: int
    median: float
    mean: float
    std: float
    iqr: float
    p90: float
    p99: float
    min: float
    max: float
    ci_low: float
    ci_high: float
    noisy: bool

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def bootstrap_median_ci(
    samples: Sequence[float], confidence: float = 0.95, resamples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """Percentile-bootstrap CI of the median (seeded, so the same samples give the same CI)."""
    x = np.asarray(samples, dtype=float)
    if x.size == 0:
        raise ValueError("bootstrap of an empty sample")
    if x.size == 1:
        return float(x[0]), float(x[0])
    rng = np.random.default_rng(seed)
    # resample in chunks of ≤ 4M values: 60k latency samples × 2000 resamples would need ~1 GB
    chunk = max(1, 4_000_000 // x.size)
    medians = np.concatenate(
        [
            np.median(rng.choice(x, size=(min(chunk, resamples - i), x.size), replace=True), axis=1)
            for i in range(0, resamples, chunk)
        ]
    )
    alpha = (1 - confidence) / 2
    low, high = np.quantile(medians, [alpha, 1 - alpha])
    return float(low), float(high)


def summarize(samples: Sequence[float]) -> Summary:
    """Summary of ``samples`` (at least one)."""
    x = np.asarray(samples, dtype=float)
    if x.size == 0:
        raise ValueError("cannot summarise an empty sample")
    q1, median, q3, p90, p99 = np.quantile(x, [0.25, 0.5, 0.75, 0.90, 0.99])
    low, high = bootstrap_median_ci(x.tolist())
    iqr = float(q3 - q1)
    return Summary(
        n=int(x.size),
        median=float(median),
        mean=float(x.mean()),
        std=float(x.std(ddof=1)) if x.size > 1 else 0.0,
        iqr=iqr,
        p90=float(p90),
        p99=float(p99),
        min=float(x.min()),
        max=float(x.max()),
        ci_low=low,
        ci_high=high,
        noisy=bool(median > 0 and iqr / median > NOISY_IQR_RATIO),
    )
