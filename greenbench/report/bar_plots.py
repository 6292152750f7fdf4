"""The report's bar plots, one bar (or stack, or row of small multiples) per variant.

Each bar is labelled ``N. name``: N is the variant's number in the scatter plots' keys. Rows
grow with the labels (wrapped onto at most two lines), so 27 or 60 variants stay readable.
Shared conventions (SVG output, marks, colours) are ``plots``'s.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from greenbench.report import plot_layout as lay
from greenbench.report.plot_layout import FONT_PT, style, wrapped
from greenbench.report.plots import (
    FLAGGED,
    MEASURED,
    ROW_IN,
    SIZE_IN,
    STAGE_COLOURS,
    TEXT,
    Point,
    Training,
    as_float,
    empty_figure,
    finite,
    flags,
    is_red,
    label_text,
    legend_below,
    numbered,
    titled,
    to_svg,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _bar_labels(rows: Sequence[tuple[int, str]]) -> tuple[list[str], float]:
    """Bar labels ``N. name`` (wrapped) and the height (inches) their rows need."""
    labels = [wrapped(f"{n}. {text}") for n, text in rows]
    lines = sum(t.count("\n") + 1 for t in labels)
    return labels, max(SIZE_IN[1], lines * ROW_IN + len(labels) * 0.06 + 1.5)


def latency_per_variant_figure(points: Sequence[Point], title: str = "") -> Figure:
    """Latency per variant as bars with 95 % CI error bars; a bar whose latency is noisy or whose
    Δ is unpaired is hatched red. Unit from the values, log axis past a 10× span."""
    title = title or "latency per variant (95 % CI)"
    with style():
        shown = numbered(points, "latency_ms")
        if not shown:
            return empty_figure(title, "no variant has a latency figure")
        unit, size = lay.unit_for(max(as_float(p.latency_ms) for _, p in shown), lay.TIME_UNITS)
        labels, height = _bar_labels([(n, p.label + flags(p, "latency")) for n, p in shown])
        fig = titled(SIZE_IN[0], height, title)
        ax = fig.add_subplot()
        lows, highs, values = [], [], []
        for _, p in shown:
            lat = as_float(p.latency_ms)
            lo, hi = p.latency_ci_ms if p.latency_ci_ms and finite(*p.latency_ci_ms) else (lat, lat)
            values.append(lat / size)
            lows.append(max(lat - lo, 0.0) / size)
            highs.append(max(hi - lat, 0.0) / size)
        flagged = [is_red(p, "latency") for _, p in shown]
        lay.log_if_wide(ax, values)
        bars = ax.barh(
            range(len(shown)), values, xerr=[lows, highs], capsize=3,
            color=[("#f4b6b6" if f else MEASURED) for f in flagged],
            edgecolor=[(FLAGGED if f else MEASURED) for f in flagged],
        )  # fmt: skip
        for bar, f in zip(bars.patches, flagged, strict=True):
            if f:  # hatching per bar: barh takes one hatch for all
                bar.set_hatch("xx")
        ax.set_yticks(range(len(shown)), labels, fontsize=FONT_PT)
        for tick, f in zip(ax.get_yticklabels(), flagged, strict=True):
            tick.set_color(FLAGGED if f else TEXT)
        ax.invert_yaxis()
        ax.set_xlabel(f"latency ({unit}, median of blocks; error bars: 95 % CI)")
        if any(flagged):
            from matplotlib.patches import Patch

            red = Patch(
                facecolor="#f4b6b6", edgecolor=FLAGGED, hatch="xx", label="latency noisy or Δ unpaired"
            )
            legend_below(fig, [red])
        return fig


def latency_per_variant(points: Sequence[Point], title: str = "") -> str:
    """``latency_per_variant_figure`` as an SVG document."""
    return to_svg(latency_per_variant_figure(points, title))


def training_energy_figure(trainings: Sequence[Training], title: str = "") -> Figure:
    """Training energy per stage (gross; unit from the values), stacked per variant; estimated
    stages hatched; each bar's CO2 (g) written at its end."""
    title = title or "training energy per stage, with CO₂"
    with style():
        shown = [(n, t) for n, t in enumerate(trainings, 1) if t.stages]
        if not shown:
            return empty_figure(
                title, "no variant trained in a measured window (every stage reused from cache or none)"
            )
        totals = [sum(max(s.energy_j, 0.0) for s in t.stages) for _, t in shown]
        unit, size = lay.unit_for(max(totals), lay.ENERGY_UNITS)
        names = list(dict.fromkeys(label_text(s.name, 24) for _, t in shown for s in t.stages))
        colour = {n: STAGE_COLOURS[i % len(STAGE_COLOURS)] for i, n in enumerate(names)}
        labels, height = _bar_labels([(n, t.label) for n, t in shown])
        fig = titled(SIZE_IN[0] + 1.2, height, title)
        ax = fig.add_subplot()
        any_estimated = False
        for y, (_, t) in enumerate(shown):
            left = 0.0
            for s in t.stages:
                est = s.method != "measured"
                any_estimated |= est
                width = max(s.energy_j, 0.0) / size
                ax.barh(
                    [y], [width], left=left, color=colour[label_text(s.name, 24)], edgecolor="#333333",
                    linewidth=0.5, hatch="//" if est else None,
                )  # fmt: skip
                left += width
            co2 = f"{t.co2_g:.3g} g CO₂" if t.co2_g is not None and math.isfinite(t.co2_g) else "CO₂ n/a"
            ax.annotate(
                co2, (left, y), xytext=(4, 0), textcoords="offset points", va="center", fontsize=FONT_PT
            )
        ax.set_yticks(range(len(shown)), labels, fontsize=FONT_PT)
        ax.invert_yaxis()
        ax.margins(x=0.22)
        ax.set_xlabel(f"training energy of the variant's own stages, gross ({unit})")
        from matplotlib.patches import Patch

        handles = [Patch(facecolor=colour[n], edgecolor="#333333", label=n) for n in names]
        if any_estimated:
            handles.append(
                Patch(
                    facecolor="white", edgecolor="#333333", hatch="//", label="hatched: ESTIMATED (a model)"
                )
            )
        fig.legend(handles=handles, title="stage", loc="outside right upper", fontsize=FONT_PT, frameon=False)
        return fig


