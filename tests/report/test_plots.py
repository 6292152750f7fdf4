"""The report's plots: valid, deterministic SVG; hostile names drawn as text; estimated, noisy and
unpaired figures marked; ids safe to inline beside other plots."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import replace

import matplotlib
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.transforms import Bbox

from greenbench.report import bar_plots, plots
from greenbench.report.plots import Point, Stage, Training, inline_svg, label_text

SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = [
    "<script>alert(1)</script>",
    "tiny$x^2$",
    "a\\b $\\frac{1}{0}$",
    "esc\x1b[31mred\nnext\u202eline",
    "emoji 🚀 名前",
    "&amp; \"quoted\" 'single' ]]>",
    "url(#p1)",
    "L" * 300,
]


def points(names: list[str], method: str = "estimated") -> list[Point]:
    return [
        Point(
            label=name,
            accuracy=0.5 - 0.03 * i,
            energy_j=0.02 - 0.001 * i,
            energy_ci_j=(0.018 - 0.001 * i, 0.022 - 0.001 * i),
            energy_method=method,
            energy_source="estimate (4 W/core)" if method == "estimated" else "rapl:package-0",
            latency_ms=10.0 - i,
            latency_ci_ms=(9.5 - i, 10.6 - i),
            latency_noisy=i == 1,
            energy_noisy=i == 3,
            latency_unpaired=i == 2,
            energy_unpaired=i == 2,
            pareto=i % 2 == 0,
            baseline=i == 0,
            params_m=1.8 - 0.1 * i,
            gflops=4.2 - 0.2 * i,
            size_mb=3.9 - 0.1 * i,
        )
        for i, name in enumerate(names)
    ]


def trainings(names: list[str], method: str = "estimated") -> list[Training]:
    return [
        Training(name, (Stage("sparse_train", 5000.0 + i, method), Stage(name, 900.0, method)), 0.53 + i)
        for i, name in enumerate(names)
    ]


PLOTS: dict[str, Callable[[list[str]], str]] = {
    "accuracy_vs_energy": lambda names: plots.accuracy_vs_energy(points(names)),
    "accuracy_vs_latency": lambda names: plots.accuracy_vs_latency(points(names)),
    "latency_per_variant": lambda names: bar_plots.latency_per_variant(points(names)),
    "training_energy": lambda names: bar_plots.training_energy(trainings(names)),
    "complexity": lambda names: bar_plots.complexity(points(names)),
}


def texts(svg: str) -> list[str]:
    """Every text node of the SVG's ``<text>`` elements (text is kept as text: svg.fonttype none)."""
    root = ET.fromstring(svg)
    return ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]


@pytest.mark.parametrize("name", sorted(PLOTS))
def test_each_plot_is_valid_deterministic_svg(name: str) -> None:
    svg = PLOTS[name](["base", "pruned", "distilled"])
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    assert float(root.get("width", "0pt").removesuffix("pt")) > 100
    assert len(list(root.iter(f"{SVG}path"))) > 10  # something was drawn
    assert any("base" in t for t in texts(svg))
    assert "<dc:date>" not in svg  # no timestamp
    assert PLOTS[name](["base", "pruned", "distilled"]) == svg


@pytest.mark.parametrize("name", sorted(PLOTS))
def test_hostile_names_are_text(name: str) -> None:
    svg = PLOTS[name](HOSTILE)
    root = ET.fromstring(svg)  # still well-formed XML
    tags = {el.tag.removeprefix(SVG) for el in root.iter()}
    assert "script" not in tags and "foreignObject" not in tags
    assert "\x1b" not in svg and "\u202e" not in svg
    shown = " ".join(texts(svg))
    assert "<script>alert(1)</script>" in shown
    assert "tiny$x^2$" in shown  # drawn as written: mathtext is off, nothing to escape
    assert "a\\b $\\frac{1}{0}$" in shown
    assert "url(#p1)" in shown
    assert "L" * 300 not in shown
    assert any(re.fullmatch("L+…", t) for t in texts(svg))  # the long name wrapped, then cut


