"""The comparison table at a terminal: one number per cell, cut to fit the width (rich).

What the peers do at a terminal: pytest-benchmark puts units in headers and colours best and
worst, pyperf says which change is significant, asv marks ``~`` what it cannot tell, rich fits a
table to the screen. Here:

- one number per cell: the value, and beside it a ``Δ%`` (an accuracy's ``Δpp``, percentage
  points) column against the baseline; ``--ci`` adds the 95 % intervals;
- units in the headers (the registry's header, its unit on a second line), never in cells;
- a Δ is green (better) or red (worse) when it is certain: its paired interval excludes 0, or it
  is an exact difference (parameters, accuracy on the same split); grey when the interval
  includes 0, when it was not paired in time or has no interval; ``~`` before a noisy value;
- ``◆`` marks the baseline, ``★`` the Pareto front of the headline accuracy against energy per
  image (latency when there is no energy figure);
- columns are dropped, least important first (``IMPORTANCE``), until the table fits the width,
  and the footer says how many (``--wide`` shows them all); the energy method ("estimated") is
  said once, in the footer, not per cell.

The complete data, every column with its intervals and every note, is in ``--format
md|csv|latex|json``. Every string from a record is folded to one line and given to rich as
``Text``, never as markup: a variant named ``[red]x`` prints as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich import box
from rich.console import Console, Group
from rich.measure import Measurement
from rich.table import Table as RichTable
from rich.text import Text

from greenbench.errors import TERMINAL_UNSAFE
from greenbench.metrics import MetricDef, headline_accuracy
from greenbench.report.recipe import recipe_columns
from greenbench.report.table_data import TermView, pareto_front, pick_columns
from greenbench.report.tables import Cell, Delta, Table, against_of, shown_delta

if TYPE_CHECKING:
    from greenbench.store import RunRecord

#: metrics in the order they are kept when the width is short (after the headline accuracy);
#: a metric not named here comes after these, in table order, and each Δ right after its value
IMPORTANCE = (
    "latency_ms",
    "energy_per_image_j",
    "params",
    "train_energy_j",
    "gflops",
    "size_mb",
    "co2_train_g",
)
BASELINE_MARK, FRONT_MARK, NOISY_MARK = "◆", "★", "~"
_RECIPE_WIDTH = 16  # characters of a recipe cell (runtime settings, a quantization mode)
_CONTROL = TERMINAL_UNSAFE


@dataclass
class _Column:
    key: str  # what --columns and the footer call it
    header: str
    rank: float  # importance: lower is kept longer
    cells: list[Text]
    justify: str = "right"


def _line(text: str) -> str:
    return _CONTROL.sub(" ", text)


def _header(col: MetricDef) -> str:
    """``latency_ms`` as ``latency`` over ``ms``: the unit on its own line (an accuracy has none)."""
    stem, sep, unit = col.header.rpartition("_")
    return f"{stem}\n{unit}" if sep and stem and col.unit != "fraction" else col.header


def _delta_style(col: MetricDef, delta: Delta) -> str:
    certain = (delta.kind == "paired" and delta.significant is True) or delta.kind == "values"
    if not certain or delta.change == 0 or col.higher_is_better is None:
        return "dim"
    return "green" if (delta.change > 0) == col.higher_is_better else "red"


def _delta_text(col: MetricDef, delta: Delta | None, ci: bool) -> Text:
    if delta is None:
        return Text("")
    text = f"{delta.change:+.1f}"
    if ci and delta.kind == "paired" and delta.ci_low_pct is not None and delta.ci_high_pct is not None:
        text += f" [{delta.ci_low_pct:+.1f}, {delta.ci_high_pct:+.1f}]"
    return Text(text, style=_delta_style(col, delta))


def _value_text(col: MetricDef, record: RunRecord, value: float | None, ci: bool) -> Text:
    if value is None:
        return Text("—", style="dim")
    stored = record.metrics.get(col.name, {})
    noisy = bool(stored.get("noisy") or stored.get("rounds_disagree"))
    text = (NOISY_MARK if noisy else "") + col.display(value)
    low, high = stored.get("ci_low"), stored.get("ci_high")
    if ci and col.interval and isinstance(low, int | float) and isinstance(high, int | float):
        text += f" [{col.display(low)}, {col.display(high)}]"
    return Text(text, style="yellow" if noisy else "")


def _columns(table: Table, view: TermView, front: list[bool]) -> tuple[_Column, list[_Column]]:
    """The variant column and the other columns in display order, each with its importance."""
    records = [r for r, _ in table.rows]
    names = []
    for r, on_front in zip(records, front, strict=True):
        mark = BASELINE_MARK if r.variant == table.baseline else (FRONT_MARK if on_front else " ")
        style = "bold" if r.variant == table.baseline else ("red" if r.status != "ok" else "")
        names.append(Text(f"{mark} {_line(r.variant)}", style=style))
    variant = _Column("variant", "variant", 0, names, "left")
    chosen = pick_columns(table, view.columns) if view.columns else None
    shown = chosen or [c for c in table.columns if c.name not in table.hidden]
    headline = headline_accuracy(table.task)
    order = [headline, *IMPORTANCE]
    other = [c.name for c in table.columns if c.name not in order]

    def rank(col: MetricDef) -> float:
        known = order + other
        return 2.0 * known.index(col.name) + 1 if col.name in known else 99.0

    out: list[_Column] = []
    if table.against:  # a table with delta: parent: what each row's Δ is against, kept as long as a Δ
        vs = [Text(_line(against_of(table, r)), style="dim") for r in records]
        out.append(_Column("delta_vs", "Δ vs", 0.5, vs, "left"))
    if chosen is None:
        heads, cells = recipe_columns(records)
        for i, head in enumerate(heads):
            texts = [Text(_line(row[i]).split("(")[0][:_RECIPE_WIDTH]) for row in cells]
            # after the training energy; the runtime, which the variant name may not say, first
            out.append(_Column(head, head, 10.0 if head == "runtime" else 10.1 + i / 10, texts, "left"))
    index = {c.name: i for i, c in enumerate(table.columns)}
    for col in shown:
        row_cells: list[tuple[RunRecord, Cell]] = [(r, cells[index[col.name]]) for r, cells in table.rows]
        ok = [r.status == "ok" for r, _ in row_cells]
        values = [
            _value_text(col, r, cell.value, view.ci) if good else Text("—", style="dim")
            for (r, cell), good in zip(row_cells, ok, strict=True)
        ]
        out.append(_Column(col.name, _header(col), rank(col), values))
        deltas = [shown_delta(col, cell) for _, cell in row_cells]
        if any(d is not None for d in deltas):
            unit = "pp" if any(d is not None and d.unit == "pp" for d in deltas) else "%"
            texts = [_delta_text(col, d, view.ci) for d in deltas]
            out.append(_Column(f"Δ {col.name}", f"Δ\n{unit}", rank(col) + 0.5, texts))
    return variant, out


def _rich_table(variant: _Column, columns: list[_Column], width: int | None) -> RichTable:
    """The rich table; ``width``: the variant column takes at most half of it (None: no limit)."""
    grid = RichTable(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1), highlight=False)
    grid.add_column(
        variant.header,
        justify="left",
        no_wrap=True,
        overflow="ellipsis",
        max_width=None if width is None else max(12, width // 2),
    )
    for col in columns:
        grid.add_column(col.header, justify="left" if col.justify == "left" else "right", no_wrap=True)
    for i, name in enumerate(variant.cells):
        grid.add_row(name, *(col.cells[i] for col in columns))
    return grid


def _natural_width(console: Console, grid: RichTable) -> int:
    return Measurement.get(console, console.options.update(width=10_000), grid).maximum


def _fit(
    console: Console, variant: _Column, columns: list[_Column], width: int
) -> tuple[RichTable, list[_Column]]:
    """The table with the least important columns dropped until it fits ``width``; and those."""
    kept, dropped = list(columns), []
    grid = _rich_table(variant, kept, width)
    while kept and _natural_width(console, grid) > width:
        worst = max(kept, key=lambda c: c.rank)
        kept.remove(worst)
        dropped.append(worst)
        grid = _rich_table(variant, kept, width)
    return grid, dropped


def _energy_footer(table: Table) -> str | None:
    """Each energy method with its sources, once (never per cell)."""
    said: dict[str, dict[str, list[str]]] = {}  # method -> sources, headers
    for r, _ in table.rows:
        for col in table.columns:
            m = r.metrics.get(col.name)
            if col.energy and isinstance(m, dict) and m.get("method") and r.status == "ok":
                found = said.setdefault(_line(str(m["method"])), {"sources": [], "heads": []})
                source = _line(str(m.get("source") or ""))
                found["sources"] += [] if not source or source in found["sources"] else [source]
                found["heads"] += [] if col.header in found["heads"] else [col.header]
    if not said:
        return None
    parts = [
        f"{method}"
        + (f" ({', '.join(found['sources'])})" if found["sources"] else "")
        + ("" if len(said) == 1 else f": {', '.join(found['heads'])}")
        for method, found in said.items()
    ]
    return ("energy and CO2: " if len(said) == 1 else "energy: ") + "; ".join(parts)


def _footer(
    table: Table, dropped: list[_Column], acc: MetricDef | None, cost: MetricDef | None
) -> list[Text]:
    """Legend, energy method, hidden columns, failures and alerts: said once, under the table."""
    legend = f"{BASELINE_MARK} baseline"
    if acc is not None and cost is not None:
        legend += f"  {FRONT_MARK} Pareto front ({acc.header} vs {cost.header.split('_')[0]})"
    legend += f"  {NOISY_MARK} noisy  Δ vs baseline (% or pp, percentage points): "
    lines = [
        Text.assemble(
            legend,
            ("better", "green"),
            "/",
            ("worse", "red"),
            " when certain, ",
            ("grey", "dim"),
            " when not",
        )
    ]
    energy = _energy_footer(table)
    if energy is not None:
        lines.append(Text(energy))
    if dropped:
        names = ", ".join(c.key for c in dropped if not c.key.startswith("Δ "))
        deltas = sum(c.key.startswith("Δ ") for c in dropped)
        extra = f" and {deltas} Δ" if names and deltas else (f"{deltas} Δ" if deltas else "")
        lines.append(Text(f"{len(dropped)} columns hidden (--wide): {names}{extra}", style="bold"))
    for r, _ in table.rows:
        if r.status != "ok":
            lines.append(
                Text(f"{_line(r.variant)} FAILED: {_line(r.error or 'no error stored')}", style="red")
            )
    lines += [Text(_line(note), style="bold yellow") for note in table.alerts]
    lines.append(Text(f"{len(table.notes)} notes on method and provenance: --format md", style="dim"))
    return lines


def render_terminal(table: Table, view: TermView, console: Console) -> str:
    """The table as ``console`` prints it (colours when it is a terminal) at ``view.width``,
    cut as the module docstring says; wider when ``view`` asks for every column (``--wide``,
    ``--columns``)."""
    front, acc, cost = pareto_front(table)
    variant, columns = _columns(table, view, front)
    width = view.width
    if view.wide or view.columns:
        grid, dropped = _rich_table(variant, columns, None), list[_Column]()
        width = max(width, _natural_width(console, grid))
    else:
        grid, dropped = _fit(console, variant, columns, width)
    old = console.width
    console.width = width
    try:
        with console.capture() as capture:
            console.print(Group(grid, Text(""), *_footer(table, dropped, acc, cost)), crop=True)
    finally:
        console.width = old
    return capture.get().rstrip("\n")
