"""The device report's plots, drawn by matplotlib as SVG strings.

Each plot (the scatter plots here, the bars in ``bar_plots``) has two entry points:
``<name>_figure`` returns the matplotlib ``Figure`` (the tests measure its text), ``<name>``
the SVG document of it. A plot with nothing to show still returns an SVG that says so, so that
a report always has all of its figures. Drawing goes through ``matplotlib.figure.Figure``
(never ``pyplot``): no backend is selected and no global figure state is left behind in the
caller's process. How text is laid out at tens of variants (numbered markers with a key, units
and log axes from the values) is ``plot_layout``'s.

Choices that make the output safe and reproducible:

- Text stays text (``svg.fonttype: none``): the labels are searchable and selectable in the
  report, the files are several times smaller than with glyph outlines, and a reader's browser
  draws them with its own sans-serif font. matplotlib's XML writer escapes every label, so a
  name such as ``<script>`` is character data inside ``<text>``, never markup.
- Mathtext is switched off (``text.parse_math: False``) rather than ``$`` being escaped: a
  variant named ``a$b$`` is drawn as written, and no escaping rule can be forgotten or doubled.
- Strings from suites and records are folded to one line (control characters to spaces) and
  wrapped onto at most two lines in keys and bar labels; the tables show the full names.
- Output is deterministic: ``svg.hashsalt`` is fixed, the ``Date`` metadata is dropped, and
  the matplotlib defaults are used whatever the user's ``matplotlibrc`` says.
- Nothing is fetched: matplotlib draws offline with fonts it bundles.

Marks: energy estimated from a model (not read from a hardware counter) is drawn hollow or
hatched, and the legend says so; a figure whose own metric is noisy, or whose Δ is not paired in
time with the baseline, carries ``(noisy)`` / ``(unpaired)`` in the key and is drawn red. The
energy plot reads the energy flags, the latency plots the latency flags. Every explanation is
in the legend, never drawn over the data.
"""

from __future__ import annotations

import io
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from greenbench.report import plot_layout as lay
from greenbench.report.plot_layout import FONT_PT, Mark, one_line, style, wrapped

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

LABEL_CHARS = 40  # names in legends and titles are cut with "…" past this (the tables show them whole)
SIZE_IN = (7.2, 4.4)  # a plot without a key, inches
SCATTER_IN = (9.6, 4.8)  # a scatter with its key beside it, inches (taller with many variants)
ROW_IN = 0.17  # one text line of a bar label, inches

MEASURED = "#1f77b4"
ESTIMATED = "#ff7f0e"
FLAGGED = "#d62728"  # edge of a noisy or unpaired figure
FRONT = "#2ca02c"  # the Pareto front
TEXT = "#333333"
STAGE_COLOURS = ("#4c72b0", "#55a868", "#c44e52", "#8172b2", "#ccb974", "#64b5cd", "#8c8c8c")


@dataclass(frozen=True)
class Point:
    """One variant (on one runtime) as the plots show it.

    accuracy: the task's headline accuracy (a fraction, e.g. mAP50). energy_j: inference energy
    per image, gross, J, with its 95 % CI in energy_ci_j; energy_method: ``measured`` or
    ``estimated``; energy_source: what produced it. latency_ms with its 95 % CI latency_ci_ms.
    latency_noisy / energy_noisy: that figure was flagged noisy (its blocks spread, or its
    rounds disagree). latency_unpaired / energy_unpaired: that figure's Δ against the baseline
    is not paired in time. pareto: on the accuracy-vs-energy Pareto front. params_m: parameters,
    10^6; gflops: GFLOPs of one forward pass; size_mb: model file, 10^6 bytes.
    """

    label: str
    accuracy: float | None = None
    energy_j: float | None = None
    energy_ci_j: tuple[float, float] | None = None
    energy_method: str | None = None
    energy_source: str | None = None
    latency_ms: float | None = None
    latency_ci_ms: tuple[float, float] | None = None
    latency_noisy: bool = False
    energy_noisy: bool = False
    latency_unpaired: bool = False
    energy_unpaired: bool = False
    pareto: bool = False
    baseline: bool = False
    params_m: float | None = None
    gflops: float | None = None
    size_mb: float | None = None


@dataclass(frozen=True)
class Stage:
    """One training stage's energy window: name, gross energy (J) and its method."""

    name: str
    energy_j: float
    method: str = "estimated"
    cached: bool = False


@dataclass(frozen=True)
class Training:
    """A variant's own training stages and the CO2 of their gross energy (g)."""

    label: str
    stages: tuple[Stage, ...] = field(default_factory=tuple)
    co2_g: float | None = None