@pytest.mark.parametrize("name", sorted(PLOTS))
def test_empty_input_still_gives_a_plot_that_says_so(name: str) -> None:
    svg = PLOTS[name]([])
    assert ET.fromstring(svg).tag == f"{SVG}svg"
    assert any(t.startswith("no variant") for t in texts(svg))


def test_estimated_energy_is_marked_and_measured_is_not() -> None:
    est = plots.accuracy_vs_energy(points(["a", "b"], "estimated"))
    meas = plots.accuracy_vs_energy(points(["a", "b"], "measured"))
    est_text, meas_text = " ".join(texts(est)), " ".join(texts(meas))
    assert "hollow: ESTIMATED (estimate (4 W/core)), a model" in est_text
    assert "ESTIMATED" not in meas_text and "filled: measured (rapl:package-0)" in meas_text
    assert "Pareto front, 1 variant(s)" in est_text


def test_each_plot_reads_its_own_metrics_noise_flag() -> None:
    """b's latency is noisy, d's energy: each plot marks only the figure it shows."""
    pts = points(["a", "b", "c", "d"])
    for svg in (plots.accuracy_vs_latency(pts), bar_plots.latency_per_variant(pts)):
        shown = " | ".join(texts(svg))
        assert "a (baseline)" in shown and "b (noisy)" in shown and "c (unpaired)" in shown
        assert "d (noisy)" not in shown
    energy = " | ".join(texts(plots.accuracy_vs_energy(pts)))
    assert "d (noisy)" in energy and "c (unpaired)" in energy and "b (noisy)" not in energy


def test_estimated_training_stages_are_hatched_with_co2() -> None:
    est = bar_plots.training_energy(trainings(["a", "b"], "estimated"))
    meas = bar_plots.training_energy(trainings(["a", "b"], "measured"))
    assert "<pattern" in est and "<pattern" not in meas  # matplotlib draws hatches as SVG patterns
    assert "hatched: ESTIMATED (a model)" in texts(est) and "ESTIMATED" not in " ".join(texts(meas))
    assert any(re.fullmatch(r"0\.53 g CO₂", t) for t in texts(est))


def test_user_rc_settings_do_not_change_the_output() -> None:
    plain = bar_plots.complexity(points(["a", "b"]))
    hostile_rc = {"svg.fonttype": "path", "text.parse_math": True, "font.size": 20, "svg.hashsalt": "other"}
    with matplotlib.rc_context(hostile_rc):
        assert bar_plots.complexity(points(["a", "b"])) == plain


def test_inline_svg_prefixes_ids_and_keeps_references_whole() -> None:
    raw = plots.accuracy_vs_energy(points(HOSTILE))
    one, two = inline_svg(raw, "s1-acc-"), inline_svg(raw, "s2-acc-")
    assert not one.startswith("<?xml") and "<!DOCTYPE" not in one
    ids_one = set(re.findall(r'\bid="([^"]+)"', one))
    ids_two = set(re.findall(r'\bid="([^"]+)"', two))
    assert ids_one and not ids_one & ids_two
    assert all(i.startswith("s1-acc-") for i in ids_one)
    refs = re.findall(r'url\(#([^)]+)\)|href="#([^"]+)"', one.split("<text", 1)[0])
    assert refs and all((a or b) in ids_one for a, b in refs)
    assert texts(one) == texts(raw)  # user text is never rewritten (a name "url(#p1)" included)


def test_label_text_folds_and_cuts() -> None:
    assert label_text("a\nb\x1b\u202ec") == "a b c"
    assert label_text("x" * 100, 10) == "x" * 9 + "…"


