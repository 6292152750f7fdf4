"""The terminal table: it fits the width (columns dropped by importance, said in the footer),
one number per cell, units in headers, Δ coloured only when certain, baseline and Pareto front
marked, the energy method said once; and the JSON and --sort views of the same table."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from rich.cells import cell_len
from rich.console import Console

from greenbench.report.table_data import TermView, pick_columns, render_json, sort_table
from greenbench.report.tables import Table, build_table
from greenbench.report.terminal_table import BASELINE_MARK, FRONT_MARK, render_terminal
from greenbench.store import RunRecord, Store
from tests.clitools import assert_one_paragraph_error, run_cli
from tests.factories import make_measured_record

# the quickstart's variants, with the stages and runtimes that give its recipe columns
QUICKSTART = [
    ("yolov5n", [], "torch"),
    ("mobilenetv3s", [], "torch"),
    ("yolov5n-ft", [], "torch"),
    ("sparse", [("sparse_train", {"lambda": 1e-3})], "torch"),
    ("pruned", [("sparse_train", {"lambda": 1e-3}), ("prune", {"ratio": 0.3})], "torch"),
    ("pruned-ft", [("sparse_train", {"lambda": 1e-3}), ("prune", {"ratio": 0.3})], "torch"),
    (
        "pruned-int8-ort",
        [
            ("sparse_train", {"lambda": 1e-3}),
            ("prune", {"ratio": 0.3}),
            ("quantize", {"mode": "int8_static"}),
        ],
        "onnxruntime(threads=1,spinning=False)",
    ),
    (
        "pruned-int8-ov",
        [
            ("sparse_train", {"lambda": 1e-3}),
            ("prune", {"ratio": 0.3}),
            ("quantize", {"mode": "int8_static"}),
        ],
        "openvino(precision=f32,streams=1,threads=1)",
    ),
]
MAP50 = [0.30, 0.25, 0.32, 0.28, 0.27, 0.31, 0.29, 0.29]
LATENCY_MS = [10.0, 8.0, 10.1, 9.9, 7.0, 7.1, 4.0, 3.5]
ENERGY_J = [0.050, 0.041, 0.051, 0.049, 0.035, 0.036, 0.020, 0.022]
# the front of mAP50 (higher) against energy (lower): yolov5n-ft (best mAP50), pruned-ft (better
# than all but the costlier yolov5n-ft), pruned-int8-ort (least energy); the rest are dominated
FRONT = {"yolov5n-ft", "pruned-ft", "pruned-int8-ort"}


def paired(pct: float, half_width: float) -> dict[str, Any]:
    """A stored paired Δ against the baseline's key, significant when its CI excludes 0."""
    low, high = pct - half_width, pct + half_width
    return {
        "paired": True, "baseline_key": "h-yolov5n", "delta_pct": pct, "delta_ci_low_pct": low,
        "delta_ci_high_pct": high, "significant": low > 0 or high < 0, "rounds": 3,
    }  # fmt: skip


def quickstart_records(suite: str = "quickstart", device_id: str = "dev") -> list[RunRecord]:
    records = []
    for i, (name, stages, runtime) in enumerate(QUICKSTART):
        lat, energy = LATENCY_MS[i], ENERGY_J[i]
        deltas = {}
        if i:
            lat_pct, e_pct = (lat / LATENCY_MS[0] - 1) * 100, (energy / ENERGY_J[0] - 1) * 100
            deltas = {"latency_ms": paired(lat_pct, 3.0), "energy_per_image_j": paired(e_pct, 3.0)}
        r = make_measured_record(
            name,
            map50=MAP50[i],
            latency_ms=lat,
            energy_j=energy,
            gflops=4.2 - 0.3 * i,
            suite=suite,
            device_id=device_id,
            baseline="yolov5n",
            runtime=runtime,
            parent=None if i == 0 else "yolov5n",
            deltas=deltas,
            stages=[{"name": stage, "params": params} for stage, params in stages],
        )
        records.append(r)
    records[3].metrics["latency_ms"]["noisy"] = True  # sparse
    return records


def quickstart_table() -> Table:
    return build_table(quickstart_records(), "yolov5n", "quickstart")


def term(table: Table, width: int, colour: bool = False, **view: Any) -> str:
    console = Console(
        width=width, file=io.StringIO(), force_terminal=colour, color_system="standard" if colour else None
    )
    return render_terminal(table, TermView(width=width, **view), console)


def table_lines(text: str) -> list[str]:
    """The table's lines: up to the blank line before the footer."""
    return text.split("\n\n", 1)[0].splitlines()


