"""The executor registry: the built-in ``local``, executors from the ``greenbench.executors``
entry-point group (the toy one in ``tests/plugins/site`` is found as an installed package would
be), and clear errors for a name that is not there or cannot load."""

from __future__ import annotations

from pathlib import Path

import pytest

from greenbench.executors import ENTRY_POINT_GROUP, UnknownExecutor, available, factory
from greenbench.executors.local import LocalExecutor
from greenbench.run.jobs import IdleJob

SITE = Path(__file__).parent / "plugins" / "site"


def test_local_is_built_in() -> None:
    assert available()["local"] == "greenbench.executors.local:LocalExecutor"
    assert factory("local") is LocalExecutor


def test_an_installed_executor_is_found_by_its_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "toy" not in available()
    monkeypatch.syspath_prepend(str(SITE))  # as if pip had installed greenbench-toy-executor
    assert available()["toy"] == "greenbench_toy_executor:ToyExecutor"
    toy = factory("toy")
    assert toy.__name__ == "ToyExecutor" and issubclass(toy, LocalExecutor)
    executor = toy(logdir=Path("logs"), device={"device_id": "abc"}, idle=IdleJob.skip("test"),
                   progress=print, cwd=None, stall_s=None)  # fmt: skip
    assert executor.device["device_id"] == "toy-abc" and executor.name == "toy"


def test_unknown_and_broken_executors_are_usage_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(UnknownExecutor) as e:
        factory("locl")
    text = str(e.value)
    assert "Did you mean 'local'?" in text and ENTRY_POINT_GROUP in text and e.value.exit_code == 2
    broken = tmp_path / "broken-0.1.dist-info"
    broken.mkdir()
    (broken / "METADATA").write_text("Metadata-Version: 2.1\nName: broken\nVersion: 0.1\n")
    (broken / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\nbroken = no_such_module_here:Thing\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(UnknownExecutor, match=r"cannot be loaded .*ModuleNotFoundError"):
        factory("broken")


def test_the_executor_measures_its_machines_idle_baseline_as_a_job(tmp_path: Path) -> None:
    """The idle baseline is a job like any other: a fresh worker process on the executor's
    machine reads the meters; a skipped one starts nothing."""
    from greenbench.run.jobs import MeterSpec

    energy = MeterSpec(meters=("estimate",), watts_per_core=4.0)
    job = IdleJob("idle", "detect", str(tmp_path), "cpu", energy=energy, seconds=0.3, context="s.yaml")
    lines: list[str] = []
    executor = LocalExecutor(tmp_path / "logs", {"device_id": "d"}, job, progress=lines.append)
    idle = executor.where().idle
    assert not idle.skipped and idle.duration_s >= 0.3 and idle.method == "estimated"
    assert idle.power_w and all(w >= 0 for w in idle.power_w.values())
    assert "idle baseline: 0.3 s" in lines  # the worker's own progress line, relayed
    assert any(p.name.endswith("-idle.log") for p in (tmp_path / "logs").iterdir())
    assert executor.where() is executor.where()  # measured once

    quiet = LocalExecutor(tmp_path / "none", {"device_id": "d"}, IdleJob.skip("not wanted"))
    assert quiet.where().idle.skipped and quiet.where().idle.reason == "not wanted"
    assert not (tmp_path / "none").exists()  # no process was started


def test_meters_the_machine_lacks_fail_the_idle_job_naming_the_suite(tmp_path: Path) -> None:
    from greenbench.executors.base import JobFailed
    from greenbench.run.jobs import MeterSpec

    energy = MeterSpec(meters=("rapl",), watts_per_core=4.0, powercap_root=str(tmp_path / "no-powercap"))
    job = IdleJob("idle", "detect", str(tmp_path), "cpu", energy=energy, seconds=0.1, context="suite.yaml")
    with pytest.raises(JobFailed, match=r"measure.energy.meters in suite.yaml: .*rapl"):
        LocalExecutor(tmp_path / "logs", {"device_id": "d"}, job).where()


def test_the_idle_job_may_be_silent_for_its_whole_window(tmp_path: Path) -> None:
    """The stall check gives the idle job its window on top of the limit (it is silent by
    design); every other job keeps the plain limit."""
    from greenbench.run.jobs import MeterSpec

    energy = MeterSpec(meters=("estimate",), watts_per_core=4.0)
    job = IdleJob("idle", "detect", str(tmp_path), "cpu", energy=energy, seconds=1.5)
    executor = LocalExecutor(tmp_path / "logs", {"device_id": "d"}, job, stall_s=0.6)
    assert executor._stall_limit(job) == pytest.approx(2.1)
    assert executor._stall_limit(IdleJob.skip("x")) == pytest.approx(0.6)
    idle = executor.where().idle  # 1.5 s of silence under a 0.6 s stall limit: not stopped
    assert not idle.skipped and idle.duration_s >= 1.5


def test_a_result_that_cannot_be_written_is_an_internal_error_reply(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker whose result is not JSON-able still answers (an internal error, pointing at the
    log) instead of dying without a reply."""
    import json

    from greenbench.run import jobs, worker

    job = IdleJob.skip("x", str(tmp_path))
    (tmp_path / "job.json").write_text(jobs.dump(job))

    def unwritable(_job: object, _emit: object) -> object:
        return jobs.IdleResult(object())  # type: ignore[arg-type]

    monkeypatch.setitem(worker._RUNNERS, jobs.IdleJob, unwritable)
    monkeypatch.setattr(worker, "_die_with_parent", lambda: None)  # this process is pytest's
    code = worker.main([str(tmp_path / "job.json"), str(tmp_path / "reply.json")])
    reply = jobs.load_reply((tmp_path / "reply.json").read_text())
    assert code == 1 and not reply.ok and not reply.user and reply.error
    assert json.loads((tmp_path / "reply.json").read_text())["type"] == "Reply"


def test_ray_is_built_in_and_its_options_are_checked_before_any_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from greenbench.executors.base import ExecutorOptionError
    from greenbench.executors.ray import RayExecutor

    assert factory("ray") is RayExecutor
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    kw = {"logdir": tmp_path, "device": {"device_id": "d"}, "idle": IdleJob.skip("test")}
    for options, needle in (
        ({}, "needs the cluster's address"),
        ({"address": "h:1", "nodes": "2"}, "takes no option 'nodes'"),
        ({"address": "h:1", "train_fraction": "1.5"}, "train_fraction='1.5'"),
        ({"address": "h:1", "retries": "lots"}, "retries='lots'"),
        ({"address": "no-port"}, "expected HOST:PORT"),
    ):
        with pytest.raises(ExecutorOptionError, match=needle) as e:
            RayExecutor(**kw, options=options)  # type: ignore[arg-type]
        assert e.value.exit_code == 2
    monkeypatch.setitem(__import__("sys").modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(ExecutorOptionError, match=r"pip install 'greenbench\[ray\]'"):
        RayExecutor(**kw, options={"address": "127.0.0.1:1"})  # type: ignore[arg-type]
