"""End to end: a task defined outside greenbench (``tests/plugins/site/greenbench_toy_task.py``),
registered only through its entry point, runs through the CLI on a suite whose ``task:`` names
it: its own dataset format and synthetic data, stages (train, export, quantize), the
interleaved measurement on torch and ONNX Runtime, records, the table and a leaderboard row
ranked by its own headline metric. Nothing under ``greenbench/`` knows it."""

from __future__ import annotations

import csv
import os
import textwrap
from pathlib import Path

import pytest

from greenbench.store import Store
from tests.clitools import assert_one_paragraph_error, run_cli

SITE = Path(__file__).parents[1] / "plugins" / "site"

TOY_SUITE = """\
name: toy-study
task: toy
dataset: {DATASET}
defaults: {epochs: 5, imgsz: 32, lr: 0.02}
measure:
  latency: {warmup: 1, scope: both}  # the model alone, and per sample with pre- and postprocessing
  protocol: {rounds: 2, blocks: 2, min_calls: 2}
  energy: {idle_s: 0.2, min_window_s: 0.05, meters: [estimate]}
baseline: base
variants:
  base: {model: toy-net, stages: [train]}
  wide: {model: toy-net-wide, stages: [train]}
  onnx: {from: base, stages: [export], table: runtimes}
  int8: {from: onnx, stages: [{quantize: {calibration_images: 8}}], table: runtimes}
  pruned: {from: base, stages: [{prune: {ratio: 0.5, importance: l1}}, train]}
"""


def with_plugin(*args: str, cwd: Path) -> object:
    """The real CLI with the toy task's folder on the path, as an installed package."""
    env = {
        "HOME": str(cwd / "home"),
        "PYTHONPATH": os.pathsep.join([str(SITE), os.environ.get("PYTHONPATH", "")]),
    }
    return run_cli(*args, cwd=cwd, env=env)


def toy_suite(
    folder: Path, dataset: str = "{synthetic: {classes: 3, images: 200, imgsz: 32, seed: 1}}"
) -> Path:
    path = folder / "toy.yaml"
    path.write_text(textwrap.dedent(TOY_SUITE).replace("{DATASET}", dataset))
    return path