def test_confusion_matrices_come_from_the_records_baseline_first_and_best_next() -> None:
    from greenbench.metrics import stored
    from greenbench.report.device_report import MAX_CONFUSIONS, build_device_report
    from greenbench.report.render_common import figures
    from tests.factories import make_measured_record

    def record(variant: str, top1: float, matrix: object) -> object:
        r = make_measured_record(variant, map50=None, task="classify", baseline="base")
        r.metrics["top1"] = stored("top1", top1)
        r.metrics["top5"] = stored("top5", 1.0)
        r.measurement["accuracy_details"] = {"classes": ["cat", "<b>dog</b>"], "confusion": matrix}
        return r

    good = [[3, 1], [0, 4]]
    records = [
        record("base", 0.5, good),
        record("worse", 0.6, good),
        record("best", 0.9, good),
        record("bad-shape", 0.99, [[1, 2, 3]]),
        *(record(f"v{i}", 0.1, good) for i in range(5)),
    ]
    section = build_device_report(records, "dev").sections[0]
    shown = [c.variant for c in section.confusions]
    assert shown[:3] == ["base", "best", "worse"] and len(shown) == MAX_CONFUSIONS
    assert "bad-shape" not in shown  # a malformed matrix is skipped, never drawn
    confusion = [f for f in figures(section) if f.name.startswith("confusion-")]
    assert [f.name for f in confusion][:2] == ["confusion-base", "confusion-best"]
    root = ET.fromstring(confusion[0].svg)
    texts = "".join(t.text or "" for t in root.iter(f"{SVG}text"))
    assert "<b>dog</b>" in texts  # the class name drawn as text, never markup


# --- at the study's 27 variants -----------------------------------------------------------------


def drawn_texts(fig: Figure) -> list[tuple[str, Bbox]]:
    """Every text the figure draws (as drawn: a tick outside the view is not), with its box in
    display pixels, from matplotlib's own renderer."""
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    drawn: dict[int, Text] = {}
    original = renderer.draw_text

    def record(
        gc: object, x: float, y: float, s: str, prop: object, angle: float, *args: object, **kw: object
    ) -> None:
        mtext = kw.get("mtext") or (args[1] if len(args) > 1 else None)
        if isinstance(mtext, Text) and s.strip():
            drawn[id(mtext)] = mtext
        original(gc, x, y, s, prop, angle, *args, **kw)

    renderer.draw_text = record
    try:
        fig.draw(renderer)
    finally:
        del renderer.draw_text
    return [(t.get_text(), t.get_window_extent(renderer)) for t in drawn.values()]


def overlapping(boxes: list[tuple[str, Bbox]], tolerance_px: float = 0.5) -> list[tuple[str, str]]:
    pairs = []
    for i, (a, ba) in enumerate(boxes):
        for b, bb in boxes[i + 1 :]:
            w = min(ba.x1, bb.x1) - max(ba.x0, bb.x0)
            h = min(ba.y1, bb.y1) - max(ba.y0, bb.y0)
            if w > tolerance_px and h > tolerance_px:
                pairs.append((a, b))
    return pairs


@pytest.fixture(scope="module")
def study27() -> tuple[object, dict[str, Figure]]:
    """The 27-variant study's section (9 models × 3 runtimes) and each of its plots as a figure."""
    from greenbench.report.device_report import build_device_report
    from tests.report.report_records import DEVICE_ID, study27_records

    section = build_device_report(study27_records(), DEVICE_ID).sections[0]
    pts, acc = section.points, section.accuracy_name
    return section, {
        "accuracy_vs_energy": plots.accuracy_vs_energy_figure(
            pts, acc, "yolo_study: mAP50 vs energy per image"
        ),
        "accuracy_vs_latency": plots.accuracy_vs_latency_figure(pts, acc, "yolo_study: mAP50 vs latency"),
        "latency_per_variant": bar_plots.latency_per_variant_figure(pts, "yolo_study: latency per variant"),
        "training_energy": bar_plots.training_energy_figure(section.trainings, "yolo_study: training energy"),
        "complexity": bar_plots.complexity_figure(pts, "yolo_study: parameters, GFLOPs and size"),
    }


