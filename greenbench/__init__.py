"""greenbench: energy, carbon, latency and accuracy benchmarks for deep-learning model variants."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from greenbench.report.frame import load_results as load_results


def __getattr__(name: str) -> Any:
    """``greenbench.load_results``, imported on first use: ``import greenbench`` stays light
    (pandas is loaded only when results are)."""
    if name == "load_results":
        from greenbench.report.frame import load_results

        return load_results
    raise AttributeError(f"module 'greenbench' has no attribute {name!r}")
