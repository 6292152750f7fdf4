"""``--executor ray`` on a real local Ray cluster: a head and a second node started with
``ray start`` on this machine, each advertising the ``greenbench`` resource, stopped by their
process ids at the end whatever happens. A small classification suite runs through the CLI:
records name the node that measured them, no two jobs ever share a node at once (the executor's
journal of start and end times says so), a node killed mid-run leads to a retry (or a failed
record with the reason), never a hang, and a killed driver resumes from the store."""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from greenbench.executors.ray import JOURNAL
from greenbench.store import Store
from tests.clitools import assert_one_paragraph_error, run_cli
from tests.raycluster import ENV, RayCluster, free_port

pytestmark = pytest.mark.slow

SUITE = """\
name: ray-study
task: classify
dataset: {synthetic: {classes: 3, images: 60, imgsz: 32, seed: 1}}
defaults: {epochs: EPOCHS, imgsz: 32, batch: 16, lr: 0.005}
measure:
  latency: {warmup: 1}
  protocol: {rounds: 2, blocks: 2, min_calls: 2, group: pairs}
  energy: {idle_s: 0.3, min_window_s: 0.05, meters: [estimate]}
baseline: base
variants:
  base: {model: shufflenet_v2_x0_5, stages: [train]}
  wide: {model: shufflenet_v2_x1_0, stages: [train]}
  child: {from: base, stages: [{train: {epochs: 1, lr: 0.001}}]}
"""


def suite(tmp_path: Path, epochs: int = 1) -> Path:
    path = tmp_path / "ray-study.yaml"
    path.write_text(textwrap.dedent(SUITE).replace("EPOCHS", str(epochs)))
    return path


def cli(cluster: RayCluster, tmp_path: Path, *args: str, epochs: int = 1) -> list[str]:
    return [
        sys.executable,
        "-m",
        "greenbench",
        "run",
        str(suite(tmp_path, epochs)),
        "--executor",
        "ray",
        "--executor-option",
        f"address={cluster.address}",
        "--store",
        str(tmp_path / "gb.db"),
        *args,
    ]


def env(tmp_path: Path) -> dict[str, str]:
    return {**ENV, "HOME": str(tmp_path / "home")}


def records(store: Path) -> dict[str, Any]:
    if not store.exists():
        return {}
    with Store(store) as s:
        return {r.variant: r for r in s.records(suite="ray-study")}


def journal(tmp_path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for f in tmp_path.glob(f"**/{JOURNAL}") for line in f.read_text().splitlines()]


@pytest.fixture
def cluster(tmp_path: Path) -> Any:
    c = RayCluster(tmp_path / "cluster")
    try:
        yield c.start(2)
    finally:
        c.stop()
        assert not c.processes(), "Ray processes outlived the test"


def test_a_suite_runs_on_two_nodes_one_job_per_node_and_a_killed_driver_resumes(
    cluster: RayCluster, tmp_path: Path
) -> None:
    nodes = {str(n["id"]) for n in cluster.nodes()}
    started = time.monotonic()
    out = subprocess.run(
        cli(cluster, tmp_path), env=env(tmp_path), capture_output=True, text=True, timeout=600
    )
    wall_s = time.monotonic() - started
    assert out.returncode == 0, out.stderr[-3000:]
    print(f"ray-study on 2 Ray nodes: {wall_s:.1f} s")
    found = records(tmp_path / "gb.db")
    assert set(found) == {"base", "wide", "child"} and all(r.status == "ok" for r in found.values())
    for r in found.values():
        assert r.device["node_id"] in nodes  # the node that measured it
        assert "Ray's daemons" in json.dumps(r.measurement["idle"]["notes"])
    assert len({r.device_id for r in found.values()}) == 1

    jobs = journal(tmp_path)
    assert {j["node"] for j in jobs} == nodes
    training = [j for j in jobs if j["kind"] == "stages"]
    assert any(  # base and wide trained at the same time, each on a node of its own
        a["node"] != b["node"] and a["start"] < b["end"] and b["start"] < a["end"]
        for a, b in itertools.combinations(training, 2)
    ), training
    for node in nodes:
        spans = sorted((j["start"], j["end"]) for j in jobs if j["node"] == node)
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert start >= end - 0.05, f"two jobs overlapped on node {node[:12]}"
    assert {j["kind"] for j in jobs} >= {"idle", "stages", "evaluate", "round"}

    # a killed driver: what it stored stays, and the next run resumes from it
    store2 = tmp_path / "gb2.db"
    args = cli(cluster, tmp_path)
    args[args.index("--store") + 1] = str(store2)
    driver = subprocess.Popen(args, env=env(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not records(store2) and driver.poll() is None:
        assert time.monotonic() < deadline, "no record was stored"
        time.sleep(0.5)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    kept = {v for v, r in records(store2).items() if r.status == "ok"}
    assert kept
    again = subprocess.run(args, env=env(tmp_path), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert all(f"{v}: already stored ok" in again.stderr for v in kept)
    assert {v for v, r in records(store2).items() if r.status == "ok"} == {"base", "wide", "child"}


def test_a_node_lost_mid_run_is_retried_never_a_hang(cluster: RayCluster, tmp_path: Path) -> None:
    second = cluster.node_ports[1]
    victim = cluster.node_id(second)
    args = cli(cluster, tmp_path, epochs=100)  # long enough to be killed mid-training
    driver = subprocess.Popen(
        args, env=env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 300
    while not any(f.read_text() == victim for f in tmp_path.glob("**/*-stages.node")):
        assert driver.poll() is None and time.monotonic() < deadline, (
            "no training job reached the second node"
        )
        time.sleep(0.2)
    cluster.kill_node(second)
    try:
        _, stderr = driver.communicate(timeout=480)
    except subprocess.TimeoutExpired:
        driver.kill()
        raise AssertionError("the run hung after a node was lost") from None
    assert driver.returncode in (0, 1), stderr[-3000:]
    assert "its Ray node or worker was lost (" in stderr and "retrying on another node" in stderr, stderr[
        -3000:
    ]
    found = records(tmp_path / "gb.db")
    assert set(found) == {"base", "wide", "child"}
    for r in found.values():
        assert r.status == "ok" or "lost" in (r.error or ""), r.error
    retried = [j for j in journal(tmp_path) if j["kind"] == "stages" and j["node"] != victim]
    assert retried, "the lost training job never ran again on the surviving node"


def test_an_unreachable_cluster_is_one_paragraph_within_30_s(tmp_path: Path) -> None:
    address = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    out = run_cli(
        "run",
        str(suite(tmp_path)),
        "--executor",
        "ray",
        "--address",
        address,
        "--store",
        str(tmp_path / "gb.db"),
        cwd=tmp_path,
        env={"HOME": str(tmp_path / "home")},
    )
    assert time.monotonic() - started < 30
    assert out.returncode == 2
    assert_one_paragraph_error(out.stderr, address, "ray start --head")