def training_energy(trainings: Sequence[Training], title: str = "") -> str:
    """``training_energy_figure`` as an SVG document."""
    return to_svg(training_energy_figure(trainings, title))


#: the complexity plot's panels: field, its size in the base unit of the units, units, name, colour
_PANELS = (
    ("params_m", 1e6, lay.COUNT_UNITS, "parameters", "#4c72b0"),
    ("gflops", 1.0, lay.FLOP_UNITS, "compute per image", "#55a868"),
    ("size_mb", 1.0, lay.BYTE_UNITS, "model file", "#c44e52"),
)


def complexity_figure(points: Sequence[Point], title: str = "") -> Figure:
    """Parameters, GFLOPs and model size per variant as three small multiples, each on its own
    axis (unit from its values, log past a 10× span)."""
    title = title or "parameters, GFLOPs and size"
    with style():
        shown = [(n, p) for n, p in enumerate(points, 1) if any(finite(getattr(p, f[0])) for f in _PANELS)]
        if not shown:
            return empty_figure(title, "no variant has complexity figures")
        labels, height = _bar_labels([(n, p.label) for n, p in shown])
        fig = titled(SIZE_IN[0] + 1.2, height, title)
        axes = fig.subplots(1, 3, sharey=True)
        ys = list(range(len(shown)))
        for ax, (attr, base, units, name, colour) in zip(axes, _PANELS, strict=True):
            values = [
                as_float(getattr(p, attr)) * base if finite(getattr(p, attr)) else math.nan for _, p in shown
            ]
            known = [v for v in values if math.isfinite(v)]
            unit, size = lay.unit_for(max(known, default=0.0), units)
            ax.set_title(f"{name} ({unit})" if unit else name, fontsize=9)
            if not known:
                ax.text(0.5, 0.5, "not recorded", transform=ax.transAxes, ha="center", va="center")
                continue
            lay.log_if_wide(ax, [v / size for v in known])
            ax.barh(ys, [v / size for v in values], color=colour)
            ax.tick_params(axis="x", labelsize=FONT_PT)
        axes[0].set_yticks(ys, labels, fontsize=FONT_PT)
        axes[0].invert_yaxis()
        return fig


def complexity(points: Sequence[Point], title: str = "") -> str:
    """``complexity_figure`` as an SVG document."""
    return to_svg(complexity_figure(points, title))
