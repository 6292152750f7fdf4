"""Energy as a CodeCarbon-compatible ``emissions.csv``.

Columns: exactly those of CodeCarbon 3.3.2's ``EmissionsData``, in its order (``COLUMNS``; what
its ``FileOutput`` writes; the tests check them against the installed codecarbon), so that
CodeCarbon's own ``FileOutput`` accepts the file's header and appends to it, and whatever reads
CodeCarbon's emissions.csv (pandas, its dashboard) reads this one.

Rows, from the newest ``ok`` record that is not a smoke run, per suite × device × variant:

- one per **training stage** of the variant (its own stages, in order: ``stage<N>:<name>``); a
  stage reused from the cache carries the energy measured when it was trained;
- one per **variant** for its **inference** measurement: the energy windows of all its
  interleaved blocks (every round) added up.

Identity: ``project_name`` is the suite, ``experiment_id`` the variant, ``run_id``
``<greenbench run id>/<variant>/<stage<N>:<name> | inference>`` (unique per row: CodeCarbon's
``update`` mode keeps one row per run id).

Units are CodeCarbon's: ``duration`` s, ``emissions`` kg CO2(eq), ``emissions_rate`` kg/s,
``cpu_power``/``gpu_power``/``ram_power`` W (mean over the window), ``cpu_energy``/
``gpu_energy``/``ram_energy``/``energy_consumed`` kWh, ``ram_total_size`` GB. As in CodeCarbon,
energies and powers include the PUE (its tracker multiplies both by ``pue``), and ``emissions``
= ``energy_consumed`` × grid intensity, the figure greenbench's own CO2 uses. Energy is gross
(idle not subtracted), as CodeCarbon's machine mode reports it. RAPL packages, ``psys`` and the
estimate meter's ``cpu`` go to ``cpu_*``, RAPL ``dram`` to ``ram_*``, NVML ``gpu:N`` to ``gpu_*``.

**Energy is measured where the machine has counters (RAPL, NVML) and estimated elsewhere**
(greenbench's ``estimate`` meter: process CPU time × watts per core, ``tracking_mode``
``process``; counters give ``machine``). CodeCarbon has no column for that, so ``export``
counts the estimated rows in its notes; the store keeps the method of every figure.

Filled from the record: ``timestamp`` (when the record finished, UTC, in CodeCarbon's
``%Y-%m-%dT%H:%M:%S``), ``country_iso_code``/``region`` (the suite's ``measure.carbon``),
``country_name`` (CodeCarbon's data), ``pue``, ``os``, ``python_version``, ``cpu_count``,
``cpu_model``, ``gpu_count``, ``gpu_model`` (``"N x NAME"``, as CodeCarbon writes it),
``ram_total_size`` (GiB), ``codecarbon_version`` (the CodeCarbon whose data gave the grid
intensity). Unknown, written as CodeCarbon writes what it does not know: ``longitude``/
``latitude`` empty, ``cloud_provider``/``cloud_region`` empty with ``on_cloud`` ``N``, the
``*_utilization_percent`` and ``ram_used_gb`` 0.0, ``water_consumed`` and ``wue`` 0 (its default
WUE). ``emissions`` and ``emissions_rate`` are empty where a record holds no grid intensity.

Text is quoted by the ``csv`` module (commas, quotes and line breaks stay inside a quoted cell;
a leading ``=`` stays: the file is data); lone surrogates become U+FFFD.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from greenbench.errors import GreenbenchError
from greenbench.export.selection import Exported, latest_ok, nothing_to_export, printable
from greenbench.measure.carbon import J_PER_KWH, country_name
from greenbench.output import json_safe
from greenbench.store import RunRecord, Store

#: CodeCarbon 3.3.2 ``EmissionsData`` fields, in order: the header of its emissions.csv
COLUMNS: tuple[str, ...] = (
    "timestamp", "project_name", "run_id", "experiment_id", "duration", "emissions", "emissions_rate",
    "cpu_power", "gpu_power", "ram_power", "cpu_energy", "gpu_energy", "ram_energy", "energy_consumed",
    "water_consumed", "country_name", "country_iso_code", "region", "cloud_provider", "cloud_region",
    "os", "python_version", "codecarbon_version", "cpu_count", "cpu_model", "gpu_count", "gpu_model",
    "longitude", "latitude", "ram_total_size", "tracking_mode", "cpu_utilization_percent",
    "gpu_utilization_percent", "ram_utilization_percent", "ram_used_gb", "on_cloud", "pue", "wue",
)  # fmt: skip
PARTS = ("cpu", "gpu", "ram")


def key(record: RunRecord) -> tuple[str, str, str]:
    """One set of rows per suite × device × variant."""
    return record.suite, record.device_id, record.variant


@dataclass(frozen=True)
class Window:
    """Energy windows added up: ``label`` (``stage<N>:<name>`` or ``inference``), ``duration_s``,
    gross joules per part (``cpu``, ``gpu``, ``ram``), whether any domain was estimated and
    whether any was process-scoped."""

    label: str
    duration_s: float
    energy_j: dict[str, float]
    estimated: bool
    process_scope: bool


def part(domain: str) -> str:
    """The CodeCarbon part a greenbench energy domain counts in: ``cpu``, ``gpu`` or ``ram``."""
    if domain.startswith("dram"):
        return "ram"
    return "gpu" if domain.startswith("gpu") else "cpu"


def window(label: str, readings: Sequence[dict[str, Any]]) -> Window | None:
    """``readings`` (``EnergyReading.to_dict()``) added up; None when they hold no domain."""
    energy = dict.fromkeys(PARTS, 0.0)
    duration_s, estimated, process, found = 0.0, False, False, False
    for reading in readings:
        domains = [d for d in reading.get("domains") or [] if isinstance(d, dict)]
        if not domains:
            continue
        found = True
        duration_s += float(reading.get("duration_s") or 0.0)
        for d in domains:
            energy[part(str(d.get("domain", "")))] += float(d.get("energy_j") or 0.0)
            estimated |= d.get("method") != "measured"
            process |= d.get("scope") == "process"
    return Window(label, duration_s, energy, estimated, process) if found else None


def windows(record: RunRecord) -> list[Window]:
    """The record's training stages, then its inference blocks, as windows (those with energy)."""
    found = [
        window(f"stage{i}:{st.get('name')}", [st.get("energy") or {}])
        for i, st in enumerate(record.stages, 1)
    ]
    readings = [
        b["reading"]
        for b in record.measurement.get("blocks") or []
        if isinstance(b, dict) and b.get("reading")
    ]
    found.append(window("inference", readings))
    return [w for w in found if w is not None]


