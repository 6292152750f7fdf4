"""Two real runs at once on one work folder: the second stops at once, the first finishes alone."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from greenbench.store import Store
from tests.clitools import assert_one_paragraph_error
from tests.hostile.hostile_tools import NETGUARD, gb

pytestmark = pytest.mark.slow


def test_a_second_run_stops_at_once_and_the_first_finishes_alone(micro_suite: Path, tmp_path: Path) -> None:
    store = tmp_path / "results" / "gb.db"
    workdir = tmp_path / "results" / "work"  # the default: beside the store
    env = {
        **os.environ,
        "HOME": str(tmp_path / "home"),
        "PYTHONPATH": os.pathsep.join([str(NETGUARD), str(Path(__file__).parents[2])]),
        "GREENBENCH_NETLOG": str(tmp_path / "network-attempts.log"),
    }
    log = (tmp_path / "first.out").open("w")
    first = subprocess.Popen(
        [sys.executable, "-m", "greenbench", "run", str(micro_suite), "--store", str(store)],
        cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        lock, deadline = workdir / ".lock", time.monotonic() + 120
        while not (lock.exists() and lock.read_text().strip()):
            assert first.poll() is None, (tmp_path / "first.out").read_text()
            assert time.monotonic() < deadline
            time.sleep(0.1)

        same = gb("run", str(micro_suite), "--store", str(store), cwd=tmp_path)
        assert same.returncode == 1
        assert_one_paragraph_error(
            same.stderr, f"another greenbench run (pid {first.pid}, started", "suite micro", str(workdir)
        )
        other = tmp_path / "other.yaml"  # another suite sharing the work folder
        other.write_text(micro_suite.read_text().replace("name: micro", "name: other"))
        shared = gb(
            "run", str(other), "--store", str(tmp_path / "other.db"), "--workdir", str(workdir), cwd=tmp_path
        )
        assert shared.returncode == 1
        assert_one_paragraph_error(shared.stderr, f"pid {first.pid}", "suite micro", "--workdir")
        assert not (tmp_path / "other.db").exists()

        reader = gb("table", str(micro_suite), "--store", str(store), cwd=tmp_path)  # while it writes
        assert "Traceback" not in reader.stderr
        # the store may not exist yet (the lock comes first), or hold no record yet: a clear error
        early = ("holds no record", "no results store")
        assert reader.returncode == 0 or any(e in reader.stderr for e in early), reader.stderr
        assert first.wait(timeout=900) == 0, (tmp_path / "first.out").read_text()
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
        log.close()
    with Store(store, readonly=True) as s:
        records = s.records()
    keys = [(r.suite, r.variant_hash, r.device_id) for r in records if r.status == "ok"]
    assert len(keys) == len(set(keys)) == 2  # never two ok records of one key
    assert not (tmp_path / "network-attempts.log").exists()
