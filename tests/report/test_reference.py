"""The paper side by side (``greenbench table --paper``): the shipped reference CSV against the
study suite, ratios to each side's own baseline on records from the test factories, the latency
scope the CPU time uses, rows without a measurement, formats, and bad CSVs."""

from __future__ import annotations

import csv
import dataclasses
import io
from pathlib import Path
from typing import Any

import pytest
import yaml

from greenbench.cli import main
from greenbench.metrics import headline_accuracy, stored
from greenbench.report.reference import (
    build_reference,
    check_variants,
    read_paper,
    reference_text,
    render_reference,
    table_rows,
)
from greenbench.store import RunRecord, Store
from tests.clitools import assert_one_paragraph_error
from tests.factories import make_measured_record

ROOT = Path(__file__).resolve().parents[2]
SUITE = ROOT / "suites" / "yolo_thws.yaml"
PAPER = ROOT / "suites" / "yolo_thws_paper.csv"
HEADLINE = str(headline_accuracy("detect"))


def _suite() -> dict[str, Any]:
    return dict(yaml.safe_load(SUITE.read_text(encoding="utf-8")))


def test_the_shipped_csv_names_every_row_by_a_variant_of_the_study_suite() -> None:
    paper = read_paper(PAPER, HEADLINE)
    suite = _suite()
    assert len(paper.rows) == 19  # Table 1's 14 models and Table 2's 5 backbones (its baseline is Table 1's)
    check_variants(paper, list(suite["variants"]), suite["baseline"], suite["name"])  # raises if not
    assert paper.columns == ("params_m", "gflops", "size_mb", "cpu_time_ms", HEADLINE)
    assert all(v is not None and v > 0 for r in paper.rows for v in r.figures.values())


def _stage_params(variants: dict[str, Any], name: str) -> dict[str, Any]:
    """The stage parameters along ``name``'s lineage (``from:``), the nearest last."""
    spec = variants[name]
    found = _stage_params(variants, spec["from"]) if "from" in spec else {}
    for stage in spec.get("stages", []):
        found.update(next(iter(stage.values())) if isinstance(stage, dict) else {})
    return found


def test_each_csv_row_maps_to_the_variant_with_its_lambda_and_prune_ratio() -> None:
    """The ``variant`` column is not only a name that exists: its lineage has the paper row's λ and
    prune ratio (a row mapped to the wrong variant would compare unlike models)."""
    variants = _suite()["variants"]
    text = "\n".join(
        line for line in PAPER.read_text(encoding="utf-8").splitlines() if not line.startswith("#")
    )
    rows = list(csv.DictReader(io.StringIO(text)))
    assert sum(1 for r in rows if r["sparsity_lambda"]) == 13
    for row in rows:
        params = _stage_params(variants, row["variant"])
        lam = float(row["sparsity_lambda"]) if row["sparsity_lambda"] else None
        ratio = float(row["prune_ratio"]) if row["prune_ratio"] else None
        assert params.get("lambda") == lam, row
        assert params.get("ratio") == ratio, row
        if row["paper_table"] == "2":
            assert variants[row["variant"]]["table"] == "backbones"


def rec(
    variant: str, params: float, gflops: float, size_mb: float, latency_ms: float, acc: float, **kw: Any
) -> RunRecord:
    """A factory record of the study suite with these figures; ``scope`` (model | total) in its settings."""
    scope = kw.pop("scope", "model")
    total_ms = kw.pop("total_ms", None)
    r = make_measured_record(
        variant, map50=acc, latency_ms=latency_ms, gflops=gflops, suite="yolo_thws", baseline="yolov5s", **kw
    )
    metrics = {**r.metrics, "params": stored("params", params), "size_mb": stored("size_mb", size_mb)}
    measurement = {
        **r.measurement,
        "settings": {"latency": {"batch": 1, "imgsz": 640, "threads": 1, "scope": scope}},
    }
    if scope == "total":
        measurement["runtime"] = {"per_call": "decode, letterbox, model, NMS"}
    if scope == "both":  # latency_ms the model alone, latency_total_ms the whole image
        measurement["total_runtime"] = {"per_call": "decode, letterbox, model, NMS"}
        metrics["latency_total_ms"] = stored("latency_total_ms", total_ms or latency_ms * 2)
    return dataclasses.replace(r, metrics=metrics, measurement=measurement)


BASE = {"params": 9.13e6, "gflops": 24.1, "size_mb": 18.5, "latency_ms": 180.0, "acc": 0.61}
FT = {"params": 4.4e6, "gflops": 14.2, "size_mb": 9.1, "latency_ms": 121.0, "acc": 0.55}


