"""How the report's plots lay out text so that it stays readable at tens of variants.

- Units are chosen from the values (``unit_for``): 0.003 kJ is written 3 J, 5,000 J is 5 kJ.
- An axis whose positive values span more than ``LOG_SPAN``× is logarithmic (``log_if_wide``).
- Scatter plots mark each variant with its number (its row in the suite's table, the same in
  every plot) and list the numbers in a key beside the axes (``draw_key``): a name is written
  once, in full up to two lines, and never on top of data.
- The numbers are placed by ``place_numbers``: after the layout is fixed, each number takes the
  first spot around its marker (rings of growing radius) whose box overlaps no other number, no
  marker and stays inside the axes; a number moved away from its marker gets a thin leader
  line. Nothing is needed beyond matplotlib: the text extents come from its own renderer.
"""

from __future__ import annotations

import math
import re
import textwrap
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from greenbench.errors import TERMINAL_UNSAFE

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.transforms import Bbox

SALT = "greenbench-report"
LOG_SPAN = 10.0  # an axis whose values span more than this factor is drawn on a log scale
KEY_WIDTH_CHARS = 34  # a key entry or bar label wraps at this width…
KEY_LINES = 2  # …onto at most this many lines, then is cut with "…"
FONT_PT = 7.5  # labels, key and legend
LINE_PT = FONT_PT * 1.35  # one line of key text, with its leading

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

#: unit steps: (name, size of one in the base unit); ``unit_for`` picks one
ENERGY_UNITS = (("µJ", 1e-6), ("mJ", 1e-3), ("J", 1.0), ("kJ", 1e3), ("MJ", 1e6), ("GJ", 1e9))
COUNT_UNITS = (("", 1.0), ("k", 1e3), ("M", 1e6), ("G", 1e9))
FLOP_UNITS = (("MFLOPs", 1e-3), ("GFLOPs", 1.0), ("TFLOPs", 1e3))
BYTE_UNITS = (("kB", 1e-3), ("MB", 1.0), ("GB", 1e3))
TIME_UNITS = (("µs", 1e-3), ("ms", 1.0), ("s", 1e3))


@contextmanager
def style() -> Iterator[None]:
    """matplotlib's defaults plus ``_RC``, whatever the user's rc file says, while drawing or saving."""
    import matplotlib  # imported here: ~0.3 s that the other verbs need not pay
    import matplotlib.style

    rc: Any = _RC  # matplotlib types rc keys as a Literal of every name
    with matplotlib.style.context("default"), matplotlib.rc_context(rc), warnings.catch_warnings():
        # a name in a script DejaVu lacks (emoji, CJK) is still written as text; the warning adds nothing
        warnings.filterwarnings("ignore", message="Glyph .* missing from")
        yield


def new_figure(width_in: float, height_in: float) -> Figure:
    """A figure with an Agg canvas (text extents for the layout) and constrained layout."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def one_line(text: str) -> str:
    """``text`` on one line: control characters and runs of spaces to one space."""
    return re.sub(r"\s+", " ", TERMINAL_UNSAFE.sub(" ", text)).strip()


def wrapped(text: str, width: int = KEY_WIDTH_CHARS, lines: int = KEY_LINES) -> str:
    """``text`` on one line, wrapped at ``width`` characters onto at most ``lines`` lines; the
    last line cut with "…" if more was left."""
    parts = textwrap.wrap(one_line(text), width, break_long_words=True, break_on_hyphens=False) or [""]
    if len(parts) > lines:
        last = parts[lines - 1]
        parts = [*parts[: lines - 1], (last if len(last) < width else last[: width - 1]) + "…"]
    return "\n".join(parts)


def unit_for(largest: float, units: Sequence[tuple[str, float]]) -> tuple[str, float]:
    """The unit (name, size in the base unit) in which ``largest`` reads from 1 to under 1000:
    the largest unit not bigger than it (the smallest unit for 0 or less)."""
    for name, size in reversed(units):
        if largest >= size:
            return name, size
    return units[0]


def log_if_wide(ax: Axes, values: Sequence[float], axis: str = "x") -> bool:
    """Make ``axis`` logarithmic when the positive ``values`` span more than ``LOG_SPAN``×."""
    positive = [v for v in values if v > 0 and math.isfinite(v)]
    wide = len(positive) > 1 and max(positive) / min(positive) > LOG_SPAN
    if wide:
        (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
    return wide


def key_height_in(entries: Sequence[str]) -> float:
    """Height (inches) the key of ``entries`` (already wrapped) needs."""
    return sum(e.count("\n") + 1 for e in entries) * LINE_PT / 72 + 0.3


def draw_key(ax: Axes, title: str, entries: Sequence[tuple[str, str, str]]) -> None:
    """A key in ``ax`` (its axis switched off): per entry its number, its (wrapped) text and colour,
    top down from the axes' top-left corner, one line of ``LINE_PT`` per text line."""
    ax.set_axis_off()
    kw: dict[str, Any] = {"xycoords": "axes fraction", "textcoords": "offset points", "fontsize": FONT_PT}
    # outside the layout: the figure is made tall enough for the key (``key_height_in``)
    ax.annotate(title, (0, 1), xytext=(0, 0), va="top", fontweight="bold", **kw).set_in_layout(False)
    y = LINE_PT * 1.3
    for number, text, colour in entries:
        ax.annotate(number, (0, 1), xytext=(14, -y), va="top", ha="right", color=colour, **kw).set_in_layout(
            False
        )
        ax.annotate(
            text, (0, 1), xytext=(18, -y), va="top", ha="left", color=colour, linespacing=1.1, **kw
        ).set_in_layout(False)
        y += (text.count("\n") + 1) * LINE_PT


