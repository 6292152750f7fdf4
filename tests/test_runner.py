"""The runner's stage plan: cache keys shared along the DAG and sensitive to upstream changes."""

from __future__ import annotations

from pathlib import Path

from greenbench.runner import stage_plan
from greenbench.suite import load_suite


def plans(suite_file: Path, tmp_path: Path) -> dict[str, list[dict[str, object]]]:
    data = tmp_path / "data.yaml"
    data.write_text("nc: 1\n")
    suite = load_suite(suite_file)
    return {v: stage_plan(suite, v, tmp_path / "work", data) for v in suite.order()}


def test_child_reuses_parent_stage_keys(micro_suite: Path, tmp_path: Path) -> None:
    p = plans(micro_suite, tmp_path)
    assert [s["variant"] for s in p["child"]] == ["base", "child"]
    assert p["child"][0]["key"] == p["base"][0]["key"]  # the parent is trained once
    assert p["child"][0]["out_dir"] == p["base"][0]["out_dir"]
    assert p["child"][1]["key"] != p["base"][0]["key"]


def test_upstream_change_changes_downstream_keys(micro_suite: Path, tmp_path: Path) -> None:
    before = plans(micro_suite, tmp_path)
    micro_suite.write_text(micro_suite.read_text().replace("lr0: 0.01,", "lr0: 0.02,"))
    after = plans(micro_suite, tmp_path)
    assert after["base"][0]["key"] != before["base"][0]["key"]
    assert after["child"][1]["key"] != before["child"][1]["key"]


def test_child_param_change_leaves_parent_alone(micro_suite: Path, tmp_path: Path) -> None:
    before = plans(micro_suite, tmp_path)
    micro_suite.write_text(micro_suite.read_text().replace("lr0: 0.001", "lr0: 0.003"))
    after = plans(micro_suite, tmp_path)
    assert after["base"] == before["base"]
    assert after["child"][1]["key"] != before["child"][1]["key"]
