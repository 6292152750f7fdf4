"""The report's plots: valid, deterministic SVG; hostile names drawn as text; estimated, noisy and
unpaired figures marked; ids safe to inline beside other plots."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable

import matplotlib
import pytest

from greenbench.report import plots
from greenbench.report.plots import LABEL_CHARS, Point, Stage, Training, inline_svg, label_text

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
            noisy=i == 1,
            unpaired=i == 2,
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
    "latency_per_variant": lambda names: plots.latency_per_variant(points(names)),
    "training_energy": lambda names: plots.training_energy(trainings(names)),
    "complexity": lambda names: plots.complexity(points(names)),
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
    assert "L" * 300 not in shown and "L" * (LABEL_CHARS - 1) + "…" in shown


@pytest.mark.parametrize("name", sorted(PLOTS))
def test_empty_input_still_gives_a_plot_that_says_so(name: str) -> None:
    svg = PLOTS[name]([])
    assert ET.fromstring(svg).tag == f"{SVG}svg"
    assert any(t.startswith("no variant") for t in texts(svg))


def test_estimated_energy_is_marked_and_measured_is_not() -> None:
    est = plots.accuracy_vs_energy(points(["a", "b"], "estimated"))
    meas = plots.accuracy_vs_energy(points(["a", "b"], "measured"))
    est_text, meas_text = " ".join(texts(est)), " ".join(texts(meas))
    assert "estimated (estimate (4 W/core))" in est_text and "ESTIMATED" in est_text
    assert "ESTIMATED" not in meas_text and "measured (rapl:package-0)" in meas_text
    assert "Pareto front" in est_text


def test_noisy_and_unpaired_labels() -> None:
    for svg in (
        plots.accuracy_vs_latency(points(["a", "b", "c"])),
        plots.latency_per_variant(points(["a", "b", "c"])),
    ):
        shown = texts(svg)
        assert any(t.startswith("a (baseline)") for t in shown)
        assert any(t.startswith("b (noisy)") for t in shown)
        assert any(t.startswith("c (unpaired)") for t in shown)


def test_estimated_training_stages_are_hatched_with_co2() -> None:
    est = plots.training_energy(trainings(["a", "b"], "estimated"))
    meas = plots.training_energy(trainings(["a", "b"], "measured"))
    assert "<pattern" in est and "<pattern" not in meas  # matplotlib draws hatches as SVG patterns
    assert "estimated" in texts(est) and "estimated" not in texts(meas)
    assert any(re.fullmatch(r"0\.53 g CO₂", t) for t in texts(est))


def test_user_rc_settings_do_not_change_the_output() -> None:
    plain = plots.complexity(points(["a", "b"]))
    hostile_rc = {"svg.fonttype": "path", "text.parse_math": True, "font.size": 20, "svg.hashsalt": "other"}
    with matplotlib.rc_context(hostile_rc):
        assert plots.complexity(points(["a", "b"])) == plain


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
