"""Results as a pandas DataFrame: one row per suite config × variant × runtime × device.

``load_results`` is what the leaderboard CSV, the device report and a notebook user read; no one
needs SQL. Each row is the newest ``ok`` record ("newest": latest ``finished_at``) of its suite,
suite config, variant, runtime (with its options) and device, smoke runs left out unless asked
for. The suite config (``suite_config``, ``greenbench.suite.identity.results_key``) is what
makes a suite's records compare: two runs of a suite of the same name on other data or settings
are two sets of rows, never merged. Several stores merge into one frame (results gathered on
different machines); a record present in two stores counts once.

``greenbench.report.columns.COLUMNS`` lists every column, in order, with its unit and meaning.
Text stays as the records hold it (escaping is the renderer's job: the CSV writer, the HTML
report). Ranks are computed within rank groups (``greenbench.report.ranking``): one suite config
on one device with one energy method.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from greenbench.metrics import METRICS, headline_accuracy
from greenbench.report.columns import ACCURACY, DTYPES, KINDS
from greenbench.report.ranking import RANK_RULES, rank_rows
from greenbench.store import DEFAULT_STORE, RunRecord, Store
from greenbench.suite.identity import results_key

if TYPE_CHECKING:
    import pandas as pd


def _num(x: object) -> float | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return float(x) if math.isfinite(x) else None


def _open_stores(stores: str | Path | Sequence[str | Path]) -> list[Path]:
    if isinstance(stores, (str, Path)):
        return [Path(stores)]
    return [Path(s) for s in stores]


def read_stores(paths: Iterable[Path]) -> tuple[list[RunRecord], dict[str, dict[str, Any]], list[str]]:
    """Every readable record of the stores (a record in two stores once), the newest stored
    peak per device, and the stores' warnings. Stores are opened read-only."""
    seen: set[str] = set()
    records: list[RunRecord] = []
    peaks: dict[str, dict[str, Any]] = {}
    warnings: list[str] = []
    for path in paths:
        with Store(path, readonly=True) as store:
            for r in store.records():
                # the same record copied into two stores is the same JSON: counted once
                key = hashlib.sha256(json.dumps(r.to_dict(), sort_keys=True).encode()).hexdigest()
                if key not in seen:
                    seen.add(key)
                    records.append(r)
            for device_id in sorted({r.device_id for r in records} - set(peaks)):
                peak = store.device_peak(device_id)
                if peak is not None:
                    peaks[device_id] = peak
            for device_id in sorted(peaks):  # a newer peak of the same device in a later store
                peak = store.device_peak(device_id)
                if peak is not None and str(peak.get("measured_at", "")) > str(
                    peaks[device_id].get("measured_at", "")
                ):
                    peaks[device_id] = peak
            warnings += store.warnings
    return records, peaks, warnings


def is_smoke(record: RunRecord) -> bool:
    """Whether ``record`` comes from ``greenbench run --smoke``."""
    # RunRecord.smoke (what the smoke run changed) is None for a real result
    return getattr(record, "smoke", None) not in (None, False) or bool(record.measurement.get("smoke"))


def suite_config(r: RunRecord) -> str:
    """The key of what makes the record compare with others of its suite: task, baseline, data
    and measure settings (``greenbench.suite.identity.results_key``)."""
    dataset = r.measurement.get("dataset")
    return results_key(
        r.task, r.baseline, dataset if isinstance(dataset, dict) else {}, r.measurement.get("settings")
    )


def latest_ok(records: Iterable[RunRecord], include_smoke: bool = False) -> list[RunRecord]:
    """The newest ok record per suite × suite config × variant × runtime × device (smoke ones
    left out unless ``include_smoke``), in a fixed order."""
    newest: dict[tuple[str, str, str, str, str], RunRecord] = {}
    for r in records:
        if r.status != "ok" or (is_smoke(r) and not include_smoke):
            continue
        key = (r.suite, suite_config(r), r.variant, r.runtime or "", r.device_id)
        old = newest.get(key)
        if old is None or (r.finished_at, r.started_at, r.run_id) > (
            old.finished_at,
            old.started_at,
            old.run_id,
        ):
            newest[key] = r
    return [newest[k] for k in sorted(newest)]


