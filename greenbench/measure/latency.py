"""Latency helpers shared by the runtimes and the protocol: explicit threads, device sync.

How calls are timed (warm-up, interleaved blocks, rounds) lives in ``greenbench.measure.protocol``.
"""

from __future__ import annotations

from collections.abc import Callable


def set_threads(threads: int) -> int:
    """Set torch's intra-op threads and return what torch reports back."""
    import torch

    torch.set_num_threads(threads)
    return int(torch.get_num_threads())


def cuda_sync(device: str) -> Callable[[], None]:
    """``torch.cuda.synchronize`` for a CUDA device, a no-op for the CPU."""
    if not device.startswith("cuda"):
        return lambda: None
    import torch

    dev = torch.device(device)
    return lambda: torch.cuda.synchronize(dev)