def _timestamp(iso: str) -> str:
    """``iso`` in UTC as CodeCarbon writes its timestamps; kept as it is if it does not parse."""
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        return iso
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


def _gpu_model(gpus: Sequence[str]) -> str:
    return "".join(f"{n} x {name}" for name, n in Counter(map(str, gpus)).items())  # as CodeCarbon joins


def row(record: RunRecord, w: Window) -> dict[str, Any]:
    """The emissions.csv row of window ``w`` of ``record``, by column name."""
    measurement, device = record.measurement, record.device
    carbon = measurement.get("carbon") or {}
    settings = (measurement.get("settings") or {}).get("carbon") or {}
    pue = float(carbon.get("pue") or settings.get("pue") or 1.0)
    g_per_kwh = carbon.get("g_per_kwh")
    kwh = {p: w.energy_j[p] * pue / J_PER_KWH for p in PARTS}
    total_kwh = sum(kwh.values())
    emissions_kg = None if g_per_kwh is None else total_kwh * float(g_per_kwh) / 1e3
    rate = None if emissions_kg is None else (emissions_kg / w.duration_s if w.duration_s > 0 else 0.0)
    country = settings.get("country")
    values: dict[str, Any] = {
        "timestamp": _timestamp(record.finished_at),
        "project_name": record.suite,
        "run_id": f"{record.run_id}/{record.variant}/{w.label}",
        "experiment_id": record.variant,
        "duration": w.duration_s,
        "emissions": emissions_kg,
        "emissions_rate": rate,
        **{f"{p}_power": w.energy_j[p] * pue / w.duration_s if w.duration_s > 0 else 0.0 for p in PARTS},
        **{f"{p}_energy": kwh[p] for p in PARTS},
        "energy_consumed": total_kwh,
        "water_consumed": 0.0,
        "country_name": country_name(country) if country else None,
        "country_iso_code": country,
        "region": settings.get("region"),
        "cloud_provider": "",
        "cloud_region": "",
        "os": device.get("os"),
        "python_version": device.get("python"),
        "codecarbon_version": record.versions.get("codecarbon"),
        "cpu_count": device.get("logical_cores"),
        "cpu_model": device.get("cpu_model"),
        "gpu_count": len(device.get("gpus") or []),
        "gpu_model": _gpu_model(device.get("gpus") or []),
        "longitude": None,
        "latitude": None,
        "ram_total_size": device.get("ram_gib"),
        "tracking_mode": "process" if w.process_scope else "machine",
        "cpu_utilization_percent": 0.0,
        "gpu_utilization_percent": 0.0,
        "ram_utilization_percent": 0.0,
        "ram_used_gb": 0.0,
        "on_cloud": "N",
        "pue": pue,
        "wue": 0.0,
    }
    return values


def render(rows: Sequence[dict[str, Any]]) -> str:
    """The CSV text: ``COLUMNS`` as header, one line per row (None as an empty cell)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for values in rows:
        safe = json_safe(values)  # lone surrogates → U+FFFD; NaN/inf → empty
        writer.writerow(["" if safe.get(c) is None else safe[c] for c in COLUMNS])
    return out.getvalue()


def export(store: Store, suite: str | None = None, device_id: str | None = None) -> Exported:
    """The emissions.csv text of the store's current records (of ``suite`` on ``device_id``)."""
    records = latest_ok(store, key, suite, device_id)
    if not records:
        raise nothing_to_export(store, suite, device_id)
    rows, estimated, notes = [], 0, []
    for record in records:
        found = windows(record)
        if not found:
            notes.append(
                f"{printable(record.suite)}/{printable(record.variant)} (run {printable(record.run_id)}) "
                f"left out: its record holds no energy window"
            )
        for w in found:
            rows.append(row(record, w))
            estimated += w.estimated
    if not rows:
        raise GreenbenchError(
            f"nothing to export from the results store {store.path}: none of its {len(records)} current "
            f"record(s) holds an energy window (training stage or inference block); re-run the suite "
            f"with an energy meter."
        )
    if estimated:
        notes.append(
            f"{estimated} of {len(rows)} row(s) hold estimated energy (no energy counter on the measuring "
            f"machine: process CPU time × watts per core); the store says which figure is which"
        )
    if all(r["emissions"] is None for r in rows):
        notes.append("no record holds a grid carbon intensity: emissions are left empty")
    return Exported(render(rows), len(rows), tuple(notes))
