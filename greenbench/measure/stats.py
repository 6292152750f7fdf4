"""Statistics of one sample: the noisy threshold and a seeded bootstrap CI of the median (the
old way, one process' samples: kept for the A/A/B benchmark's comparison; the interleaved
figures use ``greenbench.measure.compare``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: a result whose IQR exceeds this fraction of its median is flagged noisy
NOISY_IQR_RATIO = 0.10


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
