"""What a metric is (``MetricDef``): a leaf module, so that tasks can declare their accuracy
metrics without importing the registry that collects them (``greenbench.metrics``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["accuracy", "complexity", "latency", "energy", "carbon"]


@dataclass(frozen=True)
class MetricDef:
    """One stored metric.

    name: the key in ``RunRecord.metrics``. unit: the stored unit (``J``, ``ms``, ``count``, …).
    higher_is_better: True/False, or None where neither is (e.g. a cross-check).
    header: the table header, with the display unit (``E/img_mJ``); display = value × ``scale``,
    shown with ``digits`` decimals. energy: the metric carries ``method`` (measured/estimated)
    and ``source``; a Δ is only taken against a figure of the same method and source.
    interval: the metric carries ``ci_low``/``ci_high`` (and, from schema 2, a paired Δ
    against the baseline in ``RunRecord.deltas``).
    """

    name: str
    unit: str
    description: str
    higher_is_better: bool | None
    header: str
    scale: float = 1.0
    digits: int = 3
    kind: Kind = "complexity"
    energy: bool = False
    interval: bool = False

    def display(self, value: float) -> str:
        """``value`` (in ``unit``) scaled and rounded for a table cell."""
        return f"{value * self.scale:.{self.digits}f}"


def accuracy_metric(name: str, header: str, description: str) -> MetricDef:
    """An accuracy metric as a task declares it: a fraction in [0, 1], higher is better."""
    return MetricDef(name, "fraction", description, True, header, digits=3, kind="accuracy")
