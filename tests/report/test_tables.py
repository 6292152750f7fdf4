"""The comparison table: Δ % against the baseline (paired where stored), CIs, units and methods
from the metric registry, formats, and untrusted strings that cannot break a table."""

from __future__ import annotations

import csv
import dataclasses
import io
import re
from pathlib import Path
from typing import Any

import pytest

import greenbench.report.tables as tables_module
from greenbench.metrics import METRICS, table_metrics
from greenbench.report.tables import Delta, build_table, format_delta, render
from greenbench.store import RunRecord, metric
from tests.factories import make_record

PROTOCOL = {"stat": "median of block medians", "rounds": 3, "blocks": 10, "rounds_disagree": False}


def rec(
    variant: str,
    params: float,
    energy: float,
    status: str = "ok",
    method: str = "estimated",
    deltas: dict[str, dict[str, Any]] | None = None,
) -> RunRecord:
    e = {"method": method, "source": f"{method}-source"}
    ei = {**e, **PROTOCOL}
    metrics = {
        "precision": metric(0.5, "fraction"),
        "map50": metric(0.4, "fraction"),
        "params": metric(params, "count"),
        "size_mb": metric(params * 4e-6, "MB"),
        "gflops": metric(4.0, "GFLOP", convention="GFLOPs = 2 × GMACs", imgsz=128),
        "latency_ms": metric(10.0, "ms", ci_low=9.0, ci_high=11.0, noisy=False, threads=1, **PROTOCOL),
        "energy_per_image_j": metric(energy, "J", ci_low=energy * 0.9, ci_high=energy * 1.1, **ei),
        "energy_per_image_net_j": metric(energy * 0.8, "J", ci_low=energy * 0.7, ci_high=energy * 0.9, **ei),
        "train_energy_j": metric(1000.0, "J", **e),
        "train_energy_net_j": metric(900.0, "J", **e),
        "co2_train_g": metric(0.1, "g", **e),
    }
    return make_record(
        variant=variant,
        variant_hash=variant,
        status=status,
        baseline="base",
        metrics=metrics if status == "ok" else {},
        deltas=deltas or {},
        error=None if status == "ok" else "boom",
        device={"device": "cpu", "cpu_model": "Test CPU"},
        measurement={"carbon": {"g_per_kwh": 380.95, "source": "codecarbon", "pue": 1.0}},
    )


def paired(pct: float, low: float, high: float, significant: bool, key: str = "base") -> dict[str, Any]:
    """A stored paired Δ as the runner writes it (schema 2)."""
    return {
        "paired": True, "baseline": "base", "baseline_key": key, "run_id": "r1",
        "ratio": 1 + pct / 100, "ci_low": 1 + low / 100, "ci_high": 1 + high / 100,
        "delta_pct": pct, "delta_ci_low_pct": low, "delta_ci_high_pct": high,
        "significant": significant, "p_value": 0.01 if significant else 0.6, "pairs": 30,
        "rounds": 3, "rounds_disagree": False,
    }  # fmt: skip


def v1(r: RunRecord) -> RunRecord:
    """``r`` as a version-1 record read back from a store: no task/baseline/runtime/deltas."""
    d = r.to_dict()
    for key in ("task", "baseline", "runtime", "deltas"):
        del d[key]
    for m in d["metrics"].values():
        for key in ("stat", "rounds", "blocks", "rounds_disagree"):
            m.pop(key, None)
    return RunRecord.from_dict({**d, "schema_version": 1})


def md_table(md: str) -> list[list[str]]:
    """The first Markdown table's rows (header first), cells stripped; ``\\|`` kept escaped."""
    lines = md.split("\n\n", 1)[0].splitlines()
    rows = [[c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]] for line in lines]
    return [rows[0], *rows[2:]]  # without the alignment row


def column(table_rows: list[list[str]], header: str) -> list[str]:
    i = table_rows[0].index(header)
    return [row[i] for row in table_rows[1:]]


def cell_of(table: Any, variant: str, name: str) -> Any:
    row = next(cells for r, cells in table.rows if r.variant == variant)
    return row[[c.name for c in table.columns].index(name)]


def two(**small_fields: Any) -> list[RunRecord]:
    small = rec("small", 1e6, 0.01, **small_fields)
    return [rec("base", 2e6, 0.02), small]


