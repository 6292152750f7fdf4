"""What a device report shows, gathered from stored records: render-agnostic data.

``html.py`` and ``markdown.py`` render a ``DeviceReport``; nothing here formats for one of them.
Per device, one ``SuiteSection`` per suite measured on it: the comparison table against the
suite's baseline (``tables.build_table``: paired Δ % with its CI, unpaired and noisy marks),
the method disclosure (which meter measured what, measured or estimated, idle baseline, grid
intensity, latency protocol), the plot data and, when the device has a stored peak, a roofline
table (achieved GFLOP/s as a percentage of that peak).

Records are not trusted to have the shape greenbench writes: a field of the wrong type is
skipped (``_num``, ``_dict``), never a traceback.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from greenbench.metrics import METRICS, headline_accuracy, table_metrics
from greenbench.report.pareto import pareto_mask
from greenbench.report.plots import Point, Stage, Training
from greenbench.report.table_notes import as_number as _num
from greenbench.report.table_notes import protocol
from greenbench.report.tables import Table, build_table
from greenbench.store import RunRecord

#: fingerprint keys shown, in order (the hostname is left out: a published report need not name
#: the machine, and the device id already identifies its hardware)
FINGERPRINT_KEYS = (
    "device_id", "cpu_model", "logical_cores", "ram_gib", "arch", "gpus", "device", "threads_used", "os",
    "python",
)  # fmt: skip


@dataclass(frozen=True)
class MeterRow:
    """One line of the method disclosure: what was measured, by which energy domain and meter.

    what: ``inference energy per image`` or ``training stages``. method: ``measured`` (a hardware
    counter) or ``estimated`` (a model). scope: ``system`` or ``process``. variants: how many of
    the suite's variants it applies to.
    """

    what: str
    domain: str
    method: str
    source: str
    scope: str
    variants: int


@dataclass(frozen=True)
class IdleRow:
    """One domain's idle power (W) over the idle window (s), or why none was recorded."""

    domain: str
    power_w: float | None
    duration_s: float | None
    method: str
    note: str = ""


@dataclass
class Disclosure:
    """How a suite's figures were measured on this device (method disclosure, up front).

    overall: ``measured``, ``estimated`` or ``mixed`` over every energy figure. meters: the
    suite's configured ``measure.energy.meters``. carbon: grid intensity (gCO2/kWh), its source
    and the PUE, as text. latency: the interleaved protocol, as text.
    """

    overall: str
    meters: list[str] = field(default_factory=list)
    rows: list[MeterRow] = field(default_factory=list)
    idle: list[IdleRow] = field(default_factory=list)
    carbon: list[str] = field(default_factory=list)
    latency: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RooflineRow:
    """A variant's achieved GFLOP/s (GFLOPs ÷ latency) and its percentage of the device's peak."""

    variant: str
    runtime: str
    achieved_gflops_per_s: float | None
    pct_of_peak: float | None


@dataclass(frozen=True)
class Confusion:
    """A variant's confusion matrix as its record keeps it (rows: true class, columns: predicted)."""

    variant: str
    classes: list[str]
    matrix: list[list[int]]


#: confusion matrices a section shows: the baseline's and those of the best variants
MAX_CONFUSIONS = 4


@dataclass
class SuiteSection:
    """One suite on the device: its table, disclosure, plot data and roofline rows."""

    suite: str
    task: str
    baseline: str | None
    accuracy_name: str
    table: Table
    disclosure: Disclosure
    points: list[Point]
    trainings: list[Training]
    roofline: list[RooflineRow] = field(default_factory=list)
    confusions: list[Confusion] = field(default_factory=list)


@dataclass
class DeviceReport:
    """Everything one device's report shows. fingerprint: (key, text) pairs; peak: the stored
    peak (``Store.device_peak``), or None; warnings: records that could not be read."""

    device_id: str
    fingerprint: list[tuple[str, str]]
    sections: list[SuiteSection]
    peak: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)


def _dict(x: object) -> dict[str, Any]:
    return x if isinstance(x, dict) else {}


def _list(x: object) -> list[Any]:
    return x if isinstance(x, list) else []


