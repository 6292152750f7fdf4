"""The Green-AI comparison table: one row per variant, Δ % against the suite's baseline.

The shape of the YOLOv5 study's tables (precision, mAP50, params, size, GFLOPs, latency) with
energy and CO2 added. Values keep their units in the column names; each energy column says
whether its figures are ``measured`` or ``estimated`` (``mixed``: each cell says). Δ % of an energy
figure is left empty when its method or source differs from the baseline's, with a note saying so.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from greenbench.store import RunRecord

FORMATS = ("md", "csv", "latex")


@dataclass(frozen=True)
class Column:
    """A table column: metric name, header with unit, display scale and decimals."""

    metric: str
    header: str
    scale: float = 1.0
    digits: int = 3
    energy: bool = False  # header carries the method; Δ % only against the same method and source


COLUMNS: tuple[Column, ...] = (
    Column("precision", "P", digits=3),
    Column("map50", "mAP50", digits=3),
    Column("params", "params_M", 1e-6, 3),
    Column("size_mb", "size_MB", digits=2),
    Column("gflops", "GFLOPs", digits=2),
    Column("latency_ms", "latency_ms", digits=2),
    Column("energy_per_image_j", "E/img_mJ", 1e3, 2, energy=True),
    Column("energy_per_image_net_j", "E/img_net_mJ", 1e3, 2, energy=True),
    Column("train_energy_j", "E_train_kJ", 1e-3, 3, energy=True),
    Column("train_energy_net_j", "E_train_net_kJ", 1e-3, 3, energy=True),
    Column("train_energy_lineage_j", "E_lineage_kJ", 1e-3, 3, energy=True),
    Column("co2_train_g", "CO2_train_g", digits=3, energy=True),
)


@dataclass
class Table:
    """Rendered-agnostic table data: rows of (value, Δ % vs baseline) per column."""

    suite: str
    baseline: str
    columns: list[Column]
    rows: list[tuple[RunRecord, list[tuple[float | None, float | None]]]]
    methods: dict[str, str]  # column metric -> measured | estimated | mixed
    notes: list[str]

    def header(self, col: Column) -> str:
        """Column header; energy columns carry their method."""
        return f"{col.header} [{self.methods[col.metric]}]" if col.energy else col.header


def _method(record: RunRecord, col: Column) -> str | None:
    m = record.metrics.get(col.metric)
    return None if m is None or m.get("method") is None else str(m["method"])


def _delta(value: float | None, base: float | None) -> float | None:
    if value is None or base is None or base == 0:
        return None
    return (value - base) / abs(base) * 100.0


def _incomparable(record: RunRecord, base: RunRecord | None, col: Column) -> str | None:
    """Why ``record``'s energy figure cannot be set against the baseline's, or None if it can."""
    if not col.energy or base is None or record is base:
        return None
    mine, theirs = record.metrics.get(col.metric), base.metrics.get(col.metric)
    if mine is None or theirs is None:
        return None
    if mine.get("method") != theirs.get("method"):
        return f"{mine.get('method')} vs baseline {theirs.get('method')}"
    if mine.get("source") != theirs.get("source"):
        return f"{mine.get('source')} vs baseline {theirs.get('source')}"
    return None


def _incomparable_note(left_out: dict[str, dict[str, list[str]]]) -> str:
    """One note naming, per variant, the columns whose Δ % was left out and why."""
    parts = [
        f"{variant}: {', '.join(cols)} ({why})"
        for variant, reasons in left_out.items()
        for why, cols in reasons.items()
    ]
    return (
        "Δ % left out where the energy method or source differs from the baseline's (measured vs "
        "estimated figures are not comparable): " + "; ".join(parts)
    )


def build_table(
    records: Sequence[RunRecord], baseline: str, suite: str, columns: Sequence[Column] = COLUMNS
) -> Table:
    """Rows in the given record order; Δ % against the ``baseline`` variant's record."""
    base = next((r for r in records if r.variant == baseline and r.status == "ok"), None)
    rows = []
    left_out: dict[str, dict[str, list[str]]] = {}  # variant -> reason -> column headers
    for r in records:
        cells = []
        for c in columns:
            v = r.value(c.metric) if r.status == "ok" else None
            b = base.value(c.metric) if base is not None else None
            why = _incomparable(r, base, c) if v is not None else None
            if why is not None:
                left_out.setdefault(r.variant, {}).setdefault(why, []).append(c.header)
            cells.append((v, None if r is base or why is not None else _delta(v, b)))
        rows.append((r, cells))
    methods: dict[str, str] = {}
    for c in columns:
        found = {r.metrics[c.metric].get("method") for r in records if c.metric in r.metrics}
        methods[c.metric] = str(found.pop()) if len(found) == 1 else ("mixed" if found else "n/a")
    notes = _notes(records, baseline if base is not None else None)
    if left_out:
        notes.insert(0, _incomparable_note(left_out))
    return Table(suite, baseline, list(columns), rows, methods, notes)


