"""The metric registry: every metric greenbench stores is registered, in the unit it is stored in."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from greenbench.metrics import METRICS, TABLE_METRICS, TASK_ACCURACY, get_metric, table_metrics

PACKAGE = Path(__file__).parents[1] / "greenbench"

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


def _builders(tree: ast.Module) -> dict[str, int]:
    """Functions that build a stored metric: ``metric`` itself and every function of the module
    that returns ``metric(value, unit, …)`` with ``unit`` one of its parameters -> that index."""
    found = {"metric": 1}
    for func in [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]:
        params = [a.arg for a in func.args.args]
        for ret in [n for n in ast.walk(func) if isinstance(n, ast.Return)]:
            call = ret.value
            if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "metric":
                unit = call.args[1] if len(call.args) > 1 else None
                if isinstance(unit, ast.Name) and unit.id in params:
                    found[func.name] = params.index(unit.id)
    return found


def _unit_of(call: ast.Call, index: int) -> str | None:
    """The literal unit a builder call passes at ``index`` (or as ``unit=``), else None."""
    arg = call.args[index] if len(call.args) > index else None
    arg = arg or next((k.value for k in call.keywords if k.arg == "unit"), None)
    return arg.value if isinstance(arg, ast.Constant) and isinstance(arg.value, str) else None


def _fstring_keys(key: ast.JoinedStr, func: ast.FunctionDef, tree: ast.Module) -> list[str]:
    """``f"{prefix}_j"`` inside ``func(…, prefix, …)``: one key per literal ``prefix`` passed by a caller."""
    parts = key.values
    if not (
        len(parts) == 2 and isinstance(parts[0], ast.FormattedValue) and isinstance(parts[1], ast.Constant)
    ):
        raise AssertionError(f"line {key.lineno}: cannot resolve this f-string metric key; extend the test")
    param = parts[0].value
    assert isinstance(param, ast.Name), f"line {key.lineno}: f-string key of an expression"
    index = [a.arg for a in func.args.args].index(param.id)
    prefixes = []
    for call in ast.walk(tree):
        if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == func.name:
            arg = call.args[index] if len(call.args) > index else None
            assert isinstance(arg, ast.Constant), f"line {call.lineno}: a non-literal {param.id}"
            prefixes.append(f"{arg.value}{parts[1].value}")
    assert prefixes, f"no call of {func.name} found"
    return prefixes


def stored_metrics(path: Path) -> dict[str, set[str | None]]:
    """Metric name -> units, of every ``"name": metric(...)`` and ``x["name"] = metric(...)`` in
    ``path`` (or a call of a function there that returns ``metric(...)``). Keys computed at run
    time (a comprehension over an adapter's accuracy dict) are covered by the adapter test."""
    tree = ast.parse(path.read_text())
    builders = _builders(tree)
    found: dict[str, set[str | None]] = {}
    for func in [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]:
        for node in ast.walk(func):
            pairs: list[tuple[ast.expr | None, ast.expr]] = []
            if isinstance(node, ast.Dict):
                pairs = list(zip(node.keys, node.values, strict=True))
            elif isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Subscript):
                pairs = [(node.targets[0].slice, node.value)]
            for key, value in pairs:
                if not (isinstance(value, ast.Call) and isinstance(value.func, ast.Name)):
                    continue
                if value.func.id not in builders or value.func.id == func.name:
                    continue
                if isinstance(key, ast.Constant):
                    names = [str(key.value)]
                elif isinstance(key, ast.JoinedStr):
                    names = _fstring_keys(key, func, tree)
                else:
                    raise AssertionError(f"{path.name}:{value.lineno}: metric key is not a literal")
                for name in names:
                    found.setdefault(name, set()).add(_unit_of(value, builders[value.func.id]))
    return found


def all_stored_metrics() -> dict[str, set[str | None]]:
    """Over records.py (where records get their metrics) and any other module that builds them."""
    found: dict[str, set[str | None]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if "metric(" in path.read_text():
            for name, units in stored_metrics(path).items():
                found.setdefault(name, set()).update(units)
    return found


def test_records_module_is_scanned() -> None:
    names = stored_metrics(PACKAGE / "records.py")
    for name in (
        "params",
        "latency_ms",
        "energy_per_image_net_j",
        "train_energy_lineage_net_j",
        "co2_train_g",
    ):
        assert name in names  # literal keys, f-string keys, helpers and subscript assignments are all seen


def test_every_stored_metric_is_registered_with_its_unit() -> None:
    found = all_stored_metrics()
    assert found
    unregistered = sorted(set(found) - set(METRICS))
    assert not unregistered, f"stored but not in greenbench.metrics.METRICS: {unregistered}"
    for name, units in found.items():
        assert units == {METRICS[name].unit}, (name, units, METRICS[name].unit)


def test_every_task_adapter_metric_is_registered() -> None:
    from greenbench.adapters import ADAPTERS, adapter_class

    for task in ADAPTERS:
        names = adapter_class(task).metrics
        assert names and all(METRICS[n].kind == "accuracy" for n in names), (task, names)
        assert set(TASK_ACCURACY[task]) <= set(names)  # the table shows what the adapter measures


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
        "P", "mAP50", "params_M", "size_MB", "GFLOPs", "latency_ms", "E/img_mJ", "E/img_net_mJ",
        "E_train_kJ", "E_train_net_kJ", "E_lineage_kJ", "CO2_train_g",
    ]  # fmt: skip
    assert [d.name for d in table_metrics("classify")[:2]] == ["top1", "top5"]
    for names in (*TASK_ACCURACY.values(), TABLE_METRICS):
        assert all(n in METRICS for n in names)
    with pytest.raises(ValueError, match="known tasks: detect, classify"):
        table_metrics("segment")


def test_get_metric() -> None:
    assert get_metric("energy_per_image_j").display(0.01234) == "12.34"
    assert get_metric("params").display(2_500_000) == "2.500"
    with pytest.raises(KeyError, match="unknown metric 'nope'"):
        get_metric("nope")
