"""The records of a run as a pytest-benchmark JSON file that ``pytest-benchmark compare`` reads.

The layout is what pytest-benchmark 5.x writes with ``--benchmark-json`` (its
``plugin.pytest_benchmark_generate_json`` and ``stats.Metadata.as_dict``): ``machine_info``,
``commit_info``, ``benchmarks`` (``group``, ``name``, ``fullname``, ``params``, ``param``,
``extra_info``, ``options``, ``stats``), ``datetime`` and ``version``.

- One benchmark per suite × variant × runtime, from the newest ``ok`` record that is not a smoke
  run (``greenbench.export.selection``). ``group`` is the suite, ``name`` is ``VARIANT[RUNTIME]``,
  ``fullname`` is ``SUITE::VARIANT[RUNTIME]``, ``params`` is ``{"runtime": RUNTIME}``. A file
  describes one machine, so the records must come from one device (``--device`` picks one).
- ``stats`` are in **seconds per call**, computed from the **raw per-call samples** greenbench
  stores (``measurement.blocks[*].samples_ms``: every timed call of every interleaved block of
  every round, the device synchronised after each call), with pytest-benchmark's own definitions
  (``pytest_benchmark.stats.Stats``: sample standard deviation, its quartile method, outliers
  written ``"<stddev outliers>;<IQR outliers>"``, ``ops`` = calls per second). One call is one
  forward pass of the measured batch (``extra_info["images_per_call"]`` images); ``rounds`` is
  the number of calls and ``iterations`` is 1. ``data`` holds the samples (for ``--histogram``).
- ``extra_info`` says the same (``unit``, ``stats_from``) and keeps what pytest-benchmark has no
  field for: greenbench's own latency figure (per round the median block, over rounds their
  geometric mean with a t-interval, which differs slightly from the pooled median by design),
  energy per image (gross and net, J, with ``energy_method`` ``measured``/``estimated`` and its
  source), CO2 per 1000 images, the Δ against the baseline, and the record's identity (suite,
  variant exactly as stored, runtime, device id, run id, variant key, suite hash).
- Names that pytest-benchmark prints (``name``, ``fullname``, ``group``, ``param``) have control
  characters, line breaks and bidi controls folded to spaces, so that no stored name can drive the
  terminal of whoever runs ``compare``; ``extra_info`` keeps them exactly.

``datetime`` is when the newest exported record finished; ``commit_info`` is the git commit of
the suite that record stored. Records without per-call samples are left out with a note.
"""

from __future__ import annotations

import json
import statistics
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from typing import Any

from greenbench.errors import GreenbenchError
from greenbench.export.selection import Exported, latest_ok, nothing_to_export, printable
from greenbench.output import json_safe
from greenbench.store import RunRecord, Store

#: the pytest-benchmark release whose file layout this follows (``version`` in the file)
FORMAT_VERSION = "5.2.3"
STATS_FROM = (
    "raw per-call samples of every interleaved block of every round (fresh process), device synchronised "
    "after each call; seconds per call of one batch"
)


def key(record: RunRecord) -> tuple[str, str, str, str]:
    """One benchmark per suite × variant × runtime (per device: a file holds one device, checked
    after the selection)."""
    return record.suite, record.device_id, record.variant, record.runtime or "unknown"