def describe_device(device: dict[str, Any]) -> str:
    """``cpu · AMD EPYC · 2 cores · 7.8 GiB`` (+ GPUs) from a record's device fingerprint."""
    parts = [str(device.get(k)) for k in ("device", "cpu_model") if device.get(k)]
    if device.get("logical_cores"):
        parts.append(f"{device['logical_cores']} cores")
    if device.get("ram_gib"):
        parts.append(f"{device['ram_gib']} GiB")
    gpus = device.get("gpus")
    if isinstance(gpus, list) and gpus:
        parts.append(" + ".join(str(g) for g in gpus))
    return " · ".join(parts)


def _metric(r: RunRecord, name: str, key: str = "value") -> Any:
    m = r.metrics.get(name)
    return m.get(key) if isinstance(m, dict) else None


def _flagged(r: RunRecord, name: str) -> bool:
    m = r.metrics.get(name)
    if not isinstance(m, dict):
        return False
    return bool(m.get("noisy") or m.get("rounds_disagree"))


def is_int8(r: RunRecord) -> bool:
    """Whether the measured model is int8-quantized: its runtime said so (ONNX Runtime reports
    ``precision: int8`` for a graph with quantized operators), a quantize stage, an int8 file."""
    runtime = r.measurement.get("runtime")
    if isinstance(runtime, dict) and runtime.get("precision") == "int8":
        return True
    if any(isinstance(st, dict) and st.get("name") == "quantize" for st in r.stages):
        return True
    artifact = r.measurement.get("artifact")
    path = str(artifact.get("path", "")) if isinstance(artifact, dict) else ""
    return "int8" in Path(path).name.lower()


def _precision(r: RunRecord) -> str | None:
    runtime = r.measurement.get("runtime")
    found = runtime.get("precision") if isinstance(runtime, dict) else None
    return str(found) if found is not None else ("int8" if is_int8(r) else None)


def split_runtime(label: str | None) -> tuple[str | None, str | None]:
    """A record's runtime label as (name, options): ``openvino(precision=f32, streams=1)`` ->
    ``("openvino", "precision=f32, streams=1")``, ``torch`` -> ``("torch", None)``
    (``greenbench.runtimes.base.runtime_label`` writes them)."""
    if label is None or not label.endswith(")") or "(" not in label:
        return label, None
    name, _, options = label[:-1].partition("(")
    return name, options or None


def join_runtime(name: object, options: object) -> str:
    """The record's runtime label again from ``runtime`` and ``runtime_options`` (inverse of
    ``split_runtime``; an empty cell is None or NaN)."""
    text = str(name) if isinstance(name, str) else ""
    return f"{text}({options})" if isinstance(options, str) and options else text


def _runtime_version(r: RunRecord, name: str | None) -> str | None:
    """The version the runtime reported when it was loaded, else its library's in the record."""
    described = r.measurement.get("runtime")
    version = described.get("version") if isinstance(described, dict) else None
    if version is None and name:
        version = r.versions.get(name)
    return str(version) if version is not None else None


def _settings(r: RunRecord) -> dict[str, Any]:
    settings = r.measurement.get("settings")
    latency = settings.get("latency") if isinstance(settings, dict) else None
    return latency if isinstance(latency, dict) else {}


def _delta(r: RunRecord, base: RunRecord | None, name: str, prefix: str) -> dict[str, Any]:
    """The Δ columns of metric ``name``: the stored paired one, else one from the two values."""
    out: dict[str, Any] = {}
    if base is None or base is r:
        return out
    mine, theirs = r.metrics.get(name), base.metrics.get(name)
    if METRICS[name].energy and isinstance(mine, dict) and isinstance(theirs, dict):
        if (mine.get("method"), mine.get("source")) != (theirs.get("method"), theirs.get("source")):
            return out  # measured vs estimated figures are not comparable
    d = r.deltas.get(name)
    if isinstance(d, dict) and d.get("paired") is not False and _num(d.get("delta_pct")) is not None:
        sig = d.get("significant")
        return {
            f"{prefix}_delta_pct": _num(d.get("delta_pct")),
            f"{prefix}_delta_pct_ci_low": _num(d.get("delta_ci_low_pct")),
            f"{prefix}_delta_pct_ci_high": _num(d.get("delta_ci_high_pct")),
            f"{prefix}_delta_significant": sig if isinstance(sig, bool) else None,
            "_paired": True,
        }
    v, b = _num(_metric(r, name)), _num(_metric(base, name))
    if v is not None and b:
        out = {f"{prefix}_delta_pct": (v - b) / abs(b) * 100.0, "_paired": False}
    return out


