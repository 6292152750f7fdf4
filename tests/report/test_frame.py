"""``load_results``: one row per suite × variant × runtime × device from the newest ok records."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

import greenbench
from greenbench.errors import GreenbenchError
from greenbench.report.columns import COLUMNS, KINDS
from greenbench.report.frame import load_results
from greenbench.report.ranking import CPU_TIME_CAVEAT, RANK_RULES
from greenbench.store import RunRecord, Store
from tests.factories import make_measured_record
from tests.report.report_records import make_store

PAIRED = {
    "paired": True, "delta_pct": -20.0, "delta_ci_low_pct": -25.0, "delta_ci_high_pct": -15.0,
    "significant": True, "baseline_key": "h-base",
}  # fmt: skip

# variant -> (map50, energy J/img, latency ms): pruned and base are on the front, bad is behind
# both, noacc has no accuracy (unranked under the Pareto rule)
KNOWN = {
    "base": (0.50, 0.05, 10.0),
    "pruned": (0.45, 0.03, 7.0),
    "bad": (0.40, 0.06, 12.0),
    "noacc": (None, 0.01, 3.0),
}


def known(**fields: object) -> list[RunRecord]:
    return [
        make_measured_record(
            v, map50=m, energy_j=e, latency_ms=lat,
            deltas={} if v == "base" else {"latency_ms": PAIRED}, **fields,  # type: ignore[arg-type]
        )
        for v, (m, e, lat) in KNOWN.items()
    ]  # fmt: skip


def test_columns_in_order_with_units(tmp_path: Path) -> None:
    frame = load_results(make_store(tmp_path / "a.db", known()))
    assert list(frame.columns) == [name for name, _ in COLUMNS]
    assert len(set(frame.columns)) == len(COLUMNS)
    units = {"ms", "j", "g", "pct", "mb", "m", "px", "s", "kwh", "gflops", "gmacs"}
    counts = {"rank", "pareto_rank", "batch", "threads", "peak_threads", "schema_version"}
    for name, what in COLUMNS:
        assert what.strip(), name
        if KINDS[name] in ("float", "int"):
            named = bool(units & set(name.split("_")))
            assert named or name in counts or what.startswith("fraction") or name == "pue", name
    assert frame["latency_ms_median"].dtype == "float64" and frame["rank"].dtype == "Int64"
    for name, kind in KINDS.items():  # a flag is True or False on every row, never empty
        if kind == "bool":
            assert frame[name].dtype == "bool", name


def test_ranks_and_pareto_flags_on_known_records(tmp_path: Path) -> None:
    frame = load_results(make_store(tmp_path / "a.db", known())).set_index("variant")
    assert frame.loc[["base", "pruned"], "pareto_optimal"].all()
    assert not frame.loc["bad", "pareto_optimal"] and not frame.loc["noacc", "pareto_optimal"]
    assert frame.loc["bad", "pareto_rank"] == 2 and pd.isna(frame.loc["noacc", "pareto_rank"])
    # ties on the front broken by latency: pruned (7 ms) before base (10 ms); noacc unranked, last
    assert list(frame.index) == ["pruned", "base", "bad", "noacc"]
    assert list(frame["rank"].iloc[:3]) == [1, 2, 3] and pd.isna(frame.loc["noacc", "rank"])
    # every energy figure of the suite is the CPU-time model: the rule says what it then ranks
    assert frame.attrs["rank_rule"] == RANK_RULES["pareto"]
    assert [g["note"] for g in frame.attrs["groups"]] == [CPU_TIME_CAVEAT]
    assert frame.attrs["groups"][0]["rows"] == len(KNOWN)
    assert (frame["accuracy"].dropna() == frame["map50"].dropna()).all()
    assert frame.loc["base", "is_baseline"] and not frame.loc["pruned", "is_baseline"]
    for rule, first in (("energy", "noacc"), ("latency", "noacc"), ("accuracy", "base")):
        ranked = load_results(tmp_path / "a.db", rank_by=rule)
        assert ranked.iloc[0]["variant"] == first and ranked.iloc[0]["rank"] == 1, rule
    with pytest.raises(ValueError, match="rank rule"):
        load_results(tmp_path / "a.db", rank_by="vibes")


def test_values_deltas_and_flags(tmp_path: Path) -> None:
    frame = load_results(make_store(tmp_path / "a.db", known())).set_index("variant")
    pruned = frame.loc["pruned"]
    assert pruned["latency_ms_ci_low"] < pruned["latency_ms_median"] < pruned["latency_ms_ci_high"]
    assert pruned["params_m"] == pytest.approx(1.76) and pruned["energy_method"] == "estimated"
    # latency: the stored paired Δ; energy: none stored, so from the two values, unpaired
    assert pruned["latency_delta_pct"] == -20.0 and pruned["latency_delta_paired"]
    assert pruned["energy_delta_pct"] == pytest.approx((0.03 - 0.05) / 0.05 * 100)
    assert not pruned["energy_delta_paired"] and not pruned["paired"]
    assert pd.isna(pruned["energy_delta_pct_ci_low"])
    assert pd.isna(frame.loc["base", "latency_delta_pct"]) and not frame.loc["base", "paired"]
    assert not frame.loc["base", "latency_delta_significant"] and not frame.loc["base", "energy_delta_paired"]
    assert pruned["device"].startswith("cpu · Test CPU") and not pruned["noisy"]


def test_energy_delta_left_out_across_methods(tmp_path: Path) -> None:
    records = known()
    measured = records[1].metrics["energy_per_image_j"]
    records[1].metrics["energy_per_image_j"] = {**measured, "method": "measured", "source": "rapl"}
    frame = load_results(make_store(tmp_path / "a.db", records)).set_index("variant")
    assert (
        pd.isna(frame.loc["pruned", "energy_delta_pct"])
        and frame.loc["pruned", "energy_method"] == "measured"
    )


def test_newest_ok_record_counts_failed_and_smoke_left_out(tmp_path: Path) -> None:
    old = make_measured_record("base", run_id="r0", latency_ms=99.0, finished_at="2025-01-01T00:00:00+00:00")
    new = make_measured_record("base", run_id="r1", latency_ms=11.0)
    failed = make_measured_record(
        "base", run_id="r2", status="failed", finished_at="2027-01-01T00:00:00+00:00"
    )
    smoke = make_measured_record("base", run_id="r3", latency_ms=1.0, finished_at="2027-01-01T00:00:00+00:00")
    smoke.smoke = {"notes": ["smoke run"]}
    only_smoke = make_measured_record("x", run_id="r3", smoke={"notes": []})
    path = make_store(tmp_path / "a.db", [new, old, failed, smoke, only_smoke])
    frame = load_results(path)
    assert list(frame["variant"]) == ["base"] and frame["latency_ms_median"].iloc[0] == 11.0
    assert not frame["smoke"].any()
    with_smoke = load_results(path, include_smoke=True).set_index("variant")
    assert with_smoke.loc["base", "latency_ms_median"] == 1.0 and with_smoke["smoke"].all()


def test_one_row_per_runtime_and_device_and_filters(tmp_path: Path) -> None:
    records = [
        make_measured_record("base"),
        make_measured_record("base", runtime="onnxruntime", latency_ms=6.0),
        make_measured_record("base", device_id="dev2", latency_ms=20.0),
        make_measured_record("base", suite="other"),
    ]
    path = make_store(tmp_path / "a.db", records)
    frame = load_results(path)
    assert len(frame) == 4
    assert set(zip(frame["suite"], frame["runtime"], frame["device_id"], strict=True)) == {
        ("s", "torch", "dev"), ("s", "onnxruntime", "dev"), ("s", "torch", "dev2"), ("other", "torch", "dev"),
    }  # fmt: skip
    assert set(load_results(path, suite="other")["suite"]) == {"other"}
    assert set(load_results(path, device="dev2")["device_id"]) == {"dev2"}
    assert load_results(path, suite="nothing").empty


def test_merge_of_two_stores_counts_a_shared_record_once(tmp_path: Path) -> None:
    here = known()
    there = [make_measured_record(v, device_id="dev2", run_id="r9") for v in ("base", "pruned")]
    a = make_store(tmp_path / "a.db", here)
    b = make_store(tmp_path / "b.db", [here[0], *there])  # base of this machine copied to b too
    merged = load_results([a, b])
    assert len(merged) == len(here) + len(there)
    assert sorted(merged["device_id"].unique()) == ["dev", "dev2"]
    swapped = load_results([b, a])
    pd.testing.assert_frame_equal(merged, swapped)


def test_roofline_from_stored_peak(tmp_path: Path) -> None:
    path = make_store(tmp_path / "a.db", known())
    assert load_results(path)["pct_of_peak"].isna().all()
    with Store(path) as s:
        s.save_device_peak(
            "dev", {"fp32_gflops_per_s": 200.0, "int8_gops_per_s": None, "threads": 1, "method": "t",
                    "measured_at": "2026-01-02T00:00:00+00:00"},
        )  # fmt: skip
    frame = load_results(path).set_index("variant")
    row = frame.loc["pruned"]
    assert row["achieved_gflops_per_s"] == pytest.approx(4.0 * 1 / 0.007)
    assert row["pct_of_peak"] == pytest.approx(row["achieved_gflops_per_s"] / 200.0 * 100)
    assert row["peak_kind"] == "fp32" and row["peak_threads"] == 1


def test_old_store_without_peak_table_reads(tmp_path: Path) -> None:
    path = make_store(tmp_path / "a.db", known())
    with sqlite3.connect(path) as c:
        c.execute("DROP TABLE device_peaks")
    c.close()
    path.chmod(0o444)
    try:
        frame = load_results(path)
        assert len(frame) == len(KNOWN) and frame["peak_gflops_per_s"].isna().all()
        with Store(path, readonly=True) as s:
            assert s.device_peak("dev") is None
    finally:
        path.chmod(0o644)


def test_public_entry_point_and_missing_store(tmp_path: Path) -> None:
    frame = greenbench.load_results(make_store(tmp_path / "a.db", known()), suite="s")
    assert len(frame) == len(KNOWN) and frame.attrs["rank_rule"] == RANK_RULES["pareto"]
    assert frame.attrs["rank_by"] == "pareto"
    assert all(math.isfinite(x) for x in frame["energy_j_per_image"])
    with pytest.raises(GreenbenchError, match="no results store"):
        load_results(tmp_path / "missing.db")


def test_a_measured_energy_figure_lifts_the_cpu_time_caveat(tmp_path: Path) -> None:
    records = known()
    records[0].metrics["energy_per_image_j"].update(method="measured", source="rapl:package-0")
    frame = load_results(make_store(tmp_path / "m.db", records))
    # base is measured, the others estimated: two groups, only the estimated one has the caveat
    notes = {g["energy_method"]: g["note"] for g in frame.attrs["groups"]}
    assert notes == {"measured": None, "estimated": CPU_TIME_CAVEAT}


def test_whole_image_latency_of_a_scope_both_record(tmp_path: Path) -> None:
    from greenbench.store import metric

    records = known()
    total = metric(42.0, "ms", ci_low=40.0, ci_high=45.0, rounds=3, blocks=9)
    records[1].metrics["latency_total_ms"] = total  # pruned, timed at scope both
    frame = load_results(make_store(tmp_path / "a.db", records)).set_index("variant")
    pruned = frame.loc["pruned"]
    assert (pruned["latency_total_ms_ci_low"], pruned["latency_total_ms_median"]) == (40.0, 42.0)
    assert pruned["latency_total_ms_ci_high"] == 45.0 and pruned["latency_ms_median"] != 42.0
    assert pd.isna(frame.loc["base", "latency_total_ms_median"])  # scope model: none
