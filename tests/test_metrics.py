"""The metric registry: every metric greenbench stores is registered, in the unit it is stored in."""

from __future__ import annotations

import pytest

from greenbench.metrics import METRICS, TABLE_METRICS, get_metric, headline_accuracy, stored, table_metrics

#: display-unit suffix of a header -> (stored unit, scale)
HEADER_UNITS = {
    "_mJ": ("J", 1e3),
    "_kJ": ("J", 1e-3),
    "_J": ("J", 1.0),
    "_ms": ("ms", 1.0),
    "_MB": ("MB", 1.0),
    "_M": ("count", 1e-6),
    "_g": ("g", 1.0),
}


def test_stored_takes_the_unit_from_the_registry() -> None:
    assert stored("latency_ms", 9.5, ci_low=9.0) == {"value": 9.5, "unit": "ms", "ci_low": 9.0}
    with pytest.raises(KeyError, match="unknown metric 'latency'"):
        stored("latency", 9.5)  # a record can only hold registered figures


def test_every_metric_a_record_gets_is_registered() -> None:
    from greenbench.measure.energy.composite import IdleBaseline
    from greenbench.run.records import Context, build_metrics, codecarbon_check
    from tests.test_records import GRID, block, evaluated, stage

    ctx = Context(IdleBaseline({"package-0": 1.0}, 1.0, "measured"), GRID, 1.0, 64)
    blocks = [block("v", 0, 0, 5.0), block("v", 1, 0, 6.0)]
    metrics, _ = build_metrics(
        evaluated(), blocks, [stage(10.0, 1.0, variant="p"), stage(5.0, 1.0)], "v", ctx, 1
    )
    metrics.update(codecarbon_check([{"energy_j": 1.0, "co2_g": 0.1}]))
    assert {"latency_ms", "energy_per_image_net_j", "train_energy_lineage_net_j", "co2_train_g"} <= set(
        metrics
    )
    for name, m in metrics.items():
        assert m["unit"] == METRICS[name].unit, name


def test_every_task_metric_is_registered() -> None:
    from greenbench.tasks import task_class, task_names

    for task in task_names():
        cls = task_class(task)
        names = [d.name for d in cls.metrics]
        assert names and all(METRICS[n].kind == "accuracy" for n in names), (task, names)
        assert set(cls.table_accuracy) <= set(names)  # the table shows what the task measures
        assert cls.headline in names and headline_accuracy(task) == cls.headline


def test_registry_entries_are_consistent() -> None:
    for name, d in METRICS.items():
        assert d.name == name and d.description and d.digits >= 0 and d.scale > 0
        if d.kind == "accuracy":
            assert d.unit == "fraction" and d.higher_is_better is True
        if d.energy:
            assert d.unit in ("J", "g") and d.kind in ("energy", "carbon")
        if d.interval:
            assert d.kind in ("latency", "energy") and d.higher_is_better is False
        suffix = next((s for s in HEADER_UNITS if d.header.endswith(s)), None)
        if suffix is not None:  # a header that names a display unit agrees with unit and scale
            assert (d.unit, d.scale) == HEADER_UNITS[suffix], (name, d.header)
        else:
            assert d.scale == 1.0, (name, d.header)
    headers = [d.header for d in METRICS.values()]
    assert len(headers) == len(set(headers))


def test_table_metrics_per_task() -> None:
    detect = [d.header for d in table_metrics("detect")]
    assert detect == [
        "P", "mAP50", "params_M", "size_MB", "GFLOPs", "latency_ms", "latency_total_ms", "E/img_mJ",
        "E/img_net_mJ", "E_train_kJ", "E_train_net_kJ", "E_lineage_kJ", "CO2_train_g",
    ]  # fmt: skip
    assert all(n in METRICS for n in TABLE_METRICS)
    with pytest.raises(ValueError, match="installed tasks: classify, detect"):
        table_metrics("segment")


def test_get_metric() -> None:
    assert get_metric("energy_per_image_j").display(0.01234) == "12.34"
    assert get_metric("params").display(2_500_000) == "2.500"
    with pytest.raises(KeyError, match="unknown metric 'nope'"):
        get_metric("nope")
