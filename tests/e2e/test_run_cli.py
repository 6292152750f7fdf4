"""End to end: the real CLI, real ultralytics training, real SQLite, on a micro suite."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from greenbench.store import SCHEMA_VERSION, Store
from tests.clitools import run_cli

pytestmark = pytest.mark.slow


NETGUARD = Path(__file__).parent / "netguard"


def greenbench(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The real CLI in a subprocess: HOME in tmp, and every process refused (and logged) any
    non-local name lookup or connection by ``netguard/sitecustomize.py``."""
    full = {
        "HOME": str(cwd / "home"),  # anything written to HOME lands in tmp
        "PYTHONPATH": os.pathsep.join([str(NETGUARD), os.environ.get("PYTHONPATH", "")]),
        "GREENBENCH_NETLOG": str(cwd / "network-attempts.log"),
    }
    return run_cli(*args, cwd=cwd, env={**full, **(env or {})})


def assert_no_network(cwd: Path) -> None:
    log = cwd / "network-attempts.log"
    assert not log.exists(), log.read_text()


def export_onnx(tmp_path: Path, imgsz: int = 64) -> Path:
    """A real ultralytics ONNX export of an untrained yolov5n, made in a guarded subprocess."""
    code = (
        "import sys; from pathlib import Path\n"
        "from tests.onnx_model import export_tiny_yolo, offline_ultralytics\n"
        "folder = Path(sys.argv[1])\n"
        "with offline_ultralytics(folder / 'work'):\n"
        "    print(export_tiny_yolo(folder / 'onnx', imgsz=int(sys.argv[2])).onnx)\n"
    )
    env = {**os.environ, "HOME": str(tmp_path / "home"), "PYTHONPATH": str(Path(__file__).parents[2])}
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path), str(imgsz)], capture_output=True, text=True, env=env
    )
    assert out.returncode == 0, out.stderr
    return Path(out.stdout.strip().splitlines()[-1])