def test_delta_against_baseline() -> None:
    table = build_table(two(), "base", "s")
    assert cell_of(table, "base", "params") == (2e6, None)  # the baseline has no Δ
    value, delta = cell_of(table, "small", "params")
    assert value == 1e6 and delta == Delta(pytest.approx(-50.0), "values")
    assert cell_of(table, "small", "energy_per_image_j").delta.change == pytest.approx(-50.0)


def test_columns_headers_and_scales_come_from_the_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    table = build_table(two(), "base", "s")
    assert table.columns == table_metrics("detect")
    assert [c.name for c in table.columns[:2]] == ["precision", "map50"]
    heads = md_table(render(table))[0]
    assert heads == ["variant"] + [table.header(c) for c in table.columns if c.name not in table.hidden]
    assert table.hidden == {"latency_total_ms"}  # no row measured scope both
    assert [table.header(c).split(" [")[0] for c in table.columns] == [
        METRICS[c.name].header for c in table.columns
    ]
    # the registry alone changes the header, scale and decimals; tables.py is untouched
    monkeypatch.setitem(
        METRICS, "params", dataclasses.replace(METRICS["params"], header="params_k", scale=1e-3, digits=1)
    )
    md = md_table(render(build_table(two(), "base", "s")))
    assert column(md, "params_k") == ["2000.0", "1000.0 (-50.0 %)"]
    csv_head = render(build_table(two(), "base", "s"), "csv").splitlines()[0]
    assert "params_k,params_k_delta_pct" in csv_head


def test_tables_module_hard_codes_no_metric() -> None:
    source = Path(tables_module.__file__).read_text()
    for d in METRICS.values():
        if d.header != d.name:  # "latency_ms" is both a metric name and its header
            assert f'"{d.header}"' not in source, d.header
    assert "1e3" not in source and "1e-3" not in source and "1e-6" not in source


def test_markdown_has_units_methods_cis_and_notes() -> None:
    md = render(build_table(two(), "base", "s"), "md")
    t = md_table(md)
    assert t[0][:8] == [
        "variant",
        "P",
        "mAP50",
        "params_M",
        "size_MB",
        "GFLOPs",
        "latency_ms",
        "E/img_mJ [estimated]",
    ]
    # accuracy in percentage points, the rest relative
    assert t[2][:4] == ["small", "0.500 (+0.0 pp)", "0.400 (+0.0 pp)", "1.000 (-50.0 %)"]
    assert column(t, "latency_ms")[0] == "10.00 [9.00, 11.00]"
    assert column(t, "E/img_mJ [estimated]") == [
        "20.00 [18.00, 22.00]",
        "10.00 [9.00, 11.00] (-50.0 % (unpaired))",
    ]
    assert "GFLOPs = 2 × GMACs" in md and "energy estimated: estimated-source" in md
    assert (
        "latency_ms: median of block medians over 10 blocks in 3 rounds of fresh processes, interleaved "
        "with the baseline; [CI] = 95 % hierarchical bootstrap over processes then blocks; Δ from "
        "time-adjacent block pairs; one forward pass of batch ?, 1 thread(s), cpu (Test CPU)"
    ) in md
    assert "E/img_mJ, E/img_net_mJ: median of block medians over 10 blocks in 3 rounds" in md


def test_paired_delta_with_ci_and_not_significant() -> None:
    deltas = {
        "latency_ms": paired(12.3, 10.1, 14.6, True),
        "energy_per_image_j": paired(0.4, -1.2, 2.0, False),
        "energy_per_image_net_j": paired(-30.0, -35.0, -25.0, True),
    }
    t = build_table(two(deltas=deltas), "base", "s")
    lat = cell_of(t, "small", "latency_ms").delta
    assert lat == Delta(12.3, "paired", 10.1, 14.6, True, False)  # the stored Δ, not the values' 0 %
    assert format_delta(lat) == "+12.3 % [+10.1, +14.6]"
    assert format_delta(cell_of(t, "small", "energy_per_image_j").delta) == "+0.4 % (CI includes 0)"
    md = md_table(render(t))
    assert column(md, "latency_ms")[1] == "10.00 [9.00, 11.00] (+12.3 % [+10.1, +14.6])"
    assert column(md, "E/img_mJ [estimated]")[1] == "10.00 [9.00, 11.00] (+0.4 % (CI includes 0))"
    assert column(md, "E/img_net_mJ [estimated]")[1].endswith("(-30.0 % [-35.0, -25.0])")
    assert not any("unpaired" in n for n in t.notes)
    row = list(csv.DictReader(io.StringIO(render(t, "csv"))))[1]
    assert row["latency_ms_delta_pct"] == "12.30" and row["latency_ms_delta_ci_low_pct"] == "10.10"
    assert row["latency_ms_delta_ci_high_pct"] == "14.60" and row["latency_ms_delta_significant"] == "True"
    assert row["latency_ms_delta_paired"] == "True" and row["E/img_mJ_delta_significant"] == "False"