@pytest.mark.parametrize("width", [80, 120])
def test_the_quickstart_table_fits_the_width_without_a_wrapped_line(width: int) -> None:
    text = term(quickstart_table(), width)
    assert max(cell_len(line) for line in text.splitlines()) <= width
    lines = table_lines(text)
    body = lines[3:]  # two header lines (name, unit) and the rule
    assert len(body) == len(QUICKSTART)  # one line per variant: no cell wrapped onto a second
    for line, (name, _, _) in zip(body, QUICKSTART, strict=True):
        assert line[2:].split()[0] == name  # whole, not cut
    heads = " ".join(lines[:2]).split()
    for kept in ("mAP50", "latency", "E/img", "ms", "mJ", "Δ", "%", "pp"):  # units in the headers
        assert kept in heads
    hidden = re.search(r"(\d+) columns hidden \(--wide\)", text)
    assert hidden is not None  # 17 metric columns, their Δ and 4 recipe columns never fit 120
    every = table_lines(term(quickstart_table(), 80, wide=True))[1].split()  # one word per column
    assert len(lines[1].split()) + int(hidden.group(1)) == len(every)


def test_a_wider_terminal_shows_more_columns() -> None:
    def hidden(width: int) -> int:
        found = re.search(r"(\d+) columns hidden", term(quickstart_table(), width))
        return int(found.group(1)) if found else 0

    assert hidden(80) > hidden(120) > hidden(400) == 0


def test_one_number_per_cell_and_intervals_on_request() -> None:
    plain = table_lines(term(quickstart_table(), 120))
    assert not any("[" in line for line in plain)
    ci = table_lines(term(quickstart_table(), 200, ci=True))
    base = next(line for line in ci if "yolov5n " in line)
    assert "10.00 [9.50, 10.50]" in base  # the latency's 95 % interval
    ort = next(line for line in ci if "pruned-int8-ort" in line)
    assert "-60.0 [-63.0, -57.0]" in ort  # the paired Δ's interval


def test_baseline_pareto_front_and_noisy_values_are_marked() -> None:
    body = table_lines(term(quickstart_table(), 200))[3:]
    marks = {line[2:].split()[0]: line[0] for line in body}
    assert marks["yolov5n"] == BASELINE_MARK
    assert {name for name, mark in marks.items() if mark == FRONT_MARK} == FRONT
    sparse = next(line for line in body if line[2:].startswith("sparse "))
    assert "~9.90" in sparse and "~" not in "".join(line for line in body if "sparse " not in line)


def styled(line: str, colour: str, text: str) -> bool:
    """Whether ``text`` is printed in ``colour`` (an SGR code: 32 green, 31 red, 2 dim) in ``line``."""
    return re.search(rf"\x1b\[{colour}m *{re.escape(text)}", line) is not None


def test_delta_is_coloured_only_when_its_interval_excludes_zero() -> None:
    text = term(quickstart_table(), 200, colour=True, columns=("latency_ms",))
    rows = {re.sub(r"\x1b\[[0-9;]*m", "", line)[2:].split()[0]: line for line in table_lines(text)[3:]}
    assert styled(rows["pruned-int8-ort"], "32", "-60.0")  # faster, CI [-63, -57]: certain, green
    assert styled(rows["yolov5n-ft"], "2", "+1.0") and styled(rows["sparse"], "2", "-1.0")  # CI holds 0
    slower = quickstart_records()
    slower[1].deltas["latency_ms"] = paired(15.0, 3.0)
    text = term(build_table(slower, "yolov5n", "q"), 200, colour=True, columns=("latency_ms",))
    assert styled(text, "31", "+15.0")  # slower, and certain: red


def test_estimated_is_said_once_in_the_footer() -> None:
    text = term(quickstart_table(), 120)
    assert text.count("estimated") == 1
    footer = text.split("\n\n", 1)[1]
    assert "energy and CO2: estimated (estimate)" in footer and "estimated" not in table_lines(text)[0]


def test_columns_wide_and_sort() -> None:
    t = quickstart_table()
    text = term(t, 80, columns=("map50", "E/img_mJ"))
    heads = " ".join(table_lines(text)[:2]).split()
    assert heads == ["Δ", "E/img", "Δ", "variant", "mAP50", "pp", "mJ", "%"]
    assert "hidden" not in text
    wide = term(t, 80, wide=True)
    assert "hidden" not in wide and max(cell_len(line) for line in table_lines(wide)) > 80
    assert "sparsity_λ" in wide and "runtime" in wide
    by_latency = [r.variant for r, _ in sort_table(t, "latency_ms").rows]
    assert by_latency[:2] == ["pruned-int8-ov", "pruned-int8-ort"]  # lower is better: fastest first
    by_map = [r.variant for r, _ in sort_table(t, "mAP50").rows]
    assert by_map[:2] == ["yolov5n-ft", "pruned-ft"]  # higher is better: most accurate first
    with pytest.raises(ValueError, match=r"no column 'nope'.*latency_ms"):
        pick_columns(t, ["latency_ms", "nope"])