def _notes(records: Sequence[RunRecord], baseline: str | None) -> list[str]:
    notes = []
    if baseline is None:
        notes.append("no ok record of the baseline variant: Δ % columns are empty")
    sources: dict[str, str] = {}
    for r in records:
        for name, m in r.metrics.items():
            if "source" in m and name.startswith(("energy", "train_energy")):
                sources.setdefault(m["source"], m.get("method", "?"))
    for src, method in sources.items():
        notes.append(f"energy {method}: {src}")
    ok = [r for r in records if r.status == "ok"]
    runs = _runs_note(records)
    if runs:
        notes.append(runs)
    for text_of in (_latency_note, _complexity_note, _idle_of, _carbon_note):
        notes += _grouped(ok, text_of)
    flagged = [r.variant for r in ok if any(m.get("invalid_samples") for m in r.metrics.values())]
    if flagged:
        notes.append(
            f"invalid energy counter samples discarded (counter went backwards): {', '.join(flagged)}"
        )
    for r in ok:
        cc = r.metrics.get("codecarbon_train_energy_j")
        if cc is None:
            continue
        ours = r.metrics.get("train_energy_j", {})
        if cc.get("value") is None:
            notes.append(f"CodeCarbon cross-check of {r.variant} failed: {cc.get('error')}")
        else:
            notes.append(
                f"CodeCarbon cross-check, {r.variant} training: {cc['value']:.1f} J (its model) vs "
                f"{ours.get('value', float('nan')):.1f} J ours ({ours.get('method')}); CSV {cc.get('csv')}"
            )
    noisy = [r.variant for r in ok if r.metrics["latency_ms"].get("noisy")]
    if noisy:
        notes.append(f"noisy latency (IQR/median > 10 %): {', '.join(noisy)}")
    for r in records:
        if r.status == "failed":
            notes.append(f"{r.variant} FAILED: {r.error}")
    return notes


def _runs_note(records: Sequence[RunRecord]) -> str | None:
    """Which run each row comes from, when they do not all come from one."""
    runs: dict[str, list[RunRecord]] = {}
    for r in records:
        runs.setdefault(r.run_id, []).append(r)
    if len(runs) < 2:
        return None
    parts = [
        f"{run_id} started {min(r.started_at for r in rs)} ({', '.join(r.variant for r in rs)})"
        for run_id, rs in runs.items()
    ]
    return f"rows come from {len(runs)} runs: " + "; ".join(parts)


def _grouped(ok: Sequence[RunRecord], text_of: Callable[[RunRecord], str | None]) -> list[str]:
    """The note as it is when every ok row says the same; else one note per distinct text,
    naming the rows it describes (rows from different runs may differ in any of these facts)."""
    groups: dict[str, list[str]] = {}
    for r in ok:
        text = text_of(r)
        if text is not None:
            groups.setdefault(text, []).append(r.variant)
    if len(groups) == 1 and len(next(iter(groups.values()))) == len(ok):
        return list(groups)
    return [f"{text} — rows: {', '.join(variants)}" for text, variants in groups.items()]


def _latency_note(r: RunRecord) -> str:
    lat = r.metrics["latency_ms"]
    return (
        f"latency_ms: median ± half-width of a bootstrap 95 % CI of one forward pass of batch "
        f"{r.measurement.get('settings', {}).get('latency', {}).get('batch', '?')}, "
        f"{lat.get('threads')} thread(s), {r.device.get('device')} ({r.device.get('cpu_model')})"
    )


def _complexity_note(r: RunRecord) -> str:
    g = r.metrics.get("gflops", {})
    return (
        f"GFLOPs: {g.get('convention', '2 × GMACs')} at {g.get('imgsz')} px; "
        f"mAP/P on the {r.metrics.get('map50', {}).get('split', 'test')} split; E_train and CO2: "
        f"this variant's own stages; E_lineage: every stage from the root model on; "
        f"net = gross − idle power × duration"
    )


def _idle_of(r: RunRecord) -> str:
    return _idle_note(r.measurement.get("idle", {}))


def _carbon_note(r: RunRecord) -> str | None:
    c = r.measurement.get("carbon", {})
    return f"CO2: {c['g_per_kwh']:.1f} gCO2/kWh ({c['source']}), PUE {c['pue']:g}" if c else None


def _idle_note(idle: dict[str, Any]) -> str:
    if not idle or idle.get("skipped"):
        return f"idle baseline: skipped ({idle.get('reason', 'not recorded')}): net = gross"
    parts = [
        f"{domain} {idle['notes'][domain]}" if domain in idle.get("notes", {}) else f"{domain} {watts:.2f} W"
        for domain, watts in idle["power_w"].items()
    ]
    return f"idle baseline over {idle['duration_s']:.1f} s: " + "; ".join(parts)