@pytest.mark.parametrize("name", sorted(PLOTS))
def test_no_two_labels_overlap_at_27_variants_and_none_is_clipped(
    name: str, study27: tuple[object, dict[str, Figure]]
) -> None:
    fig = study27[1][name]
    boxes = drawn_texts(fig)
    named = 6 if name == "training_energy" else 27  # 6 of the study's rows trained in a window
    assert len(boxes) > named  # every variant is named (in a key or as a bar label)
    assert overlapping(boxes) == []
    canvas = fig.bbox
    clipped = [t for t, b in boxes if b.x0 < -1 or b.y0 < -1 or b.x1 > canvas.x1 + 1 or b.y1 > canvas.y1 + 1]
    assert clipped == []


def test_the_overlap_check_can_fail() -> None:
    from matplotlib.figure import Figure as MplFigure

    fig = MplFigure()
    FigureCanvasAgg(fig)
    fig.text(0.5, 0.5, "one")
    fig.text(0.51, 0.5, "two")
    fig.text(1.2, 0.5, "outside")
    boxes = drawn_texts(fig)
    assert overlapping(boxes) == [("one", "two")]
    assert any(b.x0 > fig.bbox.x1 for _, b in boxes)


def test_scatter_axes_hold_only_numbers(study27: tuple[object, dict[str, Figure]]) -> None:
    """Names and explanations are in the key and the legend, never drawn over the data."""
    for name in ("accuracy_vs_energy", "accuracy_vs_latency"):
        fig = study27[1][name]
        plot_box = fig.axes[0].get_window_extent(fig.canvas.get_renderer())  # type: ignore[attr-defined]
        inside = [t for t, b in drawn_texts(fig) if plot_box.contains((b.x0 + b.x1) / 2, (b.y0 + b.y1) / 2)]
        assert sorted(inside, key=int) == [str(n) for n in range(1, 28)], name


def test_pareto_front_is_a_visible_staircase_through_its_members(
    study27: tuple[object, dict[str, Figure]],
) -> None:
    section, figs = study27
    front = [p for p in section.points if p.pareto]  # type: ignore[attr-defined]
    assert len(front) >= 2  # accuracies tie across runtimes: the cheapest of each tie is on it
    (line,) = [a for a in figs["accuracy_vs_energy"].axes[0].lines if a.get_gid() == "pareto-front"]
    xs, ys = (list(v) for v in line.get_data())
    assert len(xs) >= 2 * len(front)
    vertices = set(zip((round(x, 9) for x in xs), (round(y, 9) for y in ys), strict=True))
    for p in front:
        assert (round(p.energy_j * 1e3, 9), round(p.accuracy, 9)) in vertices  # mJ: the values' unit
    assert xs == sorted(xs) and ys == sorted(ys)  # a staircase: right and up only


def test_a_one_member_front_is_still_drawn() -> None:
    fig = plots.accuracy_vs_energy_figure(
        [replace(p, pareto=i == 0) for i, p in enumerate(points(["a", "b", "c"]))]
    )
    (line,) = [a for a in fig.axes[0].lines if a.get_gid() == "pareto-front"]
    xs, ys = line.get_data()
    assert len(xs) >= 2 and (max(xs) - min(xs)) + (max(ys) - min(ys)) > 0


def test_the_legend_never_reuses_the_baselines_diamond(study27: tuple[object, dict[str, Figure]]) -> None:
    for name in ("accuracy_vs_energy", "accuracy_vs_latency"):
        (legend,) = study27[1][name].legends
        markers = {
            t.get_text(): h.get_marker()
            for t, h in zip(legend.get_texts(), legend.legend_handles, strict=True)
        }
        assert [t for t, m in markers.items() if m == "D"] == ["baseline (diamond)"], markers


