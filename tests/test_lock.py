"""Locks and disclosure: one run per work folder and per store; other runs on the machine are
named in the records of a run that measured beside them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from greenbench.report.tables import build_table
from greenbench.run.lock import ActiveRun, WorkdirBusy, WorkdirLock, other_runs, runs_dir
from tests.factories import make_record

HOLD = """
import sys, time
from pathlib import Path
from greenbench.run.lock import ActiveRun
with ActiveRun(sys.argv[1], Path(sys.argv[2])):
    print("ready", flush=True)
    time.sleep(60)
"""


@pytest.fixture
def private_runs_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GREENBENCH_RUNS_DIR", str(tmp_path / "runs"))
    return runs_dir()


def test_another_live_run_is_seen_and_a_dead_one_forgotten(private_runs_dir: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, "other-suite", str(tmp_path)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        with ActiveRun("mine", tmp_path):  # our own announcement is never reported to us
            (seen,) = other_runs()
        assert seen == {"pid": str(proc.pid), "suite": "other-suite", "workdir": str(tmp_path.resolve())}
    finally:
        proc.kill()
        proc.wait()
    assert other_runs() == []  # killed without cleaning up: its lock went with it, its file too
    assert list(private_runs_dir.iterdir()) == []


def test_hostile_files_in_the_runs_folder_are_harmless(private_runs_dir: Path) -> None:
    private_runs_dir.mkdir(parents=True)
    (private_runs_dir / "1-x.json").write_text("\x1b[2J not json")
    (private_runs_dir / "2-y.json").symlink_to("/etc/passwd")
    assert other_runs() == []


def test_a_second_run_on_the_same_store_is_refused(tmp_path: Path) -> None:
    store = tmp_path / "gb.db"
    first = WorkdirLock(tmp_path, "a", name=f".{store.name}.lock", what=f"the results store {store}",
                        fix="pass --store with another file")  # fmt: skip
    with first, pytest.raises(WorkdirBusy) as err:
        WorkdirLock(tmp_path, "b", name=f".{store.name}.lock", what=f"the results store {store}",
                    fix="pass --store with another file").acquire()  # fmt: skip
    assert f"using the results store {store}; wait for it, or pass --store" in str(err.value)
    assert json.loads((tmp_path / ".gb.db.lock").read_text())["suite"] == "a"


def test_records_say_when_other_runs_were_active() -> None:
    r = make_record(
        variant="base", metrics={}, measurement={"concurrent_runs": [{"pid": "7", "suite": "other"}]}
    )
    notes = build_table([r], "base", "s").notes
    assert any("other greenbench runs were active on this machine (pid 7 (suite other))" in n for n in notes)