def _figures(ref: Any, variant: str) -> dict[str, Any]:
    return next(figures for row, _side, figures in ref.rows if row.variant == variant)


def test_ratios_are_to_each_sides_own_baseline() -> None:
    paper = read_paper(PAPER, HEADLINE)
    records = [rec("yolov5s", **BASE), rec("ft-5e-4-50", **FT)]
    ref = build_reference(paper, records, "yolov5s")
    paper_ft = next(r for r in paper.rows if r.variant == "ft-5e-4-50").figures
    paper_base = next(r for r in paper.rows if r.variant == "yolov5s").figures
    ft = _figures(ref, "ft-5e-4-50")
    for column, metric in [("params_m", "params"), ("gflops", "gflops"), ("size_mb", "size_mb"),
                           ("cpu_time_ms", "latency_ms"), (HEADLINE, "acc")]:  # fmt: skip
        assert ft[column].paper_ratio == pytest.approx(paper_ft[column] / paper_base[column])
        assert ft[column].ours_ratio == pytest.approx(FT[metric] / BASE[metric])
    assert ft["params_m"].ours == pytest.approx(FT["params"] / 1e6)  # in the CSV's unit: millions
    base = _figures(ref, "yolov5s")
    assert all(f.paper_ratio == 1.0 and f.ours_ratio == 1.0 for f in base.values())


def test_rows_without_a_measurement_say_why() -> None:
    paper = read_paper(PAPER, HEADLINE)
    failed = dataclasses.replace(rec("ghostnet", **FT), status="failed", metrics={}, error="boom")
    no_acc = rec("mobilenetv2", **FT)
    no_acc = dataclasses.replace(no_acc, metrics={k: v for k, v in no_acc.metrics.items() if k != HEADLINE})
    ref = build_reference(paper, [rec("yolov5s", **BASE), failed, no_acc], "yolov5s")
    assert {f.why for f in _figures(ref, "sparse-1e-4").values()} == {"not measured"}
    assert {f.why for f in _figures(ref, "ghostnet").values()} == {"failed"}
    mobile = _figures(ref, "mobilenetv2")
    assert mobile[HEADLINE].ours_ratio is None and mobile[HEADLINE].why == "—"
    assert mobile["gflops"].ours_ratio == pytest.approx(FT["gflops"] / BASE["gflops"])
    md = render_reference(ref, "md")
    row = next(line for line in md.splitlines() if line.startswith("| Sparse Model 1"))
    assert row.count("not measured") == 5
    assert all(
        f.paper_ratio is not None for f in _figures(ref, "sparse-1e-4").values()
    )  # the paper side stays


def test_cpu_time_prefers_scope_total_and_says_which() -> None:
    paper = read_paper(PAPER, HEADLINE)
    model_only = [rec("yolov5s", **BASE), rec("ft-5e-4-50", **FT)]
    ref = build_reference(paper, model_only, "yolov5s")
    assert ref.scope == "model"
    assert any("scope model" in n and "measure.latency.scope: total" in n for n in ref.notes)
    total_base = rec("yolov5s", **{**BASE, "latency_ms": 300.0}, scope="total", run_id="r2")
    total_ft = rec("ft-5e-4-50", **{**FT, "latency_ms": 240.0}, scope="total", run_id="r2")
    mobile = rec("mobilenetv2", **FT)  # timed at scope model only
    ref = build_reference(paper, [*model_only, total_base, total_ft, mobile], "yolov5s")
    assert ref.scope == "total"
    assert _figures(ref, "ft-5e-4-50")["cpu_time_ms"].ours_ratio == pytest.approx(240.0 / 300.0)
    assert _figures(ref, "mobilenetv2")["cpu_time_ms"].why == "other scope"
    assert _figures(ref, "mobilenetv2")["gflops"].ours_ratio is not None
    assert any("scope total (decode, letterbox, model, NMS)" in n for n in ref.notes)
    assert "CPU time (total)" in table_rows(ref)[0]


def test_a_scope_both_record_gives_the_total_cpu_time() -> None:
    paper = read_paper(PAPER, HEADLINE)
    base = rec("yolov5s", **BASE, scope="both", total_ms=300.0)
    ft = rec("ft-5e-4-50", **FT, scope="both", total_ms=210.0)
    ref = build_reference(paper, [base, ft], "yolov5s")
    assert ref.scope == "total"  # the paper's CPU time is the whole detection
    cpu = _figures(ref, "ft-5e-4-50")["cpu_time_ms"]
    assert cpu.ours == pytest.approx(210.0) and cpu.ours_ratio == pytest.approx(210.0 / 300.0)
    assert _figures(ref, "ft-5e-4-50")["params_m"].ours_ratio == pytest.approx(4.4 / 9.13)
    assert any("latency_total_ms at scope total (decode, letterbox, model, NMS)" in n for n in ref.notes)


