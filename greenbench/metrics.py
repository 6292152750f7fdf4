"""The metric registry: every figure greenbench stores, with its unit and how to show it.

A record stores a metric as ``{"value", "unit", ...}`` in the unit named here; tables, reports
and gates look the metric up here for its display header, scale, decimals and direction instead
of hard-coding them. Adding a figure is one entry here (and, for the comparison table, one name
in ``TABLE_METRICS`` or ``TASK_ACCURACY``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

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


def _defs(*defs: MetricDef) -> dict[str, MetricDef]:
    out: dict[str, MetricDef] = {}
    for d in defs:
        if d.name in out:
            raise ValueError(f"metric {d.name!r} registered twice")
        out[d.name] = d
    return out


def _accuracy(name: str, header: str, description: str) -> MetricDef:
    return MetricDef(name, "fraction", description, True, header, digits=3, kind="accuracy")


def _energy(name: str, header: str, description: str, scale: float, digits: int, **kw: bool) -> MetricDef:
    return MetricDef(name, "J", description, False, header, scale, digits, "energy", energy=True, **kw)


def _carbon(name: str, header: str, description: str) -> MetricDef:
    return MetricDef(name, "g", description, False, header, digits=3, kind="carbon", energy=True)


METRICS: dict[str, MetricDef] = _defs(
    # accuracy: detection
    _accuracy("precision", "P", "detection precision on the evaluation split"),
    _accuracy("recall", "R", "detection recall on the evaluation split"),
    _accuracy("map50", "mAP50", "detection mean average precision at IoU 0.5"),
    _accuracy("map50_95", "mAP50-95", "detection mean average precision over IoU 0.5:0.95"),
    # accuracy: classification (planned task)
    _accuracy("top1", "top1", "classification top-1 accuracy on the evaluation split"),
    _accuracy("top5", "top5", "classification top-5 accuracy on the evaluation split"),
    # complexity
    MetricDef("params", "count", "parameters of the fused inference model", False, "params_M", 1e-6, 3),
    MetricDef("gmacs", "GMAC", "multiply-accumulates of one forward pass, 10^9", False, "GMACs", digits=2),
    MetricDef("gflops", "GFLOP", "floating-point operations, 2 × GMACs", False, "GFLOPs", digits=2),
    MetricDef("size_mb", "MB", "checkpoint file size, 10^6 bytes", False, "size_MB", digits=2),
    MetricDef("peak_rss_mb", "MB", "peak RSS of the measuring process", False, "peak_RSS_MB", digits=1),
    # latency
    MetricDef(
        "latency_ms", "ms", "time of one forward pass of the measured batch", False, "latency_ms",
        digits=2, kind="latency", interval=True,
    ),
    # energy: inference
    _energy("energy_per_image_j", "E/img_mJ", "inference energy per image, gross", 1e3, 2, interval=True),
    _energy(
        "energy_per_image_net_j", "E/img_net_mJ", "inference energy per image, net of idle", 1e3, 2,
        interval=True,
    ),
    # energy: training
    _energy("train_energy_j", "E_train_kJ", "energy of this variant's own stages, gross", 1e-3, 3),
    _energy("train_energy_net_j", "E_train_net_kJ", "energy of this variant's own stages, net", 1e-3, 3),
    _energy("train_energy_lineage_j", "E_lineage_kJ", "energy of every stage from the root, gross", 1e-3, 3),
    _energy(
        "train_energy_lineage_net_j", "E_lineage_net_kJ", "energy of every stage from the root, net",
        1e-3, 3,
    ),
    # carbon
    _carbon("co2_train_g", "CO2_train_g", "CO2 of this variant's own stages: gross J × intensity × PUE"),
    _carbon("co2_per_1k_images_g", "CO2_1k_img_g", "CO2 of 1000 images' inference (gross energy)"),
    # CodeCarbon's own figures over the same windows, kept beside ours as a cross-check
    MetricDef(
        "codecarbon_train_energy_j", "J", "CodeCarbon's training energy, same windows (cross-check)",
        None, "E_train_CC_kJ", 1e-3, 3, "energy", energy=True,
    ),
    MetricDef(
        "codecarbon_co2_train_g", "g", "CodeCarbon's training CO2, same windows (cross-check)",
        None, "CO2_train_CC_g", digits=3, kind="carbon", energy=True,
    ),
)  # fmt: skip

#: a task's accuracy columns in the comparison table
TASK_ACCURACY: dict[str, tuple[str, ...]] = {
    "detect": ("precision", "map50"),
    "classify": ("top1", "top5"),
}

#: the one accuracy a task is judged by (higher is better): the leaderboard's ranks, the device
#: report's plots and Pareto fronts. The only place it is chosen
HEADLINE_ACCURACY: dict[str, str] = {"detect": "map50", "classify": "top1"}


def headline_accuracy(task: str) -> str | None:
    """The headline accuracy metric of ``task`` (``HEADLINE_ACCURACY``), or None for an unknown task."""
    return HEADLINE_ACCURACY.get(task)


#: the comparison table's columns after the task's accuracy columns
TABLE_METRICS: tuple[str, ...] = (
    "params",
    "size_mb",
    "gflops",
    "latency_ms",
    "energy_per_image_j",
    "energy_per_image_net_j",
    "train_energy_j",
    "train_energy_net_j",
    "train_energy_lineage_j",
    "co2_train_g",
)


def get_metric(name: str) -> MetricDef:
    """The registered metric ``name``; KeyError naming the known ones otherwise."""
    try:
        return METRICS[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}; known: {', '.join(METRICS)}") from None


def table_metrics(task: str) -> list[MetricDef]:
    """The comparison table's columns for ``task``, in order; ValueError for an unknown task."""
    if task not in TASK_ACCURACY:
        raise ValueError(f"no table columns for task {task!r}; known tasks: {', '.join(TASK_ACCURACY)}")
    return [METRICS[name] for name in (*TASK_ACCURACY[task], *TABLE_METRICS)]


def stored(name: str, value: float | int | None, **extra: Any) -> dict[str, Any]:
    """Metric ``name`` as a record stores it: the value and the registry's unit, kept apart
    (rendered together only at the edge), plus ``extra`` facts (CI, method, source, …)."""
    return {"value": value, "unit": get_metric(name).unit, **extra}
