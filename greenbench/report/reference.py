"""A paper's reference figures beside greenbench's (``greenbench table SUITE --paper CSV``).

Absolute figures cannot all agree across machines, runtimes and counting conventions (the YOLOv5
study's paper timed its models on its own CPU and counted GFLOPs with thop); the relations between
rows can.
So each side is shown as ratios to its own baseline: the paper's row for the suite's baseline
variant, and greenbench's record of that variant. 1.00 is the baseline; 0.58 means 58 % of it.

The reference CSV (``suites/yolo_thws_paper.csv``): ``#`` comment lines first (where the numbers
come from), then a header with ``paper_table``, ``paper_model``, ``variant`` (the suite's variant
the row stands for) and the figures in named units: ``params_m`` (millions), ``gflops``,
``size_mb``, ``cpu_time_ms``, and the task's headline accuracy metric under its own name
(``map50`` for detection: a fraction). Other columns (``precision``, ``sparsity_lambda``, …) are
kept as the paper's description and not compared.

greenbench's CPU time is the record's ``latency_ms`` at its ``measure.latency.scope``: ``total``
(per image from its file, decoding, preprocessing, the model and postprocessing, as the paper's
whole-detection CPU time) when the baseline has an ``ok`` record at scope ``total``, else ``model``
(one forward pass on a ready tensor); the table says which. The other figures come from each
variant's newest ``ok`` record.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from greenbench.errors import GreenbenchError
from greenbench.metrics import get_metric
from greenbench.report.table_notes import as_number
from greenbench.store import RunRecord

#: CSV column -> (greenbench metric, factor from the metric's unit to the column's unit)
FIXED_FIGURES: dict[str, tuple[str, float]] = {
    "params_m": ("params", 1e-6),
    "gflops": ("gflops", 1.0),
    "size_mb": ("size_mb", 1.0),
    "cpu_time_ms": ("latency_ms", 1.0),
}
HEADS = {"params_m": "params", "gflops": "GFLOPs", "size_mb": "size", "cpu_time_ms": "CPU time"}
REQUIRED = ("paper_table", "paper_model", "variant")
MAX_CSV_BYTES = 1_000_000


@dataclass(frozen=True)
class PaperRow:
    """One model of the paper: its table, name, the suite variant it stands for, its CSV line and
    its figures by CSV column (None: the paper gives none)."""

    table: str
    model: str
    variant: str
    line: int
    figures: dict[str, float | None]


@dataclass(frozen=True)
class Paper:
    """The reference CSV: its rows in file order and the figure columns compared, in order
    (``FIXED_FIGURES``' columns, then the headline accuracy column)."""

    path: Path
    rows: tuple[PaperRow, ...]
    columns: tuple[str, ...]

    def metric(self, column: str) -> tuple[str, float]:
        """The greenbench metric a column compares with, and the factor to the column's unit."""
        return FIXED_FIGURES.get(column, (column, 1.0))


def _bad(path: Path, line: int | None, what: str) -> GreenbenchError:
    where = f"{path}:{line}" if line is not None else str(path)
    return GreenbenchError(f"reference figures {where}: {what}")


def _number(path: Path, line: int, column: str, text: str) -> float | None:
    if not text.strip():
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise _bad(path, line, f"column '{column}': expected a non-negative number or nothing, got {text!r}.")
    return value


def read_paper(path: Path, headline: str) -> Paper:
    """Read the reference CSV; ``headline`` is the task's headline accuracy metric (its column).
    A missing column, a non-number, an empty or repeated variant is an error naming the line."""
    try:
        if path.stat().st_size > MAX_CSV_BYTES:
            raise _bad(path, None, f"over {MAX_CSV_BYTES} bytes; a reference table is a few kB.")
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise _bad(path, None, f"cannot be read as UTF-8 text ({e}); pass the reference CSV.") from None
    numbered = [(n, line) for n, line in enumerate(text.splitlines(), 1) if not line.lstrip().startswith("#")]
    numbered = [(n, line) for n, line in numbered if line.strip()]
    if not numbered:
        raise _bad(path, None, "no header and no rows.")
    reader = csv.reader(io.StringIO("\n".join(line for _, line in numbered)))
    header = [h.strip() for h in next(reader)]
    columns = (*FIXED_FIGURES, headline)
    missing = [c for c in (*REQUIRED, *columns) if c not in header]
    if missing:
        raise _bad(
            path,
            numbered[0][0],
            f"the header lacks {', '.join(missing)}; it needs {', '.join((*REQUIRED, *columns))}.",
        )
    rows: list[PaperRow] = []
    seen: set[str] = set()
    for (line, _), cells in zip(numbered[1:], reader, strict=True):
        if len(cells) != len(header):
            raise _bad(path, line, f"{len(cells)} cells for {len(header)} columns.")
        row = dict(zip(header, (c.strip() for c in cells), strict=True))
        variant = row["variant"]
        if not variant or variant in seen:
            raise _bad(path, line, f"variant {variant!r}: each row names a different suite variant.")
        seen.add(variant)
        figures = {c: _number(path, line, c, row[c]) for c in columns}
        rows.append(PaperRow(row["paper_table"], row["paper_model"], variant, line, figures))
    if not rows:
        raise _bad(path, None, "a header and no rows.")
    return Paper(path, tuple(rows), columns)


def check_variants(paper: Paper, variants: Sequence[str], baseline: str | None, suite: str) -> None:
    """Every row's variant is one of the suite's (when the suite file is known), and the suite's
    baseline has a row: the paper's ratios need it."""
    unknown = [r for r in paper.rows if variants and r.variant not in variants]
    if unknown:
        names = ", ".join(f"{r.variant!r} (line {r.line})" for r in unknown)
        raise _bad(
            paper.path, None, f"variant(s) {names} are not in suite '{suite}'; fix the variant column."
        )
    if baseline not in {r.variant for r in paper.rows}:
        raise _bad(
            paper.path,
            None,
            f"no row for the suite's baseline {baseline!r}: the paper's ratios are to that row.",
        )


def _scope(r: RunRecord) -> str:
    settings = r.measurement.get("settings", {}).get("latency", {})
    return str(settings.get("scope") or "model")


def _timed_at(r: RunRecord, scope: str) -> bool:
    """``r`` has a latency at ``scope``: its own scope, or both (``latency_total_ms`` beside)."""
    return _scope(r) in (scope, "both")


def _latency_metric(r: RunRecord, scope: str) -> str:
    """The metric holding ``r``'s latency at ``scope``: ``latency_total_ms`` in a scope-both record."""
    return "latency_total_ms" if scope == "total" and _scope(r) == "both" else "latency_ms"


@dataclass(frozen=True)
class Side:
    """greenbench's records of one variant: its newest ``ok`` record, its newest ``ok`` record at
    the table's latency scope, and the status of its newest record (None: no record)."""

    ok: RunRecord | None
    timed: RunRecord | None
    status: str | None


def _sides(records: Sequence[RunRecord], scope: str) -> dict[str, Side]:
    ok: dict[str, RunRecord] = {}
    timed: dict[str, RunRecord] = {}
    status: dict[str, str] = {}
    for r in records:  # oldest first
        status[r.variant] = r.status
        if r.status == "ok":
            ok[r.variant] = r
            if _timed_at(r, scope):
                timed[r.variant] = r
    return {v: Side(ok.get(v), timed.get(v), s) for v, s in status.items()}


def latency_scope(records: Sequence[RunRecord], baseline: str | None) -> str:
    """``total`` when the baseline has an ok record timed at scope total (or both), else ``model``."""
    found = any(r.variant == baseline and r.status == "ok" and _timed_at(r, "total") for r in records)
    return "total" if found else "model"


@dataclass(frozen=True)
class Figure:
    """One figure of one row: the paper's value and ratio, greenbench's value (in the column's
    unit) and ratio, and why greenbench has no ratio (``not measured``, ``failed``, …)."""

    paper: float | None
    paper_ratio: float | None
    ours: float | None
    ours_ratio: float | None
    why: str = ""


@dataclass
class Reference:
    """The side-by-side table: per paper row its figures by column, the scope of the CPU time,
    the baselines' records, and notes."""

    paper: Paper
    baseline: str
    scope: str
    rows: list[tuple[PaperRow, Side, dict[str, Figure]]]
    base: Side
    notes: list[str]


def _ratio(value: float | None, base: float | None) -> float | None:
    return None if value is None or base is None or base == 0 else value / base


def _ours(paper: Paper, column: str, side: Side, scope: str = "model") -> tuple[float | None, str]:
    """greenbench's value of ``column`` (in the column's unit) for ``side``, or why there is none;
    ``scope``: the latency scope the CPU time is taken at."""
    if side.status is None:
        return None, "not measured"
    if side.ok is None:
        return None, "failed"
    record = side.timed if column == "cpu_time_ms" else side.ok
    if record is None:
        return None, "other scope"
    name, factor = paper.metric(column)
    if column == "cpu_time_ms":
        name = _latency_metric(record, scope)
    value = as_number(record.value(name))
    return (None, "—") if value is None else (value * factor, "")


def build_reference(paper: Paper, records: Sequence[RunRecord], baseline: str) -> Reference:
    """The paper's rows beside ``records`` (every record of the suite on the device, oldest
    first), each side as ratios to its own ``baseline`` row."""
    scope = latency_scope(records, baseline)
    sides = _sides(records, scope)
    paper_base = next(r for r in paper.rows if r.variant == baseline)
    base = sides.get(baseline, Side(None, None, None))
    base_ours = {c: _ours(paper, c, base, scope)[0] for c in paper.columns}
    rows = []
    for row in paper.rows:
        side = sides.get(row.variant, Side(None, None, None))
        figures = {}
        for c in paper.columns:
            ours, why = _ours(paper, c, side, scope)
            if ours is not None and _ratio(ours, base_ours[c]) is None:
                why = "no baseline" if base_ours[c] is None else "baseline 0"
            value = row.figures[c]
            figures[c] = Figure(
                value, _ratio(value, paper_base.figures[c]), ours, _ratio(ours, base_ours[c]), why
            )
        rows.append((row, side, figures))
    return Reference(paper, baseline, scope, rows, base, _notes(paper, paper_base, base, scope, sides))


def _display(column: str, value: float | None) -> str:
    if value is None:
        return "—"
    if column == "params_m":
        return f"{value:.2f} M"
    if column == "gflops":
        return f"{value:.4g}"
    unit = {"size_mb": " MB", "cpu_time_ms": " ms"}.get(column, "")
    return f"{value:.4g}{unit}" if unit else f"{value:.3f}"


def _head(column: str) -> str:
    return HEADS.get(column) or get_metric(column).header


def _notes(paper: Paper, paper_base: PaperRow, base: Side, scope: str, sides: dict[str, Side]) -> list[str]:
    def figures(values: dict[str, float | None]) -> str:
        return ", ".join(f"{_head(c)} {_display(c, values[c])}" for c in paper.columns)

    notes = [
        f"Each cell is paper / greenbench, each a ratio to its own side's baseline (1.00 = the "
        f"baseline; 0.58 = 58 % of it): the paper's '{paper_base.model}', greenbench's "
        f"'{paper_base.variant}'. Paper figures: {paper.path}.",
        f"Baselines: paper {figures(paper_base.figures)}; "
        + (
            f"greenbench {figures({c: _ours(paper, c, base, scope)[0] for c in paper.columns})}"
            f"{_imgsz(base.ok)}."
            if base.ok is not None
            else f"greenbench has no ok record of '{paper_base.variant}': no ratios on its side."
        ),
    ]
    timed = base.timed
    if scope == "total" and timed is not None:
        both = _scope(timed) == "both"
        described = timed.measurement.get("total_runtime" if both else "runtime", {})
        per_call = described.get("per_call")
        what = f"scope total ({per_call})" if per_call else "scope total: per image from its file"
        notes.append(
            f"greenbench's CPU time: {_latency_metric(timed, scope)} at {what}, end to end per image "
            f"as an application sees it; {_threads(timed)}."
        )
    else:
        notes.append(
            "greenbench's CPU time: latency_ms at scope model (one forward pass on a ready tensor, "
            "without the decoding, pre- and postprocessing that an end-to-end CPU time per image "
            "includes); run the suite with measure.latency.scope: total to compare like with like"
            + (f"; {_threads(timed)}." if timed is not None else ".")
        )
    rows = {r.variant for r in paper.rows}
    other = sorted(v for v, s in sides.items() if v in rows and s.ok is not None and s.timed is None)
    if other:
        notes.append(f"CPU time 'other scope': no ok record at scope {scope} of {', '.join(other)}.")
    smoke = {str(n) for s in sides.values() if s.ok is not None for n in (s.ok.smoke or {}).get("notes", [])}
    if any(s.ok is not None and s.ok.smoke is not None for s in sides.values()):
        notes.insert(
            0,
            "SMOKE RUN: greenbench's side comes from synthetic data, one epoch per training stage and "
            "tiny images: it shows that every row runs, not how it compares.",
        )
        notes[1:1] = sorted(smoke)
    return notes


def _imgsz(r: RunRecord) -> str:
    """`` (GFLOPs at N px)`` when the record says at which input size it counted them."""
    px = r.metrics.get("gflops", {}).get("imgsz")
    return f" (GFLOPs at {px} px)" if px is not None else ""


def _threads(r: RunRecord) -> str:
    lat = r.metrics.get("latency_ms", {})
    return f"{lat.get('threads', '?')} thread(s), {r.device.get('device')} ({r.device.get('cpu_model')})"


def _ratio_text(x: float | None, why: str) -> str:
    return f"{x:.2f}" if x is not None else (why or "—")


def table_rows(ref: Reference) -> tuple[list[str], list[list[str]]]:
    """Headers and cells of the Markdown and LaTeX tables: per figure one cell, the paper's ratio
    then greenbench's (``0.70 / 0.44``)."""
    heads = ["paper model", "variant"]
    for c in ref.paper.columns:
        heads.append(f"{_head(c)} ({ref.scope})" if c == "cpu_time_ms" else _head(c))
    body = []
    for row, _side, figures in ref.rows:
        cells = [row.model, row.variant + (" (baseline)" if row.variant == ref.baseline else "")]
        for c in ref.paper.columns:
            f = figures[c]
            cells.append(f"{_ratio_text(f.paper_ratio, '')} / {_ratio_text(f.ours_ratio, f.why)}")
        body.append(cells)
    return heads, body


def _g(x: float | None, digits: int = 6) -> str:
    return "" if x is None else f"{x:.{digits}g}"


def render_reference(ref: Reference, fmt: str) -> str:
    """The table as Markdown (ratios, notes as a list), CSV (values and ratios of both sides in
    the CSV's units, one row per paper model) or LaTeX (notes as ``%`` comments)."""
    from tabulate import tabulate

    from greenbench.report.tables import latex_escape, md_escape

    if fmt == "csv":
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        head = ["paper_table", "paper_model", "variant", "greenbench_status", "latency_scope"]
        for c in ref.paper.columns:
            head += [f"{c}_paper", f"{c}_greenbench", f"{c}_ratio_paper", f"{c}_ratio_greenbench"]
        w.writerow(head)
        for row, side, figures in ref.rows:
            cells: list[Any] = [row.table, row.model, row.variant, side.status or "not measured", ref.scope]
            for c in ref.paper.columns:
                f = figures[c]
                cells += [_g(f.paper), _g(f.ours), _g(f.paper_ratio, 4), _g(f.ours_ratio, 4)]
            w.writerow(cells)
        return out.getvalue()
    heads, body = table_rows(ref)
    align = ["left", "left"] + ["right"] * (len(heads) - 2)
    if fmt == "latex":
        tex = tabulate(
            [[latex_escape(c) for c in row] for row in body],
            headers=[latex_escape(h) for h in heads],
            tablefmt="latex_raw",
            disable_numparse=True,
            colalign=align,
        )
        return "\n".join([tex, *(f"% {latex_escape(n)}" for n in ref.notes)])
    text = tabulate(
        [[md_escape(c) for c in row] for row in body],
        headers=[md_escape(h) for h in heads],
        tablefmt="pipe",
        disable_numparse=True,
        colalign=align,
    )
    return "\n".join([text, "", *(f"- {md_escape(n)}" for n in ref.notes)])


def reference_text(
    paper_file: Path,
    records: Sequence[RunRecord],
    suite: str,
    variants: Sequence[str],
    baseline: str,
    fmt: str,
) -> str:
    """``paper_file``'s rows beside ``records`` (the suite's records on one device, oldest first),
    rendered as ``fmt``; ``variants``: the suite file's (empty: not known, not checked)."""
    from greenbench.metrics import headline_accuracy

    task = records[-1].task
    headline = headline_accuracy(task)
    if headline is None:
        raise GreenbenchError(
            f"the records are of task {task!r}, which is not installed here: no headline figure."
        )
    paper = read_paper(paper_file, headline)
    check_variants(paper, variants, baseline, suite)
    return render_reference(build_reference(paper, records, baseline), fmt)