def _text(x: object) -> str:
    if isinstance(x, list | tuple):
        return ", ".join(str(v) for v in x) or "none"
    if isinstance(x, dict):
        return ", ".join(f"{k} {v}" for k, v in x.items())
    return "—" if x is None else str(x)


def fingerprint_rows(device: Mapping[str, Any], device_id: str) -> list[tuple[str, str]]:
    """The device fingerprint as (key, text) rows, library versions last; a version the rows
    above already give (``python``) is not repeated."""
    rows = [("device_id", device_id)]
    rows += [(k, _text(device.get(k))) for k in FINGERPRINT_KEYS[1:] if k in device]
    shown = dict(rows)
    versions = _dict(device.get("versions"))
    rows += [
        (f"version: {k}", _text(v))
        for k, v in sorted(versions.items())
        if not (k in shown and _same_version(shown[k], _text(v)))
    ]
    return rows


def _same_version(a: str, b: str) -> bool:
    """Whether two texts name one version (``3.11.2`` and ``3.11.2 (main, Mar 13 2023)``)."""
    a, b = a.strip(), b.strip()
    return a == b or a.startswith(b + " ") or b.startswith(a + " ")


def _domains(reading: object) -> list[dict[str, Any]]:
    return [d for d in _list(_dict(reading).get("domains")) if isinstance(d, dict)]


def _meter_rows(records: Sequence[RunRecord]) -> list[MeterRow]:
    """Distinct (what, domain, method, source, scope) over inference blocks and training stages."""
    seen: dict[tuple[str, str, str, str, str], set[str]] = {}
    for r in records:
        readings = [("inference energy per image", _dict(b).get("reading")) for b in _blocks(r)]
        readings += [("training stages", _dict(st).get("energy")) for st in r.stages]
        for what, reading in readings:
            for d in _domains(reading):
                key = (what, str(d.get("domain", "?")), str(d.get("method", "?")), str(d.get("source", "?")),
                       str(d.get("scope", "?")))  # fmt: skip
                seen.setdefault(key, set()).add(r.variant)
    return [MeterRow(*key, variants=len(v)) for key, v in seen.items()]


def _blocks(r: RunRecord) -> list[Any]:
    return _list(r.measurement.get("blocks"))


def _idle_rows(records: Sequence[RunRecord]) -> list[IdleRow]:
    rows: dict[tuple[Any, ...], IdleRow] = {}
    for r in records:
        idle = _dict(r.measurement.get("idle"))
        if not idle:
            continue
        if idle.get("skipped"):
            row = IdleRow("all", None, None, "skipped", f"{idle.get('reason', '')}: net = gross")
            rows.setdefault(("skipped", row.note), row)
            continue
        notes = _dict(idle.get("notes"))
        for domain, watts in _dict(idle.get("power_w")).items():
            row = IdleRow(
                str(domain), _num(watts), _num(idle.get("duration_s")), str(idle.get("method", "?")),
                str(notes.get(domain, "")),
            )  # fmt: skip
            rows.setdefault((row.domain, row.power_w, row.duration_s, row.method, row.note), row)
    return list(rows.values())


def _carbon(records: Sequence[RunRecord]) -> list[str]:
    texts = []
    for r in records:
        c = _dict(r.measurement.get("carbon"))
        g, pue = _num(c.get("g_per_kwh")), _num(c.get("pue"))
        if g is not None:
            texts.append(f"{g:.1f} gCO2/kWh ({c.get('source', '?')}), PUE {pue if pue is not None else '?'}")
    return list(dict.fromkeys(texts))


def _latency(records: Sequence[RunRecord]) -> list[str]:
    texts = []
    for r in records:
        lat = _dict(r.metrics.get("latency_ms"))
        if not lat:
            continue
        texts.append(f"{protocol(lat)}; {lat.get('threads', '?')} thread(s)")
    return list(dict.fromkeys(texts))


def disclosure(records: Sequence[RunRecord]) -> Disclosure:
    """How the ok ``records`` of one suite were measured."""
    ok = [r for r in records if r.status == "ok"]
    methods = {
        str(m.get("method"))
        for r in ok
        for name, m in r.metrics.items()
        if name in METRICS and METRICS[name].energy and m.get("method") in ("measured", "estimated")
    }
    overall = methods.pop() if len(methods) == 1 else ("mixed" if methods else "none")
    meters = [
        str(m)
        for r in ok
        for m in _list(_dict(_dict(r.measurement.get("settings")).get("energy")).get("meters"))
    ]
    return Disclosure(
        overall, list(dict.fromkeys(meters)), _meter_rows(ok), _idle_rows(ok), _carbon(ok), _latency(ok)
    )