def call_stats(samples_s: Sequence[float], include_data: bool = True) -> dict[str, Any]:
    """pytest-benchmark's ``stats`` of per-call times (s), as its ``Stats.as_dict`` computes them.

    Hand-written rather than imported: pytest-benchmark is a development dependency only, and
    numpy's quantile methods do not match its quartiles (Tukey's hinges for an even count, a
    weighted mean for an odd one). ``tests/export`` checks the result against ``Stats``.
    """
    if not samples_s:
        raise ValueError("call_stats needs at least one sample")
    data = [float(x) for x in samples_s]
    s, n = sorted(data), len(data)
    mean = statistics.mean(data)
    stddev = statistics.stdev(data) if n > 1 else 0
    q1, q3 = _quartiles(s)
    iqr = q3 - q1
    if n == 1:
        ld15iqr = hd15iqr = data[0]
    else:
        ld15iqr = s[bisect_left(s, q1 - 1.5 * iqr)]
        # the highest datum within the upper fence (pytest-benchmark >= 5.3; before, it took the
        # first datum above the fence, an outlier)
        hd15iqr = s[bisect_right(s, q3 + 1.5 * iqr) - 1]
    stddev_outliers = sum(x < mean - stddev or x > mean + stddev for x in data)
    iqr_outliers = sum(x < q1 - 1.5 * iqr or x > q3 + 1.5 * iqr for x in data)
    total = sum(data)
    stats: dict[str, Any] = {
        "min": s[0],
        "max": s[-1],
        "mean": mean,
        "stddev": stddev,
        "rounds": n,
        "median": statistics.median(data),
        "iqr": iqr,
        "q1": q1,
        "q3": q3,
        "iqr_outliers": iqr_outliers,
        "stddev_outliers": stddev_outliers,
        "outliers": f"{stddev_outliers};{iqr_outliers}",
        "ld15iqr": ld15iqr,
        "hd15iqr": hd15iqr,
        "ops": n / total if total else 0,
        "total": total,
    }
    if include_data:
        stats["data"] = data
    stats["iterations"] = 1
    return stats


