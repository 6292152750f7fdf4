"""The notes under the comparison table: where each figure comes from and what it means.

Facts that can differ between rows (rows from different runs) are said once when every row
shares them, else once per distinct text naming its rows. A stored record is not trusted to
have the shape these notes read: a fact a record holds in a malformed shape is said to be
unreadable for that row, and the table still prints.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from greenbench.metrics import METRICS, MetricDef, headline_accuracy, table_metrics
from greenbench.store import RunRecord

# what reading a malformed record (a list where a mapping belongs, text for a number) raises
_MALFORMED = (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError)


def as_number(x: object) -> float | None:
    """``x`` as a float if it is a number (stored JSON is not trusted to hold one)."""
    if not isinstance(x, int | float) or isinstance(x, bool):
        return None
    try:
        return float(x)
    except OverflowError:  # an integer of hundreds of digits
        return None


def _tolerant(text_of: Callable[[RunRecord], str | None], what: str) -> Callable[[RunRecord], str | None]:
    """``text_of``, or a note that ``what`` is unreadable when the record's shape is not the one
    greenbench writes."""

    def text(r: RunRecord) -> str | None:
        try:
            return text_of(r)
        except _MALFORMED:
            return f"{what}: not shown, the stored record holds it in a malformed shape"

    return text


def table_notes(records: Sequence[RunRecord], baseline: str | None, base: RunRecord | None) -> list[str]:
    """Notes on provenance, measurement protocol, idle, carbon, flags and failures of ``records``;
    ``base`` is the baseline's ok record shown (None when there is none)."""
    notes = []
    if baseline is None:
        notes.append(
            "no baseline named (schema-1 records do not store it; pass the suite file): Δ % columns are empty"
        )
    elif base is None:
        notes.append("no ok record of the baseline variant: Δ % columns are empty")
    sources: dict[str, str] = {}
    for r in records:
        for name, m in r.metrics.items():
            if "source" in m and name.startswith(("energy", "train_energy")):
                sources.setdefault(str(m["source"]), str(m.get("method", "?")))
    for src, method in sources.items():
        notes.append(f"energy {method}: {src}")
    ok = [r for r in records if r.status == "ok"]
    cpu_time = _cpu_time_energy_note(ok)
    if cpu_time:
        notes.append(cpu_time)
    runs = _runs_note(records)
    if runs:
        notes.append(runs)
    for text_of, what in (
        (_latency_note, "latency_ms"),
        (_total_latency_note, "latency_total_ms"),
        (_energy_note, "energy per image"),
        (_complexity_note, "GFLOPs and accuracy split"),
        (_idle_of, "idle baseline"),
        (_ignored_note, "dataset samples left out"),
        (_concurrent_note, "other greenbench runs"),
        (_carbon_note, "CO2 intensity"),
    ):
        notes += _grouped(ok, _tolerant(text_of, what))
    flagged = [r.variant for r in ok if any(m.get("invalid_samples") for m in r.metrics.values())]
    if flagged:
        notes.append(
            f"invalid energy counter samples discarded (counter went backwards): {', '.join(flagged)}"
        )
    for r in ok:
        note = _tolerant(_codecarbon_note, f"CodeCarbon cross-check of {r.variant}")(r)
        notes += [note] if note is not None else []
    notes += _flag_notes(ok)
    cost = _study_cost_note(ok)
    notes += [cost] if cost is not None else []
    notes += [f"{r.variant} FAILED: {r.error}" for r in records if r.status == "failed"]
    return notes


def _study_cost_note(records: Sequence[RunRecord]) -> str | None:
    """What the rows' training cost with shared prefixes run once, against every row from scratch.

    A record's ``train_energy_j`` covers its own stages, each made once (a stage reused from the
    cache keeps the energy it cost when it was made); ``train_energy_lineage_j`` covers every stage
    from the root model on, which is what re-running that row from scratch costs."""
    own = [as_number(r.value("train_energy_j")) for r in records]
    lineage = [as_number(r.value("train_energy_lineage_j")) for r in records]
    if sum(x is not None for x in own) < 2 or None in lineage:
        return None
    made = sum(x for x in own if x is not None)
    scratch = sum(x for x in lineage if x is not None)
    reused = sum(bool(st.get("cached")) for r in records for st in r.stages)
    methods = {str(r.metrics.get("train_energy_j", {}).get("method")) for r in records} - {"None"}
    if made <= 0:
        return None
    reuse = f"; {reused} stage(s) reused from the cache" if reused else ""
    return (
        f"cost of the study: {made / 1e3:.3f} kJ of training energy ({'/'.join(sorted(methods))}), "
        f"each shared stage made once; re-running every row from scratch would cost "
        f"{scratch / 1e3:.3f} kJ ({scratch / made:.1f}×){reuse}"
    )