def _fmt(col: Column, value: float | None, record: RunRecord) -> str:
    if value is None:
        return "—" if record.status == "ok" else "failed"
    text = f"{value * col.scale:.{col.digits}f}"
    if col.metric == "latency_ms":
        m = record.metrics[col.metric]
        text += f" ± {(m['ci_high'] - m['ci_low']) / 2:.{col.digits}f}"
        if m.get("noisy"):
            text += " (noisy)"
    return text


def _fmt_delta(delta: float | None) -> str:
    return "" if delta is None else f"{delta:+.1f}%"


def render(table: Table, fmt: str = "md") -> str:
    """The table as Markdown (value and Δ in one cell), CSV (separate Δ and method columns) or LaTeX."""
    if fmt == "csv":
        return _csv(table)
    heads = ["variant"] + [table.header(c) for c in table.columns]
    body = []
    for r, cells in table.rows:
        row = [r.variant + (" (baseline)" if r.variant == table.baseline else "")]
        for c, (v, d) in zip(table.columns, cells, strict=True):
            cell = _fmt(c, v, r)
            if v is not None and c.energy and table.methods[c.metric] == "mixed":
                cell += f" [{_method(r, c) or '?'}]"  # the header cannot say which
            if d is not None:
                cell += f" ({_fmt_delta(d)})"
            row.append(cell)
        body.append(row)
    if fmt == "latex":
        return _latex(table, heads, body)
    if fmt != "md":
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    lines = _md_rows(heads, body)
    stage_rows = stage_table(table)
    if stage_rows:
        lines += ["", "Training stages (energy of each stage's window; gross and net of idle):", ""]
        lines += _md_rows(STAGE_HEADS, stage_rows)
    lines.append("")
    lines += [f"- {n}" for n in table.notes]
    return "\n".join(lines)


STAGE_HEADS = ["variant", "stage", "params", "duration_s", "E_J", "E_net_J", "method", "artifact"]


def stage_table(table: Table) -> list[list[str]]:
    """One row per training stage of every ok variant in the table."""
    rows = []
    for r, _ in table.rows:
        for st in r.stages if r.status == "ok" else []:
            if "energy_j" not in st:
                continue
            params = ", ".join(f"{k}={v}" for k, v in st.get("params", {}).items()) or "—"
            rows.append(
                [
                    r.variant,
                    st["name"],
                    params,
                    f"{st['duration_s']:.1f}",
                    f"{st['energy_j']:.1f}",
                    f"{st['energy_net_j']:.1f}",
                    st["method"],
                    "reused from cache" if st.get("cached") else "trained in this run",
                ]
            )
    return rows


def _md_rows(heads: list[str], body: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(heads) + " |", "|" + "|".join("---" for _ in heads) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in body]


def _csv(table: Table) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    head = ["variant", "parent", "status"]
    for c in table.columns:  # fixed names: the method goes in its own column, not the header
        head += [c.header, f"{c.header}_delta_pct"] + ([f"{c.header}_method"] if c.energy else [])
    head += ["latency_ci_low_ms", "latency_ci_high_ms", "latency_noisy", "device_id", "run_id"]
    w.writerow(head)
    for r, cells in table.rows:
        row: list[object] = [r.variant, r.parent or "", r.status]
        for c, (v, d) in zip(table.columns, cells, strict=True):
            row += ["" if v is None else f"{v * c.scale:.6g}", "" if d is None else f"{d:.2f}"]
            if c.energy:
                row.append((_method(r, c) or "") if v is not None else "")
        lat = r.metrics.get("latency_ms", {})
        row += [lat.get("ci_low", ""), lat.get("ci_high", ""), lat.get("noisy", ""), r.device_id, r.run_id]
        w.writerow(row)
    return out.getvalue()


def _latex(table: Table, heads: list[str], body: list[list[str]]) -> str:
    def esc(s: str) -> str:
        for a, b in (("\\", "\\textbackslash{}"), ("_", "\\_"), ("%", "\\%"), ("&", "\\&"), ("#", "\\#")):
            s = s.replace(a, b)
        return s.replace("±", "$\\pm$")

    lines = [
        "\\begin{tabular}{l" + "r" * (len(heads) - 1) + "}",
        "\\hline",
        " & ".join(esc(h) for h in heads) + " \\\\",
        "\\hline",
    ]
    lines += [" & ".join(esc(c) for c in row) + " \\\\" for row in body]
    lines += ["\\hline", "\\end{tabular}"]
    lines += [f"% {n}" for n in table.notes]
    return "\n".join(lines)
