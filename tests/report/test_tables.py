"""The comparison table: Δ % against the baseline, units and methods in headers, formats."""

from __future__ import annotations

import csv
import io

import pytest

from greenbench.report.tables import build_table, render
from greenbench.store import RunRecord, metric
from tests.factories import make_record


def rec(
    variant: str, params: float, energy: float, status: str = "ok", method: str = "estimated"
) -> RunRecord:
    e = {"method": method, "source": f"{method}-source"}
    metrics = {
        "precision": metric(0.5, "fraction"),
        "map50": metric(0.4, "fraction"),
        "params": metric(params, "count"),
        "size_mb": metric(params * 4e-6, "MB"),
        "gflops": metric(4.0, "GFLOP", convention="GFLOPs = 2 × GMACs", imgsz=128),
        "latency_ms": metric(10.0, "ms", ci_low=9.0, ci_high=11.0, noisy=False, threads=1),
        "energy_per_image_j": metric(energy, "J", **e),
        "energy_per_image_net_j": metric(energy * 0.8, "J", **e),
        "train_energy_j": metric(1000.0, "J", **e),
        "train_energy_net_j": metric(900.0, "J", **e),
        "co2_train_g": metric(0.1, "g", **e),
    }
    return make_record(
        variant=variant,
        variant_hash=variant,
        status=status,
        metrics=metrics if status == "ok" else {},
        error=None if status == "ok" else "boom",
        device={"device": "cpu", "cpu_model": "Test CPU"},
        measurement={"carbon": {"g_per_kwh": 380.95, "source": "codecarbon", "pue": 1.0}},
    )


def test_delta_against_baseline() -> None:
    table = build_table([rec("base", 2e6, 0.02), rec("small", 1e6, 0.01)], "base", "s")
    (_, base_cells), (_, small_cells) = table.rows
    params_col = [c.metric for c in table.columns].index("params")
    energy_col = [c.metric for c in table.columns].index("energy_per_image_j")
    assert base_cells[params_col] == (2e6, None)  # the baseline has no Δ
    assert small_cells[params_col] == (1e6, pytest.approx(-50.0))
    assert small_cells[energy_col][1] == pytest.approx(-50.0)


def test_markdown_has_units_methods_and_notes() -> None:
    md = render(build_table([rec("base", 2e6, 0.02), rec("small", 1e6, 0.01)], "base", "s"), "md")
    assert "| variant | P | mAP50 | params_M | size_MB | GFLOPs | latency_ms | E/img_mJ [estimated]" in md
    assert "| small | 0.500 (+0.0%) | 0.400 (+0.0%) | 1.000 (-50.0%)" in md
    assert "10.00 ± 1.00" in md
    assert "GFLOPs = 2 × GMACs" in md and "energy estimated: estimated-source" in md


def test_mixed_methods_are_labelled_mixed() -> None:
    t = build_table([rec("base", 2e6, 0.02), rec("m", 1e6, 0.01, method="measured")], "base", "s")
    assert t.methods["energy_per_image_j"] == "mixed"
    metrics = [c.metric for c in t.columns]
    m_cells = t.rows[1][1]
    assert m_cells[metrics.index("energy_per_image_j")] == (0.01, None)  # measured vs estimated: no Δ
    assert m_cells[metrics.index("co2_train_g")] == (0.1, None)
    assert m_cells[metrics.index("params")][1] == pytest.approx(-50.0)  # other columns keep theirs
    left_out = [n for n in t.notes if n.startswith("Δ % left out")]
    assert left_out == [
        "Δ % left out where the energy method or source differs from the baseline's (measured vs "
        "estimated figures are not comparable): m: E/img_mJ, E/img_net_mJ, E_train_kJ, "
        "E_train_net_kJ, CO2_train_g (measured vs baseline estimated)"
    ]
    md = render(t, "md")
    assert "| E/img_mJ [mixed] |" in md and left_out[0] in md
    assert "| base (baseline) | 0.500 |" in md and "| 20.00 [estimated] | 16.00 [estimated] |" in md
    assert "| 1.000 (-50.0%) |" in md and "| 10.00 [measured] | 8.00 [measured] |" in md
    tex = render(t, "latex")
    assert "10.00 [measured] & 8.00 [measured]" in tex and "E/img\\_mJ [mixed]" in tex
    row = list(csv.DictReader(io.StringIO(render(t, "csv"))))[1]
    assert row["E/img_mJ"] == "10" and row["E/img_mJ_delta_pct"] == ""
    assert row["E/img_mJ_method"] == "measured" and row["params_M_delta_pct"] == "-50.00"


def test_same_method_keeps_delta_and_unlabelled_cells() -> None:
    t = build_table([rec("base", 2e6, 0.02), rec("small", 1e6, 0.01)], "base", "s")
    assert not any(n.startswith("Δ % left out") for n in t.notes)
    assert "| 10.00 (-50.0%) | 8.00 (-50.0%) |" in render(t, "md")
    assert "[estimated]" not in render(t, "md").split("\n", 2)[2]  # only the header says it