def _codecarbon_note(r: RunRecord) -> str | None:
    cc = r.metrics.get("codecarbon_train_energy_j")
    if cc is None:
        return None
    theirs = as_number(cc.get("value"))
    if theirs is None:
        return f"CodeCarbon cross-check of {r.variant} failed: {cc.get('error')}"
    ours = r.metrics.get("train_energy_j", {})
    mine = as_number(ours.get("value"))
    return (
        f"CodeCarbon cross-check, {r.variant} training: {theirs:.1f} J (its model) vs "
        f"{float('nan') if mine is None else mine:.1f} J ours ({ours.get('method')}); CSV {cc.get('csv')}"
    )


def _flag_notes(ok: Sequence[RunRecord]) -> list[str]:
    """Figures the measurement flagged (noisy, rounds disagree): never reported silently."""

    def header(name: str) -> str:
        return METRICS[name].header if name in METRICS else name

    noisy, disagree = [], []
    for r in ok:
        n = [header(k) for k, m in r.metrics.items() if m.get("noisy")]
        d = [header(k) for k, m in r.metrics.items() if m.get("rounds_disagree")]
        d += [
            f"Δ {header(k)}" for k, m in r.deltas.items() if isinstance(m, dict) and m.get("rounds_disagree")
        ]
        noisy += [f"{r.variant} {', '.join(n)}"] if n else []
        disagree += [f"{r.variant} {', '.join(d)}"] if d else []
    notes = []
    if noisy:
        notes.append(
            f"noisy (IQR of the blocks over 10 % of the median: the host moved; the CI and the paired "
            f"Δ include that spread): {'; '.join(noisy)}"
        )
    if disagree:  # stores written before round-level intervals
        notes.append(
            "rounds disagree (one fresh process' CI does not overlap another's; the host changed "
            f"between rounds): {'; '.join(disagree)}"
        )
    spread: list[str] = []
    for r in ok:
        lat = r.deltas.get("latency_ms")
        tau = as_number(lat.get("spread_pct")) if isinstance(lat, dict) else None
        if tau is not None:
            spread.append(f"{r.variant} {tau:.1f} %")
    if spread:
        notes.append(
            "τ, the between-process spread of Δ latency (SD over the fresh processes of each one's "
            f"median log ratio; the CI is made from these): {', '.join(spread)}"
        )
    single = sorted(
        {r.variant for r in ok for m in r.metrics.values() if isinstance(m, dict) and m.get("rounds") == 1}
    )
    if single:
        notes.append(
            "no CI for figures from a single fresh process (an interval over processes needs 2 rounds "
            f"at least; measure.protocol.rounds): {', '.join(single)}"
        )
    return notes


def _cpu_time_energy_note(ok: Sequence[RunRecord]) -> str | None:
    """Where every inference energy figure is estimated from CPU time, say what its Δ is."""
    readings = [r.metrics.get("energy_per_image_j") for r in ok]
    found = [m for m in readings if isinstance(m, dict)]
    if not found or any(m.get("method") != "estimated" for m in found):
        return None
    from greenbench.measure.energy.meter import cpu_time_only

    if not all(cpu_time_only(str(m.get("source", ""))) for m in found):
        return None
    return (
        "every energy figure here is estimated as process CPU time × W/core: an energy Δ is the "
        "CPU-time Δ (a time saving, not a separate energy saving), and CO2 per image carries the "
        "same estimate; only RAPL or NVML counters measure energy"
    )


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


def protocol(m: Mapping[str, Any]) -> str:
    """How an interleaved figure was measured, from its record: statistic, blocks, rounds. The one
    wording of the protocol in tables and reports (``blocks`` counts every round's blocks)."""
    stat = str(m.get("stat") or "median of block medians")
    shape = f"{m.get('blocks', '?')} blocks in {m.get('rounds', '?')} rounds of fresh processes"
    over = f"{stat} over {shape}" if stat == "median of block medians" else f"{stat} ({shape})"
    ci = str(m.get("ci_method") or "95 % hierarchical bootstrap over processes then blocks")
    return f"{over}, interleaved with the baseline; [CI] = {ci}; Δ from time-adjacent block pairs"