def test_rounds_disagree_of_an_old_record_and_noisy_are_flagged() -> None:
    deltas = {"latency_ms": {**paired(5.0, 1.0, 9.0, True), "rounds_disagree": True}}
    base, small = two(deltas=deltas)
    small.metrics["latency_ms"].update(noisy=True, rounds_disagree=True)
    t = build_table([base, small], "base", "s")
    cell = column(md_table(render(t)), "latency_ms")[1]
    assert cell == "10.00 [9.00, 11.00] (noisy) (rounds disagree) (+5.0 % [+1.0, +9.0] (rounds disagree))"
    assert any(n.startswith("noisy") and "small latency_ms" in n for n in t.notes)
    assert any(n.startswith("rounds disagree") and "small latency_ms, Δ latency_ms" in n for n in t.notes)
    row = list(csv.DictReader(io.StringIO(render(t, "csv"))))[1]
    assert row["latency_ms_noisy"] == "True" and row["latency_ms_delta_spread_pct"] == ""


def test_between_process_spread_and_a_single_round_are_noted() -> None:
    deltas = {"latency_ms": {**paired(5.0, 1.0, 9.0, True), "spread_pct": 1.234}}
    base, small = two(deltas=deltas)
    small.metrics["latency_ms"].update(rounds=1, ci_low=None, ci_high=None)
    t = build_table([base, small], "base", "s")
    assert any(n.startswith("τ, the between-process spread") and "small 1.2 %" in n for n in t.notes)
    assert any(
        n.startswith("no CI for figures from a single fresh process") and "small" in n for n in t.notes
    )
    assert column(md_table(render(t)), "latency_ms")[1].startswith("10.00 (+5.0 %")  # no interval shown
    row = list(csv.DictReader(io.StringIO(render(t, "csv"))))[1]
    assert row["latency_ms_delta_spread_pct"] == "1.23" and row["latency_ms_ci_low"] == ""
    one_round = Delta(3.0, "paired", None, None, None)
    assert format_delta(one_round) == "+3.0 % (no CI: 1 round)"


def test_delta_paired_with_another_baseline_config_is_unpaired() -> None:
    deltas = {name: paired(12.3, 10.1, 14.6, True, key="old-base-key") for name in ("latency_ms",)}
    t = build_table(two(deltas=deltas), "base", "s")
    lat = cell_of(t, "small", "latency_ms").delta
    assert lat == Delta(0.0, "unpaired")  # from the two values (both 10 ms), not the stored +12.3 %
    assert column(md_table(render(t)), "latency_ms")[1] == "10.00 [9.00, 11.00] (+0.0 % (unpaired))"
    note = next(n for n in t.notes if n.startswith("Δ marked (unpaired)"))
    assert "different runs/processes and are not paired in time" in note
    assert (
        "small: latency_ms (paired with baseline config old-base-key, not the shown baseline's base)" in note
    )
    row = list(csv.DictReader(io.StringIO(render(t, "csv"))))[1]
    assert row["latency_ms_delta_paired"] == "False" and row["latency_ms_delta_significant"] == ""
    assert row["latency_ms_delta_ci_low_pct"] == "" and row["params_M_delta_pct"] == "-50.00"