def test_run_stores_records_prints_table_and_resumes(micro_suite: Path, tmp_path: Path) -> None:
    onnx = export_onnx(tmp_path)
    micro_suite.write_text(micro_suite.read_text() + f"  exported: {{model: {onnx}}}\n")
    store = tmp_path / "results" / "gb.db"
    first = greenbench("run", str(micro_suite), "--store", str(store), "--format", "md", cwd=tmp_path)
    assert first.returncode == 0, first.stderr + first.stdout

    with Store(store) as s:
        records = s.records(suite="micro")
    assert [r.variant for r in records] == ["base", "child", "exported"]
    assert all(r.status == "ok" and r.schema_version == SCHEMA_VERSION for r in records)
    base, child, exported = records
    assert child.parent == "base" and base.parent is None
    assert base.run_id == child.run_id == exported.run_id and base.device_id == child.device_id
    for r in records:
        m = r.metrics
        for name in ("precision", "recall", "map50", "map50_95"):
            assert 0.0 <= m[name]["value"] <= 1.0
        assert m["params"]["value"] > 100_000 and m["params"]["unit"] == "count"
        assert m["gflops"]["value"] == pytest.approx(2 * m["gmacs"]["value"])
        assert m["size_mb"]["value"] > 0 and m["peak_rss_mb"]["value"] > 50
        lat = m["latency_ms"]
        assert lat["ci_low"] <= lat["value"] <= lat["ci_high"] and lat["threads"] == 1
        assert lat["rounds"] == 2 and lat["blocks"] == 2 * 3  # micro suite: 2 rounds × 3 blocks
        blocks = r.measurement["blocks"]
        assert len(blocks) == 6 and {b["round"] for b in blocks} == {0, 1}
        assert all(b["arm"] == r.variant and b["calls"] >= 2 and b["energy_per_image_j"] > 0 for b in blocks)
        assert r.measurement["protocol"]["arms"] == ["base", "child", "exported"]  # measured together
        for name in ("energy_per_image_j", "energy_per_image_net_j"):
            e = m[name]
            assert e["method"] == "estimated" and e["ci_low"] <= e["value"] <= e["ci_high"]
        assert m["energy_per_image_net_j"]["value"] <= m["energy_per_image_j"]["value"]
    for r in (base, child):
        assert r.runtime == "torch" and r.stages[0]["name"] == "train" and r.stages[0]["energy_j"] > 0
        assert r.metrics["train_energy_j"]["method"] == "estimated" and r.metrics["co2_train_g"]["value"] > 0
        assert Path(r.stages[0]["checkpoint"]).is_file()
    # the child trained on from the parent's checkpoint, the same architecture
    assert child.metrics["params"]["value"] == base.metrics["params"]["value"]
    assert child.stages[0]["params"] == {"epochs": 1, "lr0": 0.001}
    # paired with the baseline measured in the same processes
    assert base.deltas == {}
    for r in (child, exported):
        d = r.deltas["latency_ms"]
        assert d["paired"] and d["baseline_key"] == base.variant_hash and d["pairs"] == 6
        assert d["delta_ci_low_pct"] <= d["delta_pct"] <= d["delta_ci_high_pct"]
    # the ONNX file went through ONNX Runtime, its size and counts from the graph
    assert exported.runtime == "onnxruntime" and exported.stages == []
    desc = exported.measurement["runtime"]
    assert desc["runtime"] == "onnxruntime" and desc["session_options"]["intra_op_num_threads"] == 1
    assert exported.metrics["size_mb"]["value"] == pytest.approx(onnx.stat().st_size / 1e6)
    assert "ONNX graph" in exported.metrics["gmacs"]["counted_by"]

    table = first.stdout
    for header in ("P", "mAP50", "params_M", "size_MB", "GFLOPs", "latency_ms", "E/img_mJ [estimated]",
                   "E_train_kJ [estimated]", "CO2_train_g [estimated]"):  # fmt: skip
        assert header in table
    # a net column is shown, or left out with a note where it equals gross in every row (the
    # CPU-time estimate's idle power is 0)
    assert "E/img_net_mJ [estimated]" in table or "E/img_net_mJ, E_train_net_kJ left out: equal" in table
    comparison = table.split("Training stages")[0]
    rows = {line.split("|")[1].strip(): line for line in comparison.splitlines() if line.startswith("| ")}
    assert {"base (baseline)", "child", "exported"} <= set(rows)
    assert re.search(r"\[[-+]?\d+\.\d+, [-+]?\d+\.\d+\]", rows["child"])  # a CI on the latency
    assert (
        "GFLOPs = 2 × GMACs" in table and "energy estimated" in table and "t-interval over processes" in table
    )

    # nothing written outside tmp_path's folders we chose, nothing tried to reach the network
    assert not (tmp_path / "home" / ".config" / "Ultralytics").exists()
    assert_no_network(tmp_path)

    again = greenbench("run", str(micro_suite), "--store", str(store), cwd=tmp_path, env={"COLUMNS": "80"})
    assert again.returncode == 0, again.stderr
    assert "already stored ok" in again.stderr
    # by default the run ends with the terminal table, fitted to the width: one line per variant
    assert max(len(line) for line in again.stdout.splitlines()) <= 80
    rows = again.stdout.split("\n\n")[0].splitlines()[3:]
    assert [row[2:].split()[0] for row in rows] == ["base", "child", "exported"] and rows[0][0] == "◆"
    with Store(store) as s:
        assert s.count() == 3  # resumed: nothing measured again

    # the table reads the store alone: the data folder may be gone
    shutil.rmtree(tmp_path / "results" / "work" / "datasets")
    csv = greenbench("table", str(micro_suite), "--store", str(store), "--format", "csv", cwd=tmp_path)
    assert csv.returncode == 0, csv.stderr
    lines = csv.stdout.strip().splitlines()
    # the runtime column appears because one row (exported) runs on onnxruntime
    assert len(lines) == 4 and lines[0].startswith("variant,parent,delta_vs,status,runtime,P,P_delta_pp")
    assert "E/img_net_mJ" in lines[0].split(",")  # the CSV keeps every column


