"""Latency helpers: the thread count is set and read back, CPU sync is a no-op."""

from __future__ import annotations

import torch

from greenbench.measure.latency import cuda_sync, set_threads


def test_threads_are_set_and_reported_back() -> None:
    before = torch.get_num_threads()
    try:
        assert set_threads(2) == 2 == torch.get_num_threads()
        assert set_threads(1) == 1
    finally:
        torch.set_num_threads(before)


def test_cpu_sync_is_a_no_op() -> None:
    assert cuda_sync("cpu")() is None
