"""A device report as one self-contained HTML file: styles inline, plots as inline SVG.

Templating is jinja2 with ``autoescape=True`` (jinja2 is already installed as a dependency of
torch; it escapes every ``{{ }}`` by default, so an escape cannot be forgotten in one place).
Every string from suites and records is also folded to one line (control characters and bidi
overrides to spaces) by the environment's ``finalize``. The plots are matplotlib's SVG, whose
text matplotlib's XML writer escaped; they are the only values marked safe.

Results come first: per suite the energy banner and a summary (rows, baseline, Pareto front),
the comparison table with the recipe and runtime columns the terminal table has (each CI on a
line of its own, so that the table wraps to fit 1200 px; wider still, it scrolls in its own
box, never the page), the plots, then how the figures were measured. The marks and the device
fingerprint (folded, in a ``<details>``) close the page.

Nothing is fetched when the file opens: no scripts, fonts, images or style sheets by URL. A
Content-Security-Policy (``default-src 'none'``) makes that a rule the browser enforces, and
would block a script even if one were ever injected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from greenbench import __version__
from greenbench.errors import TERMINAL_UNSAFE
from greenbench.metrics import MetricDef
from greenbench.report.device_report import DeviceReport, SuiteSection
from greenbench.report.plots import inline_svg
from greenbench.report.recipe import recipe_columns
from greenbench.report.render_common import BANNER, MARKS, Figure, figures, roofline_cells
from greenbench.report.tables import STAGE_HEADS, Table, format_delta, format_value, stage_table

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


@dataclass(frozen=True)
class CellView:
    """One comparison-table cell as shown: value text, its CI (``[low, high]``, on a line of its
    own so that the table wraps to fit), Δ text and CSS classes (its marks)."""

    text: str
    ci: str
    delta: str
    classes: str


def _fold(value: Any) -> Any:
    """``finalize`` of every ``{{ }}``: strings on one line; safe markup (the SVG) untouched."""
    from markupsafe import Markup

    if isinstance(value, str) and not isinstance(value, Markup):
        return TERMINAL_UNSAFE.sub(" ", value)
    return "" if value is None else value


def shown_away(table: Table) -> set[str]:
    """Columns the HTML table leaves out: the table's hidden ones (a net figure equal to its gross
    one in every row) and those no row has a value in (the CSV keeps both)."""
    empty = {
        c.name for i, c in enumerate(table.columns) if all(cells[i].value is None for _, cells in table.rows)
    }
    return set(table.hidden) | empty


def _cells(table: Table) -> tuple[list[str], list[tuple[str, str, list[str], list[CellView]]]]:
    """The recipe columns' heads (stage parameters, runtime: as the terminal table has them) and
    per row: variant text, row class, recipe cells and metric cells (hidden columns left out)."""
    recipe_heads, recipes = recipe_columns([r for r, _ in table.rows])
    left_out = shown_away(table)
    rows = []
    for (r, cells), recipe in zip(table.rows, recipes, strict=True):
        views = []
        for col, (value, delta) in zip(table.columns, cells, strict=True):
            if col.name in left_out:
                continue
            text, _, ci = format_value(col, value, r).partition(" [")
            if value is not None and col.energy and table.methods[col.name] == "mixed":
                text += f" [{r.metrics[col.name].get('method', '?')}]"  # the header cannot say which
            views.append(
                CellView(text, f"[{ci}" if ci else "", format_delta(delta), _classes(col, r, value, delta))
            )
        name = r.variant + (" (baseline)" if r.variant == table.baseline else "")
        rows.append((name, "failed" if r.status != "ok" else "", recipe, views))
    return recipe_heads, rows


def _classes(col: MetricDef, r: Any, value: float | None, delta: Any) -> str:
    m = r.metrics.get(col.name, {}) if value is not None else {}
    marks = []
    if m.get("noisy") or m.get("rounds_disagree") or (delta is not None and delta.rounds_disagree):
        marks.append("noisy")
    if delta is not None and delta.kind == "unpaired":
        marks.append("unpaired")
    if delta is not None and delta.kind == "paired" and delta.significant is False:
        marks.append("ns")
    if col.energy and value is not None and m.get("method") == "estimated":
        marks.append("estimated")
    return " ".join(marks)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


TEMPLATE = """\
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{{ csp }}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>greenbench report: {{ report.device_id }}</title>
<style>
body { font-family: sans-serif; margin: 1.5em auto; max-width: 1200px; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.4em; text-align: right; vertical-align: top; }
th:first-child, td:first-child, table.kv td, table.kv th, table.left td { text-align: left; }
thead th { background: #f2f2f2; }
thead th.recipe { text-align: left; }
td .ci, td .delta { display: block; color: #555; font-size: 0.9em; white-space: nowrap; }
table.comparison th[scope=row] { position: sticky; left: 0; background: #fff; min-width: 7em;
  max-width: 16em; overflow-wrap: break-word; }
table.comparison td.recipe { text-align: left; min-width: 7em; max-width: 14em; overflow-wrap: break-word; }
p.hint { font-size: 0.85em; color: #444; }
details#fingerprint summary { font-size: 1.2em; font-weight: bold; margin: 1em 0 0.5em; cursor: pointer; }
td.estimated { background: repeating-linear-gradient(45deg, #fff, #fff 4px, #fff1e0 4px, #fff1e0 8px); }
td.noisy, td.unpaired { outline: 2px solid #d62728; outline-offset: -2px; }
td.ns .delta { color: #999; }
tr.failed td { color: #a00; }
.banner { padding: 0.6em 0.8em; border-left: 6px solid #1f77b4; background: #eef5fb; }
.banner.estimated, .banner.mixed { border-color: #ff7f0e; background: #fff4e6; }
.marks dt { font-weight: bold; float: left; clear: left; margin-right: 0.5em; }
.marks dd { margin-left: 0; }
figure.plot { display: inline-block; margin: 0.5em; vertical-align: top; max-width: 100%; }
figure.plot svg { max-width: 100%; height: auto; display: block; }
figure.plot figcaption { font-size: 0.85em; color: #444; }
ul.notes { font-size: 0.85em; color: #333; }
div.scroll { overflow-x: auto; }
</style>
</head>
<body>
<header>
<h1>greenbench device report</h1>
<p>Device <code>{{ report.device_id }}</code>; {{ report.sections|length }} suite(s).
Generated by greenbench {{ version }} from the stored records; this file fetches nothing.
The <a href="#marks">marks</a> and the <a href="#fingerprint">device fingerprint</a> are at the end.</p>
</header>
{% for s in sections %}
<section class="suite" id="suite-{{ loop.index }}">
<h2>Suite <span class="suite-name">{{ s.section.suite }}</span></h2>
{% set d = s.section.disclosure %}
<section class="summary">
<p class="banner {{ d.overall }}"><strong>Energy: {{ d.overall }}.</strong>
{{ banner.get(d.overall, "") }}</p>
<ul class="summary">
<li>{{ s.variants }} row(s){% if s.failed %}, {{ s.failed }} failed{% endif %}; baseline
{{ s.section.baseline or "(none)" }}.</li>
{% if s.front %}<li>Pareto front ({{ s.section.accuracy_name }} against energy per image):
{{ s.front|join(", ") }}.</li>{% endif %}
</ul>
</section>
<section class="comparison">
<h3>Comparison against the baseline {{ s.section.baseline or "(none)" }}</h3>
<div class="scroll"><table class="comparison">
<thead><tr><th>variant</th>{% for h in s.recipe_heads %}<th class="recipe">{{ h }}</th>{% endfor %}
{% for h in s.heads %}<th>{{ h }}</th>{% endfor %}</tr></thead>
<tbody>
{% for name, row_class, recipe, cells in s.rows %}<tr class="{{ row_class }}"><th scope="row">{{ name }}</th>
{% for c in recipe %}<td class="recipe">{{ c }}</td>{% endfor %}
{% for c in cells %}<td class="{{ c.classes }}">{{ c.text }}
{%- if c.ci %}<span class="ci">{{ c.ci }}</span>{% endif %}
{%- if c.delta %}<span class="delta">Δ {{ c.delta }}</span>{% endif %}</td>{% endfor %}</tr>
{% endfor %}</tbody></table></div>
<p class="hint">Marks such as (noisy), (unpaired) and [estimated]: <a href="#marks">how to read them</a>.</p>
{% if s.stages %}<h4>Training stages (energy of each stage's window; gross and net of idle)</h4>
<div class="scroll"><table class="stages"><thead><tr>
{% for h in stage_heads %}<th>{{ h }}</th>{% endfor %}</tr></thead><tbody>
{% for row in s.stages %}<tr>{% for c in row %}<td>{{ c }}</td>{% endfor %}</tr>{% endfor %}
</tbody></table></div>{% endif %}
<ul class="notes">{% for n in s.notes %}<li>{{ n }}</li>{% endfor %}
{% if s.empty %}<li>Left out, no row has a value: {{ s.empty|join(", ") }}.</li>{% endif %}</ul>
</section>
<section class="plots">
<h3>Plots</h3>
{% for f in s.figures %}<figure class="plot" id="{{ f.id }}" data-plot="{{ f.name }}">{{ f.svg }}
<figcaption>{{ f.caption }}</figcaption></figure>
{% endfor %}</section>
{% if s.roofline %}<section class="roofline">
<h3>Roofline: achieved GFLOP/s against this device's measured peak</h3>
<table class="roofline"><thead><tr>
{% for h in s.roofline_heads %}<th>{{ h }}</th>{% endfor %}</tr></thead><tbody>
{% for row in s.roofline %}<tr>{% for c in row %}<td>{{ c }}</td>{% endfor %}</tr>{% endfor %}
</tbody></table></section>{% endif %}
<section class="disclosure">
<h3>How these figures were measured</h3>
<p>Energy: {{ d.overall }}. Meters configured: {{ d.meters|join(", ") or "—" }}.</p>
<table class="left meters"><thead><tr>
{% for h in ["what", "domain", "method", "source", "scope", "variants"] %}<th>{{ h }}</th>{% endfor %}
</tr></thead><tbody>
{% for m in d.rows %}<tr class="{{ m.method }}">
{% for c in [m.what, m.domain, m.method, m.source, m.scope, m.variants] %}<td>{{ c }}</td>{% endfor %}</tr>
{% else %}<tr><td colspan="6">no energy window recorded</td></tr>{% endfor %}</tbody></table>
<table class="left idle"><thead><tr>
{% for h in ["idle baseline: domain", "power (W)", "over (s)", "method", "note"] -%}
<th>{{ h }}</th>{% endfor %}
</tr></thead><tbody>
{% for i in d.idle %}<tr>
{% for c in [i.domain, fmt(i.power_w, 2), fmt(i.duration_s, 1), i.method, i.note] -%}
<td>{{ c }}</td>{% endfor %}</tr>
{% else %}<tr><td colspan="5">not recorded</td></tr>{% endfor %}</tbody></table>
<ul class="notes">
{% for c in d.carbon %}<li>Carbon: {{ c }}</li>{% endfor %}
{% for l in d.latency %}<li>Latency and energy per image: {{ l }}</li>{% endfor %}
</ul>
</section>
</section>
{% endfor %}
<section id="marks">
<h2>How to read the marks</h2>
<dl class="marks">{% for mark, meaning in marks %}<dt>{{ mark }}</dt><dd>{{ meaning }}</dd>{% endfor %}</dl>
</section>
<details id="fingerprint">
<summary>Device fingerprint ({{ report.fingerprint|length }} entries)</summary>
<table class="kv fingerprint"><tbody>
{% for key, value in report.fingerprint %}<tr><th scope="row">{{ key }}</th><td>{{ value }}</td></tr>
{% endfor %}</tbody></table>
{% if report.peak %}<p>Measured peak (<code>greenbench env --peak</code>):
{% for key, value in report.peak.items() %}{{ key }} = {{ value }}{{ "; " if not loop.last }}
{% endfor %}</p>
{% endif %}
</details>
<footer><ul class="notes">{% for w in report.warnings %}<li>{{ w }}</li>{% endfor %}</ul></footer>
</body>
</html>
"""


def _fmt(x: float | None, digits: int) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def _view(section: SuiteSection, index: int, plots: list[Figure]) -> dict[str, Any]:
    from markupsafe import Markup

    t = section.table
    roof_heads, roof_rows = roofline_cells(section)
    figs = []
    for f in plots:
        fid = f"s{index}-{_slug(f.name)}"
        # inline_svg re-serialises matplotlib's XML (text escaped): the one value marked safe
        figs.append(
            {"id": fid, "name": f.name, "caption": f.caption, "svg": Markup(inline_svg(f.svg, fid + "-"))}
        )
    recipe_heads, rows = _cells(t)
    away = shown_away(t)
    return {
        "section": section,
        "recipe_heads": recipe_heads,
        "heads": [t.header(c) for c in t.columns if c.name not in away],
        "empty": [t.header(c) for c in t.columns if c.name in away - set(t.hidden)],
        "rows": rows,
        "variants": len(t.rows),
        "failed": sum(r.status != "ok" for r, _ in t.rows),
        "front": [p.label for p in section.points if p.pareto],
        "stages": stage_table(t),
        "notes": t.notes,
        "roofline_heads": roof_heads,
        "roofline": roof_rows,
        "figures": figs,
    }


def render_html(report: DeviceReport, plots: dict[str, list[Figure]] | None = None) -> str:
    """The report as one HTML document; ``plots``: per suite, its figures (drawn if not given)."""
    import jinja2

    env = jinja2.Environment(autoescape=True, finalize=_fold, undefined=jinja2.StrictUndefined)
    template = env.from_string(TEMPLATE)
    drawn = plots if plots is not None else {s.suite: figures(s) for s in report.sections}
    sections = [_view(s, i, drawn.get(s.suite, [])) for i, s in enumerate(report.sections, 1)]
    return template.render(
        report=report, sections=sections, marks=MARKS, csp=CSP, version=__version__,
        stage_heads=STAGE_HEADS, fmt=_fmt, banner=BANNER,
    )  # fmt: skip