def test_complexity_is_three_axes_each_with_its_unit(study27: tuple[object, dict[str, Figure]]) -> None:
    axes = study27[1]["complexity"].axes
    assert [a.get_title() for a in axes] == [
        "parameters (M)",
        "compute per image (GFLOPs)",
        "model file (MB)",
    ]
    assert len({a.get_xlim() for a in axes}) == 3  # each its own scale: GFLOPs bars never vanish


def test_units_follow_the_values() -> None:
    small = [Training("a", (Stage("train", 3.0),), 0.1)]
    big = [Training("a", (Stage("train", 5.0e6),), 0.1)]
    assert "(J)" in bar_plots.training_energy_figure(small).axes[0].get_xlabel()
    assert "(MJ)" in bar_plots.training_energy_figure(big).axes[0].get_xlabel()
    assert "(mJ;" in plots.accuracy_vs_energy_figure(points(["a", "b"])).axes[0].get_xlabel()


def test_log_axis_only_past_a_tenfold_span() -> None:
    narrow = points(["a", "b", "c"])
    wide = [replace(p, latency_ms=p.latency_ms * 30**i, latency_ci_ms=None) for i, p in enumerate(narrow)]
    assert plots.accuracy_vs_latency_figure(narrow).axes[0].get_xscale() == "linear"
    assert plots.accuracy_vs_latency_figure(wide).axes[0].get_xscale() == "log"
    assert bar_plots.latency_per_variant_figure(wide).axes[0].get_xscale() == "log"


def test_energy_scatter_has_ci_bars() -> None:
    from matplotlib.collections import LineCollection

    fig = plots.accuracy_vs_energy_figure(points(["a", "b", "c"]))
    bars = [c for c in fig.axes[0].collections if isinstance(c, LineCollection)]
    assert len(bars) == 3  # one horizontal 95 % CI bar per variant


def test_60_scattered_variants_keep_their_numbers_apart() -> None:
    """Beyond the study: 60 variants spread at random (seeded), names of every length."""
    import random

    rng = random.Random(60)
    many = [
        Point(
            label=f"variant-{i:02d}" + "-pruned" * (i % 4),
            accuracy=round(0.3 + 0.2 * rng.random(), 2),
            energy_j=0.005 + 0.02 * rng.random(),
            energy_method="estimated",
            energy_source="estimate",
            latency_ms=5 + 10 * rng.random(),
            pareto=i % 9 == 0,
        )
        for i in range(60)
    ]
    fig = plots.accuracy_vs_energy_figure(many)  # the latency scatter places its numbers alike
    boxes = drawn_texts(fig)
    assert len(boxes) > 120 and overlapping(boxes) == []
    assert all(b.y0 >= -1 and b.y1 <= fig.bbox.y1 + 1 for _, b in boxes)  # the key fits the figure


def test_points_carry_each_figures_own_flags_and_short_runtime_names(
    study27: tuple[object, dict[str, Figure]],
) -> None:
    from greenbench.report.device_report import runtime_labels

    pts = {p.label: p for p in study27[0].points}  # type: ignore[attr-defined]
    energy_only, latency_only = pts["pruned-20 [openvino]"], pts["pruned-10 [openvino]"]
    assert energy_only.energy_noisy and not energy_only.latency_noisy
    assert latency_only.latency_noisy and not latency_only.energy_noisy
    assert pts["base [onnxruntime]"].latency_unpaired and not pts["sparse [onnxruntime]"].latency_unpaired
    assert runtime_labels(["torch", "torch"]) == {}
    assert runtime_labels(["torch", "ort(threads=1)", "ort(threads=2)", "ov(f32)"]) == {
        "torch": "torch",
        "ort(threads=1)": "ort(threads=1)",  # two settings of one runtime: named whole
        "ort(threads=2)": "ort(threads=2)",
        "ov(f32)": "ov",
    }
