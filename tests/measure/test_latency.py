"""Latency timing loop: warm-up, calibration to a minimum time and repeats, threads."""

from __future__ import annotations

import itertools

import torch

from greenbench.measure.latency import LatencyConfig, time_calls


class FakeClock:
    """Advances 2⁻⁷ s (7.8125 ms, exact in binary) per call of the timed function."""

    step = 2.0**-7

    def __init__(self) -> None:
        self.t = 0.0
        self.calls = 0

    def __call__(self) -> float:
        return self.t

    def work(self) -> None:
        self.t += self.step
        self.calls += 1


def test_repeats_until_both_minimums_reached_and_warmup_untimed() -> None:
    clock, syncs = FakeClock(), itertools.count()
    cfg = LatencyConfig(warmup=3, min_repeats=5, min_time_s=0.25, max_time_s=10, threads=1)
    result = time_calls(clock.work, cfg, sync=lambda: next(syncs), clock=clock)
    assert len(result.samples_ms) == 32  # 0.25 s of 7.8125 ms calls beats 5 repeats
    assert all(s == 7.8125 for s in result.samples_ms)
    assert clock.calls == 35  # the 3 warm-up calls ran but were not timed
    assert next(syncs) == 33  # once after warm-up, then after every timed call
    assert result.summary.median == 7.8125 and not result.truncated


def test_min_repeats_dominates_and_max_time_truncates() -> None:
    clock = FakeClock()
    r = time_calls(clock.work, LatencyConfig(0, 50, 0.01, 10, 1), clock=clock)
    assert len(r.samples_ms) == 50
    clock = FakeClock()
    r = time_calls(clock.work, LatencyConfig(0, 500, 0.01, 1.0, 1), clock=clock)
    assert r.truncated and len(r.samples_ms) == 128  # 1 s / 7.8125 ms


def test_threads_set_explicitly_and_recorded() -> None:
    before = torch.get_num_threads()
    try:
        clock = FakeClock()
        r = time_calls(clock.work, LatencyConfig(0, 3, 0.0, 1.0, threads=2), clock=clock)
        assert r.threads == 2 == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