@dataclass(frozen=True)
class Mark:
    """A number to write beside a marker: its text, colour and the marker's data coordinates."""

    text: str
    colour: str
    x: float
    y: float


def _overlap(a: Bbox, b: Bbox) -> float:
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return w * h if w > 0 and h > 0 else 0.0


def _candidates() -> Iterator[tuple[float, float]]:
    """Offsets (points) around a marker, nearest first: 8 then 16 directions per ring, above and
    below before the sides (a CI bar runs sideways through the marker)."""
    for radius in (8.0, 11.0, 15.0, 20.0, 26.0, 33.0, 41.0, 50.0, 60.0):
        steps = 8 if radius < 15 else 16
        angles = sorted(
            (math.pi / 2 + 2 * math.pi * i / steps for i in range(steps)), key=lambda a: abs(math.cos(a))
        )
        for angle in angles:
            yield radius * math.cos(angle), radius * math.sin(angle)


def place_numbers(fig: Figure, ax: Axes, marks: Sequence[Mark], marker_pt: float = 4.5) -> None:
    """Write each mark's number near its marker without overlapping another number or marker.

    Fixes the figure's layout first (the positions depend on it): draw once, then switch the
    layout engine off. A number that no spot fits goes where it overlaps least.
    """
    from matplotlib.transforms import Bbox

    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    fig.draw_without_rendering()
    fig.set_layout_engine("none")
    px = fig.dpi / 72.0  # display pixels per point
    inside = ax.get_window_extent(renderer)
    centres = [ax.transData.transform((m.x, m.y)) for m in marks]
    r = marker_pt * px
    taken = [Bbox.from_extents(cx - r, cy - r, cx + r, cy + r) for cx, cy in centres]
    for m, (cx, cy) in zip(marks, centres, strict=True):
        probe = ax.text(0, 0, m.text, fontsize=FONT_PT, transform=None)
        box = probe.get_window_extent(renderer)
        probe.remove()
        w, h = box.width / 2 + 1, box.height / 2 + 1
        best: tuple[float, float, float] | None = None
        for dx, dy in _candidates():
            x, y = cx + dx * px, cy + dy * px
            cand = Bbox.from_extents(x - w, y - h, x + w, y + h)
            if cand.x0 < inside.x0 or cand.x1 > inside.x1 or cand.y0 < inside.y0 or cand.y1 > inside.y1:
                continue
            cost = sum(_overlap(cand, t) for t in taken)
            if best is None or cost < best[0]:
                best = (cost, dx, dy)
            if cost == 0:
                break
        _, dx, dy = best if best is not None else (0.0, 8.0, 8.0)
        far = math.hypot(dx, dy) > 12
        label = ax.annotate(
            m.text, (m.x, m.y), xytext=(dx, dy), textcoords="offset points", ha="center", va="center",
            fontsize=FONT_PT, color=m.colour, zorder=5, annotation_clip=False,
            bbox={"boxstyle": "square,pad=0.05", "facecolor": "white", "edgecolor": "none", "alpha": 0.8},
            arrowprops={"arrowstyle": "-", "color": "#999999", "lw": 0.5, "shrinkA": 0, "shrinkB": 3}
            if far else None,
        )  # fmt: skip
        label.set_in_layout(False)
        x, y = cx + dx * px, cy + dy * px
        taken.append(Bbox.from_extents(x - w, y - h, x + w, y + h))
