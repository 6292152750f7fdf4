"""The device report's plots, drawn by matplotlib as SVG strings.

Each function takes plain data (``Point``, ``Training``) and returns one SVG document; a plot
with nothing to show still returns an SVG that says so, so that a report always has all of its
figures. Drawing goes through ``matplotlib.figure.Figure`` (never ``pyplot``): no backend is
selected and no global figure state is left behind in the caller's process.

Choices that make the output safe and reproducible:

- Text stays text (``svg.fonttype: none``): the labels are searchable and selectable in the
  report, the files are several times smaller than with glyph outlines, and a reader's browser
  draws them with its own sans-serif font. matplotlib's XML writer escapes every label, so a
  name such as ``<script>`` is character data inside ``<text>``, never markup.
- Mathtext is switched off (``text.parse_math: False``) rather than ``$`` being escaped: a
  variant named ``a$b$`` is drawn as written, and no escaping rule can be forgotten or doubled.
- Strings from suites and records are folded to one line (control characters to spaces) and
  shortened to ``LABEL_CHARS`` characters; the tables show the full names.
- Output is deterministic: ``svg.hashsalt`` is fixed, the ``Date`` metadata is dropped, and
  the matplotlib defaults are used whatever the user's ``matplotlibrc`` says.
- Nothing is fetched: matplotlib draws offline with fonts it bundles.

Marks: energy estimated from a model (not read from a hardware counter) is drawn hollow or
hatched and labelled ``estimated (source)``; a noisy figure or a Δ not paired in time with the
baseline carries ``(noisy)`` / ``(unpaired)`` in its label and a red edge.
"""

from __future__ import annotations

import io
import math
import re
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from greenbench.errors import TERMINAL_UNSAFE

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

LABEL_CHARS = 40  # longer names are cut with "…" in plots (the tables show them whole)
SIZE_IN = (7.2, 4.4)  # figure size, inches
SALT = "greenbench-report"

_RC: dict[str, Any] = {
    "svg.fonttype": "none",
    "svg.hashsalt": SALT,
    "text.parse_math": False,
    "text.usetex": False,
    "font.family": "sans-serif",
    "font.size": 9.0,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "figure.dpi": 100.0,
}

MEASURED = "#1f77b4"
ESTIMATED = "#ff7f0e"
FLAGGED = "#d62728"  # edge of a noisy or unpaired figure
STAGE_COLOURS = ("#4c72b0", "#55a868", "#c44e52", "#8172b2", "#ccb974", "#64b5cd", "#8c8c8c")


