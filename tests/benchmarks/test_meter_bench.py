"""What measuring costs: one window (``begin`` + ``end``) per meter, and the RAPL poller's CPU.

Targets, printed and stored in ``extra_info`` but not asserted (timings depend on the machine):
a window ≤ 10 ms, the poller ≤ 0.5 % of a core. Run with
``python -m pytest tests/benchmarks -q -s`` to see the printed figures.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from greenbench.measure.energy.estimate import EstimateMeter
from greenbench.measure.energy.rapl import RaplMeter
from tests.measure.energy.fakes import FakePowercap

WINDOW_TARGET_MS = 10.0
POLLER_TARGET_PCT = 0.5
POLLER_RUN_S = 2.0


def two_package_tree(base: Path) -> FakePowercap:
    """A two-socket server: package-0/1 with a dram sub-zone each, real Xeon ranges."""
    fake = FakePowercap(base)
    for i in (0, 1):
        fake.add_package(i, energy_uj=100_000_000_000 + i, subzones=("dram",))
    return fake


def report(benchmark: Any, key: str, value: float, unit: str, target: float, what: str) -> None:
    benchmark.extra_info[key] = value
    benchmark.extra_info[f"{key}_target"] = target
    verdict = "within" if value <= target else "ABOVE"
    print(f"\n{what}: {value:.4g} {unit} ({verdict} the {target:g} {unit} target)")


def median_ms(benchmark: Any) -> float | None:
    stats = getattr(benchmark, "stats", None)
    return stats.stats.median * 1e3 if stats is not None else None  # None under --benchmark-disable


def test_rapl_window_cost(benchmark: Any, tmp_path: Path) -> None:
    fake = two_package_tree(tmp_path)
    with RaplMeter(fake.root) as meter:  # poller running at its default interval, as in use
        reading = benchmark(lambda: meter.end(meter.begin()))
    assert [d.domain for d in reading.domains] == ["package-0", "dram-0", "package-1", "dram-1"]
    if (ms := median_ms(benchmark)) is not None:
        report(benchmark, "window_ms", ms, "ms", WINDOW_TARGET_MS, "rapl window (2 packages + dram)")


def test_estimate_window_cost(benchmark: Any) -> None:
    meter = EstimateMeter()
    reading = benchmark(lambda: meter.end(meter.begin()))
    assert reading.method == "estimated"
    if (ms := median_ms(benchmark)) is not None:
        report(benchmark, "window_ms", ms, "ms", WINDOW_TARGET_MS, "estimate window")


def test_rapl_poller_cpu_share(benchmark: Any, tmp_path: Path) -> None:
    """CPU time the poller thread itself used (``time.thread_time`` inside it) over wall time."""
    fake = two_package_tree(tmp_path)
    meter = RaplMeter(fake.root)

    def run() -> float:
        meter.open()
        start = time.monotonic()
        time.sleep(POLLER_RUN_S)
        meter.close()
        return meter.poller_cpu_s / (time.monotonic() - start)

    share = benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info["poll_interval_s"] = meter.poll_interval_s
    benchmark.extra_info["poller_cpu_s"] = meter.poller_cpu_s
    what = f"rapl poller CPU at a {meter.poll_interval_s:g} s interval over {POLLER_RUN_S:g} s"
    report(benchmark, "poller_core_pct", 100 * share, "% of a core", POLLER_TARGET_PCT, what)
