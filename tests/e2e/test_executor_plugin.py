"""End to end: an executor defined outside greenbench (``tests/plugins/site``), registered only
through its entry point, selected with ``--executor`` on ``gate`` and ``run``; an unknown one is a
usage error before anything runs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from greenbench.measure.workload import conv_stack
from greenbench.store import Store
from tests.clitools import assert_one_paragraph_error, run_cli

SITE = Path(__file__).parents[1] / "plugins" / "site"


def with_plugin(*args: str, cwd: Path) -> object:
    """The real CLI with the toy executor's folder on the path, as an installed package."""
    env = {
        "HOME": str(cwd / "home"),
        "PYTHONPATH": os.pathsep.join([str(SITE), os.environ.get("PYTHONPATH", "")]),
    }
    return run_cli(*args, cwd=cwd, env=env)


@pytest.mark.parametrize("verb", ["run", "gate"])
def test_an_unknown_executor_is_a_usage_error(verb: str, tmp_path: Path) -> None:
    sides = ["suite.yaml"] if verb == "run" else ["a.onnx", "b.onnx"]
    out = run_cli(verb, *sides, "--executor", "rayy", cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert_one_paragraph_error(out.stderr, "--executor 'rayy'", "installed: local", "greenbench.executors")


@pytest.mark.parametrize("verb", ["run", "gate"])
def test_executor_options_reach_the_executor_which_refuses_what_it_does_not_take(
    verb: str, tmp_path: Path
) -> None:
    model = conv_stack(tmp_path / "m.onnx", layers=2, imgsz=32)
    suite = tmp_path / "s.yaml"
    suite.write_text(
        "name: s\ntask: detect\ndataset: {synthetic: {}}\nbaseline: a\nvariants:\n  a: {model: m.onnx}\n"
    )
    sides = [str(suite)] if verb == "run" else [str(model), str(model)]
    common = ("--workdir", str(tmp_path / "w")) if verb == "gate" else ("--store", str(tmp_path / "gb.db"))
    bad = run_cli(verb, *sides, *common, "--executor-option", "address", cwd=tmp_path)
    assert bad.returncode == 2, bad.stderr
    assert_one_paragraph_error(bad.stderr, "--executor-option 'address'", "KEY=VALUE")
    refused = run_cli(verb, *sides, *common, "--executor-option", "address=10.0.0.1:6379", cwd=tmp_path)
    assert refused.returncode == 2, refused.stderr
    assert_one_paragraph_error(refused.stderr, "executor 'local' takes no --executor-option", "address")


@pytest.mark.slow
def test_gate_runs_on_an_executor_from_outside(tmp_path: Path) -> None:
    model = conv_stack(tmp_path / "base.onnx", layers=4, imgsz=64)
    out = with_plugin(
        "gate", str(model), str(model), "--executor", "toy", "--rounds", "2", "--blocks", "4",
        "--block-s", "0.05", "--warmup", "2", "--max-rounds", "2", "--fail", "latency:50%",
        "--inconclusive-passes", "--json", "--workdir", str(tmp_path / "work"), cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr + out.stdout  # type: ignore[attr-defined]
    doc = json.loads(out.stdout)  # type: ignore[attr-defined]
    assert doc["device"]["device_id"].startswith("toy-") and doc["device"]["hostname"] == "toy-node"
    assert doc["rounds"] == 2 and doc["outcome"] in ("pass", "inconclusive")


@pytest.mark.slow
def test_run_records_name_the_device_the_executor_reports(micro_suite: Path, tmp_path: Path) -> None:
    store = tmp_path / "gb.db"
    out = with_plugin("run", str(micro_suite), "--store", str(store), "--executor", "toy", cwd=tmp_path)
    assert out.returncode == 0, out.stderr + out.stdout  # type: ignore[attr-defined]
    with Store(store, readonly=True) as s:
        records = s.records()
    assert records and all(r.status == "ok" and r.device_id.startswith("toy-") for r in records)
    table = with_plugin(
        "table", str(micro_suite), "--store", str(store), "--device", records[0].device_id, cwd=tmp_path
    )
    assert table.returncode == 0 and "base" in table.stdout  # type: ignore[attr-defined]