def label_text(text: str, limit: int = LABEL_CHARS) -> str:
    """``text`` on one line (control characters to spaces), at most ``limit`` characters."""
    one = one_line(text)
    return one if len(one) <= limit else one[: limit - 1] + "…"


def _flagged(p: Point, metric: str) -> tuple[bool, bool]:
    """(noisy, unpaired) of ``p``'s ``metric`` figure: ``energy`` or ``latency``."""
    if metric == "energy":
        return p.energy_noisy, p.energy_unpaired
    return p.latency_noisy, p.latency_unpaired


def flags(p: Point, metric: str) -> str:
    """`` (baseline, noisy, unpaired)`` as they apply to ``p``'s ``metric`` figure, or ``""``."""
    noisy, unpaired = _flagged(p, metric)
    marks = [m for m, on in (("baseline", p.baseline), ("noisy", noisy), ("unpaired", unpaired)) if on]
    return f" ({', '.join(marks)})" if marks else ""


def is_red(p: Point, metric: str) -> bool:
    """Whether ``p``'s ``metric`` figure is drawn red: noisy or its Δ unpaired."""
    return any(_flagged(p, metric))


def finite(*xs: float | None) -> bool:
    """Whether every value is a finite number."""
    return all(x is not None and math.isfinite(x) for x in xs)


def as_float(x: float | None) -> float:
    """A figure already checked by ``_finite`` (NaN, never drawn, if it was not)."""
    return math.nan if x is None else float(x)


def to_svg(fig: Figure) -> str:
    """The figure as a deterministic SVG document."""
    out = io.StringIO()
    with style():
        fig.savefig(out, format="svg", metadata={"Date": None})
    return out.getvalue()


def titled(width_in: float, height_in: float, title: str) -> Figure:
    """A new figure of that size (inches) with ``title`` above it."""
    fig = lay.new_figure(width_in, height_in)
    fig.suptitle(label_text(title, 90), fontsize=10)
    return fig


def empty_figure(title: str, why: str) -> Figure:
    """A figure of one line of text, not a blank page of plot."""
    fig = titled(SIZE_IN[0], 1.2, title)
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.text(0.5, 0.5, why, ha="center", va="center", transform=ax.transAxes)
    return fig


def numbered(points: Sequence[Point], *fields: str) -> list[tuple[int, Point]]:
    """The points with a finite value of every field, each with its number (its position in
    ``points`` from 1: a variant has the same number in every plot)."""
    return [(n, p) for n, p in enumerate(points, 1) if finite(*(getattr(p, f) for f in fields))]


def _key_entries(shown: Sequence[tuple[int, Point]], metric: str) -> list[tuple[str, str, str]]:
    return [
        (str(n), wrapped(p.label + flags(p, metric)), FLAGGED if is_red(p, metric) else TEXT)
        for n, p in shown
    ]


def _scatter_axes(
    title: str, shown: Sequence[tuple[int, Point]], metric: str, legend_rows: int
) -> tuple[Figure, Axes]:
    """A figure with the plot's axes on the left and the key of ``shown`` on the right, tall
    enough for the key above a legend of ``legend_rows`` rows."""
    entries = _key_entries(shown, metric)
    height = max(SCATTER_IN[1], lay.key_height_in([e[1] for e in entries]) + 0.55 + 0.17 * legend_rows)
    fig = titled(SCATTER_IN[0], height, title)
    ax, key = fig.subplots(1, 2, width_ratios=[2.5, 1.3])
    lay.draw_key(key, "key: number, variant", entries)
    return fig, ax


def _markers(
    ax: Axes, shown: Sequence[tuple[int, Point]], x_of: str, scale: float, metric: str
) -> list[Mark]:
    """Accuracy against ``x_of`` (times ``scale``) with horizontal 95 % CI bars; hollow orange:
    estimated energy (energy plot only); diamond: baseline; red edge: flagged. The number marks."""
    ci_of = "energy_ci_j" if x_of == "energy_j" else "latency_ci_ms"
    marks = []
    for n, p in shown:
        x, y = as_float(getattr(p, x_of)) * scale, as_float(p.accuracy)
        ci = getattr(p, ci_of)
        if ci is not None and finite(*ci):
            lo, hi = ci[0] * scale, ci[1] * scale
            ax.errorbar(
                [x], [y], xerr=[[max(x - lo, 0.0)], [max(hi - x, 0.0)]], fmt="none", ecolor="#999999",
                elinewidth=0.8, capsize=2, zorder=2,
            )  # fmt: skip
        est = metric == "energy" and p.energy_method != "measured"
        colour = ESTIMATED if est else MEASURED
        red = is_red(p, metric)
        ax.scatter(
            [x], [y], s=40, marker="D" if p.baseline else "o", facecolors="none" if est else colour,
            edgecolors=FLAGGED if red else colour, linewidths=1.5, zorder=3,
        )  # fmt: skip
        marks.append(Mark(str(n), FLAGGED if red else TEXT, x, y))
    return marks