def test_version_1_records_are_unpaired_and_say_so() -> None:
    base, small = (v1(r) for r in two())
    assert small.schema_version == 1 and small.deltas == {} and small.baseline is None
    t = build_table([base, small], "base", "s")
    assert cell_of(t, "small", "latency_ms").delta == Delta(0.0, "unpaired")
    assert cell_of(t, "small", "params").delta == Delta(-50.0, "values")  # deterministic: plain Δ
    note = next(n for n in t.notes if n.startswith("Δ marked (unpaired)"))
    assert "small: latency_ms, E/img_mJ, E/img_net_mJ (schema-1 record of small and base)" in note
    assert any(n.startswith("latency_ms (schema-1 record): median of one process' samples") for n in t.notes)
    assert any(n.startswith("E/img_mJ, E/img_net_mJ (schema-1 record)") for n in t.notes)
    md = md_table(render(t))
    assert column(md, "params_M")[1] == "1.000 (-50.0 %)"  # no "(unpaired)" on a deterministic figure


def test_mixed_methods_are_labelled_mixed() -> None:
    t = build_table([rec("base", 2e6, 0.02), rec("m", 1e6, 0.01, method="measured")], "base", "s")
    assert t.methods["energy_per_image_j"] == "mixed"
    assert cell_of(t, "m", "energy_per_image_j") == (0.01, None)  # measured vs estimated: no Δ
    assert cell_of(t, "m", "co2_train_g") == (0.1, None)
    assert cell_of(t, "m", "params").delta.change == pytest.approx(-50.0)  # other columns keep theirs
    left_out = [n for n in t.notes if n.startswith("Δ % left out")]
    assert left_out == [
        "Δ % left out where the energy method or source differs from the baseline's (measured vs "
        "estimated figures are not comparable): m: E/img_mJ, E/img_net_mJ, E_train_kJ, "
        "E_train_net_kJ, CO2_train_g (measured vs baseline estimated)"
    ]
    md = render(t, "md")
    rows = md_table(md)
    assert "E/img_mJ [mixed]" in rows[0] and left_out[0] in md
    assert rows[1][0] == "base (baseline)" and rows[1][1] == "0.500"
    assert column(rows, "E/img_mJ [mixed]") == [
        "20.00 [18.00, 22.00] [estimated]",
        "10.00 [9.00, 11.00] [measured]",
    ]
    assert column(rows, "E/img_net_mJ [mixed]")[1] == "8.00 [7.00, 9.00] [measured]"
    assert column(rows, "params_M")[1] == "1.000 (-50.0 %)"
    tex = render(t, "latex")
    assert "10.00 {[}9.00, 11.00{]} {[}measured{]}" in tex and "E/img\\_mJ {[}mixed{]}" in tex
    row = list(csv.DictReader(io.StringIO(render(t, "csv"))))[1]
    assert row["E/img_mJ"] == "10" and row["E/img_mJ_delta_pct"] == ""
    assert row["E/img_mJ_method"] == "measured" and row["params_M_delta_pct"] == "-50.00"


def test_same_method_keeps_delta_and_unlabelled_cells() -> None:
    t = build_table(two(), "base", "s")
    assert not any(n.startswith("Δ % left out") for n in t.notes)
    rows = md_table(render(t, "md"))
    assert column(rows, "E/img_net_mJ [estimated]")[1] == "8.00 [7.00, 9.00] (-50.0 % (unpaired))"
    assert "[estimated]" not in "".join(rows[1] + rows[2])  # only the header says it


def test_energy_from_another_source_has_no_delta() -> None:
    base, other = two()
    other.metrics["energy_per_image_j"]["source"] = "nvml"
    t = build_table([base, other], "base", "s")
    assert t.methods["energy_per_image_j"] == "estimated"
    assert cell_of(t, "small", "energy_per_image_j") == (0.01, None)
    assert any("small: E/img_mJ (nvml vs baseline estimated-source)" in n for n in t.notes)


def test_failed_variant_row_and_missing_baseline() -> None:
    t = build_table([rec("base", 0, 0, status="failed"), rec("small", 1e6, 0.01)], "base", "s")
    md = render(t, "md")
    rows = md_table(md)
    assert rows[1][:2] == ["base (baseline)", "failed"]
    assert "no ok record of the baseline variant" in md and "base FAILED: boom" in md
    assert all(d is None for _, d in t.rows[1][1])


def test_no_baseline_named() -> None:
    t = build_table(two(), None, "s")
    assert all(d is None for _, cells in t.rows for _, d in cells)
    assert any(n.startswith("no baseline named") for n in t.notes)
    assert "(baseline)" not in render(t)