def test_formats() -> None:
    paper = read_paper(PAPER, HEADLINE)
    ref = build_reference(paper, [rec("yolov5s", **BASE), rec("ft-5e-4-50", **FT)], "yolov5s")
    rows = list(csv.DictReader(io.StringIO(render_reference(ref, "csv"))))
    assert len(rows) == 19
    ft = next(r for r in rows if r["variant"] == "ft-5e-4-50")
    assert float(ft["params_m_greenbench"]) == pytest.approx(4.4) and float(ft["params_m_paper"]) == 2.72
    assert float(ft["gflops_ratio_greenbench"]) == pytest.approx(FT["gflops"] / BASE["gflops"], abs=1e-4)
    assert ft["latency_scope"] == "model" and ft["greenbench_status"] == "ok"
    assert next(r for r in rows if r["variant"] == "ghostnet")["greenbench_status"] == "not measured"
    tex = render_reference(ref, "latex")
    assert "\\begin{tabular}" in tex and "% Each cell is paper / greenbench" in tex


def _store(path: Path, records: list[RunRecord]) -> Path:
    with Store(path) as s:
        for r in records:
            s.add(r)
    return path


def test_the_table_command_prints_the_paper_beside_the_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = _store(tmp_path / "gb.db", [rec("yolov5s", **BASE), rec("ft-5e-4-50", **FT)])
    args = ["table", str(SUITE), "--store", str(store), "--device", "dev", "--paper", str(PAPER)]
    assert main(args) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("| Fine-tune Model 4"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "ft-5e-4-50"
    assert (
        cells[2] == f"{2.72 / 7.05:.2f} / {FT['params'] / BASE['params']:.2f}"
    )  # params: paper / greenbench
    assert "Baselines: paper params 7.05 M" in out and "greenbench params 9.13 M" in out
    assert "(GFLOPs at 64 px)" in out  # the factory counts them at 64 px; the paper at 640


def test_bad_reference_csvs_are_one_paragraph(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = _store(tmp_path / "gb.db", [rec("yolov5s", **BASE)])
    text = PAPER.read_text(encoding="utf-8")
    cases = {
        "unknown variant": (
            text.replace(",ghostnet,", ",ghostnett,"),
            ["'ghostnett' (line 27)", "not in suite"],
        ),
        "non-number": (text.replace("2.72,5.621", "2.72,big"), [".csv:21:", "column 'size_mb'", "'big'"]),
        "missing column": (text.replace("cpu_time_ms", "cpu_ms"), ["lacks cpu_time_ms"]),
        "no baseline row": (text.replace(",yolov5s,", ",yolov5s-x,"), ["not in suite"]),
    }
    for name, (bad, needles) in cases.items():
        path = tmp_path / f"{name}.csv"
        path.write_text(bad, encoding="utf-8")
        assert (
            main(["table", str(SUITE), "--store", str(store), "--device", "dev", "--paper", str(path)]) == 1
        ), name
        assert_one_paragraph_error(capsys.readouterr().err, str(path), *needles)


def test_a_bare_suite_name_needs_the_baseline_row_only(tmp_path: Path) -> None:
    paper = read_paper(PAPER, HEADLINE)
    with pytest.raises(Exception, match="no row for the suite's baseline 'base'"):
        check_variants(paper, [], "base", "s")
    text = reference_text(PAPER, [rec("yolov5s", **BASE)], "yolo_thws", [], "yolov5s", "md")
    assert "| Normal Training (Baseline) | yolov5s (baseline)" in text


def test_smoke_records_only_with_smoke_and_said_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    smoke = {"notes": ["yolov5s: weights/yolov5su.pt not on disk: trained from scratch"]}
    store = _store(
        tmp_path / "gb.db", [rec("yolov5s", **BASE, smoke=smoke), rec("ft-5e-4-50", **FT, smoke=smoke)]
    )
    args = ["table", str(SUITE), "--store", str(store), "--device", "dev", "--paper", str(PAPER)]
    assert main(args) == 1  # smoke records never show without --smoke
    assert_one_paragraph_error(capsys.readouterr().err, "--smoke")
    assert main([*args, "--smoke"]) == 0
    notes = [line for line in capsys.readouterr().out.splitlines() if line.startswith("- ")]
    assert notes[0].startswith("- SMOKE RUN") and "trained from scratch" in notes[1]