@dataclass(frozen=True)
class Point:
    """One variant (on one runtime) as the plots show it.

    accuracy: the task's headline accuracy (a fraction, e.g. mAP50). energy_j: inference energy
    per image, gross, J, with its 95 % CI in energy_ci_j; energy_method: ``measured`` or
    ``estimated``; energy_source: what produced it. latency_ms with its 95 % CI latency_ci_ms.
    noisy: the latency or energy figure was flagged noisy. unpaired: its Δ against the baseline
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
    noisy: bool = False
    unpaired: bool = False
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
    one = re.sub(r"\s+", " ", TERMINAL_UNSAFE.sub(" ", text)).strip()
    return one if len(one) <= limit else one[: limit - 1] + "…"


def _flags(p: Point) -> str:
    marks = [m for m, on in (("baseline", p.baseline), ("noisy", p.noisy), ("unpaired", p.unpaired)) if on]
    return f" ({', '.join(marks)})" if marks else ""


def _finite(*xs: float | None) -> bool:
    return all(x is not None and math.isfinite(x) for x in xs)


def _f(x: float | None) -> float:
    """A figure already checked by ``_finite`` (NaN, never drawn, if it was not)."""
    return math.nan if x is None else float(x)


@contextmanager
def _figure(title: str) -> Iterator[tuple[Figure, Axes]]:
    """A fresh figure under matplotlib's defaults plus ``_RC`` (the user's rc file is ignored)."""
    import matplotlib  # imported here: ~0.3 s that the other verbs need not pay
    import matplotlib.style
    from matplotlib.figure import Figure

    rc: Any = _RC  # matplotlib types rc keys as a Literal of every name
    with matplotlib.style.context("default"), matplotlib.rc_context(rc), warnings.catch_warnings():
        # a name in a script DejaVu lacks (emoji, CJK) is still written as text; the warning adds nothing
        warnings.filterwarnings("ignore", message="Glyph .* missing from")
        fig = Figure(figsize=SIZE_IN, layout="constrained")
        ax = fig.add_subplot()
        ax.set_title(label_text(title, 90))
        yield fig, ax


def _svg(fig: Figure) -> str:
    out = io.StringIO()
    fig.savefig(out, format="svg", metadata={"Date": None})
    return out.getvalue()


def _empty(fig: Figure, ax: Axes, why: str) -> None:
    fig.set_size_inches(SIZE_IN[0], 1.2)  # a line of text, not a blank page of plot
    ax.set_axis_off()
    ax.text(0.5, 0.5, why, ha="center", va="center", transform=ax.transAxes)


def _method_label(method: str | None, source: str | None) -> str:
    if method == "measured":
        return f"measured ({label_text(source or '?', 50)})"
    return f"estimated ({label_text(source or method or '?', 50)})"


def _scatter(ax: Axes, points: Sequence[Point], x_of: str, xscale: float) -> None:
    """Accuracy against ``x_of`` (a ``Point`` field, times ``xscale``); hollow = estimated."""
    seen: set[str] = set()
    for p in points:
        x = _f(getattr(p, x_of))
        est = p.energy_method != "measured"
        legend = _method_label(p.energy_method, p.energy_source) if x_of == "energy_j" else "variant"
        ax.scatter(
            [x * xscale],
            [_f(p.accuracy)],
            s=60 if p.pareto else 36,
            facecolors="none" if est and x_of == "energy_j" else MEASURED,
            edgecolors=FLAGGED if (p.noisy or p.unpaired) else (ESTIMATED if est else MEASURED),
            linewidths=1.6,
            marker="D" if p.baseline else "o",
            label=None if legend in seen else legend,
            zorder=3,
        )
        seen.add(legend)
        ax.annotate(
            label_text(p.label) + _flags(p),
            (x * xscale, _f(p.accuracy)),
            xytext=(4, 4),
            textcoords="offset points",
            fontsize=7.5,
            color=FLAGGED if (p.noisy or p.unpaired) else "#333333",
        )


def accuracy_vs_energy(points: Sequence[Point], accuracy_name: str = "accuracy", title: str = "") -> str:
    """Accuracy against inference energy per image (mJ, gross) with the Pareto front
    (maximum accuracy, minimum energy). Hollow markers: estimated energy; diamond: baseline."""
    shown = [p for p in points if _finite(p.accuracy, p.energy_j)]
    with _figure(title or f"{accuracy_name} vs energy per image") as (fig, ax):
        if not shown:
            _empty(fig, ax, "no variant has both an accuracy and an energy-per-image figure")
            return _svg(fig)
        _scatter(ax, shown, "energy_j", 1e3)
        front = sorted((p for p in shown if p.pareto), key=lambda p: (p.energy_j, p.accuracy))
        if front:
            ax.step(
                [_f(p.energy_j) * 1e3 for p in front],
                [_f(p.accuracy) for p in front],
                where="post",
                linestyle="--",
                color="#2ca02c",
                label="Pareto front (max accuracy, min energy)",
                zorder=2,
            )
        if any(p.energy_method != "measured" for p in shown):
            ax.text(
                0.99, 0.01, "hollow markers: ESTIMATED energy (a model, not a hardware counter)",
                transform=ax.transAxes, ha="right", va="bottom", fontsize=7.5, color=ESTIMATED,
            )  # fmt: skip
        from greenbench.measure.energy.meter import cpu_time_only

        if all(cpu_time_only(p.energy_source) for p in shown):
            # CPU time × W/core: this axis, and the front on it, rank CPU time, not energy
            ax.set_xlabel("inference energy per image, gross (mJ): CPU-time model (CPU s × W/core)")
        else:
            ax.set_xlabel("inference energy per image, gross (mJ)")
        ax.set_ylabel(accuracy_name)
        ax.legend(loc="best", fontsize=7.5)
        return _svg(fig)


def accuracy_vs_latency(points: Sequence[Point], accuracy_name: str = "accuracy", title: str = "") -> str:
    """Accuracy against latency (ms, median of blocks) with horizontal 95 % CI bars."""
    shown = [p for p in points if _finite(p.accuracy, p.latency_ms)]
    with _figure(title or f"{accuracy_name} vs latency") as (fig, ax):
        if not shown:
            _empty(fig, ax, "no variant has both an accuracy and a latency figure")
            return _svg(fig)
        for p in shown:
            if p.latency_ci_ms is not None and _finite(*p.latency_ci_ms):
                lo, hi = p.latency_ci_ms
                lat = _f(p.latency_ms)
                ax.errorbar(
                    [lat], [_f(p.accuracy)], xerr=[[max(lat - lo, 0.0)], [max(hi - lat, 0.0)]],
                    fmt="none", ecolor="#777777", capsize=3, zorder=2,
                )  # fmt: skip
        _scatter(ax, shown, "latency_ms", 1.0)
        ax.set_xlabel("latency (ms, median; bars: 95 % CI)")
        ax.set_ylabel(accuracy_name)
        return _svg(fig)


def latency_per_variant(points: Sequence[Point], title: str = "") -> str:
    """Latency per variant (ms) as bars with 95 % CI error bars; noisy/unpaired bars hatched red."""
    shown = [p for p in points if _finite(p.latency_ms)]
    with _figure(title or "latency per variant (95 % CI)") as (fig, ax):
        if not shown:
            _empty(fig, ax, "no variant has a latency figure")
            return _svg(fig)
        ys = list(range(len(shown)))
        lows, highs = [], []
        for p in shown:
            lat = _f(p.latency_ms)
            lo, hi = p.latency_ci_ms if p.latency_ci_ms and _finite(*p.latency_ci_ms) else (lat, lat)
            lows.append(max(lat - lo, 0.0))
            highs.append(max(hi - lat, 0.0))
        flagged = [p.noisy or p.unpaired for p in shown]
        ax.barh(
            ys,
            [_f(p.latency_ms) for p in shown],
            xerr=[lows, highs],
            color=[("#f4b6b6" if f else MEASURED) for f in flagged],
            edgecolor=[(FLAGGED if f else MEASURED) for f in flagged],
            hatch=None,
            capsize=3,
        )
        for y, f in zip(ys, flagged, strict=True):
            if f:  # hatching per bar: barh takes one hatch for all
                ax.patches[y].set_hatch("xx")
        ax.set_yticks(ys, [label_text(p.label) + _flags(p) for p in shown])
        ax.invert_yaxis()
        ax.set_xlabel("latency (ms, median of blocks; error bars: 95 % CI)")
        return _svg(fig)


def training_energy(trainings: Sequence[Training], title: str = "") -> str:
    """Training energy per stage (kJ, gross), stacked per variant; estimated stages hatched;
    each bar's CO2 (g) written at its end."""
    shown = [t for t in trainings if t.stages]
    with _figure(title or "training energy per stage, with CO₂") as (fig, ax):
        if not shown:
            _empty(fig, ax, "no variant trained in a measured window (every stage reused from cache or none)")
            return _svg(fig)
        names = list(dict.fromkeys(label_text(s.name, 24) for t in shown for s in t.stages))
        colour = {n: STAGE_COLOURS[i % len(STAGE_COLOURS)] for i, n in enumerate(names)}
        any_estimated = False
        for y, t in enumerate(shown):
            left = 0.0
            for s in t.stages:
                name = label_text(s.name, 24)
                est = s.method != "measured"
                any_estimated |= est
                width = max(s.energy_j, 0.0) / 1e3
                ax.barh(
                    [y], [width], left=left, color=colour[name], edgecolor="#333333", linewidth=0.5,
                    hatch="//" if est else None,
                )  # fmt: skip
                left += width
            co2 = f"{t.co2_g:.3g} g CO₂" if t.co2_g is not None and math.isfinite(t.co2_g) else "CO₂ n/a"
            ax.annotate(co2, (left, y), xytext=(4, 0), textcoords="offset points", va="center", fontsize=7.5)
        ax.set_yticks(range(len(shown)), [label_text(t.label) for t in shown])
        ax.invert_yaxis()
        ax.margins(x=0.18)
        xlabel = "training energy of the variant's own stages, gross (kJ)"
        ax.set_xlabel(xlabel + ("; hatched: ESTIMATED (a model, not a counter)" if any_estimated else ""))
        from matplotlib.patches import Patch

        handles = [Patch(facecolor=colour[n], edgecolor="#333333", label=n) for n in names]
        if any_estimated:
            handles.append(Patch(facecolor="white", edgecolor="#333333", hatch="//", label="estimated"))
        ax.legend(handles=handles, title="stage", loc="lower right", fontsize=7.5)
        return _svg(fig)


