"""Results as a pandas DataFrame: one row per suite × variant × runtime × device.

``load_results`` is what the leaderboard CSV, the device report and a notebook user read; no one
needs SQL. Each row is the newest ``ok`` record of its suite, variant, runtime and device ("newest":
latest ``finished_at``), smoke runs left out unless asked for. Several stores merge into one frame
(results gathered on different machines); a record present in two stores counts once.

``COLUMNS`` lists every column, in order, with its unit and meaning. Every numeric column's name
carries its unit (``latency_ms_median``, ``energy_j_per_image``, ``co2_g_train``); accuracy
columns are fractions in [0, 1]; ``_pct`` columns are percent. Text stays as the records hold it
(escaping is the renderer's job: the CSV writer, the HTML report).

Ranks are computed within each suite (accuracy on different datasets does not compare), across
its devices and runtimes; ``RANK_RULES`` says each rule in words, and the frame's ``rank_rule``
column repeats the one used.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from greenbench.metrics import METRICS, headline_accuracy
from greenbench.report.pareto import pareto_rank
from greenbench.store import DEFAULT_STORE, RunRecord, Store

if TYPE_CHECKING:
    import pandas as pd

RANK_RULES: dict[str, str] = {
    "pareto": (
        "within each suite: Pareto rank (non-dominated layer, 1 = front) of accuracy (higher is "
        "better) against energy_j_per_image (lower is better), ties broken by latency_ms_median "
        "(lower is better); rows without accuracy or energy are unranked"
    ),
    "energy": (
        "within each suite: energy_j_per_image, lowest first, ties broken by latency_ms_median; "
        "rows without energy are unranked"
    ),
    "latency": (
        "within each suite: latency_ms_median, lowest first, ties broken by energy_j_per_image; "
        "rows without latency are unranked"
    ),
    "accuracy": (
        "within each suite: accuracy, highest first, ties broken by energy_j_per_image; rows "
        "without accuracy are unranked"
    ),
}

_ACCURACY = [m.name for m in METRICS.values() if m.kind == "accuracy"]

# name, kind (text | float | int | bool), unit and meaning
_SPEC: list[tuple[str, str, str]] = [
    ("suite", "text", "suite name"),
    ("variant", "text", "variant name"),
    ("runtime", "text", "runtime that ran the measured model (torch, onnxruntime, …)"),
    ("model_precision", "text", "numeric precision the runtime ran the model in (fp32, fp16, int8, …)"),
    ("device_id", "text", "hardware id: hash of CPU model, cores, RAM, arch and GPUs (greenbench env)"),
    ("device", "text", "short description of the device: measured device, CPU model, cores, RAM, GPUs"),
    ("rank", "int", "rank within the suite under rank_rule, 1 = best; equal scores share a rank"),
    ("rank_rule", "text", "the rule rank follows, in words"),
    (
        "pareto_rank",
        "int",
        "non-dominated layer of accuracy vs energy_j_per_image within the suite, 1 = front",
    ),
    ("pareto_optimal", "bool", "on the Pareto front of accuracy vs energy_j_per_image within the suite"),
    ("task", "text", "the record's task (detect, or an installed task)"),
    ("baseline", "text", "the suite's baseline variant"),
    ("is_baseline", "bool", "this row is the baseline variant"),
    ("parent", "text", "the variant this one is derived from"),
    ("accuracy_metric", "text", "which accuracy column the rank uses: the task's headline metric"),
    ("accuracy", "float", "fraction in [0, 1]: the value of accuracy_metric"),
    *[(n, "float", f"fraction in [0, 1]: {METRICS[n].description}") for n in _ACCURACY],
    (
        "latency_ms_median",
        "float",
        "ms per call of `batch` images: geometric mean over rounds of round medians",
    ),
    (
        "latency_ms_ci_low",
        "float",
        "ms: 95 % CI low (t-interval over processes: one median per round, log scale)",
    ),
    ("latency_ms_ci_high", "float", "ms: 95 % CI high"),
    (
        "latency_noisy",
        "bool",
        "latency flagged noisy (IQR over median too wide; rounds disagree: old records)",
    ),
    ("latency_delta_pct", "float", "% vs the baseline's latency (paired: time-adjacent blocks)"),
    ("latency_delta_pct_ci_low", "float", "%: 95 % CI low of the paired Δ (empty when unpaired)"),
    ("latency_delta_pct_ci_high", "float", "%: 95 % CI high of the paired Δ"),
    ("latency_delta_significant", "bool", "the paired Δ's CI excludes 0"),
    (
        "energy_j_per_image",
        "float",
        "J per image of inference, gross: geometric mean over rounds of round medians",
    ),
    ("energy_j_per_image_ci_low", "float", "J: 95 % CI low"),
    ("energy_j_per_image_ci_high", "float", "J: 95 % CI high"),
    ("energy_net_j_per_image", "float", "J per image of inference, net of the idle power"),
    ("energy_net_j_per_image_ci_low", "float", "J: 95 % CI low"),
    ("energy_net_j_per_image_ci_high", "float", "J: 95 % CI high"),
    ("energy_noisy", "bool", "energy per image flagged noisy or rounds disagree"),
    ("energy_method", "text", "measured (hardware counters) or estimated (modelled from CPU time)"),
    ("energy_source", "text", "meter(s) behind energy_j_per_image (rapl, nvml, estimate, …)"),
    ("energy_delta_pct", "float", "% vs the baseline's energy per image (empty across methods/sources)"),
    ("energy_delta_pct_ci_low", "float", "%: 95 % CI low of the paired Δ"),
    ("energy_delta_pct_ci_high", "float", "%: 95 % CI high of the paired Δ"),
    ("energy_delta_significant", "bool", "the paired Δ's CI excludes 0"),
    (
        "latency_delta_paired",
        "bool",
        "latency Δ paired in time with the baseline's blocks (false: from two values)",
    ),
    (
        "energy_delta_paired",
        "bool",
        "energy Δ paired in time with the baseline's blocks (false: from two values)",
    ),
    (
        "paired",
        "bool",
        "every Δ of the row is from blocks interleaved with the baseline's in the same processes; "
        "false: some Δ is from two values measured apart (no CI); empty for the baseline",
    ),
    ("noisy", "bool", "latency_noisy or energy_noisy"),
    ("co2_g_per_1k_images", "float", "g CO2 of 1000 images' inference: gross J × grid intensity × PUE"),
    ("train_energy_j", "float", "J of this variant's own training stages, gross"),
    ("train_energy_net_j", "float", "J of this variant's own training stages, net of idle"),
    ("train_energy_lineage_j", "float", "J of every stage from the root model on, gross"),
    ("train_energy_method", "text", "measured or estimated"),
    ("co2_g_train", "float", "g CO2 of this variant's own stages: gross J × grid intensity × PUE"),
    ("grid_g_per_kwh", "float", "g CO2 per kWh used for the CO2 columns"),
    ("pue", "float", "power usage effectiveness applied to the CO2 columns"),
    ("gflops", "float", "GFLOP per forward pass of one image at imgsz_px; GFLOPs = 2 × GMACs"),
    ("gmacs", "float", "GMAC (10^9 multiply-accumulates) per forward pass of one image"),
    ("params_m", "float", "parameters, millions"),
    ("size_mb", "float", "model file size, MB (10^6 bytes)"),
    ("peak_rss_mb", "float", "MB: peak RSS of the process that evaluated the model"),
    ("batch", "int", "images per timed call"),
    ("imgsz_px", "int", "px: side of the square input of latency, energy and GFLOPs"),
    ("threads", "int", "intra-op threads of the timed calls"),
    ("achieved_gflops_per_s", "float", "GFLOP/s achieved: gflops × batch ÷ (latency_ms_median / 1000)"),
    ("peak_gflops_per_s", "float", "GFLOP/s (int8: GOP/s): this device's peak from 'greenbench env --peak'"),
    ("peak_kind", "text", "which peak: fp32 matmul, or int8 for quantized variants (when measured)"),
    ("peak_threads", "int", "threads the peak was measured with"),
    ("pct_of_peak", "float", "%: achieved_gflops_per_s ÷ peak_gflops_per_s × 100 (roofline)"),
    ("smoke", "bool", "a record of 'greenbench run --smoke' (only with include_smoke)"),
    ("run_id", "text", "the run that produced the record"),
    ("recorded_at", "text", "when the record was finished (UTC, ISO 8601)"),
    ("greenbench_version", "text", "greenbench version that measured it"),
    ("git_commit", "text", "git commit of the suite's folder at run time ('+dirty' if modified)"),
    ("schema_version", "int", "record schema version"),
]

#: every column of ``load_results`` and the leaderboard CSV, in order: (name, unit and meaning)
COLUMNS: list[tuple[str, str]] = [(name, what) for name, _, what in _SPEC]
KINDS: dict[str, str] = {name: kind for name, kind, _ in _SPEC}
_DTYPES = {"text": "object", "float": "float64", "int": "Int64", "bool": "boolean"}


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


def latest_ok(records: Iterable[RunRecord], include_smoke: bool = False) -> list[RunRecord]:
    """The newest ok record per suite × variant × runtime × device (smoke ones left out unless
    ``include_smoke``), in a fixed order."""
    newest: dict[tuple[str, str, str, str], RunRecord] = {}
    for r in records:
        if r.status != "ok" or (is_smoke(r) and not include_smoke):
            continue
        key = (r.suite, r.variant, r.runtime or "", r.device_id)
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


def _flagged(r: RunRecord, name: str) -> bool | None:
    m = r.metrics.get(name)
    if not isinstance(m, dict):
        return None
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
    row.update(
        suite=r.suite, variant=r.variant, runtime=r.runtime, model_precision=_precision(r),
        device_id=r.device_id,
        device=describe_device(r.device), task=r.task, baseline=r.baseline,
        is_baseline=r.variant == r.baseline, parent=r.parent, accuracy_metric=acc_name,
        accuracy=_num(_metric(r, acc_name)) if acc_name else None,
        **{n: _num(_metric(r, n)) for n in _ACCURACY},
        latency_ms_median=_num(_metric(r, "latency_ms")),
        latency_ms_ci_low=_num(_metric(r, "latency_ms", "ci_low")),
        latency_ms_ci_high=_num(_metric(r, "latency_ms", "ci_high")),
        latency_noisy=_flagged(r, "latency_ms"),
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
        smoke=is_smoke(r), run_id=r.run_id, recorded_at=r.finished_at,
        greenbench_version=r.versions.get("greenbench"), git_commit=r.versions.get("suite_git_commit"),
        schema_version=r.schema_version,
    )  # fmt: skip
    flags = [f for f in (row["latency_noisy"], row["energy_noisy"]) if f is not None]
    row["noisy"] = any(flags) if flags else None
    paired = []
    for name, prefix in (("latency_ms", "latency"), ("energy_per_image_j", "energy")):
        d = _delta(r, base, name, prefix)
        if "_paired" in d:
            paired.append(d["_paired"])
            row[f"{prefix}_delta_paired"] = d.pop("_paired")
        row.update(d)
    row["paired"] = all(paired) if paired else None
    _roofline(row, r, peak)
    return row


def _rank_key(row: dict[str, Any], rule: str) -> tuple[float, ...] | None:
    """The sort key of ``row`` under ``rule`` (lower first), or None when it cannot be ranked."""
    inf = math.inf
    lat = row["latency_ms_median"] if row["latency_ms_median"] is not None else inf
    energy = row["energy_j_per_image"]
    if rule == "pareto":
        return None if row["pareto_rank"] is None else (row["pareto_rank"], lat)
    if rule == "energy":
        return None if energy is None else (energy, lat)
    if rule == "latency":
        return None if row["latency_ms_median"] is None else (lat, energy if energy is not None else inf)
    if rule == "accuracy":
        acc = row["accuracy"]
        return None if acc is None else (-acc, energy if energy is not None else inf)
    raise ValueError(f"unknown rank rule {rule!r}; expected one of {', '.join(RANK_RULES)}")


#: appended to a suite's rank rule when all its energy figures are the CPU-time model
CPU_TIME_CAVEAT = (
    "; here every energy_j_per_image is estimated (CPU-time model: process CPU time × W/core), "
    "so where energy ranks, CPU time ranks"
)


def _cpu_time_caveat(group: list[dict[str, Any]]) -> str:
    from greenbench.measure.energy.meter import cpu_time_only

    rated = [g for g in group if g.get("energy_j_per_image") is not None]
    only = rated and all(cpu_time_only(g.get("energy_source")) for g in rated)
    return CPU_TIME_CAVEAT if only else ""


def rank_rows(rows: list[dict[str, Any]], rule: str = "pareto") -> list[dict[str, Any]]:
    """Pareto and rule ranks within each suite; rows sorted by suite, rank (unranked last),
    variant, runtime, device id."""
    if rule not in RANK_RULES:
        raise ValueError(f"unknown rank rule {rule!r}; expected one of {', '.join(RANK_RULES)}")
    out: list[dict[str, Any]] = []
    for suite in sorted({row["suite"] for row in rows}):
        group = [row for row in rows if row["suite"] == suite]
        layers = pareto_rank([g["accuracy"] for g in group], [g["energy_j_per_image"] for g in group])
        said = RANK_RULES[rule] + _cpu_time_caveat(group)
        for g, layer in zip(group, layers, strict=True):
            g.update(pareto_rank=layer, pareto_optimal=layer == 1, rank_rule=said)
        keyed = sorted(
            ((_rank_key(g, rule), g) for g in group),
            key=lambda kg: (kg[0] is None, kg[0] or (), kg[1]["variant"], kg[1]["runtime"] or "",
                            kg[1]["device_id"]),
        )  # fmt: skip
        previous: tuple[tuple[float, ...] | None, int | None] = (None, None)
        for position, (key, g) in enumerate(keyed, start=1):
            if key is not None:  # competition ranking: equal keys share the first one's rank
                g["rank"] = previous[1] if key == previous[0] else position
            previous = (key, g["rank"])
            out.append(g)
    return out


def load_results(
    stores: str | Path | Sequence[str | Path] = DEFAULT_STORE,
    suite: str | None = None,
    device: str | None = None,
    include_smoke: bool = False,
    rank_by: str = "pareto",
) -> pd.DataFrame:
    """The results of one or more stores as a DataFrame with ``COLUMNS``, in their order.

    One row per suite × variant × runtime × device: the newest ``ok`` record (smoke records
    only with ``include_smoke``). ``suite``/``device``: keep one suite name / one device id.
    ``rank_by``: a key of ``RANK_RULES``. A missing or foreign store is a ``GreenbenchError``.
    ``frame.attrs`` holds ``rank_rule``, ``stores`` and ``warnings`` (records skipped as
    unreadable).
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
    bases: dict[tuple[str, str], RunRecord] = {}
    for r in chosen:  # the baseline row of each suite and device (its torch runtime first)
        if r.variant == r.baseline and ((r.suite, r.device_id) not in bases or r.runtime == "torch"):
            bases[(r.suite, r.device_id)] = r
    rows = [record_row(r, bases.get((r.suite, r.device_id)), peaks.get(r.device_id)) for r in chosen]
    rows = rank_rows(rows, rank_by)
    frame = pd.DataFrame(rows, columns=list(KINDS))
    frame = frame.astype({name: _DTYPES[kind] for name, kind in KINDS.items()})
    frame.attrs.update(rank_rule=RANK_RULES[rank_by], stores=[str(p) for p in paths], warnings=warnings)
    return frame
