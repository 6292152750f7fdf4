"""The gate's outputs: a short table for a human, a JSON document for machines, a Markdown
summary for a CI job summary (``$GITHUB_STEP_SUMMARY``). Pure: strings in, strings out.

Headers, scales and decimals come from the metric registry (``greenbench.metrics``). Side names
and energy sources are user or file text: control characters are folded for the terminal and
Markdown special characters escaped (``report.tables.md_escape``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from greenbench.errors import TERMINAL_UNSAFE
from greenbench.gate.calibration import Calibration
from greenbench.gate.decision import MetricVerdict, Verdict
from greenbench.metrics import METRICS
from greenbench.report.tables import md_escape

#: version of the ``--json`` document; bump and describe here when its shape changes.
#: 1 — outcome, exit_code, reference/candidate, settings, rounds, verdict, calibration.
#: 2 — round-level t-intervals: no p-values, Holm or rounds_disagree; a verdict has confidence and
#:     interval_confidence, a metric effective_threshold_pct, spread_pct and interval_confidence;
#:     calibration has false_alarm_ci (Clopper–Pearson).
GATE_SCHEMA_VERSION = 2


def _plain(text: str) -> str:
    return " ".join(TERMINAL_UNSAFE.sub(" ", text).split())


def _header(v: MetricVerdict) -> str:
    head = METRICS[v.metric].header if v.metric in METRICS else v.metric
    return f"{head} [{v.method}]" if v.method == "estimated" else head


def _value(v: MetricVerdict, value: float | None) -> str:
    if value is None:
        return "—"
    d = METRICS.get(v.metric)
    return d.display(value) if d is not None else f"{value:.4g}"


def _pct(ratio: float | None) -> str:
    return "—" if ratio is None else f"{(ratio - 1) * 100:+.1f} %"


def _floor(v: MetricVerdict) -> str:
    if v.metric == "energy_per_image_j":
        return f"{v.floor * 1e3:g} mJ"
    return f"{v.floor:g} {v.unit}"


def rows(verdict: Verdict) -> tuple[list[str], list[list[str]]]:
    """Headers and one row per metric (and candidate, when there are several)."""
    several = len({m.candidate for m in verdict.metrics}) > 1
    level = f"{verdict.interval_confidence * 100:.3g} % CI"
    heads = ["metric", "reference", "candidate", "Δ", level, "τ", "threshold", "floor", "outcome"]
    body = []
    for m in verdict.metrics:
        ci = "—" if m.ci_low is None else f"[{_pct(m.ci_low)}, {_pct(m.ci_high)}]".replace(" %", "")
        body.append(
            [
                (f"{m.candidate}: " if several else "") + _header(m),
                _value(m, m.reference),
                _value(m, m.candidate_value),
                _pct(m.ratio),
                ci + (" %" if m.ci_low is not None else ""),
                "—" if m.spread_pct is None else f"{m.spread_pct:.1f} %",
                _threshold(m),
                _floor(m),
                m.outcome,
            ]
        )
    return heads, body


def _threshold(m: MetricVerdict) -> str:
    """``+5 %``, or ``+5 % → +13.3 % (floor)`` where the floor raises it; ``off`` when not gated."""
    if m.threshold_pct is None:
        return "as latency (CPU time)" if m.method == "estimated" and m.outcome == "not gated" else "off"
    text = f"+{m.threshold_pct:g} %"
    eff = m.effective_threshold_pct
    if eff is not None and eff > m.threshold_pct:
        text += f" → +{eff:.3g} % (floor)"
    return text


def _energy_notes(verdict: Verdict) -> list[str]:
    notes = []
    for m in verdict.metrics:
        if m.method is not None:
            notes.append(f"energy per image: {m.method} ({m.source})")
    return list(dict.fromkeys(notes))


def headline(doc: dict[str, Any]) -> str:
    """``greenbench gate: PASS (candidate X vs reference Y)``."""
    return (
        f"greenbench gate: {doc['outcome'].upper()} — candidate {doc['candidate']['spec']} vs reference "
        f"{doc['reference']['spec']}"
    )


def _setting_line(doc: dict[str, Any]) -> str:
    s = doc["settings"]
    threads = f"{s['threads']} thread{'s' if s['threads'] != 1 else ''}"
    return (
        f"{s['blocks']} blocks per model per round in {doc['rounds']} rounds (up to {s['max_rounds']}), "
        f"{s['device']}, "
        f"{threads}, imgsz {s['imgsz']}, batch {s['batch']}, the model alone (a forward pass on a "
        f"ready tensor{_scope_clause(s)}); {doc['wall_s']:.1f} s"
    )


def _scope_clause(settings: dict[str, Any]) -> str:
    """Where the suite asked for a latency at scope total (or both), that the gate does not time it."""
    scope = settings.get("suite_scope", "model")
    return "" if scope == "model" else f", not the suite's scope {scope}: no decoding, pre- or postprocessing"


def render_text(doc: dict[str, Any], verdict: Verdict) -> str:
    """The human table: headline, settings, one row per metric, why each non-pass metric is so."""
    from tabulate import tabulate

    heads, body = rows(verdict)
    lines = [_plain(headline(doc)), _plain(_setting_line(doc)), ""]
    lines.append(tabulate([[_plain(c) for c in r] for r in body], headers=heads, disable_numparse=True))
    lines.append("")
    for m in verdict.metrics:
        lines.append(_plain(f"{_header(m)}: {m.outcome}: {m.reason}"))
    lines += [_plain(n) for n in _energy_notes(verdict)]
    if doc.get("lost_rounds"):
        lines.append(_plain(f"lost rounds (not counted): {'; '.join(doc['lost_rounds'])}"))
    lines.append(_plain(_method_line(verdict)))
    return "\n".join(lines)


def _method_line(verdict: Verdict) -> str:
    return (
        f"CI: t-interval over rounds (one median pair ratio per fresh process, log scale), each at "
        f"{verdict.interval_confidence * 100:.3g} % so that at one look all gated ones hold together "
        f"at {verdict.confidence * 100:.3g} %; τ: the SD of the rounds' log ratios (between-process spread)"
    )


def render_markdown(doc: dict[str, Any], verdict: Verdict) -> str:
    """A Markdown section for a CI job summary (append it to ``$GITHUB_STEP_SUMMARY``)."""
    from tabulate import tabulate

    heads, body = rows(verdict)
    ref, cand = doc["reference"]["spec"], doc["candidate"]["spec"]
    lines = [
        f"### greenbench gate: **{doc['outcome']}**",
        "",
        f"candidate {md_escape(cand)} vs reference {md_escape(ref)} · {md_escape(_setting_line(doc))}",
        "",
        tabulate(
            [[md_escape(c) for c in r] for r in body],
            headers=[md_escape(h) for h in heads],
            tablefmt="pipe",
            disable_numparse=True,
        ),
        "",
    ]
    lines += [f"- {md_escape(_header(m))}: {md_escape(m.reason)}" for m in verdict.metrics]
    lines += [f"- {md_escape(n)}" for n in _energy_notes(verdict)]
    lines.append(f"- {md_escape(_method_line(verdict))}")
    return "\n".join(lines) + "\n\n"


def dumps(doc: dict[str, Any]) -> str:
    """The ``--json`` document."""
    return json.dumps(doc, indent=1, default=str)


def _f(x: float | None, spec: str = "+.1f") -> str:
    return "—" if x is None else f"{x:{spec}} %"


def render_calibration(doc: dict[str, Any], summary: Calibration, verdicts: Sequence[Verdict]) -> str:
    """The calibration report: every A/A run, then the false-alarm rate and the detectable effect."""
    from tabulate import tabulate

    run_rows = []
    for i, (v, run) in enumerate(zip(verdicts, doc["runs"], strict=True)):
        cells = [str(i + 1), v.outcome, str(run["rounds"]), f"{run['wall_s']:.0f}"]
        for m in v.metrics:
            ci = "—" if m.ci_low is None else f"[{_pct(m.ci_low)}, {_pct(m.ci_high)}]".replace(" %", "")
            cells.append(f"{_pct(m.ratio)} {ci}")
        run_rows.append(cells)
    names = [_header(m) for m in verdicts[0].metrics] if verdicts else []
    fa_low, fa_high = summary.false_alarm_ci
    lines = [
        _plain(f"greenbench gate --calibrate: {summary.runs} A/A runs of {doc['model']['spec']}"),
        _plain(_setting_line({**doc, "rounds": doc["settings"]["rounds"], "wall_s": doc["wall_s"]})),
        "",
        tabulate(run_rows, headers=["run", "outcome", "rounds", "wall_s", *[f"{n} Δ [CI]" for n in names]],
                 disable_numparse=True),
        "",
        f"false alarms (A/A regressed): {summary.false_alarms}/{summary.runs} "
        f"({summary.false_alarm_rate:.0%}, 95 % CI {fa_low:.0%}–{fa_high:.0%}, "
        f"Clopper–Pearson); inconclusive {summary.inconclusive}/{summary.runs}; "
        f"pass {summary.passed}/{summary.runs}",
    ]  # fmt: skip
    table = [
        [
            m.metric,
            "off" if m.threshold_pct is None else f"+{m.threshold_pct:g} %",
            f"{_f(m.delta_low_pct)} .. {_f(m.delta_high_pct)}",
            _f(m.pass_threshold_pct),
            _f(m.detectable_median_pct, ".2f"),
            _f(m.detectable_pct, ".2f"),
        ]
        for m in summary.metrics
    ]
    heads = ["metric", "threshold", "A/A Δ range", "A/A passes above", "CI half-width (median)", "(widest)"]
    lines += ["", tabulate(table, headers=heads, disable_numparse=True), ""]
    found = summary.detection
    if found is not None:
        low, high = found.ci
        lines.append(
            f"detection of an injected +{found.injected_pct:.1f} % (a heavier copy of the graph, extra work "
            f"known by construction): regressed {found.detected}/{found.runs} ({found.rate:.0%}, 95 % CI "
            f"{low:.0%}–{high:.0%}, Clopper–Pearson); inconclusive {found.inconclusive}/{found.runs}; "
            f"pass {found.passed}/{found.runs}"
        )
    elif doc.get("detection_skipped"):
        lines.append(f"detection: not measured ({doc['detection_skipped']})")
    lines.append("")
    lines.append(
        "A threshold below 'A/A passes above' leaves A/A runs inconclusive. A true regression is "
        "called only once its interval clears the threshold: about threshold + the CI half-width "
        "is needed to be caught in half of the runs, more in nearly all; more rounds narrow the "
        "interval."
    )
    return "\n".join(_plain(line) if "\n" not in line else line for line in lines)