def test_csv_is_machine_readable() -> None:
    out = render(build_table(two(deltas={"latency_ms": paired(1.0, -1.0, 3.0, False)}), "base", "s"), "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rows[1]["params_M"] == "1" and rows[1]["params_M_delta_pct"] == "-50.00"
    assert rows[1]["E/img_mJ"] == "10" and rows[1]["E/img_mJ_method"] == "estimated"
    assert rows[1]["E/img_mJ_ci_low"] == "9" and rows[1]["E/img_mJ_ci_high"] == "11"
    assert rows[1]["E/img_mJ_delta_pct"] == "-50.00" and rows[1]["E/img_mJ_delta_paired"] == "False"
    assert rows[1]["latency_ms_delta_paired"] == "True" and rows[1]["latency_ms_delta_significant"] == "False"
    assert rows[0]["params_M_delta_pct"] == "" and rows[0]["latency_ms_delta_paired"] == ""
    assert rows[0]["latency_ms_ci_low"] == "9" and rows[0]["latency_ms_ci_high"] == "11"
    assert rows[1]["device_id"] == "dev" and rows[1]["run_id"] == "r1" and rows[1]["schema_version"] == "2"
    head = out.splitlines()[0].split(",")
    assert head[:6] == ["variant", "parent", "delta_vs", "status", "P", "P_delta_pp"]  # percentage points
    assert head[head.index("latency_ms") : head.index("latency_ms") + 10] == [
        "latency_ms", "latency_ms_ci_low", "latency_ms_ci_high", "latency_ms_delta_pct",
        "latency_ms_delta_ci_low_pct", "latency_ms_delta_ci_high_pct", "latency_ms_delta_significant",
        "latency_ms_delta_paired", "latency_ms_noisy", "latency_ms_delta_spread_pct",
    ]  # fmt: skip
    assert "E/img_mJ_method" in head and "P_method" not in head  # only energy columns have a method
    assert "params_M_ci_low" not in head and "params_M_delta_paired" not in head  # only interval metrics
    assert head[-2:] == ["device_id", "run_id"] and not any("estimated" in h for h in head)
    # the header never depends on the data: the same for measured-only, mixed and v1 tables
    for methods in (("measured", "measured"), ("estimated", "measured")):
        recs = [rec("base", 2e6, 0.02, method=methods[0]), rec("small", 1e6, 0.01, method=methods[1])]
        assert render(build_table(recs, "base", "s"), "csv").splitlines()[0] == ",".join(head)
    assert render(build_table([v1(r) for r in two()], "base", "s"), "csv").splitlines()[0] == ",".join(head)


def test_accuracy_delta_is_in_percentage_points() -> None:
    base, small = two()
    small.metrics["map50"]["value"] = 0.412  # 0.400 -> 0.412: +1.2 points, +3.0 % relative
    t = build_table([base, small], "base", "s")
    assert cell_of(t, "small", "map50").delta == Delta(pytest.approx(1.2), "values", unit="pp")
    assert column(md_table(render(t)), "mAP50")[1] == "0.412 (+1.2 pp)"
    row = list(csv.DictReader(io.StringIO(render(t, "csv"))))[1]
    assert row["mAP50_delta_pp"] == "1.20" and "mAP50_delta_pct" not in row


def test_no_relative_delta_beside_a_value_shown_as_zero() -> None:
    base, small = two()
    small.metrics["co2_train_g"]["value"] = 0.0002  # shown as 0.000 at 3 decimals; -99.8 % of 0.1
    t = build_table([base, small], "base", "s")
    assert cell_of(t, "small", "co2_train_g").delta.change == pytest.approx(-99.8)  # the data keeps it
    assert column(md_table(render(t)), "CO2_train_g [estimated]")[1] == "0.000"
    small_row = next(line for line in render(t, "latex").splitlines() if line.lstrip().startswith("small"))
    assert small_row.split("&")[-1].strip() == "0.000 \\\\"  # CO2_train_g, the last column
    assert "small: CO2_train_g (shown as 0)" in render(t)
    assert list(csv.DictReader(io.StringIO(render(t, "csv"))))[1]["CO2_train_g_delta_pct"] == "-99.80"
    small.metrics["co2_train_g"]["value"] = 0.0  # a true zero: -100 % is what it is
    md = md_table(render(build_table([base, small], "base", "s")))
    assert column(md, "CO2_train_g [estimated]")[1] == "0.000 (-100.0 %)"
    small.metrics["map50"]["value"] = 0.0001  # shown as 0.000: its change in points is absolute, kept
    assert column(md_table(render(build_table([base, small], "base", "s"))), "mAP50")[1] == "0.000 (-40.0 pp)"


def test_latex_of_a_whole_table_is_ascii_that_pdflatex_reads() -> None:
    """The recipe header sparsity_λ, and notes with ×, τ and —, written as macros."""
    base, small = two()
    small.stages = [{"name": "sparse_train", "params": {"lambda": 5e-4}}]
    tex = render(build_table([base, small], "base", "s"), "latex")
    assert tex.isascii()
    assert "sparsity\\_\\ensuremath{\\lambda}" in tex and "2 \\ensuremath{\\times} GMACs" in tex


def test_latex_escapes_hostile_strings() -> None:
    hostile = "a_b&c%#"
    bad = rec("bad", 0, 0, status="failed")
    bad.error = "died\n\\end{tabular}\\input{/etc/passwd} $x^2$ ~{}"
    tex = render(build_table([rec(hostile, 2e6, 0.02), bad], hostile, "s"), "latex")
    assert tex.startswith("\\begin{tabular}")
    assert "a\\_b\\&c\\%\\# (baseline)" in tex and hostile not in tex
    assert tex.count("\\end{tabular}") == 1 and "\\input" not in tex
    assert "\\textbackslash{}input\\{/etc/passwd\\} \\$x\\^{}2\\$ \\textasciitilde{}\\{\\}" in tex
    body, notes = tex.split("\\end{tabular}")
    assert all(line.startswith("% ") for line in notes.strip().splitlines())  # notes stay comments
    assert "9.00, 11.00" in body and "%" not in body.replace("\\%", "")
    with pytest.raises(ValueError):
        render(build_table([rec("b", 1, 1)], "b", "s"), "html")


def test_markdown_survives_pipes_and_newlines_in_strings() -> None:
    bad = rec("x|y", 0, 0, status="failed")
    bad.error = "bad | thing\nsecond line | more \\|"
    md = render(build_table([rec("base", 2e6, 0.02), bad], "base", "s"), "md")
    rows = md_table(md)
    assert all(len(row) == len(rows[0]) for row in rows)  # no cell split, no row added
    assert rows[2][:2] == ["x\\|y", "failed"]
    assert "- x\\|y FAILED: bad \\| thing second line \\| more \\\\\\|" in md.splitlines()
    table_lines = md.split("\n\n", 1)[0].splitlines()
    assert len(table_lines) == 4


def test_markdown_lists_each_training_stage_with_method() -> None:
    r = rec("base", 2e6, 0.02)
    r.stages = [
        {"name": "train", "params": {}, "duration_s": 10.0, "energy_j": 40.0, "energy_net_j": 30.0,
         "method": "measured", "cached": False},
        {"name": "train", "params": {"epochs": 1, "note": "a|b"}, "duration_s": 2.0, "energy_j": 8.0,
         "energy_net_j": 6.0, "method": "measured", "cached": True},
    ]  # fmt: skip
    md = render(build_table([r], "base", "s"), "md")
    stages = md_table(md.split("Training stages", 1)[1].split("\n\n", 1)[1])
    assert stages[0] == ["variant", "stage", "params", "duration_s", "E_J", "E_net_J", "method", "artifact"]
    assert stages[1] == ["base", "train", "—", "10.0", "40.0", "30.0", "measured", "made in this run"]
    assert stages[2] == [
        "base",
        "train",
        "epochs=1, note=a\\|b",
        "2.0",
        "8.0",
        "6.0",
        "measured",
        "reused from cache",
    ]


def test_idle_baseline_is_explained() -> None:
    r = rec("base", 2e6, 0.02)
    r.measurement["idle"] = {"power_w": {"package-0": 12.5, "cpu": 0.0}, "duration_s": 3.0, "skipped": False,
                             "notes": {"cpu": "process-scoped estimate: idle not applicable"}}  # fmt: skip
    md = render(build_table([r], "base", "s"), "md")
    assert "idle baseline over 3.0 s: package-0 12.50 W; cpu process-scoped estimate" in md
    r.measurement["idle"] = {"skipped": True, "reason": "skipped by --no-idle"}
    assert "idle baseline: skipped (skipped by --no-idle): net = gross" in render(
        build_table([r], "base", "s")
    )


def test_codecarbon_cross_check_is_shown_beside_ours() -> None:
    r = rec("base", 2e6, 0.02)
    r.metrics["codecarbon_train_energy_j"] = metric(1234.5, "J", method="codecarbon", csv="/x/emissions.csv")
    md = render(build_table([r], "base", "s"), "md")
    assert "CodeCarbon cross-check, base training: 1234.5 J (its model) vs 1000.0 J ours (estimated)" in md
    r.metrics["codecarbon_train_energy_j"] = metric(None, "J", method="codecarbon", error="not installed")
    assert "CodeCarbon cross-check of base failed: not installed" in render(build_table([r], "base", "s"))


def test_single_run_notes_name_no_rows() -> None:
    notes = build_table(two(), "base", "s").notes
    assert "CO2: 380.9 gCO2/kWh (codecarbon), PUE 1" in notes
    assert not any("rows come from" in n or "— rows:" in n for n in notes)


def test_rows_from_different_runs_say_so() -> None:
    base, small = two()
    small.run_id, small.started_at = "r2", "t5"
    small.metrics["latency_ms"].update(threads=4, rounds=5)
    small.measurement["carbon"]["g_per_kwh"] = 100.0
    small.measurement["idle"] = {"skipped": True, "reason": "skipped by --no-idle"}
    notes = build_table([base, small], "base", "s").notes
    assert "rows come from 2 runs: r1 started t0 (base); r2 started t5 (small)" in notes
    assert "CO2: 380.9 gCO2/kWh (codecarbon), PUE 1 — rows: base" in notes
    assert "CO2: 100.0 gCO2/kWh (codecarbon), PUE 1 — rows: small" in notes
    assert "idle baseline: skipped (not recorded): net = gross — rows: base" in notes
    assert "idle baseline: skipped (skipped by --no-idle): net = gross — rows: small" in notes
    latency = [n for n in notes if n.startswith("latency_ms:")]
    assert len(latency) == 2 and latency[0].endswith("1 thread(s), cpu (Test CPU) — rows: base")
    assert "in 3 rounds" in latency[0] and "in 5 rounds" in latency[1]
    assert latency[1].endswith("4 thread(s), cpu (Test CPU) — rows: small")
    gflops = [n for n in notes if n.startswith("GFLOPs:")]
    assert len(gflops) == 1 and "— rows:" not in gflops[0]  # the same in both runs: one plain note


def test_same_run_id_but_different_facts_are_split_too() -> None:
    base, small = two()
    small.measurement["settings"] = {"latency": {"batch": 8}}
    notes = build_table([base, small], "base", "s").notes
    assert not any("rows come from" in n for n in notes)
    assert any("batch ?, 1 thread(s)" in n and n.endswith("— rows: base") for n in notes)
    assert any("batch 8, 1 thread(s)" in n and n.endswith("— rows: small") for n in notes)


def test_values_that_are_not_numbers_do_not_crash() -> None:
    base, small = two()
    small.metrics["params"]["value"] = "a lot"
    small.metrics["latency_ms"]["ci_low"] = None
    t = build_table([base, small], "base", "s")
    assert cell_of(t, "small", "params") == (None, None)
    rows = md_table(render(t))
    assert column(rows, "params_M")[1] == "—" and column(rows, "latency_ms")[1].startswith("10.00 (")


def test_samples_left_out_of_the_dataset_are_noted() -> None:
    r = rec("base", 1e6, 0.02)
    r.measurement["dataset"] = {
        "ignored": {"empty image (0 bytes)": 2, "class id out of range": 1},
        "ignored_examples": {"empty image (0 bytes)": ["data/images/train/a.jpg"]},
    }
    notes = build_table([r], "base", "s").notes
    (note,) = [n for n in notes if n.startswith("dataset samples left out")]
    assert (
        "2 empty image (0 bytes), e.g. data/images/train/a.jpg" in note and "1 class id out of range" in note
    )


def test_cpu_time_energy_is_said_to_be_time() -> None:
    records = two()
    assert not any("CPU-time Δ" in n for n in build_table(records, "base", "s").notes)  # "estimated-source"
    for r in records:
        for name, m in r.metrics.items():
            if name.startswith("energy"):
                m["source"] = "estimate:cpu-time×4W/core"
    notes = build_table(records, "base", "s").notes
    assert any("an energy Δ is the CPU-time Δ" in n for n in notes)
    records[1].metrics["energy_per_image_j"]["method"] = "measured"
    assert not any("CPU-time Δ" in n for n in build_table(records, "base", "s").notes)


def test_a_net_column_equal_to_gross_everywhere_is_left_out_of_md_not_csv() -> None:
    records = two()
    for r in records:
        r.metrics["energy_per_image_net_j"] = dict(r.metrics["energy_per_image_j"])
    t = build_table(records, "base", "s")
    md = render(t)
    assert "E/img_net_mJ" not in md.split("\n\n")[0]  # not a column of the table itself
    assert "E_train_net_kJ [estimated]" in md  # 900 J net vs 1000 J gross: kept
    assert any(n.startswith("E/img_net_mJ left out: equal to the gross figures") for n in t.notes)
    assert "E/img_net_mJ" in render(t, "csv").splitlines()[0]
    # one row where they differ keeps the column
    records[1].metrics["energy_per_image_net_j"]["value"] *= 0.5
    assert "E/img_net_mJ [estimated]" in render(build_table(records, "base", "s")).split("\n\n")[0]


def child(variant: str, parent: str, params: float, **kwargs: Any) -> RunRecord:
    return dataclasses.replace(rec(variant, params, 0.01, **kwargs), parent=parent)


def test_delta_against_each_rows_parent() -> None:
    """``delta="parent"``: a compression row against the variant it was made from (paired when the
    record stores a Δ paired with that parent's config), a root row against the baseline."""
    to_mid = {**paired(-20.0, -25.0, -15.0, True), "parent": "mid", "parent_key": "mid"}
    parent_paired = {"latency_ms": to_mid}
    base, mid = rec("base", 2e6, 0.02), child("mid", "base", 1.6e6)
    small = dataclasses.replace(child("small", "mid", 0.8e6), measurement={"parent_deltas": parent_paired})
    root = rec("other-root", 1e6, 0.01)
    t = build_table([base, small, root], "base", "s", delta="parent", pool=[mid])
    assert cell_of(t, "small", "params").delta == Delta(pytest.approx(-50.0), "values")  # vs mid's 1.6 M
    assert cell_of(t, "small", "latency_ms").delta == Delta(-20.0, "paired", -25.0, -15.0, True, False)
    assert cell_of(t, "other-root", "params").delta == Delta(pytest.approx(-50.0), "values")  # vs base
    assert t.against == {"small": "mid"}
    md = md_table(render(t))
    assert column(md, "Δ vs") == ["", "mid", "base"]
    assert any("against its parent" in n for n in t.notes)
    rows = list(csv.DictReader(io.StringIO(render(t, "csv"))))
    assert [r["delta_vs"] for r in rows] == ["", "mid", "base"]
    assert rows[1]["latency_ms_delta_paired"] == "True"
    # the baseline's paired Δ is never shown as the parent's
    t_base = build_table([base, small], "base", "s")
    assert cell_of(t_base, "small", "latency_ms").delta.kind == "unpaired"
    assert "Δ vs" not in md_table(render(t_base))[0]


def test_parent_not_measured_with_it_is_unpaired_and_says_so() -> None:
    base, mid = rec("base", 2e6, 0.02), child("mid", "base", 1.6e6)
    small = child("small", "mid", 0.8e6)
    t = build_table([base, mid, small], "base", "s", delta="parent")
    assert cell_of(t, "small", "latency_ms").delta == Delta(0.0, "unpaired")
    note = next(n for n in t.notes if n.startswith("Δ marked (unpaired)"))
    assert "small: latency_ms, E/img_mJ, E/img_net_mJ (mid was not measured interleaved with it)" in note
    assert cell_of(t, "mid", "params").delta.change == pytest.approx(-20.0)  # mid's parent is the baseline
    with pytest.raises(ValueError, match="unknown delta reference"):
        build_table([base], "base", "s", delta="grandparent")  # type: ignore[arg-type]
