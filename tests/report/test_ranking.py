"""Ranks only among rows that compare: one suite config on one device with one energy method."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from greenbench.report.frame import join_runtime, load_results, split_runtime
from greenbench.report.ranking import CPU_TIME_CAVEAT, group_name, rank_rows
from greenbench.store import RunRecord
from greenbench.suite.identity import results_key
from tests.factories import make_measured_record
from tests.report.report_records import make_store

MEASURED = {"method": "measured", "source": "rapl:package-0"}


def record(variant: str, map50: float, energy_j: float, latency_ms: float, **fields: Any) -> RunRecord:
    """A measured record on the quickstart's data and settings; ``fingerprint``, ``batch`` and
    ``measured`` (RAPL instead of the CPU-time estimate) change them."""
    fingerprint = fields.pop("fingerprint", "data-1")
    batch = fields.pop("batch", 1)
    measured = fields.pop("measured", False)
    r = make_measured_record(variant, map50=map50, energy_j=energy_j, latency_ms=latency_ms, **fields)
    r.measurement["dataset"] = {"data_yaml": "data.yaml", "eval_split": "test", "fingerprint": fingerprint}
    r.measurement["settings"] = {"latency": {"batch": batch, "imgsz": 64, "threads": 1, "scope": "model"}}
    if measured:
        for name in ("energy_per_image_j", "energy_per_image_net_j"):
            r.metrics[name].update(MEASURED)
    return r


def test_two_devices_and_two_energy_methods_rank_in_separate_groups(tmp_path: Path) -> None:
    # one suite: on dev a measured run and an estimated one (RAPL unreadable), on dev2 estimated;
    # the estimated figures are far lower, so one shared rank would put them all first
    records = [
        record("base", 0.50, 0.50, 10.0, measured=True, run_id="m"),
        record("pruned", 0.45, 0.30, 7.0, measured=True, run_id="m"),
        record("base", 0.50, 0.05, 10.0, runtime="onnxruntime"),
        record("pruned", 0.45, 0.03, 7.0, runtime="onnxruntime"),
        record("base", 0.50, 0.04, 20.0, device_id="dev2"),
        record("pruned", 0.40, 0.05, 25.0, device_id="dev2"),
    ]
    frame = load_results(make_store(tmp_path / "a.db", records))
    assert len(frame) == 6 and frame["suite_config"].nunique() == 1
    config = frame["suite_config"].iloc[0]
    assert frame["rank_group"].tolist() == [
        f"s/{config}/dev/estimated", f"s/{config}/dev/estimated",
        f"s/{config}/dev/measured", f"s/{config}/dev/measured",
        f"s/{config}/dev2/estimated", f"s/{config}/dev2/estimated",
    ]  # fmt: skip
    for name, group in frame.groupby("rank_group"):
        assert group["energy_method"].nunique() == 1 and group["device_id"].nunique() == 1, name
        assert sorted(group["rank"]) == [1, 2] and group["pareto_optimal"].any(), name
    # on dev2 base dominates pruned: rank 1 there although both would trail dev's estimates
    dev2 = frame[frame["device_id"] == "dev2"].set_index("variant")
    assert dev2.loc["base", "rank"] == 1 and dev2.loc["pruned", "pareto_rank"] == 2
    notes = {(g["device_id"], g["energy_method"]): g["note"] for g in frame.attrs["groups"]}
    estimated = CPU_TIME_CAVEAT
    assert notes == {
        ("dev", "estimated"): estimated,
        ("dev", "measured"): None,
        ("dev2", "estimated"): estimated,
    }


def test_two_configs_of_a_suite_of_the_same_name_are_not_merged(tmp_path: Path) -> None:
    old_data = [record(v, 0.5, 0.05, 10.0, run_id="r0", finished_at="2025-01-01") for v in ("base", "pruned")]
    new_data = [record("base", 0.3, 0.10, 10.0, run_id="r1", fingerprint="data-2", suite_hash="y")]
    batch8 = [record("base", 0.5, 0.02, 40.0, run_id="r2", batch=8, suite_hash="z")]
    frame = load_results(make_store(tmp_path / "a.db", [*old_data, *new_data, *batch8]))
    # the newest record of base does not hide the older ones: other data, other settings
    assert len(frame) == 4 and frame["suite_config"].nunique() == 3 and frame["rank_group"].nunique() == 3
    assert sorted(frame.loc[frame["variant"] == "base", "run_id"]) == ["r0", "r1", "r2"]
    assert (frame.groupby("rank_group")["rank"].min() == 1).all()
    assert set(frame["dataset_fingerprint"]) == {"data-1", "data-2"}
    assert set(frame["suite_hash"]) == {"x", "y", "z"}
    # Δ only against the baseline of the same config: pruned's is against r0's base
    pruned = frame.set_index("variant").loc["pruned"]
    assert pruned["energy_delta_pct"] == pytest.approx(0.0)


def test_a_suite_edited_only_in_its_variants_stays_one_group(tmp_path: Path) -> None:
    first = [record(v, 0.5, 0.05, 10.0, run_id="r0", suite_hash="x") for v in ("base", "pruned")]
    added = record("tiny", 0.3, 0.01, 4.0, run_id="r1", suite_hash="x2")  # a variant added later
    rerun = record("pruned", 0.45, 0.04, 9.0, run_id="r1", suite_hash="x2", finished_at="t9")
    frame = load_results(make_store(tmp_path / "a.db", [*first, added, rerun])).set_index("variant")
    assert frame["rank_group"].nunique() == 1 and sorted(frame.index) == ["base", "pruned", "tiny"]
    assert frame.loc["pruned", "run_id"] == "r1"  # the newest record of a variant in one config


def test_runtime_name_options_and_versions_in_their_own_columns(tmp_path: Path) -> None:
    ov = record("int8", 0.4, 0.02, 5.0, runtime="openvino(precision=f32, streams=1)", variant_hash="k-int8")
    ov.measurement["runtime"] = {"runtime": "openvino", "version": "2025.1.0", "precision": "int8"}
    ov.versions.update(torch="2.5.1", openvino="2025.1.0-stale")
    ort = record("base", 0.5, 0.05, 10.0, runtime="onnxruntime")
    ort.versions.update(torch="2.5.1", onnxruntime="1.20.1")
    frame = load_results(make_store(tmp_path / "a.db", [ov, ort])).set_index("variant")
    assert (frame.loc["int8", "runtime"], frame.loc["int8", "runtime_options"]) == (
        "openvino",
        "precision=f32, streams=1",
    )
    assert frame.loc["int8", "model_precision"] == "int8" and frame.loc["int8", "variant_hash"] == "k-int8"
    # the version the runtime reported when loaded, else its library's in the record's environment
    assert frame.loc["int8", "runtime_version"] == "2025.1.0"
    assert frame.loc["base", "runtime_version"] == "1.20.1" and frame.loc["base", "torch_version"] == "2.5.1"
    assert frame.loc["base", "runtime"] == "onnxruntime" and pd.isna(frame.loc["base", "runtime_options"])


@pytest.mark.parametrize(
    ("label", "parts"),
    [
        ("torch", ("torch", None)),
        ("openvino(precision=bf16, streams=1)", ("openvino", "precision=bf16, streams=1")),
        ("x()", ("x", None)),
    ],
)
def test_split_runtime_and_back(label: str, parts: tuple[str, str | None]) -> None:
    assert split_runtime(label) == parts
    assert join_runtime(*parts) == label.removesuffix("()")


def test_results_key_reads_what_compares() -> None:
    data = {"fingerprint": "f", "eval_split": "test", "data_yaml": "/anywhere/data.yaml"}
    latency = {"batch": 1, "imgsz": 64}
    key = results_key("detect", "base", data, {"latency": latency})
    # the default scope counts as absent (records from before the setting); a path does not count
    assert key == results_key("detect", "base", data, {"latency": {**latency, "scope": "model"}})
    assert key == results_key(
        "detect", "base", {**data, "data_yaml": "/elsewhere/d.yaml"}, {"latency": latency}
    )
    others = [
        results_key("detect", "base", data, {"latency": {**latency, "scope": "total"}}),
        results_key("detect", "base", {**data, "fingerprint": "g"}, {"latency": latency}),
        results_key("detect", "yolov5s", data, {"latency": latency}),
        results_key("classify", "base", data, {"latency": latency}),
    ]
    assert len({key, *others}) == 5


def test_rank_rows_names_the_group_of_a_row_without_energy() -> None:
    row = {"suite": "s", "suite_config": "c", "device_id": "d", "energy_method": None}
    assert group_name(row) == "s/c/d/none"
    with pytest.raises(ValueError, match="rank rule"):
        rank_rows([], "vibes")
