"""The Green-AI comparison table: one row per variant, Δ % against the suite's baseline.

The shape of the YOLOv5 study's tables (precision, mAP50, params, size, GFLOPs, latency) with
energy and CO2 added. Columns, headers, display scales and decimals come from the metric
registry (``greenbench.metrics``); nothing about a metric is hard-coded here.

- Latency and energy per image show their median and 95 % CI, ``12.34 [11.90, 13.10]``.
- Their Δ is the paired one the record stores (time-adjacent blocks of the variant and the
  baseline, same processes), with its CI or ``(CI includes 0)``, when it was paired with the shown
  baseline's config. Otherwise a Δ from the two values is shown marked ``(unpaired)``, with a
  note: such figures come from different runs or processes, not paired in time.
- Each energy column says whether its figures are ``measured`` or ``estimated`` (``mixed``: each
  cell says); Δ % of an energy figure is left empty when its method or source differs from the
  baseline's, with a note saying so.

Every string from a record (variant names, errors, sources, stage parameters, methods) is
untrusted, and so is every note and header that quotes one. In all formats control characters
(newlines, ESC, C1 controls, line separators, bidi overrides) are folded to spaces. Markdown
escapes everything that could end a cell or start markup: ``\\ | _ * ` ~`` with a backslash
(``_`` inside a word is inert and stays), ``< >`` as ``&lt; &gt;``, and ``](`` (a link). LaTeX
is pure ASCII (``greenbench.report.latex``: special and non-ASCII characters as macros, so that
pdflatex compiles it); notes stay ``%`` comments. CSV quoting is the csv module's; its booleans
are spelt ``True``/``False``, as in the leaderboard. An accuracy's Δ is in percentage points.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from greenbench.errors import TERMINAL_UNSAFE
from greenbench.metrics import MetricDef, table_metrics
from greenbench.report.latex import latex_escape
from greenbench.report.recipe import recipe_columns
from greenbench.report.table_notes import as_number as _num
from greenbench.report.table_notes import table_notes
from greenbench.store import RunRecord

FORMATS = ("md", "csv", "latex", "json")

DeltaKind = Literal["paired", "unpaired", "values"]
DeltaAgainst = Literal["baseline", "parent"]  # what a table's Δ is against (a suite's ``tables:``)
DeltaUnit = Literal["%", "pp"]


@dataclass(frozen=True)
class Delta:
    """A figure's change against the baseline's figure, in ``unit``.

    change: in % (``unit`` "%"): for ``paired``, (median ratio of time-adjacent block pairs − 1)
    × 100; else (value − baseline) / |baseline| × 100. In percentage points (``unit`` "pp", an
    accuracy, a fraction): (value − baseline) × 100. ci_low_pct, ci_high_pct: the paired Δ's
    95 % CI, in %. significant: the paired CI excludes 0. kind: ``paired`` (stored,
    interleaved), ``unpaired`` (from two values of a metric that can be paired, measured apart)
    or ``values`` (from two values of a metric that is never paired: accuracy, complexity,
    training energy).
    """

    change: float
    kind: DeltaKind = "values"
    ci_low_pct: float | None = None
    ci_high_pct: float | None = None
    significant: bool | None = None
    rounds_disagree: bool = False
    unit: DeltaUnit = "%"


class Cell(NamedTuple):
    """One table cell: the stored value (in the metric's unit) and its Δ against the baseline."""

    value: float | None
    delta: Delta | None


@dataclass
class Table:
    """Render-agnostic table data: rows of cells per column, energy methods, notes."""

    suite: str
    baseline: str | None
    task: str
    columns: list[MetricDef]
    rows: list[tuple[RunRecord, list[Cell]]]
    methods: dict[str, str]  # metric name -> measured | estimated | mixed | n/a
    notes: list[str]
    #: columns left out of Markdown and LaTeX (a net column equal to its gross one in every row);
    #: CSV keeps its fixed columns
    hidden: frozenset[str] = frozenset()
    #: variant -> the variant its Δ is against, where that is not the baseline (``delta: parent``)
    against: dict[str, str] = field(default_factory=dict)
    #: what every format must say, the terminal's short footer too (a smoke run, rows skipped
    #: as unreadable); each is also one of ``notes``
    alerts: list[str] = field(default_factory=list)

    def header(self, col: MetricDef) -> str:
        """Column header; energy columns carry their method."""
        return f"{col.header} [{self.methods[col.name]}]" if col.energy else col.header


def _value(record: RunRecord, name: str) -> float | None:
    return _num(record.value(name)) if record.status == "ok" else None


def energy_method(record: RunRecord, col: MetricDef) -> str | None:
    """The method (measured, estimated) of ``record``'s figure of ``col``, if it has one."""
    m = record.metrics.get(col.name)
    return None if m is None or m.get("method") is None else str(m["method"])


def _pct(value: float, base: float | None) -> float | None:
    if base is None or base == 0:
        return None
    return (value - base) / abs(base) * 100.0


def _incomparable(record: RunRecord, base: RunRecord, col: MetricDef) -> str | None:
    """Why ``record``'s energy figure cannot be set against the baseline's, or None if it can."""
    if not col.energy:
        return None
    mine, theirs = record.metrics.get(col.name), base.metrics.get(col.name)
    if mine is None or theirs is None:
        return None
    who = "baseline" if base.variant == record.baseline else base.variant
    if mine.get("method") != theirs.get("method"):
        return f"{mine.get('method')} vs {who} {theirs.get('method')}"
    if mine.get("source") != theirs.get("source"):
        return f"{mine.get('source')} vs {who} {theirs.get('source')}"
    return None


def _stored_delta(record: RunRecord, base: RunRecord, col: MetricDef) -> tuple[Any, str]:
    """The stored Δ of ``col`` against ``base`` (the baseline's, or the parent's when ``base`` is
    the record's ``from:`` variant) and the key naming the config it was paired with."""
    if base.variant == record.baseline or base.variant != record.parent:
        return record.deltas.get(col.name), "baseline_key"
    found = record.measurement.get("parent_deltas")
    return (found.get(col.name) if isinstance(found, dict) else None), "parent_key"


def _paired(record: RunRecord, base: RunRecord, col: MetricDef) -> Delta | None:
    """The stored paired Δ of ``col`` if it was paired with the shown reference's config."""
    d, key = _stored_delta(record, base, col)
    if not isinstance(d, dict) or d.get("paired") is False or d.get(key) != base.variant_hash:
        return None
    pct = _num(d.get("delta_pct"))
    if pct is None:
        return None
    sig = d.get("significant")
    return Delta(
        pct,
        "paired",
        _num(d.get("delta_ci_low_pct")),
        _num(d.get("delta_ci_high_pct")),
        sig if isinstance(sig, bool) else None,
        bool(d.get("rounds_disagree")),
    )


def _unpaired_reason(record: RunRecord, base: RunRecord, col: MetricDef) -> str:
    """Why ``record`` has no paired Δ of ``col`` against ``base``."""
    old = [r.variant for r in (record, base) if r.schema_version < 2]
    if old:
        return f"schema-1 record of {' and '.join(dict.fromkeys(old))}"
    d, key = _stored_delta(record, base, col)
    who = key.removesuffix("_key")
    if isinstance(d, dict) and d.get(key) != base.variant_hash:
        return f"paired with {who} config {d.get(key)}, not the shown {who}'s {base.variant_hash}"
    if who == "parent":
        return f"{base.variant} was not measured interleaved with it"
    return "no paired Δ stored"


Reasons = dict[str, dict[str, list[str]]]  # variant -> reason -> column headers


def _cell(r: RunRecord, base: RunRecord | None, col: MetricDef, left_out: Reasons, unpaired: Reasons) -> Cell:
    v = _value(r, col.name)
    if v is None or base is None or r is base:
        return Cell(v, None)
    why = _incomparable(r, base, col)
    if why is not None:
        left_out.setdefault(r.variant, {}).setdefault(why, []).append(col.header)
        return Cell(v, None)
    paired = _paired(r, base, col)
    if paired is not None:
        return Cell(v, paired)
    if col.unit == "fraction":  # an accuracy: its change in percentage points, never relative
        base_v = _value(base, col.name)
        return Cell(v, None if base_v is None else Delta((v - base_v) * 100.0, unit="pp"))
    pct = _pct(v, _value(base, col.name))
    if pct is None:
        return Cell(v, None)
    if not col.interval:
        return Cell(v, Delta(pct))
    unpaired.setdefault(r.variant, {}).setdefault(_unpaired_reason(r, base, col), []).append(col.header)
    return Cell(v, Delta(pct, "unpaired"))


def _reasons(reasons: Reasons) -> str:
    return "; ".join(
        f"{v}: {', '.join(cols)} ({why})" for v, by in reasons.items() for why, cols in by.items()
    )


def build_table(
    records: Sequence[RunRecord],
    baseline: str | None,
    suite: str,
    task: str = "detect",
    *,
    columns: Sequence[MetricDef] | None = None,
    delta: DeltaAgainst = "baseline",
    pool: Sequence[RunRecord] = (),
) -> Table:
    """Rows in the given record order; Δ % against the ``baseline`` variant's ok record, or with
    ``delta="parent"`` against each row's ``from:`` variant (its ok record among ``records`` and
    ``pool``; a root variant, or one whose parent has no ok record, keeps the baseline).

    ``columns`` defaults to the registry's table columns of ``task``.
    """
    if delta not in ("baseline", "parent"):
        raise ValueError(f"unknown delta reference {delta!r}; expected 'baseline' or 'parent'")
    cols = list(columns) if columns is not None else table_metrics(task)
    base = next((r for r in records if r.variant == baseline and r.status == "ok"), None)
    ok = {r.variant: r for r in (*pool, *records) if r.status == "ok"}
    refs = {r.variant: _reference(r, base, ok, delta) for r in records}
    left_out: Reasons = {}
    unpaired: Reasons = {}
    rows = [(r, [_cell(r, refs[r.variant], c, left_out, unpaired) for c in cols]) for r in records]
    against = {
        v: ref.variant for v, ref in refs.items() if ref is not None and ref is not base and v != ref.variant
    }
    methods: dict[str, str] = {}
    for c in cols:
        found = {str(r.metrics[c.name].get("method")) for r in records if c.name in r.metrics}
        methods[c.name] = found.pop() if len(found) == 1 else ("mixed" if found else "n/a")
    notes = []
    if left_out:
        notes.append(
            "Δ % left out where the energy method or source differs from the baseline's (measured "
            "vs estimated figures are not comparable): " + _reasons(left_out)
        )
    if unpaired:
        notes.append(
            "Δ marked (unpaired) is taken from the two rows' values, which come from different "
            "runs/processes and are not paired in time (the host's speed may have moved between "
            "them): " + _reasons(unpaired)
        )
    zeros: Reasons = {}
    for r, cells in rows:
        for c, cell in zip(cols, cells, strict=True):
            if cell.delta is not None and shown_delta(c, cell) is None:
                zeros.setdefault(r.variant, {}).setdefault("shown as 0", []).append(c.header)
    if zeros:
        notes.append(
            "Δ not shown beside a value that rounds to 0 at the shown decimals (the CSV and JSON "
            "keep it): " + _reasons(zeros)
        )
    hidden = _duplicate_net_columns(cols, rows)
    absent = _absent_columns(cols, rows)
    if hidden:
        heads = ", ".join(c.header for c in cols if c.name in hidden)
        notes.append(
            f"{heads} left out: equal to the gross figures in every row (an idle power of 0: the "
            f"CPU-time estimate models only the process' own CPU time, or the idle baseline was "
            f"skipped); the CSV keeps them"
        )
    if against:
        notes.append(
            "Δ of a derived variant is against its parent (the variant it was made from, column "
            "'Δ vs'); a root variant's is against the baseline"
        )
    notes += table_notes(records, baseline, base)
    return Table(suite, baseline, task, cols, rows, methods, notes, hidden | absent, against)


def _reference(
    r: RunRecord, base: RunRecord | None, ok: dict[str, RunRecord], delta: DeltaAgainst
) -> RunRecord | None:
    """The record ``r``'s Δ is against: its parent's under ``delta="parent"``, else the baseline's."""
    if delta == "parent" and r.parent is not None and r.parent in ok:
        return ok[r.parent]
    return base


#: columns only some suites measure: left out of Markdown and LaTeX where no row has a value
_OPTIONAL = frozenset({"latency_total_ms"})


def _absent_columns(cols: Sequence[MetricDef], rows: list[tuple[RunRecord, list[Cell]]]) -> frozenset[str]:
    return frozenset(
        c.name
        for i, c in enumerate(cols)
        if c.name in _OPTIONAL and all(cells[i].value is None for _, cells in rows)
    )


def _duplicate_net_columns(
    cols: Sequence[MetricDef], rows: list[tuple[RunRecord, list[Cell]]]
) -> frozenset[str]:
    """Net columns whose every value equals its gross column's (``*_net_j`` beside ``*_j``)."""
    index = {c.name: i for i, c in enumerate(cols)}
    out = set()
    for name, i in index.items():
        gross = name.replace("_net_j", "_j") if name.endswith("_net_j") else None
        if gross is None or gross not in index:
            continue
        pairs = [(cells[i].value, cells[index[gross]].value) for _, cells in rows]
        if any(net is not None for net, _ in pairs) and all(net == g for net, g in pairs):
            out.add(name)
    return frozenset(out)


def format_value(col: MetricDef, value: float | None, record: RunRecord) -> str:
    """A cell's value text: display-scaled, with its CI and flags for interval metrics."""
    if value is None:
        return "—" if record.status == "ok" else "failed"
    text = col.display(value)
    if col.interval:
        m = record.metrics[col.name]
        lo, hi = _num(m.get("ci_low")), _num(m.get("ci_high"))
        if lo is not None and hi is not None:
            text += f" [{col.display(lo)}, {col.display(hi)}]"
        text += " (noisy)" if m.get("noisy") else ""
        text += " (rounds disagree)" if m.get("rounds_disagree") else ""
    return text


def shows_zero(col: MetricDef, value: float | None) -> bool:
    """Whether a non-zero ``value`` is displayed as zero at the column's decimals."""
    return value is not None and value != 0 and float(col.display(value)) == 0


def shown_delta(col: MetricDef, cell: Cell) -> Delta | None:
    """The Δ a display shows beside the value: no relative Δ beside a value displayed as zero (a
    change of "−96.8 %" beside "0.000" reads as nonsense; the CSV and JSON keep it). A change in
    percentage points is absolute: it stays."""
    d = cell.delta
    return None if d is not None and d.unit == "%" and shows_zero(col, cell.value) else d


def format_delta(delta: Delta | None) -> str:
    """A Δ's text: ``+12.3 % [+10.1, +14.6]``, ``+0.4 % (CI includes 0)``, ``+5.0 % (unpaired)``,
    ``+3.0 % (no CI: 1 round)``, ``+1.2 pp`` (an accuracy's change in percentage points)."""
    if delta is None:
        return ""
    text = f"{delta.change:+.1f} {delta.unit}"
    if delta.kind == "unpaired":
        return text + " (unpaired)"
    if delta.kind == "paired":
        if delta.significant is False:
            text += " (CI includes 0)"
        elif delta.ci_low_pct is not None and delta.ci_high_pct is not None:
            text += f" [{delta.ci_low_pct:+.1f}, {delta.ci_high_pct:+.1f}]"
        else:
            text += " (no CI: 1 round)"
        text += " (rounds disagree)" if delta.rounds_disagree else ""
    return text


def _display(table: Table) -> tuple[list[str], list[list[str]]]:
    """Headers and cell texts shared by Markdown and LaTeX (not yet escaped)."""
    recipe_heads, recipes = recipe_columns([r for r, _ in table.rows])
    vs = ["Δ vs"] if table.against else []
    heads = ["variant", *vs, *recipe_heads] + [
        table.header(c) for c in table.columns if c.name not in table.hidden
    ]
    body = []
    for (r, cells), recipe in zip(table.rows, recipes, strict=True):
        row = [r.variant + (" (baseline)" if r.variant == table.baseline else "")]
        if vs:
            row.append(against_of(table, r))
        row += recipe
        for c, (v, d) in zip(table.columns, cells, strict=True):
            if c.name in table.hidden:
                continue
            cell = format_value(c, v, r)
            if v is not None and c.energy and table.methods[c.name] == "mixed":
                cell += f" [{energy_method(r, c) or '?'}]"  # the header cannot say which
            d = shown_delta(c, Cell(v, d))
            if d is not None:
                cell += f" ({format_delta(d)})"
            row.append(cell)
        body.append(row)
    return heads, body


def against_of(table: Table, r: RunRecord) -> str:
    """The variant ``r``'s Δ is against ("" for the baseline itself)."""
    return "" if r.variant == table.baseline else table.against.get(r.variant, table.baseline or "")


def render(table: Table, fmt: str = "md") -> str:
    """The table as Markdown (value and Δ in one cell), CSV (separate Δ, CI and method columns),
    LaTeX or JSON (``table_data``); ValueError for another format."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if fmt in ("csv", "json"):
        from greenbench.report.table_data import render_csv, render_json

        return render_csv(table) if fmt == "csv" else render_json(table)
    heads, body = _display(table)
    if fmt == "latex":
        return _latex(table, heads, body)
    lines = [_markdown(heads, body)]
    stage_rows = stage_table(table)
    if stage_rows:
        lines += ["", "Training stages (energy of each stage's window; gross and net of idle):", ""]
        lines.append(_markdown(STAGE_HEADS, stage_rows, STAGE_ALIGN))
    lines.append("")
    lines += [f"- {md_escape(n)}" for n in table.notes]
    return "\n".join(lines)


STAGE_HEADS = ["variant", "stage", "params", "duration_s", "E_J", "E_net_J", "method", "artifact"]
STAGE_ALIGN = ["left"] * 3 + ["right"] * 3 + ["left"] * 2


def _f1(x: object) -> str:
    n = _num(x)
    return "—" if n is None else f"{n:.1f}"


def stage_table(table: Table) -> list[list[str]]:
    """One row per training stage of every ok variant in the table."""
    rows = []
    for r, _ in table.rows:
        for st in r.stages if r.status == "ok" else []:
            if "energy_j" not in st:
                continue
            given = st.get("params")
            params = ", ".join(f"{k}={v}" for k, v in given.items()) if isinstance(given, dict) else ""
            rows.append(
                [
                    r.variant,
                    str(st.get("name")),
                    params or "—",
                    _f1(st.get("duration_s")),
                    _f1(st.get("energy_j")),
                    _f1(st.get("energy_net_j")),
                    str(st.get("method")),
                    "reused from cache" if st.get("cached") else "made in this run",
                ]
            )
    return rows


# C0 and C1 controls (ESC included), DEL, line/paragraph separators, bidi embeddings/overrides/isolates,
# lone surrogates (no encoder takes them: printing one would fail)
_CONTROL = re.compile(TERMINAL_UNSAFE.pattern + "+")  # a run of them becomes one space
_MD_SPECIAL = re.compile(r"[\\|<>*`~]|_+")
# entities, not backslashes: every Markdown flavour (Python-Markdown too) reads "&lt;" as text
_MD_ENTITY = {"<": "&lt;", ">": "&gt;"}


def _md_char(m: re.Match[str]) -> str:
    """One special character escaped; a run of ``_`` between two letters or digits (``latency_ms``)
    is left alone: CommonMark never reads such a run as emphasis."""
    found, text = m.group(), m.string
    if found in _MD_ENTITY:
        return _MD_ENTITY[found]
    if found[0] == "_":
        before, after = text[m.start() - 1 : m.start()], text[m.end() : m.end() + 1]
        if before.isalnum() and after.isalnum():
            return found
    return "".join("\\" + c for c in found)


def one_line(text: str) -> str:
    """Newlines and other control characters folded to single spaces."""
    return _CONTROL.sub(" ", text)


def md_escape(text: str) -> str:
    """``text`` as literal Markdown on one line: nothing in it can end a table cell or row, or
    start emphasis, code, HTML or a link."""
    escaped = _MD_SPECIAL.sub(_md_char, one_line(text))
    return escaped.replace("](", "]\\(")  # a link needs "](" adjacent; "[x] (y)" stays as it is


def _markdown(heads: list[str], body: list[list[str]], align: list[str] | None = None) -> str:
    """A pipe table; ``align``: per column, default the first left and the rest right."""
    from tabulate import tabulate  # imported when rendering: ~45 ms that `greenbench measure` need not pay

    align = align or ["left"] + ["right"] * (len(heads) - 1)
    return tabulate(
        [[md_escape(c) for c in row] for row in body],
        headers=[md_escape(h) for h in heads],
        tablefmt="pipe",
        disable_numparse=True,
        colalign=align,
    )


def _latex(table: Table, heads: list[str], body: list[list[str]]) -> str:
    from tabulate import tabulate

    tex = tabulate(
        [[latex_escape(c) for c in row] for row in body],  # escaped here: "latex_raw" adds nothing
        headers=[latex_escape(h) for h in heads],
        tablefmt="latex_raw",
        disable_numparse=True,
        colalign=["left"] + ["right"] * (len(heads) - 1),
    )
    return "\n".join([tex, *(f"% {latex_escape(n)}" for n in table.notes)])
