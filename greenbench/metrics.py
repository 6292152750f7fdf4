"""The metric registry: every figure greenbench stores, with its unit and how to show it.

A record stores a metric as ``{"value", "unit", ...}`` in the unit named here; tables, reports
and gates look the metric up here for its display header, scale, decimals and direction instead
of hard-coding them. Adding a figure is one entry here (and, for the comparison table, one name
in ``TABLE_METRICS``); a task's accuracy metrics, its table columns and its headline metric
come from the task (``greenbench.tasks.base.Task``: ``metrics``, ``table_accuracy``,
``headline``).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from greenbench.metric_def import Kind as Kind
from greenbench.metric_def import MetricDef as MetricDef
from greenbench.metric_def import accuracy_metric as accuracy_metric


def _defs(*defs: MetricDef) -> dict[str, MetricDef]:
    out: dict[str, MetricDef] = {}
    for d in defs:
        if d.name in out:
            raise ValueError(f"metric {d.name!r} registered twice")
        out[d.name] = d
    return out


def _energy(name: str, header: str, description: str, scale: float, digits: int, **kw: bool) -> MetricDef:
    return MetricDef(name, "J", description, False, header, scale, digits, "energy", energy=True, **kw)


def _carbon(name: str, header: str, description: str) -> MetricDef:
    return MetricDef(name, "g", description, False, header, digits=3, kind="carbon", energy=True)


#: the figures every task has (accuracy metrics come from the tasks: ``all_metrics``)
CORE_METRICS: dict[str, MetricDef] = _defs(
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
    MetricDef(
        "latency_total_ms", "ms",
        "time of one image end to end: read and decode its file, preprocess, forward, postprocess",
        False, "latency_total_ms", digits=2, kind="latency", interval=True,
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


def headline_accuracy(task: str) -> str | None:
    """The headline accuracy metric of ``task`` (the task's ``headline``), or None for a task
    not installed here (a record from another machine's plugin)."""
    cls = _task(task)
    return cls.headline if cls is not None else None


def _task(task: str) -> Any:
    from greenbench.errors import GreenbenchError
    from greenbench.tasks import task_class

    try:
        return task_class(task)
    except GreenbenchError:
        return None


@cache
def all_metrics() -> dict[str, MetricDef]:
    """``CORE_METRICS`` and every installed task's accuracy metrics (a name two tasks share must
    be the same definition)."""
    from greenbench.tasks import task_names

    out = dict(CORE_METRICS)
    for name in task_names():
        cls = _task(name)
        for d in cls.metrics if cls is not None else ():
            if out.setdefault(d.name, d) != d:
                raise ValueError(f"metric {d.name!r} of task {name!r} clashes with another definition")
    return out


#: the comparison table's columns after the task's accuracy columns
TABLE_METRICS: tuple[str, ...] = (
    "params",
    "size_mb",
    "gflops",
    "latency_ms",
    "latency_total_ms",  # shown only where a row has it (latency.scope: both)
    "energy_per_image_j",
    "energy_per_image_net_j",
    "train_energy_j",
    "train_energy_net_j",
    "train_energy_lineage_j",
    "co2_train_g",
)


def get_metric(name: str) -> MetricDef:
    """The registered metric ``name``; KeyError naming the known ones otherwise."""
    known = all_metrics()
    try:
        return known[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}; known: {', '.join(known)}") from None


def table_metrics(task: str) -> list[MetricDef]:
    """The comparison table's columns for ``task``, in order; ValueError for an unknown task."""
    cls = _task(task)
    if cls is None:
        from greenbench.tasks import task_names

        raise ValueError(f"no table columns for task {task!r}; installed tasks: {', '.join(task_names())}")
    known = all_metrics()
    return [known[name] for name in (*cls.table_accuracy, *TABLE_METRICS)]


def units() -> dict[str, str]:
    """Every metric's stored unit, core and the installed tasks' (one lookup for a record)."""
    return {name: m.unit for name, m in all_metrics().items()}


def stored(name: str, value: float | int | None, **extra: Any) -> dict[str, Any]:
    """Metric ``name`` as a record stores it: the value and the registry's unit, kept apart
    (rendered together only at the edge), plus ``extra`` facts (CI, method, source, …)."""
    return {"value": value, "unit": get_metric(name).unit, **extra}


def __getattr__(name: str) -> Any:
    """``METRICS``: every metric, core and the installed tasks' (``all_metrics``), built on first use."""
    if name == "METRICS":
        return all_metrics()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