def _ci(m: Mapping[str, Any]) -> tuple[float, float] | None:
    lo, hi = _num(m.get("ci_low")), _num(m.get("ci_high"))
    return None if lo is None or hi is None else (lo, hi)


def _flagged(m: Mapping[str, Any]) -> bool:
    return bool(m.get("noisy") or m.get("rounds_disagree"))


def runtime_labels(runtimes: Sequence[str]) -> dict[str, str]:
    """How plots name each runtime: nothing when all rows share one; else its name without its
    settings (``openvino`` for ``openvino(precision=f32, threads=1)``) unless two runtimes of
    that name differ in their settings (the table shows them whole)."""
    distinct = sorted(set(runtimes))
    if len(distinct) < 2:
        return {}
    names = [r.split("(", 1)[0].strip() or r for r in distinct]
    return {r: (n if names.count(n) == 1 else r) for r, n in zip(distinct, names, strict=True)}


def points(table: Table, accuracy: str) -> list[Point]:
    """Plot points of the table's ok rows; Pareto flags from ``pareto_mask`` (accuracy against
    gross energy per image)."""
    idx = {c.name: i for i, c in enumerate(table.columns)}
    runtime = runtime_labels([r.runtime or "" for r, _ in table.rows if r.status == "ok"])
    out = []
    for r, cells in table.rows:
        if r.status != "ok":
            continue
        lat, energy = _dict(r.metrics.get("latency_ms")), _dict(r.metrics.get("energy_per_image_j"))
        lat_delta, energy_delta = (
            cells[idx[n]].delta if n in idx else None for n in ("latency_ms", "energy_per_image_j")
        )
        params = _num(r.value("params"))
        out.append(
            Point(
                label=r.variant + (f" [{runtime[r.runtime or '']}]" if runtime.get(r.runtime or "") else ""),
                accuracy=_num(r.value(accuracy)),
                energy_j=_num(energy.get("value")),
                energy_ci_j=_ci(energy),
                energy_method=str(energy["method"]) if "method" in energy else None,
                energy_source=str(energy["source"]) if "source" in energy else None,
                latency_ms=_num(lat.get("value")),
                latency_ci_ms=_ci(lat),
                latency_noisy=_flagged(lat) or (lat_delta is not None and lat_delta.rounds_disagree),
                energy_noisy=_flagged(energy) or (energy_delta is not None and energy_delta.rounds_disagree),
                latency_unpaired=lat_delta is not None and lat_delta.kind == "unpaired",
                energy_unpaired=energy_delta is not None and energy_delta.kind == "unpaired",
                baseline=r.variant == table.baseline,
                params_m=None if params is None else params / 1e6,
                gflops=_num(r.value("gflops")),
                size_mb=_num(r.value("size_mb")),
            )
        )
    front = pareto_mask([p.accuracy for p in out], [p.energy_j for p in out])
    return [_with_pareto(p, on) for p, on in zip(out, front, strict=True)]


def _with_pareto(p: Point, on: bool) -> Point:
    from dataclasses import replace

    return replace(p, pareto=on)


def trainings(table: Table) -> list[Training]:
    """Per ok row, its own training stages' gross energy and the CO2 of it."""
    out = []
    for r, _ in table.rows:
        if r.status != "ok":
            continue
        stages = tuple(
            Stage(str(st.get("name", "?")), e, str(st.get("method", "estimated")), bool(st.get("cached")))
            for st in r.stages
            if (e := _num(st.get("energy_j"))) is not None
        )
        out.append(Training(r.variant, stages, _num(r.value("co2_train_g"))))
    return out


Achieved = Mapping[tuple[str, str, str], tuple[float | None, float | None]]


