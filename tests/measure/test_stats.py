"""Statistics of raw samples."""

from __future__ import annotations

import numpy as np
import pytest

from greenbench.measure.stats import bootstrap_median_ci, summarize


def test_summary_matches_numpy_and_orders_percentiles() -> None:
    x = np.random.default_rng(1).lognormal(2.0, 0.05, size=200)
    s = summarize(x)
    assert s.n == 200
    assert s.median == pytest.approx(np.median(x))
    assert s.mean == pytest.approx(x.mean())
    assert s.std == pytest.approx(x.std(ddof=1))
    assert s.iqr == pytest.approx(np.quantile(x, 0.75) - np.quantile(x, 0.25))
    assert s.min <= s.ci_low <= s.median <= s.ci_high <= s.max
    assert s.median <= s.p90 <= s.p99 <= s.max
    assert not s.noisy


def test_noisy_flag_uses_iqr_over_median() -> None:
    tight = [10.0, 10.1, 10.2, 10.3, 10.4]
    wide = [5.0, 8.0, 10.0, 12.0, 15.0]
    assert not summarize(tight).noisy
    assert summarize(wide).noisy


def test_bootstrap_is_seeded_and_narrows_with_more_samples() -> None:
    rng = np.random.default_rng(0)
    small, large = rng.normal(100, 5, 20), rng.normal(100, 5, 2000)
    assert bootstrap_median_ci(small) == bootstrap_median_ci(small)
    lo_s, hi_s = bootstrap_median_ci(small)
    lo_l, hi_l = bootstrap_median_ci(large)
    assert hi_l - lo_l < hi_s - lo_s
    assert lo_l < 100 < hi_l


def test_single_and_empty_samples() -> None:
    s = summarize([3.0])
    assert (s.median, s.std, s.ci_low, s.ci_high) == (3.0, 0.0, 3.0, 3.0)
    with pytest.raises(ValueError):
        summarize([])