def complexity(points: Sequence[Point], title: str = "") -> str:
    """Parameters (10^6), GFLOPs and model size (MB) per variant, grouped bars."""
    shown = [p for p in points if any(_finite(x) for x in (p.params_m, p.gflops, p.size_mb))]
    with _figure(title or "parameters, GFLOPs and size") as (fig, ax):
        if not shown:
            _empty(fig, ax, "no variant has complexity figures")
            return _svg(fig)
        height = 0.27
        for i, (attr, name, colour) in enumerate(
            (
                ("params_m", "params (M)", "#4c72b0"),
                ("gflops", "GFLOPs", "#55a868"),
                ("size_mb", "size (MB)", "#c44e52"),
            )
        ):
            values = [_f(getattr(p, attr)) if _finite(getattr(p, attr)) else 0.0 for p in shown]
            ax.barh(
                [y + (i - 1) * height for y in range(len(shown))], values, height, label=name, color=colour
            )
        ax.set_yticks(range(len(shown)), [label_text(p.label) for p in shown])
        ax.invert_yaxis()
        ax.set_xlabel("value (units in the legend)")
        ax.legend(loc="lower right", fontsize=7.5)
        return _svg(fig)


def confusion_matrix(classes: Sequence[str], matrix: Sequence[Sequence[int]], title: str = "") -> str:
    """Each true class's share of predictions per predicted class (rows sum to 1), with the
    counts written in the cells while they fit (at most 15 classes) and class names as ticks
    (at most 30)."""
    import numpy as np

    counts = np.asarray(matrix, dtype=float)
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    n = len(classes)
    with _figure(title or "confusion matrix") as (fig, ax):
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
        return _svg(fig)


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
