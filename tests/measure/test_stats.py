"""Statistics of raw samples."""

from __future__ import annotations

import numpy as np
import pytest

from greenbench.measure.stats import bootstrap_median_ci


def test_bootstrap_is_seeded_and_narrows_with_more_samples() -> None:
    rng = np.random.default_rng(0)
    small, large = rng.normal(100, 5, 20), rng.normal(100, 5, 2000)
    assert bootstrap_median_ci(small) == bootstrap_median_ci(small)
    lo_s, hi_s = bootstrap_median_ci(small)
    lo_l, hi_l = bootstrap_median_ci(large)
    assert hi_l - lo_l < hi_s - lo_s
    assert lo_l < 100 < hi_l


def test_single_and_empty_samples() -> None:
    assert bootstrap_median_ci([3.0]) == (3.0, 3.0)
    with pytest.raises(ValueError):
        bootstrap_median_ci([])
