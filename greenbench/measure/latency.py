"""Latency: warm-up, repeats calibrated to a minimum time, explicit threads, device sync."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from greenbench.measure.stats import Summary, summarize


@dataclass(frozen=True)
class LatencyConfig:
    """How to time a callable.

    warmup: untimed calls first. min_repeats / min_time_s: keep timing until both are reached.
    max_time_s: stop after this long even if ``min_repeats`` is not reached (recorded).
    threads: intra-op CPU threads, set right before timing.
    """

    warmup: int = 5
    min_repeats: int = 20
    min_time_s: float = 1.0
    max_time_s: float = 60.0
    threads: int = 1


@dataclass(frozen=True)
class LatencyResult:
    """Timed samples in milliseconds per call and their summary."""

    samples_ms: tuple[float, ...]
    summary: Summary
    threads: int
    warmup: int
    truncated: bool  # max_time_s hit before min_repeats

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; the raw samples are kept."""
        return {
            "unit": "ms",
            "summary": self.summary.to_dict(),
            "samples_ms": list(self.samples_ms),
            "threads": self.threads,
            "warmup": self.warmup,
            "truncated": self.truncated,
        }


def set_threads(threads: int) -> int:
    """Set torch's intra-op threads and return what torch reports back."""
    import torch

    torch.set_num_threads(threads)
    return int(torch.get_num_threads())


def time_calls(
    fn: Callable[[], None],
    config: LatencyConfig,
    sync: Callable[[], None] = lambda: None,
    clock: Callable[[], float] = time.perf_counter,
) -> LatencyResult:
    """Time ``fn``: ``sync`` runs before and after every timed call (CUDA needs it)."""
    threads = set_threads(config.threads)
    for _ in range(config.warmup):
        fn()
    sync()
    samples: list[float] = []
    started = clock()
    truncated = False
    while True:
        t0 = clock()
        fn()
        sync()
        samples.append((clock() - t0) * 1e3)
        elapsed = clock() - started
        if len(samples) >= config.min_repeats and elapsed >= config.min_time_s:
            break
        if elapsed >= config.max_time_s:
            truncated = len(samples) < config.min_repeats
            break
    return LatencyResult(tuple(samples), summarize(samples), threads, config.warmup, truncated)


def cuda_sync(device: str) -> Callable[[], None]:
    """``torch.cuda.synchronize`` for a CUDA device, a no-op for the CPU."""
    if not device.startswith("cuda"):
        return lambda: None
    import torch

    dev = torch.device(device)
    return lambda: torch.cuda.synchronize(dev)