def test_energy_from_another_source_has_no_delta() -> None:
    other = rec("other", 1e6, 0.01)
    other.metrics["energy_per_image_j"]["source"] = "nvml"
    t = build_table([rec("base", 2e6, 0.02), other], "base", "s")
    energy_col = [c.metric for c in t.columns].index("energy_per_image_j")
    assert t.methods["energy_per_image_j"] == "estimated"
    assert t.rows[1][1][energy_col] == (0.01, None)
    assert any("other: E/img_mJ (nvml vs baseline estimated-source)" in n for n in t.notes)


def test_failed_variant_row_and_missing_baseline() -> None:
    t = build_table([rec("base", 0, 0, status="failed"), rec("small", 1e6, 0.01)], "base", "s")
    md = render(t, "md")
    assert "| base (baseline) | failed |" in md
    assert "no ok record of the baseline variant" in md and "base FAILED: boom" in md
    assert all(d is None for _, d in t.rows[1][1])


def test_csv_is_machine_readable() -> None:
    out = render(build_table([rec("base", 2e6, 0.02), rec("small", 1e6, 0.01)], "base", "s"), "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rows[1]["params_M"] == "1" and rows[1]["params_M_delta_pct"] == "-50.00"
    assert rows[1]["E/img_mJ"] == "10" and rows[1]["E/img_mJ_method"] == "estimated"
    assert rows[1]["E/img_mJ_delta_pct"] == "-50.00"
    assert rows[0]["params_M_delta_pct"] == ""
    head = out.splitlines()[0]
    assert head.startswith("variant,parent,status,P,P_delta_pct,")
    assert "E/img_mJ,E/img_mJ_delta_pct,E/img_mJ_method" in head and "_estimated" not in head
    assert "P_method" not in head  # only energy columns have a method
    # the header never depends on the data: the same for measured-only and mixed tables
    for methods in (("measured", "measured"), ("estimated", "measured")):
        recs = [rec("base", 2e6, 0.02, method=methods[0]), rec("small", 1e6, 0.01, method=methods[1])]
        assert render(build_table(recs, "base", "s"), "csv").splitlines()[0] == head


def test_latex_escapes() -> None:
    tex = render(build_table([rec("base_v", 2e6, 0.02)], "base_v", "s"), "latex")
    assert tex.startswith("\\begin{tabular}") and "base\\_v" in tex and "$\\pm$" in tex
    with pytest.raises(ValueError):
        render(build_table([rec("b", 1, 1)], "b", "s"), "html")


def test_markdown_lists_each_training_stage_with_method() -> None:
    r = rec("base", 2e6, 0.02)
    r.stages = [
        {"name": "train", "params": {}, "duration_s": 10.0, "energy_j": 40.0, "energy_net_j": 30.0,
         "method": "measured", "cached": False},
        {"name": "train", "params": {"epochs": 1}, "duration_s": 2.0, "energy_j": 8.0,
         "energy_net_j": 6.0, "method": "measured", "cached": True},
    ]  # fmt: skip
    md = render(build_table([r], "base", "s"), "md")
    assert "| base | train | — | 10.0 | 40.0 | 30.0 | measured | trained in this run |" in md
    assert "| base | train | epochs=1 | 2.0 | 8.0 | 6.0 | measured | reused from cache |" in md


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
    notes = build_table([rec("base", 2e6, 0.02), rec("small", 1e6, 0.01)], "base", "s").notes
    assert "CO2: 380.9 gCO2/kWh (codecarbon), PUE 1" in notes
    assert not any("rows come from" in n or "— rows:" in n for n in notes)


def test_rows_from_different_runs_say_so() -> None:
    base, small = rec("base", 2e6, 0.02), rec("small", 1e6, 0.01)
    small.run_id, small.started_at = "r2", "t5"
    small.metrics["latency_ms"]["threads"] = 4
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
    assert latency[1].endswith("4 thread(s), cpu (Test CPU) — rows: small")
    gflops = [n for n in notes if n.startswith("GFLOPs:")]
    assert len(gflops) == 1 and "— rows:" not in gflops[0]  # the same in both runs: one plain note


def test_same_run_id_but_different_facts_are_split_too() -> None:
    base, small = rec("base", 2e6, 0.02), rec("small", 1e6, 0.01)
    small.measurement["settings"] = {"latency": {"batch": 8}}
    notes = build_table([base, small], "base", "s").notes
    assert not any("rows come from" in n for n in notes)
    assert any("batch ?, 1 thread(s)" in n and n.endswith("— rows: base") for n in notes)
    assert any("batch 8, 1 thread(s)" in n and n.endswith("— rows: small") for n in notes)