def _latency_note(r: RunRecord) -> str | None:
    lat = r.metrics.get("latency_ms")
    if lat is None:
        return None
    settings = r.measurement.get("settings", {}).get("latency", {})
    batch = settings.get("batch", "?")
    device = f"{r.device.get('device')} ({r.device.get('cpu_model')})"
    what = f"one forward pass of batch {batch}"
    if settings.get("scope") == "total":
        per_call = r.measurement.get("runtime", {}).get("per_call")
        what = (
            f"scope total: {per_call}"
            if per_call
            else "scope total: per image from its file, pre- and postprocessing included"
        )
    where = f"{what}, {lat.get('threads')} thread(s), {device}"
    if r.schema_version < 2:
        return (
            f"latency_ms (schema-1 record): median of one process' samples; [CI] = bootstrap 95 % "
            f"of those samples; not interleaved with the baseline; {where}"
        )
    return f"latency_ms: {protocol(lat)}; {where}"


def _total_latency_note(r: RunRecord) -> str | None:
    """``latency.scope: both``: what the second latency column timed."""
    lat = r.metrics.get("latency_total_ms")
    if lat is None:
        return None
    per_call = lat.get("per_call") or "per image from its file, pre- and postprocessing included"
    return (
        f"latency_total_ms: {protocol(lat)}; scope total: {per_call}, timed in the same rounds as "
        f"latency_ms (the model alone), {lat.get('threads')} thread(s)"
    )


def _energy_note(r: RunRecord) -> str | None:
    names = [n for n, d in METRICS.items() if d.energy and d.interval and n in r.metrics]
    if not names:
        return None
    heads = ", ".join(METRICS[n].header for n in names)
    if r.schema_version < 2:
        return f"{heads} (schema-1 record): median over energy windows of one process"
    return f"{heads}: {protocol(r.metrics[names[0]])}"


def _accuracy_columns(task: str) -> list[MetricDef]:
    """The accuracy columns the table shows for ``task`` ([] for a task not installed here)."""
    try:
        return [m for m in table_metrics(task) if m.kind == "accuracy"]
    except ValueError:
        return []


def _complexity_note(r: RunRecord) -> str:
    g = r.metrics.get("gflops", {})
    headline = headline_accuracy(r.task) or ""
    shown = [m.header for m in _accuracy_columns(r.task)] or ["accuracy"]
    return (
        f"GFLOPs: {g.get('convention', '2 × GMACs')} at {g.get('imgsz')} px; "
        f"{'/'.join(reversed(shown))} on the {r.metrics.get(headline, {}).get('split', 'test')} split; "
        f"E_train and CO2: "
        f"this variant's own stages; E_lineage: every stage from the root model on; "
        f"net = gross − idle power × duration"
    )


def _concurrent_note(r: RunRecord) -> str | None:
    """Other greenbench runs that were active on the machine while this one ran its jobs."""
    others = r.measurement.get("concurrent_runs") or []
    if not isinstance(others, list) or not others:
        return None
    shown = "; ".join(
        f"pid {o.get('pid', '?')} (suite {o.get('suite', '?')})" for o in others[:5] if isinstance(o, dict)
    )
    return (
        f"measured while other greenbench runs were active on this machine ({shown}): their load "
        f"moves absolute figures; paired Δ are less affected"
    )


def _ignored_note(r: RunRecord) -> str | None:
    """Samples of the user's dataset that were left out (ultralytics would drop them silently)."""
    data = r.measurement.get("dataset", {})
    ignored = data.get("ignored") or {}
    if not isinstance(ignored, dict) or not ignored:
        return None
    examples = data.get("ignored_examples") or {}
    parts = []
    for reason, count in ignored.items():
        shown = examples.get(reason, ()) if isinstance(examples, dict) else ()
        example = f", e.g. {shown[0]}" if shown else ""
        parts.append(f"{count} {reason}{example}")
    return f"dataset samples left out (not trained or evaluated on): {'; '.join(parts)}"


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
