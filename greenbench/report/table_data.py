"""The comparison table as data, CSV and JSON, with every column, interval and note; columns
named by the user (``--columns``), rows sorted by one (``--sort``), and how the terminal table
is cut (``TermView``: here, so that the CLI need not import rich before it renders).

CSV: one row per variant, fixed metric columns each with its CI, Δ (``_delta_pct``, an
accuracy's ``_delta_pp``), significance, pairing and method columns; booleans spelt
``True``/``False`` as in the leaderboard; text from records on one line, quoted by the csv module.

JSON keeps what the CSV keeps, typed: values in the metric's stored unit (``unit``; the table
shows value × ``scale``), ``null`` for a missing figure, real booleans, each Δ with its unit
(``%``, or ``pp`` for an accuracy's percentage points) and kind, the baseline and the Pareto
front marked, and every note.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from greenbench.metrics import MetricDef, headline_accuracy
from greenbench.report.pareto import pareto_mask
from greenbench.report.recipe import recipe_columns
from greenbench.report.table_notes import as_number
from greenbench.report.tables import (
    STAGE_HEADS,
    Cell,
    Delta,
    Table,
    against_of,
    energy_method,
    one_line,
    stage_table,
)


@dataclass(frozen=True)
class TermView:
    """How the terminal table is cut.

    width: the terminal's width in characters. ci: show each value's and Δ's 95 % interval.
    wide: keep every column (lines may exceed ``width``). columns: the metrics to show (names
    or headers, as ``pick_columns`` reads them); empty: all, dropped by importance to fit.
    """

    width: int = 80
    ci: bool = False
    wide: bool = False
    columns: tuple[str, ...] = ()


def pick_columns(table: Table, wanted: Sequence[str]) -> list[MetricDef]:
    """The table's metrics named in ``wanted`` (metric names or headers, any case), in that
    order; ValueError naming the choices for a name the table does not have."""
    by_name = {key.lower(): c for c in table.columns for key in (c.name, c.header)}
    unknown = [w for w in wanted if w.strip().lower() not in by_name]
    if unknown:
        known = ", ".join(c.name for c in table.columns)
        raise ValueError(f"no column {', '.join(map(repr, unknown))} in this table; its columns: {known}")
    return list(dict.fromkeys(by_name[w.strip().lower()] for w in wanted))


def pareto_front(table: Table) -> tuple[list[bool], MetricDef | None, MetricDef | None]:
    """Per row, whether it is on the Pareto front of the task's headline accuracy (higher is
    better) against energy per image (or latency; lower is better), with those two columns;
    all False when the table lacks either."""
    headline = headline_accuracy(table.task)
    index = {c.name: i for i, c in enumerate(table.columns)}
    costs = [c for c in table.columns if c.energy and c.interval] + [
        c for c in table.columns if c.kind == "latency"
    ]
    cost = next(
        (c for c in costs if any(cells[index[c.name]].value is not None for _, cells in table.rows)), None
    )
    if headline not in index or cost is None:
        return [False] * len(table.rows), None, None
    acc = [cells[index[headline]].value for _, cells in table.rows]
    spent = [cells[index[cost.name]].value for _, cells in table.rows]
    return pareto_mask(acc, spent), table.columns[index[headline]], cost


def sort_table(table: Table, column: str) -> Table:
    """``table`` with its rows sorted best first by ``column`` (a metric, or ``variant`` for
    the names' order): ascending when lower is better; rows without a value last."""
    if column.strip().lower() == "variant":
        return dataclasses.replace(table, rows=sorted(table.rows, key=lambda row: row[0].variant))
    col = pick_columns(table, [column])[0]
    i = table.columns.index(col)
    sign = -1.0 if col.higher_is_better else 1.0

    def key(row: tuple[Any, list[Cell]]) -> tuple[bool, float]:
        value = row[1][i].value
        return value is None, 0.0 if value is None else sign * value

    return dataclasses.replace(table, rows=sorted(table.rows, key=key))


def _finite(x: object) -> float | None:
    n = as_number(x)
    return n if n is not None and math.isfinite(n) else None


def _figure(col: MetricDef, record: Any, cell: Cell) -> dict[str, Any]:
    stored = record.metrics.get(col.name, {}) if cell.value is not None else {}
    out: dict[str, Any] = {"value": _finite(cell.value)}
    if col.interval:
        out |= {"ci_low": _finite(stored.get("ci_low")), "ci_high": _finite(stored.get("ci_high"))}
        out["noisy"] = bool(stored.get("noisy")) if cell.value is not None else None
    if col.energy:
        out |= {"method": stored.get("method"), "source": stored.get("source")}
    d = cell.delta
    out["delta"] = (
        None
        if d is None
        else {
            "change": _finite(d.change),
            "unit": d.unit,
            "kind": d.kind,
            "ci_low_pct": _finite(d.ci_low_pct),
            "ci_high_pct": _finite(d.ci_high_pct),
            "significant": d.significant,
            "rounds_disagree": d.rounds_disagree,
        }
    )
    return out


def table_data(table: Table) -> dict[str, Any]:
    """The table as JSON-ready data (module docstring)."""
    front, acc, cost = pareto_front(table)
    heads, recipes = recipe_columns([r for r, _ in table.rows])
    rows = []
    for (r, cells), recipe, on_front in zip(table.rows, recipes, front, strict=True):
        rows.append(
            {
                "variant": r.variant,
                "parent": r.parent,
                "delta_vs": against_of(table, r) or None,
                "status": r.status,
                "baseline": r.variant == table.baseline,
                "pareto_front": on_front,
                "recipe": dict(zip(heads, recipe, strict=True)),
                "runtime": r.runtime,
                "metrics": {
                    c.name: _figure(c, r, cell) for c, cell in zip(table.columns, cells, strict=True)
                },
                "error": r.error,
                "schema_version": r.schema_version,
                "device_id": r.device_id,
                "run_id": r.run_id,
            }
        )
    columns = [
        {
            "name": c.name,
            "header": c.header,
            "unit": c.unit,
            "scale": c.scale,
            "higher_is_better": c.higher_is_better,
            "method": table.methods[c.name] if c.energy else None,
            "delta_unit": "pp" if c.unit == "fraction" else "%",
        }
        for c in table.columns
    ]
    return {
        "suite": table.suite,
        "baseline": table.baseline,
        "task": table.task,
        "pareto": None if acc is None or cost is None else {"accuracy": acc.name, "cost": cost.name},
        "columns": columns,
        "rows": rows,
        "stages": [dict(zip(STAGE_HEADS, row, strict=True)) for row in stage_table(table)],
        "notes": table.notes,
    }


def render_json(table: Table) -> str:
    """The table as one JSON object (no NaN: a non-finite figure is ``null``)."""
    return json.dumps(table_data(table), indent=2, allow_nan=False)  # ASCII: no lone surrogate


def _flag(x: object) -> str:
    """A boolean as the leaderboard CSV spells it (``True``/``False``, what pandas reads as bool)."""
    return "" if x is None else str(bool(x))


def _g(x: object, scale: float = 1.0) -> str:
    n = as_number(x)
    return "" if n is None else f"{n * scale:.6g}"


def _delta_csv(d: Delta | None) -> list[str]:
    """CI low/high, significant and paired of a Δ of a metric that can be paired."""
    if d is None:
        return ["", "", "", ""]
    if d.kind != "paired":
        return ["", "", "", _flag(False)]
    lo, hi = (("" if x is None else f"{x:.2f}") for x in (d.ci_low_pct, d.ci_high_pct))
    return [lo, hi, _flag(d.significant), _flag(True)]


def _csv_head(table: Table) -> list[str]:
    """Column names: the metric columns are fixed (methods go in their own columns); recipe columns
    (sparsity, prune ratio, quantized, runtime) appear when a row has them."""
    head = ["variant", "parent", "delta_vs", "status", *recipe_columns([r for r, _ in table.rows])[0]]
    for c in table.columns:
        h = c.header
        head.append(h)
        head += [f"{h}_ci_low", f"{h}_ci_high"] if c.interval else []
        head.append(f"{h}_delta_pp" if c.unit == "fraction" else f"{h}_delta_pct")
        if c.interval:  # the metrics a record stores a paired Δ of
            head += [f"{h}_delta_ci_low_pct", f"{h}_delta_ci_high_pct"]
            head += [f"{h}_delta_significant", f"{h}_delta_paired", f"{h}_noisy", f"{h}_delta_spread_pct"]
        head += [f"{h}_method"] if c.energy else []
    return [*head, "schema_version", "error", "device_id", "run_id"]


def render_csv(table: Table) -> str:
    """The table as CSV: fixed metric columns, each with its CI, Δ, significance and method."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(_csv_head(table))
    recipes = recipe_columns([r for r, _ in table.rows])[1]
    for (r, cells), recipe in zip(table.rows, recipes, strict=True):
        # text from the record: one line, no control characters (quoting is the csv module's)
        vs = one_line(against_of(table, r))
        row: list[object] = [one_line(r.variant), one_line(r.parent or ""), vs, r.status]
        row += [one_line(x) for x in recipe]
        for c, (v, d) in zip(table.columns, cells, strict=True):
            m = r.metrics.get(c.name, {}) if v is not None else {}
            row.append(_g(v, c.scale))
            row += [_g(m.get("ci_low"), c.scale), _g(m.get("ci_high"), c.scale)] if c.interval else []
            row.append("" if d is None else f"{d.change:.2f}")
            if c.interval:
                spread = (
                    as_number(r.deltas.get(c.name, {}).get("spread_pct"))
                    if d is not None and d.kind == "paired"
                    else None
                )
                row += [*_delta_csv(d), _flag(m.get("noisy")), "" if spread is None else f"{spread:.2f}"]
            if c.energy:
                row.append(one_line(energy_method(r, c) or "") if v is not None else "")
        row += [r.schema_version, *(one_line(x) for x in (r.error or "", r.device_id, r.run_id))]
        w.writerow(row)
    return out.getvalue()