def test_without_the_plugin_the_task_is_unknown_and_named(tmp_path: Path) -> None:
    out = run_cli("validate", str(toy_suite(tmp_path)), cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert_one_paragraph_error(out.stderr, "task", "installed tasks: classify, detect", "greenbench.tasks")


def test_the_plugin_checks_its_own_dataset_and_arguments(tmp_path: Path) -> None:
    made = with_plugin(
        "data", "synth", "--task", "toy", "--out", str(tmp_path / "d"), "--imgsz", "32", cwd=tmp_path
    )
    assert made.returncode == 0, made.stderr  # type: ignore[attr-defined]
    data = tmp_path / "d" / "data.npz"
    assert data.is_file()
    suite = toy_suite(tmp_path, f"{{path: {data}, names: [class0, class1, class2]}}")
    ok = with_plugin("validate", str(suite), cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr + ok.stdout  # type: ignore[attr-defined]
    wrong = toy_suite(tmp_path / "d", f"{{path: {data}, names: [a, b, c]}}")
    bad = with_plugin("validate", str(wrong), cwd=tmp_path)
    assert bad.returncode == 2 and "dataset.names" in bad.stderr  # type: ignore[attr-defined]
    suite.write_text(suite.read_text().replace("lr: 0.02", "lr0: 0.02"))
    refused = with_plugin("validate", str(suite), cwd=tmp_path)
    assert refused.returncode == 2  # type: ignore[attr-defined]
    assert "defaults.lr0" in refused.stderr and "unknown toy training argument" in refused.stderr  # type: ignore[attr-defined]
    suite.write_text(suite.read_text().replace("stages: [train]}", "stages: [sparse_train]}", 1))
    detect_only = with_plugin("validate", str(suite), cwd=tmp_path)
    assert "unknown stage 'sparse_train'" in detect_only.stderr  # type: ignore[attr-defined]


@pytest.mark.slow
def test_a_task_from_outside_runs_end_to_end(tmp_path: Path) -> None:
    suite, store = toy_suite(tmp_path), tmp_path / "gb.db"
    out = with_plugin(
        "run", str(suite), "--store", str(store), "--workdir", str(tmp_path / "work"), cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr + out.stdout  # type: ignore[attr-defined]
    with Store(store, readonly=True) as s:
        records = {r.variant: r for r in s.records()}
    assert set(records) == {"base", "wide", "onnx", "int8", "pruned"}
    for name, r in records.items():
        assert r.status == "ok" and r.task == "toy", (name, r.error)
        top1 = r.metrics["toy_top1"]["value"]
        assert 0.0 <= top1 <= 1.0 and r.metrics["latency_ms"]["value"] > 0
        assert r.metrics["params"]["value"] > 0
    # the runtimes that measured them: torch for checkpoints, onnxruntime for the exports
    assert records["base"].runtime.startswith("torch") and records["onnx"].runtime.startswith("onnxruntime")
    assert records["wide"].metrics["params"]["value"] > records["base"].metrics["params"]["value"]
    # the generic prune stage on the toy's own model: fewer parameters, the final layer kept
    assert records["pruned"].metrics["params"]["value"] < records["base"].metrics["params"]["value"]
    prune_info = records["pruned"].stages[0]["info"]
    assert (
        prune_info["ignored"] == "the final linear layer"
        and prune_info["channels_after"] < prune_info["channels_before"]
    )
    artifacts = {n: r.measurement["artifact"] for n, r in records.items()}
    assert artifacts["int8"]["kind"] == artifacts["onnx"]["kind"] == "onnx"
    assert artifacts["int8"]["path"] != artifacts["onnx"]["path"]  # the quantized graph is its own file
    assert [s["name"] for s in records["int8"].stages] == ["quantize"]
    assert "latency_ms" in records["onnx"].deltas  # paired with the baseline, measured interleaved
    # scope both: a second arm per model, timed per sample from its file in the same rounds
    for name, r in records.items():
        total, model = r.metrics["latency_total_ms"], r.metrics["latency_ms"]
        assert total["value"] > 0 and total["ci_low"] <= total["value"] <= total["ci_high"], name
        assert r.measurement["total_runtime"]["scope"] == "total" and r.measurement["total_blocks"]
        assert all(b["arm"] == f"{name}@total" for b in r.measurement["total_blocks"])
        assert all(b["arm"] == name for b in r.measurement["blocks"])  # exports read these alone
        assert model["value"] > 0 and "scope" not in r.measurement["runtime"]
    assert {"latency_ms", "latency_total_ms"} <= set(records["onnx"].deltas)
    assert records["int8"].measurement["parent_deltas"]["latency_total_ms"]["parent"] == "onnx"
    # three classes of well-separated blobs: trained models beat chance (1/3) by far
    assert records["base"].metrics["toy_top1"]["value"] > 0.6

    table = with_plugin("table", str(suite), "--store", str(store), cwd=tmp_path)
    assert table.returncode == 0, table.stderr  # type: ignore[attr-defined]
    assert "toy_top1" in table.stdout and "int8" in table.stdout  # type: ignore[attr-defined]
    assert "latency_total_ms" in table.stdout  # type: ignore[attr-defined]

    board = tmp_path / "board.csv"
    lb = with_plugin("leaderboard", "--store", str(store), "-o", str(board), cwd=tmp_path)
    assert lb.returncode == 0, lb.stderr  # type: ignore[attr-defined]
    rows = list(csv.DictReader(board.open(encoding="utf-8-sig")))
    assert {r["variant"] for r in rows} == {"base", "wide", "onnx", "int8", "pruned"}
    assert all(r["accuracy_metric"] == "toy_top1" and 0 <= float(r["accuracy"]) <= 1 for r in rows)
    assert all(r["rank"] for r in rows)


def test_gate_loads_a_bare_file_with_the_task_named(tmp_path: Path) -> None:
    """A side given as a model file is loaded by ``--task`` (default detect); a task that is not
    installed is a usage error before anything is measured."""
    out = with_plugin("gate", "a.onnx", "a.onnx", "--task", "nosuch", cwd=tmp_path)
    assert out.returncode == 2  # type: ignore[attr-defined]
    assert_one_paragraph_error(out.stderr, "--task 'nosuch'", "toy")  # type: ignore[attr-defined]