def _roofline(row: dict[str, Any], r: RunRecord, peak: dict[str, Any] | None) -> None:
    gflops, lat, batch = row["gflops"], row["latency_ms_median"], row["batch"] or 1
    if gflops is not None and lat:
        row["achieved_gflops_per_s"] = gflops * batch / (lat / 1000.0)
    if peak is None:
        return
    int8 = _num(peak.get("int8_gops_per_s"))
    kind, value = ("int8", int8) if is_int8(r) and int8 else ("fp32", _num(peak.get("fp32_gflops_per_s")))
    threads = peak.get("threads")
    row.update(
        peak_gflops_per_s=value, peak_kind=kind, peak_threads=threads if isinstance(threads, int) else None
    )
    # a peak at another thread count is another machine's ceiling: no percentage against it
    same_threads = not isinstance(threads, int) or row.get("threads") in (None, threads)
    if value and row["achieved_gflops_per_s"] is not None and same_threads:
        row["pct_of_peak"] = row["achieved_gflops_per_s"] / value * 100.0


def record_row(r: RunRecord, base: RunRecord | None, peak: dict[str, Any] | None) -> dict[str, Any]:
    """The columns of one record (rank columns left empty); ``base``: the baseline's record on
    the same device, for the Δ of a record that stores no paired one."""
    row: dict[str, Any] = dict.fromkeys(KINDS)
    settings = _settings(r)
    found = r.measurement.get("carbon")
    carbon: dict[str, Any] = found if isinstance(found, dict) else {}
    acc_name = headline_accuracy(r.task)  # the accuracy a suite's rows are ranked by
    threads = _metric(r, "latency_ms", "threads")
    runtime, options = split_runtime(r.runtime)
    dataset = r.measurement.get("dataset")
    fingerprint = dataset.get("fingerprint") if isinstance(dataset, dict) else None
    row.update(
        suite=r.suite, suite_config=suite_config(r), variant=r.variant, runtime=runtime,
        runtime_options=options, model_precision=_precision(r), device_id=r.device_id,
        device=describe_device(r.device), task=r.task, baseline=r.baseline,
        is_baseline=r.variant == r.baseline, parent=r.parent, accuracy_metric=acc_name,
        accuracy=_num(_metric(r, acc_name)) if acc_name else None,
        **{n: _num(_metric(r, n)) for n in ACCURACY},
        latency_ms_median=_num(_metric(r, "latency_ms")),
        latency_ms_ci_low=_num(_metric(r, "latency_ms", "ci_low")),
        latency_ms_ci_high=_num(_metric(r, "latency_ms", "ci_high")),
        latency_noisy=_flagged(r, "latency_ms"),
        latency_total_ms_median=_num(_metric(r, "latency_total_ms")),
        latency_total_ms_ci_low=_num(_metric(r, "latency_total_ms", "ci_low")),
        latency_total_ms_ci_high=_num(_metric(r, "latency_total_ms", "ci_high")),
        energy_j_per_image=_num(_metric(r, "energy_per_image_j")),
        energy_j_per_image_ci_low=_num(_metric(r, "energy_per_image_j", "ci_low")),
        energy_j_per_image_ci_high=_num(_metric(r, "energy_per_image_j", "ci_high")),
        energy_net_j_per_image=_num(_metric(r, "energy_per_image_net_j")),
        energy_net_j_per_image_ci_low=_num(_metric(r, "energy_per_image_net_j", "ci_low")),
        energy_net_j_per_image_ci_high=_num(_metric(r, "energy_per_image_net_j", "ci_high")),
        energy_noisy=_flagged(r, "energy_per_image_j"),
        energy_method=_metric(r, "energy_per_image_j", "method"),
        energy_source=_metric(r, "energy_per_image_j", "source"),
        co2_g_per_1k_images=_num(_metric(r, "co2_per_1k_images_g")),
        train_energy_j=_num(_metric(r, "train_energy_j")),
        train_energy_net_j=_num(_metric(r, "train_energy_net_j")),
        train_energy_lineage_j=_num(_metric(r, "train_energy_lineage_j")),
        train_energy_method=_metric(r, "train_energy_j", "method"),
        co2_g_train=_num(_metric(r, "co2_train_g")),
        grid_g_per_kwh=_num(carbon.get("g_per_kwh")), pue=_num(carbon.get("pue")),
        gflops=_num(_metric(r, "gflops")), gmacs=_num(_metric(r, "gmacs")),
        params_m=None if _num(_metric(r, "params")) is None else _metric(r, "params") / 1e6,
        size_mb=_num(_metric(r, "size_mb")), peak_rss_mb=_num(_metric(r, "peak_rss_mb")),
        batch=settings.get("batch") if isinstance(settings.get("batch"), int) else None,
        imgsz_px=_metric(r, "gflops", "imgsz") if isinstance(_metric(r, "gflops", "imgsz"), int) else None,
        threads=threads if isinstance(threads, int) and not isinstance(threads, bool) else None,
        smoke=is_smoke(r), run_id=r.run_id, recorded_at=r.finished_at, suite_hash=r.suite_hash,
        variant_hash=r.variant_hash, dataset_fingerprint=None if fingerprint is None else str(fingerprint),
        torch_version=r.versions.get("torch"), runtime_version=_runtime_version(r, runtime),
        greenbench_version=r.versions.get("greenbench"), git_commit=r.versions.get("suite_git_commit"),
        schema_version=r.schema_version,
    )  # fmt: skip
    row["noisy"] = row["latency_noisy"] or row["energy_noisy"]
    paired = []
    for name, prefix in (("latency_ms", "latency"), ("energy_per_image_j", "energy")):
        d = _delta(r, base, name, prefix)
        if "_paired" in d:
            paired.append(d["_paired"])
            row[f"{prefix}_delta_paired"] = d.pop("_paired")
        row.update(d)
    row["paired"] = bool(paired) and all(paired)
    for name, kind in KINDS.items():  # a flag with nothing to flag is False, never empty
        if kind == "bool":
            row[name] = bool(row[name])
    _roofline(row, r, peak)
    return row