def _quartiles(s: list[float]) -> tuple[float, float]:
    """Q1 and Q3 of sorted ``s`` by pytest-benchmark's methods (Wikipedia "Quartile", 2 and 3)."""
    n = len(s)
    if n == 1:
        return s[0], s[0]
    if n % 2 == 0:  # method 2: medians of the lower and upper halves
        return statistics.median(s[: n // 2]), statistics.median(s[n // 2 :])
    m, q = n // 4, n % 4  # method 3
    if q == 1:
        return 0.25 * s[m - 1] + 0.75 * s[m], 0.75 * s[3 * m] + 0.25 * s[3 * m + 1]
    return 0.75 * s[m] + 0.25 * s[m + 1], 0.25 * s[3 * m + 1] + 0.75 * s[3 * m + 2]


def _metric(record: RunRecord, name: str, field: str = "value") -> Any:
    return (record.metrics.get(name) or {}).get(field)


def _extra_info(record: RunRecord, blocks: list[dict[str, Any]], calls: int) -> dict[str, Any]:
    images = sum(int(b.get("images") or 0) for b in blocks)
    lat = record.metrics.get("latency_ms") or {}
    energy = record.metrics.get("energy_per_image_j") or {}
    return {
        "unit": "s",
        "stats_from": STATS_FROM,
        "images_per_call": images / calls if calls else None,
        "calls": calls,
        "blocks": len(blocks),
        "rounds": len({b.get("round") for b in blocks}),
        "greenbench_latency_ms": lat.get("value"),
        "greenbench_latency_ci_ms": [lat.get("ci_low"), lat.get("ci_high")],
        "greenbench_latency_stat": lat.get("stat"),
        "greenbench_latency_ci_method": lat.get("ci_method"),
        "noisy": lat.get("noisy"),
        "energy_per_image_j": energy.get("value"),
        "energy_per_image_ci_j": [energy.get("ci_low"), energy.get("ci_high")],
        "energy_per_image_net_j": _metric(record, "energy_per_image_net_j"),
        "energy_method": energy.get("method"),
        "energy_source": energy.get("source"),
        "co2_per_1k_images_g": _metric(record, "co2_per_1k_images_g"),
        "deltas_vs_baseline": record.deltas,
        "suite": record.suite,
        "variant": record.variant,
        "baseline": record.baseline,
        "runtime": record.runtime,
        "device_id": record.device_id,
        "device": record.device.get("device"),
        "run_id": record.run_id,
        "variant_hash": record.variant_hash,
        "suite_hash": record.suite_hash,
        "finished_at": record.finished_at,
        "schema_version": record.schema_version,
    }


def benchmark(record: RunRecord, include_data: bool = True) -> dict[str, Any] | None:
    """The pytest-benchmark entry of ``record``; None when it stores no per-call samples."""
    blocks = [b for b in record.measurement.get("blocks") or [] if isinstance(b, dict)]
    samples_ms = [float(x) for b in blocks for x in b.get("samples_ms") or []]
    if not samples_ms:
        return None
    runtime = record.runtime or "unknown"
    suite, variant = printable(record.suite), printable(record.variant)
    protocol = record.measurement.get("protocol") or {}
    return {
        "group": suite,
        "name": f"{variant}[{printable(runtime)}]",
        "fullname": f"{suite}::{variant}[{printable(runtime)}]",
        "params": {"runtime": printable(runtime)},
        "param": printable(runtime),
        "extra_info": _extra_info(record, blocks, len(samples_ms)),
        "options": {"greenbench_protocol": protocol},
        "stats": call_stats([x / 1e3 for x in samples_ms], include_data),
    }


def machine_info(record: RunRecord) -> dict[str, Any]:
    """pytest-benchmark's ``machine_info`` from the device fingerprint greenbench stored."""
    device = record.device
    system, _, release = str(device.get("os", "")).partition(" ")
    return {
        "node": device.get("hostname", ""),
        "processor": device.get("arch", ""),
        "machine": device.get("arch", ""),
        "python_implementation": "CPython",
        "python_version": device.get("python", ""),
        "release": release,
        "system": system,
        "cpu": {
            "brand_raw": device.get("cpu_model", ""),
            "count": device.get("logical_cores"),
            "arch_string_raw": device.get("arch", ""),
        },
        "greenbench_device": device,
    }


def commit_info(record: RunRecord) -> dict[str, Any]:
    """pytest-benchmark's ``commit_info`` from the suite's git commit the record stored."""
    commit = record.versions.get("suite_git_commit")
    commit = None if commit in (None, "", "none") else str(commit)  # "none": the suite is not in git
    return {
        "id": commit.removesuffix("+dirty") if commit else "unversioned",
        "time": None,
        "author_time": None,
        "dirty": bool(commit and commit.endswith("+dirty")),
        "project": printable(record.suite),
        "branch": "(unknown)",
    }


def document(records: Sequence[RunRecord], include_data: bool = True) -> tuple[dict[str, Any], list[str]]:
    """The pytest-benchmark document of ``records`` (one device) and a note per record left out."""
    devices = sorted({r.device_id for r in records})
    if len(devices) > 1:
        raise GreenbenchError(
            f"the records to export come from {len(devices)} devices ({', '.join(map(printable, devices))}), "
            f"and a pytest-benchmark file describes one machine; pass --device with one of them."
        )
    benchmarks, notes = [], []
    for record in records:
        entry = benchmark(record, include_data)
        if entry is None:
            notes.append(
                f"{printable(record.suite)}/{printable(record.variant)} (run {printable(record.run_id)}) "
                f"left out: its record stores no per-call latency samples"
            )
        else:
            benchmarks.append(entry)
    newest = max(records, key=lambda r: r.finished_at)
    doc = {
        "machine_info": machine_info(newest),
        "commit_info": commit_info(newest),
        "benchmarks": benchmarks,
        "datetime": newest.finished_at,
        "version": FORMAT_VERSION,
    }
    return json_safe(doc), notes


def export(store: Store, suite: str | None = None, device_id: str | None = None) -> Exported:
    """The pytest-benchmark JSON text of the store's current records (of ``suite`` on ``device_id``)."""
    records = latest_ok(store, key, suite, device_id)
    if not records:
        raise nothing_to_export(store, suite, device_id)
    doc, notes = document(records)
    if not doc["benchmarks"]:
        raise GreenbenchError(
            f"nothing to export from the results store {store.path}: none of its {len(records)} current "
            f"record(s) stores per-call latency samples (records written before schema 2 do not); "
            f"re-run the suite to measure them."
        )
    text = json.dumps(doc, ensure_ascii=True, indent=4, allow_nan=False) + "\n"
    return Exported(text, len(doc["benchmarks"]), tuple(notes))
