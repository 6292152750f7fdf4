"""``greenbench report``: one self-contained HTML file (and Markdown) per device, from a store of
known records; checked as files and in a real headless Chromium (DOM, console, screenshot)."""

from __future__ import annotations

import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageStat

from greenbench.cli import main
from greenbench.commands.report import write_reports
from greenbench.report.render_common import safe_name
from greenbench.store import Store
from tests.clitools import assert_one_paragraph_error, run_cli
from tests.report.browser import Browser, chromium_path
from tests.report.report_records import (
    DEVICE_ID,
    HOSTILE,
    MATH,
    SUITE,
    make_store,
    study27_records,
    study_records,
    variant,
)

PLOT_NAMES = ["accuracy-energy", "accuracy-latency", "latency", "training-energy", "complexity"]
SCREENSHOT_COPY = Path("/tmp/greenbench-report-screenshot.png")  # kept for a human to look at
SCREENSHOT_27 = Path("/tmp/greenbench-report-27-variants.png")  # the 27-variant study, likewise


class Elements(HTMLParser):
    """Start tags with their attributes, and the page's text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(html: str) -> Elements:
    p = Elements()
    p.feed(html)
    return p


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The report of the study store (two suites, one named ``<script>``) on one device."""
    root = tmp_path_factory.mktemp("report")
    store = make_store(root / "a.db")
    paths = write_reports([store], root / "out")
    assert paths == [root / "out" / DEVICE_ID / "report.html", root / "out" / DEVICE_ID / "report.md"]
    return paths[0]