def roofline_rows(table: Table, achieved: Achieved) -> list[RooflineRow]:
    """Roofline rows of the table's ok rows; ``achieved``: (suite, variant, runtime) → (achieved
    GFLOP/s, % of the device's peak), as ``load_results`` computes them."""
    rows = []
    for r, _ in table.rows:
        if r.status == "ok":
            gps, pct = achieved.get((r.suite, r.variant, r.runtime or ""), (None, None))
            rows.append(RooflineRow(r.variant, r.runtime or "", gps, pct))
    return rows


def _confusion(r: RunRecord) -> Confusion | None:
    """The record's confusion matrix if it has a well-formed one (a task's ``details``)."""
    details = _dict(_dict(r.measurement).get("accuracy_details"))
    classes, matrix = _list(details.get("classes")), _list(details.get("confusion"))
    n = len(classes)
    ok = n > 0 and len(matrix) == n and all(
        isinstance(row, list) and len(row) == n and all(isinstance(v, int) for v in row) for row in matrix
    )  # fmt: skip
    return Confusion(r.variant, [str(c) for c in classes], matrix) if ok else None


def confusions(table: Table, accuracy: str, baseline: str | None) -> list[Confusion]:
    """The baseline's confusion matrix, then those of the variants with the best ``accuracy``."""
    found = [(r, c) for r, _ in table.rows if r.status == "ok" and (c := _confusion(r)) is not None]
    found.sort(key=lambda rc: (rc[0].variant != baseline, -(_num(rc[0].value(accuracy)) or 0.0)))
    return [c for _, c in found[:MAX_CONFUSIONS]]


def suite_section(records: Sequence[RunRecord], suite: str, baseline: str | None, task: str) -> SuiteSection:
    """The section of one suite from its current records (one per variant, table order).
    ValueError for a task without table columns."""
    table = build_table(records, baseline, suite, task)
    accuracy = headline_accuracy(task) or next(m.name for m in table_metrics(task) if m.kind == "accuracy")
    return SuiteSection(
        suite,
        task,
        baseline,
        METRICS[accuracy].header if accuracy in METRICS else accuracy,
        table,
        disclosure(records),
        points(table, accuracy),
        trainings(table),
        confusions=confusions(table, accuracy, baseline),
    )


def current(records: Sequence[RunRecord]) -> list[RunRecord]:
    """Per variant and runtime: the newest ok record, else the newest failed one ("newest": latest
    ``finished_at``), in the order variants first appear."""
    newest_ok: dict[tuple[str, str], RunRecord] = {}
    newest: dict[tuple[str, str], RunRecord] = {}
    for r in sorted(records, key=lambda r: (r.finished_at, r.started_at)):  # stable: store order on ties
        key = (r.variant, r.runtime or "")
        newest[key] = r
        if r.status == "ok":
            newest_ok[key] = r
    return [newest_ok.get(k) or newest[k] for k in newest]


def build_device_report(
    records: Sequence[RunRecord],
    device_id: str,
    peak: dict[str, Any] | None = None,
    achieved: Achieved | None = None,
    warnings: Sequence[str] = (),
) -> DeviceReport:
    """The report of one device from its records (any suites; smoke records already left out).

    Per suite (sorted by name): the current record of each variant; baseline and task from the
    suite's newest record. ``achieved`` feeds the roofline table, shown only when ``peak`` is.
    """
    mine = [r for r in records if r.device_id == device_id]
    if not mine:
        raise ValueError(f"no record of device {device_id}")
    sections = []
    for suite in sorted({r.suite for r in mine}):
        rows = current([r for r in mine if r.suite == suite])
        newest = max(rows, key=lambda r: (r.finished_at, r.started_at))
        section = suite_section(rows, suite, newest.baseline, newest.task)
        if peak is not None:
            section.roofline = roofline_rows(section.table, achieved or {})
        sections.append(section)
    latest = max(mine, key=lambda r: (r.finished_at, r.started_at))
    shown_peak = None if peak is None else {k: _shown(v) for k, v in peak.items()}
    return DeviceReport(
        device_id, fingerprint_rows(latest.device, device_id), sections, shown_peak, list(warnings)
    )


def _shown(value: Any) -> Any:
    """A peak figure for a reader: 4 significant digits for a float, anything else as stored."""
    return f"{value:.4g}" if isinstance(value, float) else value