def _proxy(label: str, **kw: Any) -> Any:
    """A legend entry drawn as ``kw`` says (never one of the data's own artists)."""
    from matplotlib.lines import Line2D

    style_kw: dict[str, Any] = {"marker": "o", "linestyle": "none", "markersize": 6, "markeredgewidth": 1.5}
    return Line2D([], [], label=label, **{**style_kw, **kw})


def legend_below(fig: Figure, handles: list[Any]) -> None:
    """A legend of ``handles`` under the plot, outside the axes."""
    fig.legend(handles=handles, loc="outside lower center", ncols=2, fontsize=FONT_PT, frameon=False)


def _common_handles(shown: Sequence[tuple[int, Point]], metric: str) -> list[Any]:
    handles = []
    if any(p.baseline for _, p in shown):
        handles.append(_proxy("baseline (diamond)", marker="D", color="#777777"))
    if any(is_red(p, metric) for _, p in shown):
        handles.append(
            _proxy(
                f"red edge: {metric} noisy or Δ unpaired (see key)", color="white", markeredgecolor=FLAGGED
            )
        )
    return handles


def _front(ax: Axes, shown: Sequence[tuple[int, Point]], scale: float) -> int:
    """The Pareto front as a staircase (the edge of what it dominates) from the lowest accuracy
    shown up to its cheapest member, through each member, on to the largest cost shown; its
    members ringed. Returns the number of members."""
    front = sorted(
        (p for _, p in shown if p.pareto), key=lambda p: (as_float(p.energy_j), as_float(p.accuracy))
    )
    if not front:
        return 0
    xs = [as_float(front[0].energy_j) * scale]
    ys = [min(as_float(p.accuracy) for _, p in shown)]
    previous: float | None = None
    for p in front:
        x, y = as_float(p.energy_j) * scale, as_float(p.accuracy)
        if previous is not None:
            xs.append(x)
            ys.append(previous)
        xs.append(x)
        ys.append(y)
        previous = y
    xs.append(max(as_float(p.energy_j) for _, p in shown) * scale)
    ys.append(ys[-1])
    ax.plot(xs, ys, linestyle="--", color=FRONT, linewidth=1.4, zorder=2, gid="pareto-front")
    ax.scatter(
        [as_float(p.energy_j) * scale for p in front], [as_float(p.accuracy) for p in front], s=140,
        facecolors="none", edgecolors=FRONT, linewidths=1.2, zorder=2,
    )  # fmt: skip
    return len(front)