def test_files_per_device_and_paths_printed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = make_store(tmp_path / "a.db")
    assert main(["report", "--store", str(store), "--suite", SUITE, "-o", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out.split()
    folder = tmp_path / "out" / DEVICE_ID
    assert printed == [str(folder / "report.html"), str(folder / "report.md")]
    svgs = sorted(p.name for p in folder.glob("*.svg"))
    assert svgs == sorted(f"{SUITE}-{n}.svg" for n in PLOT_NAMES)  # --suite: the other suite left out
    md = (folder / "report.md").read_text()
    for name in svgs:
        assert f"]({name})" in md


def test_html_is_self_contained_and_escaped(written: Path) -> None:
    html = written.read_text()
    page = parse(html)
    tags = [t for t, _ in page.tags]
    assert "script" not in tags and "iframe" not in tags and "link" not in tags and "img" not in tags
    for _, attrs in page.tags:
        for key in ("src", "href", "action", "data"):
            value = attrs.get(key) or ""
            assert not value or value.startswith("#"), (key, value)  # only in-page references
    assert not re.search(r"@import|url\((?!#)", html)  # CSS fetches nothing
    csp = [a.get("content") or "" for t, a in page.tags if a.get("http-equiv") == "Content-Security-Policy"]
    assert csp and csp[0].startswith("default-src 'none';")  # the browser enforces "fetch nothing"
    text = "".join(page.text)
    assert HOSTILE in text and MATH in text  # shown as text, escaped in the source
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "boom <b>x</b>" in text and "<b>x</b>" not in html  # a failed variant's error, as text
    assert "secret-host" not in html  # the hostname is not published


def test_html_sections(written: Path) -> None:
    page = parse(written.read_text())
    classes = [(t, a.get("class") or "") for t, a in page.tags]
    assert classes.count(("table", "comparison")) == 2  # one per suite
    assert classes.count(("section", "suite")) == 2
    assert classes.count(("figure", "plot")) == 2 * len(PLOT_NAMES)
    text = " ".join("".join(page.text).split())
    assert "Energy: mixed." in text  # the study has one measured variant among estimated ones
    assert "Energy: estimated." in text  # the other suite: estimated only
    assert "idle baseline: domain" in text and "cpu-estimate" in text
    assert "380.9 gCO2/kWh" in text
    assert "-30.0 % [-33.0, -27.0]" in text  # paired Δ with its CI, from the records
    assert "(unpaired)" in text and "(noisy)" in text
    assert "Test CPU @ 2.0GHz" in text and "version: torch" in text
    assert "Roofline" not in text  # no stored peak
    assert "median of block medians over 10 blocks in 3 rounds of fresh processes" in text
    assert "rounds (fresh processes) ×" not in text  # one wording of the protocol


def test_results_first_and_the_fingerprint_folded_at_the_end(written: Path) -> None:
    html = written.read_text()
    first_result = html.index('<table class="comparison"')
    assert html.index('<p class="banner') < first_result  # the energy method's banner still up front
    folded = html.index('<details id="fingerprint">')
    assert first_result < html.rindex('<section class="suite"') < folded
    assert (
        html.index('<th scope="row">cpu_model</th>') > folded and html.index('<section id="marks">') < folded
    )
    assert html.count('<th scope="row">cpu_model</th>') == 1


def test_fingerprint_lists_a_version_once() -> None:
    from greenbench.report.device_report import fingerprint_rows

    device = {
        "python": "3.11.2",
        "os": "Linux",
        "versions": {"python": "3.11.2", "torch": "2.1", "os": "BSD"},
    }
    rows = fingerprint_rows(device, "dev")
    assert [k for k, _ in rows] == ["device_id", "os", "python", "version: os", "version: torch"]


def test_report_is_deterministic(tmp_path: Path) -> None:
    store = make_store(tmp_path / "a.db")
    first = write_reports([store], tmp_path / "one")
    second = write_reports([store], tmp_path / "two")
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes()


def test_markdown_tables_and_escaping(written: Path) -> None:
    md = (written.parent / "report.md").read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in md and "<script>" not in md
    assert "tiny$x^2$" in md  # '$' has no meaning in CommonMark
    assert md.count("| variant") >= 2  # a comparison table per suite
    assert "**Energy: mixed.**" in md and "idle baseline: domain" in md
    for link in re.findall(r"\]\(([^)]+\.svg)\)", md):
        assert (written.parent / link).is_file()


def test_roofline_shown_when_the_device_has_a_peak(tmp_path: Path) -> None:
    store = make_store(tmp_path / "a.db", study_records())
    with Store(store) as s:
        s.save_device_peak(DEVICE_ID, {"fp32_gflops_per_s": 50.0, "threads": 1, "measured_at": "2026-01-01"})
    html_path = write_reports([store], tmp_path / "out")[0]
    html = html_path.read_text()
    assert "fp32_gflops_per_s = 50" in html  # 4 significant digits
    table = html[html.index('<table class="roofline">') :].split("</table>", 1)[0]
    rows = [re.findall(r"<td>([^<]*)</td>", row) for row in table.split("<tr>")[2:]]
    assert [r[0] for r in rows] == [
        "base",
        "pruned",
        "&lt;script&gt;alert(1)&lt;/script&gt;",
        MATH,
        "measured",
    ]
    for _, runtime, achieved, pct in rows:
        # GFLOPs × batch ÷ latency, as a share of the 50 GFLOP/s peak
        assert runtime == "torch" and float(achieved) > 0
        assert float(pct.removesuffix(" %")) == pytest.approx(float(achieved) / 50.0 * 100, rel=1e-3)


def test_hostile_device_id_stays_inside_the_output_folder(tmp_path: Path) -> None:
    weird = "../../evil/<b> x"
    record = variant("base", map50=0.5, latency_ms=1.0, energy_j=0.01)
    record.device_id = weird
    store = make_store(tmp_path / "a.db", [record])
    html_path = write_reports([store], tmp_path / "out")[0]
    assert html_path.parent == tmp_path / "out" / safe_name(weird)
    assert html_path.resolve().is_relative_to((tmp_path / "out").resolve())
    assert "&lt;b&gt; x" in html_path.read_text()


def test_missing_store_and_unknown_device_are_one_paragraph_errors(tmp_path: Path) -> None:
    result = run_cli("report", "--store", str(tmp_path / "none.db"), "-o", str(tmp_path / "out"))
    assert result.returncode != 0
    assert_one_paragraph_error(result.stderr, "none.db")
    store = make_store(tmp_path / "a.db", study_records())
    result = run_cli("report", "--store", str(store), "--device", "nope", "-o", str(tmp_path / "out"))
    assert result.returncode != 0
    assert_one_paragraph_error(result.stderr, "'nope'", DEVICE_ID)
    assert not (tmp_path / "out").exists()


# --- in a real browser -----------------------------------------------------------------------

DOM_QUERY = """JSON.stringify({
  scripts: document.getElementsByTagName('script').length,
  tables: document.querySelectorAll('table.comparison').length,
  rows: [...document.querySelectorAll('table.comparison tbody th')].map(e => e.textContent),
  suites: [...document.querySelectorAll('h2 .suite-name')].map(e => e.textContent),
  figures: [...document.querySelectorAll('figure.plot')].map(f => {
    const svg = f.querySelector('svg'); const r = (svg || f).getBoundingClientRect();
    return {id: f.id, plot: f.dataset.plot, svg: !!svg, texts: svg ? svg.querySelectorAll('text').length : 0,
            empty: !!svg && [...svg.querySelectorAll('text')].some(t => t.textContent.startsWith('no var')),
            x: r.left + scrollX, y: r.top + scrollY, w: r.width, h: r.height};
  }),
})"""


@pytest.fixture(scope="module")
def browser() -> Any:
    with Browser(chromium_path()) as b:
        yield b


@pytest.fixture(scope="module")
def rendered(browser: Browser, written: Path) -> dict[str, Any]:
    """The report opened in Chromium: DOM facts, errors, requests and a full-page screenshot."""
    import json

    browser.open(written.as_uri())
    dom = json.loads(browser.evaluate(DOM_QUERY))
    shot = browser.screenshot(written.parent / "screenshot.png")
    shutil.copyfile(shot, SCREENSHOT_COPY)
    return {"dom": dom, "errors": browser.errors(), "requests": browser.requests(), "shot": shot}


def test_renders_without_console_errors_or_fetches(rendered: dict[str, Any], written: Path) -> None:
    assert rendered["errors"] == []
    assert rendered["requests"] == [written.as_uri()]  # the file itself, nothing else


def test_table_and_every_plot_in_the_dom(rendered: dict[str, Any]) -> None:
    dom = rendered["dom"]
    assert dom["tables"] == 2
    figures = dom["figures"]
    assert [f["plot"] for f in figures] == PLOT_NAMES * 2
    for f in figures:
        assert f["svg"] and f["w"] > 200 and f["h"] > 50, f
        # the suite named <script> has no training stage: its training plot says so; the rest draw data
        if f["id"] == "s1-training-energy":
            assert f["empty"] and f["texts"] >= 2, f
        else:
            assert not f["empty"] and f["texts"] > 5, f
    assert len({f["id"] for f in figures}) == len(figures)


def test_script_names_are_text_in_the_dom(rendered: dict[str, Any]) -> None:
    dom = rendered["dom"]
    assert dom["scripts"] == 0  # no <script> element was created by any name
    assert HOSTILE in dom["suites"]
    assert any(row.startswith(HOSTILE) for row in dom["rows"])


def test_screenshot_plot_areas_are_not_blank(rendered: dict[str, Any]) -> None:
    image = Image.open(rendered["shot"]).convert("RGB")
    assert image.width >= 1000 and image.height > 2000
    for f in rendered["dom"]["figures"]:
        box = (int(f["x"]), int(f["y"]), int(f["x"] + f["w"]), int(f["y"] + f["h"]))
        crop = image.crop(box)
        assert crop.size == (box[2] - box[0], box[3] - box[1]), (f["id"], box, image.size)
        spread = max(ImageStat.Stat(crop.convert("L")).stddev)
        colours = len(crop.getcolors(maxcolors=1 << 16) or range(1 << 16))
        assert spread > 10 and colours > 8, (f["id"], spread, colours)
    blank = Image.new("RGB", (200, 200), "white")
    assert max(ImageStat.Stat(blank.convert("L")).stddev) < 1  # the check can fail: white is blank


# --- the study's 27 variants in a real browser ---------------------------------------------------

#: per plot: its texts as the browser lays them out (its own fonts), the pairs that overlap, the
#: texts outside the plot, and the Pareto staircase's box
LAYOUT_QUERY = """JSON.stringify({
  page: document.scrollingElement.scrollWidth, viewport: innerWidth,
  table: [...document.querySelectorAll('table.comparison')].map(t => {
    const box = t.closest('div.scroll'); return [t.scrollWidth, box.clientWidth]; }),
  heads: [...document.querySelectorAll('table.comparison thead th')].map(e => e.textContent),
  figures: [...document.querySelectorAll('figure.plot')].map(f => {
    const svg = f.querySelector('svg'), frame = svg.getBoundingClientRect();
    const rs = [...svg.querySelectorAll('text')].filter(t => t.textContent.trim()).map(t => {
      const r = t.getBoundingClientRect(); return [t.textContent, r.left, r.top, r.right, r.bottom]; });
    const overlaps = [];
    for (let i = 0; i < rs.length; i++) for (let j = i + 1; j < rs.length; j++) {
      const a = rs[i], b = rs[j];
      const w = Math.min(a[3], b[3]) - Math.max(a[1], b[1]), h = Math.min(a[4], b[4]) - Math.max(a[2], b[2]);
      if (w > 1 && h > 1) overlaps.push([a[0], b[0]]);
    }
    const outside = rs.filter(a => a[1] < frame.left - 1 || a[3] > frame.right + 1 ||
                                   a[2] < frame.top - 1 || a[4] > frame.bottom + 1).map(a => a[0]);
    const front = svg.querySelector('[id$="pareto-front"]');
    const fb = front && front.getBoundingClientRect();
    return {plot: f.dataset.plot, texts: rs.map(a => a[0]), overlaps, outside,
            front: fb && {x: fb.left + scrollX, y: fb.top + scrollY, w: fb.width, h: fb.height}};
  }),
})"""


@pytest.fixture(scope="module")
def rendered27(browser: Browser, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The report of the 27-variant study opened in Chromium: layout facts and a screenshot."""
    import json

    root = tmp_path_factory.mktemp("report27")
    html = write_reports([make_store(root / "a.db", study27_records())], root / "out")[0]
    browser.open(html.as_uri())
    layout = json.loads(browser.evaluate(LAYOUT_QUERY))
    shot = browser.screenshot(root / "screenshot.png")
    shutil.copyfile(shot, SCREENSHOT_27)
    return {"layout": layout, "errors": browser.errors(), "shot": shot}


def test_27_variants_no_plot_label_overlaps_another_in_the_browser(rendered27: dict[str, Any]) -> None:
    assert rendered27["errors"] == []
    figures = rendered27["layout"]["figures"]
    assert [f["plot"] for f in figures] == PLOT_NAMES
    for f in figures:
        assert f["overlaps"] == [] and f["outside"] == [], f["plot"]
    keys = {f["plot"]: f["texts"] for f in figures}
    for plot in ("accuracy-energy", "accuracy-latency"):
        assert [str(n) for n in range(1, 28)] == [t for t in keys[plot] if t.isdigit() and int(t) <= 27][-27:]
    assert "openvino(precision=f32, threads=1, hint=latency)" not in " ".join(keys["latency"])  # short names


def test_27_variants_pareto_staircase_is_visible(rendered27: dict[str, Any]) -> None:
    (energy,) = [f for f in rendered27["layout"]["figures"] if f["plot"] == "accuracy-energy"]
    front = energy["front"]
    assert front is not None and front["w"] > 50 and front["h"] > 50  # it climbs and runs, in CSS px
    image = Image.open(rendered27["shot"]).convert("RGB")
    crop = image.crop(
        (int(front["x"]), int(front["y"]), int(front["x"] + front["w"]), int(front["y"] + front["h"]))
    )
    green = sum(
        n for n, (r, g, b) in crop.getcolors(maxcolors=1 << 20) or [] if g > 140 and r < 90 and b < 90
    )
    assert green > 100  # the dashed green line is drawn, not just present in the DOM


def test_27_variants_table_has_the_runtime_column_and_fits(rendered27: dict[str, Any]) -> None:
    layout = rendered27["layout"]
    assert "runtime" in layout["heads"]
    assert not any(h.startswith("E/img_net") for h in layout["heads"])  # no row has a value: left out
    assert layout["page"] <= layout["viewport"]  # the page never scrolls sideways
    ((table_px, box_px),) = layout["table"]
    assert table_px <= box_px <= 1200  # the study's table wraps to fit the 1200 px column