def test_failed_variant_is_stored_and_suite_goes_on(micro_suite: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("nc: 2\nbackbone:\n  - [-1, 1, NoSuchModule, [16]]\nhead: []\n")
    text = micro_suite.read_text().replace(
        "  child:\n", f"  broken: {{model: {broken}, stages: [train]}}\n  child:\n"
    )
    text = text.replace("energy: {", "energy: {codecarbon: true, ")  # the cross-check rides along
    suite = tmp_path / "with_failure.yaml"
    suite.write_text(text.replace("name: micro", "name: microfail"))
    store = tmp_path / "gb.db"
    out = greenbench("run", str(suite), "--store", str(store), "--no-idle", cwd=tmp_path)
    assert out.returncode == 1, out.stderr
    with Store(store) as s:
        by_variant = {r.variant: r for r in s.records(suite="microfail")}
    assert by_variant["broken"].status == "failed"
    assert "NoSuchModule" in (by_variant["broken"].error or "")
    assert by_variant["base"].status == "ok" and by_variant["child"].status == "ok"
    assert by_variant["child"].deltas["latency_ms"]["paired"]  # the failure did not unpair the others
    assert by_variant["base"].measurement["idle"]["skipped"] is True
    assert "Traceback" not in out.stderr and "broken FAILED" in out.stdout
    cc = by_variant["base"].metrics["codecarbon_train_energy_j"]
    assert cc["value"] >= 0 and cc["method"] == "codecarbon" and Path(cc["csv"]).is_file()
    assert by_variant["base"].metrics["train_energy_j"]["method"] == "estimated"  # ours, not theirs
    json.dumps([r.to_dict() for r in by_variant.values()])  # records stay JSON-serialisable
    assert_no_network(tmp_path)  # CodeCarbon's tracker included


def test_user_dataset_with_download_key_is_used_offline_and_left_untouched(
    micro_suite: Path, tmp_path: Path
) -> None:
    """A data.yaml laid out like ultralytics' own (relative root, a download URL) must train on
    the local copy: no download attempt, no cache files written beside the user's data."""
    made = greenbench("data", "synth", "--out", str(tmp_path / "ds" / "shapes"), "--classes", "2",
                      "--images", "20", "--imgsz", "64", cwd=tmp_path)  # fmt: skip
    assert made.returncode == 0, made.stderr
    generated = (tmp_path / "ds" / "shapes" / "data.yaml").read_text().splitlines()
    lines = ["path: shapes" if line.startswith("path:") else line for line in generated]
    (tmp_path / "ds" / "shapes.yaml").write_text(
        "\n".join([*lines, "download: https://example.com/x.zip", ""])
    )
    text = micro_suite.read_text().replace(
        "  synthetic: {classes: 2, images: 20, imgsz: 64, seed: 1}", "  path: ds/shapes.yaml"
    )
    suite = tmp_path / "userdata.yaml"
    suite.write_text(text.split("  child:")[0].replace("name: micro", "name: userdata"))
    out = greenbench("run", str(suite), "--store", str(tmp_path / "gb.db"), "--no-idle", cwd=tmp_path)
    assert out.returncode == 0, out.stderr + out.stdout
    assert_no_network(tmp_path)
    assert not list((tmp_path / "ds").rglob("*.cache"))  # ultralytics' label caches went to the work folder
    with Store(tmp_path / "gb.db") as s:
        (record,) = s.records(suite="userdata")
    assert record.measurement["dataset"]["eval_split"] == "test"
    assert record.metrics["map50"]["split"] == "test"


def test_sigterm_stops_the_workers_and_keeps_the_store(micro_suite: Path, tmp_path: Path) -> None:
    import signal
    import time

    import psutil

    store = tmp_path / "gb.db"
    env = {**os.environ, "HOME": str(tmp_path / "home")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "greenbench", "run", str(micro_suite), "--store", str(store), "--no-idle"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    workers: list[psutil.Process] = []
    while not workers and time.monotonic() < deadline:
        time.sleep(0.2)
        workers = psutil.Process(proc.pid).children(recursive=True)
    assert workers, "no worker process started"
    time.sleep(1.0)  # let it get into training
    proc.send_signal(signal.SIGTERM)  # the parent only, as a CI cancel or `kill` would
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "records stored so far are kept" in err
    _gone, alive = psutil.wait_procs(workers, timeout=15)
    assert not alive, f"workers left running: {alive}"
    from greenbench.run.worker import STAGE_MARKER

    # the training was stopped, not waited for: its stage never finished
    assert not list((tmp_path / "work").glob(f"artifacts/*/{STAGE_MARKER}"))
    with Store(store) as s:
        assert s.count() == 0  # nothing half-written; the store opens