def accuracy_vs_energy_figure(
    points: Sequence[Point], accuracy_name: str = "accuracy", title: str = ""
) -> Figure:
    """Accuracy against inference energy per image (gross, 95 % CI bars; unit from the values,
    log axis past a 10× span) with the Pareto front (maximum accuracy, minimum energy) as a
    staircase. Hollow orange markers: estimated energy; diamond: the baseline."""
    title = title or f"{accuracy_name} vs energy per image"
    with style():
        shown = numbered(points, "accuracy", "energy_j")
        if not shown:
            return empty_figure(title, "no variant has both an accuracy and an energy-per-image figure")
        unit, size = lay.unit_for(max(as_float(p.energy_j) for _, p in shown), lay.ENERGY_UNITS)
        sources = {
            (p.energy_method == "measured", p.energy_source or p.energy_method or "?") for _, p in shown
        }
        handles = [
            _proxy(f"filled: measured ({label_text(s, 30)})", color=MEASURED)
            if measured
            else _proxy(
                f"hollow: ESTIMATED ({label_text(s, 30)}), a model", color=ESTIMATED, markerfacecolor="none"
            )
            for measured, s in sorted(sources, reverse=True)
        ]
        handles += _common_handles(shown, "energy")
        pareto = sum(p.pareto for _, p in shown)
        if pareto:
            handles.append(
                _proxy(
                    f"Pareto front, {pareto} variant(s): max accuracy, min energy", color=FRONT,
                    linestyle="--", markerfacecolor="none", markersize=10, markeredgewidth=1.2,
                )
            )  # fmt: skip
        fig, ax = _scatter_axes(title, shown, "energy", (len(handles) + 1) // 2)
        lay.log_if_wide(ax, [as_float(p.energy_j) / size for _, p in shown])
        marks = _markers(ax, shown, "energy_j", 1 / size, "energy")
        _front(ax, shown, 1 / size)
        from greenbench.measure.energy.meter import cpu_time_only

        what = f"inference energy per image, gross ({unit}; bars: 95 % CI)"
        if all(cpu_time_only(p.energy_source) for _, p in shown):
            # CPU time × W/core: this axis, and the front on it, rank CPU time, not energy
            what = f"inference energy per image, gross ({unit}): CPU-time model (CPU s × W/core)"
        ax.set_xlabel(what)
        ax.set_ylabel(accuracy_name)
        legend_below(fig, handles)
        lay.place_numbers(fig, ax, marks)
        return fig


def accuracy_vs_energy(points: Sequence[Point], accuracy_name: str = "accuracy", title: str = "") -> str:
    """``accuracy_vs_energy_figure`` as an SVG document."""
    return to_svg(accuracy_vs_energy_figure(points, accuracy_name, title))


def accuracy_vs_latency_figure(
    points: Sequence[Point], accuracy_name: str = "accuracy", title: str = ""
) -> Figure:
    """Accuracy against latency (median of blocks, horizontal 95 % CI bars; unit from the
    values, log axis past a 10× span); red: the latency figure is noisy or its Δ unpaired."""
    title = title or f"{accuracy_name} vs latency"
    with style():
        shown = numbered(points, "accuracy", "latency_ms")
        if not shown:
            return empty_figure(title, "no variant has both an accuracy and a latency figure")
        unit, size = lay.unit_for(max(as_float(p.latency_ms) for _, p in shown), lay.TIME_UNITS)
        handles = [_proxy("variant", color=MEASURED), *_common_handles(shown, "latency")]
        fig, ax = _scatter_axes(title, shown, "latency", (len(handles) + 1) // 2)
        lay.log_if_wide(ax, [as_float(p.latency_ms) / size for _, p in shown])
        marks = _markers(ax, shown, "latency_ms", 1 / size, "latency")
        ax.set_xlabel(f"latency ({unit}, median of blocks; bars: 95 % CI)")
        ax.set_ylabel(accuracy_name)
        legend_below(fig, handles)
        lay.place_numbers(fig, ax, marks)
        return fig


def accuracy_vs_latency(points: Sequence[Point], accuracy_name: str = "accuracy", title: str = "") -> str:
    """``accuracy_vs_latency_figure`` as an SVG document."""
    return to_svg(accuracy_vs_latency_figure(points, accuracy_name, title))


def confusion_matrix(classes: Sequence[str], matrix: Sequence[Sequence[int]], title: str = "") -> str:
    """Each true class's share of predictions per predicted class (rows sum to 1), with the
    counts written in the cells while they fit (at most 15 classes) and class names as ticks
    (at most 30)."""
    import numpy as np

    counts = np.asarray(matrix, dtype=float)
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    n = len(classes)
    with style():
        fig = titled(SIZE_IN[0], SIZE_IN[1], title or "confusion matrix")
        ax = fig.add_subplot()
        image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
        ax.grid(False)
        fig.colorbar(image, ax=ax, label="share of the true class")
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
        if n <= 30:
            names = [label_text(c, 12) for c in classes]
            ax.set_xticks(range(n), names, rotation=90, fontsize=7)
            ax.set_yticks(range(n), names, fontsize=7)
        if n <= 15:
            for i in range(n):
                for j in range(n):
                    if counts[i, j]:
                        colour = "white" if shares[i, j] > 0.5 else "#333333"
                        ax.text(
                            j, i, f"{int(counts[i, j])}", ha="center", va="center", fontsize=7, color=colour
                        )
    return to_svg(fig)


_SVG_NS = "http://www.w3.org/2000/svg"
_XLINK = "http://www.w3.org/1999/xlink"
_URL = re.compile(r"url\(#([^)]*)\)")


def inline_svg(svg: str, prefix: str) -> str:
    """``svg`` ready to sit inside an HTML page beside other plots: no XML declaration, doctype
    or RDF metadata, and every ``id`` (and each reference to one) prefixed with ``prefix``, so
    that two plots' clip paths and markers cannot collide. Attributes are rewritten through the
    XML parser: text content (user data) is never touched."""
    ET.register_namespace("", _SVG_NS)
    ET.register_namespace("xlink", _XLINK)
    root = ET.fromstring(svg)  # matplotlib's own output: no external entities in it
    for meta in root.findall(f"{{{_SVG_NS}}}metadata"):  # RDF about matplotlib: noise inside a page
        root.remove(meta)
    href = f"{{{_XLINK}}}href"
    for el in root.iter():
        for key, value in list(el.attrib.items()):
            if key == "id":
                el.set(key, prefix + value)
            elif key in (href, "href") and value.startswith("#"):
                el.set(key, "#" + prefix + value[1:])
            elif "url(#" in value:
                el.set(key, _URL.sub(lambda m: f"url(#{prefix}{m.group(1)})", value))
    return ET.tostring(root, encoding="unicode")