def load_results(
    stores: str | Path | Sequence[str | Path] = DEFAULT_STORE,
    suite: str | None = None,
    device: str | None = None,
    include_smoke: bool = False,
    rank_by: str = "pareto",
) -> pd.DataFrame:
    """The results of one or more stores as a DataFrame with ``COLUMNS``, in their order.

    One row per suite × suite config × variant × runtime × device: the newest ``ok`` record
    (smoke records only with ``include_smoke``). ``suite``/``device``: keep one suite name /
    one device id. ``rank_by``: a key of ``RANK_RULES``. A missing or foreign store is a
    ``GreenbenchError``. ``frame.attrs`` holds ``rank_by``, ``rank_rule``, ``groups`` (each
    rank group as a dict, ``RankGroup.to_dict``), ``stores`` and ``warnings`` (records skipped
    as unreadable).
    """
    import pandas as pd

    if rank_by not in RANK_RULES:
        raise ValueError(f"unknown rank rule {rank_by!r}; expected one of {', '.join(RANK_RULES)}")
    paths = _open_stores(stores)
    records, peaks, warnings = read_stores(paths)
    chosen = [
        r
        for r in latest_ok(records, include_smoke)
        if (suite is None or r.suite == suite) and (device is None or r.device_id == device)
    ]
    bases: dict[tuple[str, str, str], RunRecord] = {}
    for r in chosen:  # the baseline row of each suite config and device (its torch runtime first)
        where = (r.suite, suite_config(r), r.device_id)
        if r.variant == r.baseline and (where not in bases or r.runtime == "torch"):
            bases[where] = r
    rows = [
        record_row(r, bases.get((r.suite, suite_config(r), r.device_id)), peaks.get(r.device_id))
        for r in chosen
    ]
    rows, groups = rank_rows(rows, rank_by)
    frame = pd.DataFrame(rows, columns=list(KINDS))
    frame = frame.astype({name: DTYPES[kind] for name, kind in KINDS.items()})
    frame.attrs.update(
        rank_by=rank_by,
        rank_rule=RANK_RULES[rank_by],
        groups=[g.to_dict() for g in groups],
        stores=[str(p) for p in paths],
        warnings=warnings,
    )
    return frame