def test_untrusted_names_print_as_text() -> None:
    records = quickstart_records()
    records[1].variant = "[red]x[/red]\x1b[2J\u202e"
    records[2].status, records[2].error = "failed", "boom\x1b]0;t\x07 [bold]"
    text = term(build_table(records, "yolov5n", "q"), 120, colour=True)
    assert "[red]x[/red]" in text and "[bold]" in text and "FAILED: boom" in text
    assert "\x1b[2J" not in text and "\x1b]0" not in text and "\u202e" not in text


def test_json_keeps_every_column_with_intervals_and_marks() -> None:
    data = json.loads(render_json(quickstart_table()))
    assert len(data["columns"]) == len(quickstart_table().columns)
    rows = {row["variant"]: row for row in data["rows"]}
    assert rows["yolov5n"]["baseline"] is True and not rows["sparse"]["baseline"]
    assert {v for v, row in rows.items() if row["pareto_front"]} == FRONT
    lat = rows["pruned-int8-ort"]["metrics"]["latency_ms"]
    assert lat["value"] == 4.0 and lat["ci_low"] == pytest.approx(3.8) and lat["noisy"] is False
    assert lat["delta"]["kind"] == "paired" and lat["delta"]["significant"] is True
    acc = rows["pruned-int8-ort"]["metrics"]["map50"]["delta"]
    assert acc["unit"] == "pp" and acc["change"] == pytest.approx(-1.0)
    assert rows["pruned-int8-ov"]["recipe"]["prune_ratio"] == "0.3" and data["notes"]


# --- through the CLI: what `greenbench table` (and the end of `greenbench run`) prints ----------


@pytest.fixture
def quickstart_store(tmp_path: Path) -> Path:
    path = tmp_path / "gb.db"
    with Store(path) as s:
        for r in quickstart_records():
            s.add(r)
    return path


def test_cli_table_fits_columns_and_takes_its_options(quickstart_store: Path, tmp_path: Path) -> None:
    args = ("table", "quickstart", "--store", str(quickstart_store), "--device", "dev")
    for width in (80, 120):
        out = run_cli(*args, cwd=tmp_path, env={"COLUMNS": str(width)})
        assert out.returncode == 0, out.stderr
        assert max(cell_len(line) for line in out.stdout.splitlines()) <= width
        assert len(table_lines(out.stdout)) == 3 + len(QUICKSTART)
        assert "\x1b[" not in out.stdout  # not a terminal: no colour codes
    as_json = run_cli(*args, "--json", "--sort", "latency_ms", cwd=tmp_path)
    assert as_json.returncode == 0, as_json.stderr
    (table,) = json.loads(as_json.stdout)["tables"]
    assert table["table"] is None and table["rows"][0]["variant"] == "pruned-int8-ov"
    bad = run_cli(*args, "--columns", "latency_ms,nope", cwd=tmp_path)
    assert bad.returncode == 2 and bad.stdout == ""
    assert_one_paragraph_error(bad.stderr, "--columns", "'nope'", "energy_per_image_j")
    bad = run_cli(*args, "--sort", "speed", "--format", "md", cwd=tmp_path)
    assert bad.returncode == 2
    assert_one_paragraph_error(bad.stderr, "--sort", "'speed'", "latency_ms")


def test_a_table_against_parents_names_each_rows_reference_and_still_fits() -> None:
    records = quickstart_records()
    by_name = {r.variant: r for r in records}
    chain = {"sparse": "yolov5n", "pruned": "sparse", "pruned-ft": "pruned", "pruned-int8-ort": "pruned-ft"}
    for name, parent in chain.items():
        if name in by_name:
            by_name[name].parent = parent
    table = build_table(records, "yolov5n", "quickstart", delta="parent")
    assert table.against  # some rows are set against a parent other than the baseline
    for width in (80, 120):
        text = term(table, width)
        assert all(len(line) <= width for line in text.splitlines()), width
        lines = table_lines(text)
        assert "Δ vs" in "\n".join(lines[:2])
        for name, parent in table.against.items():
            assert any(name in line and line.split(name, 1)[1].strip().startswith(parent) for line in lines)
