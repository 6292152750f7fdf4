"""The runner's stage plan: cache keys shared along the DAG and sensitive to upstream changes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from greenbench.errors import GreenbenchError
from greenbench.runner import Runner, RunOptions, stage_plan
from greenbench.store import Store
from greenbench.suite import load_suite


def plans(suite_file: Path, tmp_path: Path, data_key: str = "data-1") -> dict[str, list[dict[str, object]]]:
    suite = load_suite(suite_file)
    return {v: stage_plan(suite, v, tmp_path / "work", data_key) for v in suite.order()}


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


def test_other_data_changes_every_key(micro_suite: Path, tmp_path: Path) -> None:
    a, b = plans(micro_suite, tmp_path, "data-1"), plans(micro_suite, tmp_path, "data-2")
    assert all(x["key"] != y["key"] for v in a for x, y in zip(a[v], b[v], strict=True))


# --- the runner with its worker processes replaced by canned results -------------------------

SUMMARY = {"median": 5.0, "ci_low": 4.9, "ci_high": 5.1, "iqr": 0.1, "p90": 5.2, "p99": 5.3,
           "mean": 5.0, "std": 0.1, "n": 20, "noisy": False}  # fmt: skip
CPU = {"domain": "cpu", "energy_j": 2.0, "method": "estimated", "source": "estimate:x"}
WINDOW = {"energy_j": 2.0, "duration_s": 1.0, "images": 100, "method": "estimated", "source": "estimate:x",
          "domains": [CPU]}  # fmt: skip


class FakeWorkers:
    """Stands in for ``Runner._spawn``: records the jobs, answers like the worker would."""

    def __init__(self, fail: dict[str, Exception] | None = None) -> None:
        self.jobs: list[tuple[str, dict[str, Any]]] = []
        self.fail = fail or {}

    def __call__(self, variant: str, job: dict[str, Any]) -> dict[str, Any]:
        self.jobs.append((variant, job))
        if variant in self.fail and job["kind"] == "stages":
            raise self.fail[variant]
        if job["kind"] == "stages":
            stages = [
                {
                    **p,
                    "cached": False,
                    "checkpoint": f"{p['out_dir']}/best.pt",
                    "energy": {**WINDOW, "images": 0},
                }
                for p in job["stages"]
            ]
            return {"ok": True, "stages": stages, "checkpoint": stages[-1]["checkpoint"]}
        return {
            "ok": True, "params": 1000, "macs": 10**9, "size_mb": 1.0, "peak_rss_mb": 100.0,
            "weights_file": "w.pt", "meters": [],
            "accuracy": {"precision": 0.1, "recall": 0.2, "map50": 0.3, "map50_95": 0.1, "split": "test"},
            "latency": {"summary": SUMMARY, "threads": 1, "samples_ms": [5.0] * 20},
            "energy_windows": [WINDOW, WINDOW],
        }  # fmt: skip


def run(suite_file: Path, tmp_path: Path, workers: FakeWorkers, force: bool = False) -> tuple[Any, list[Any]]:
    suite = load_suite(suite_file)
    with Store(tmp_path / "gb.db") as store:
        runner = Runner(suite, store, RunOptions(workdir=tmp_path / "work", force=force, skip_idle=True))
        runner._spawn = workers  # type: ignore[method-assign]
        outcome = runner.run()
        return outcome, store.records(suite=suite.name)


def test_resume_skips_ok_variants_and_force_retrains_own_stages(micro_suite: Path, tmp_path: Path) -> None:
    first = FakeWorkers()
    outcome, records = run(micro_suite, tmp_path, first)
    assert outcome.done == {"base": "ok", "child": "ok"} and len(records) == 2
    child_stages_job = next(j for v, j in first.jobs if v == "child" and j["kind"] == "stages")
    assert [s["variant"] for s in child_stages_job["stages"]] == ["base", "child"]
    assert child_stages_job["force_keys"] == []
    assert records[1].metrics["train_energy_lineage_j"]["value"] == 4.0  # parent's stage + its own

    again = FakeWorkers()
    outcome, records = run(micro_suite, tmp_path, again)
    assert outcome.done == {"base": "resumed", "child": "resumed"} and again.jobs == [] and len(records) == 2

    forced = FakeWorkers()
    outcome, records = run(micro_suite, tmp_path, forced, force=True)
    assert outcome.done == {"base": "ok", "child": "ok"} and len(records) == 4  # added, nothing replaced
    job = next(j for v, j in forced.jobs if v == "child" and j["kind"] == "stages")
    own = [s["key"] for s in job["stages"] if s["variant"] == "child"]
    assert job["force_keys"] == own  # the parent's artifact stays cached


def test_failed_parent_fails_child_without_running_it(micro_suite: Path, tmp_path: Path) -> None:
    workers = FakeWorkers(fail={"base": GreenbenchError("training diverged")})
    outcome, records = run(micro_suite, tmp_path, workers)
    assert outcome.failed == ["base", "child"]
    assert records[0].error == "training diverged"
    assert records[1].error == "its parent variant 'base' failed in this run"
    assert [v for v, _ in workers.jobs] == ["base"]
    assert records[1].stages == [{"name": "train", "params": {"epochs": 1, "lr0": 0.001}}]


def test_unexpected_error_is_a_failed_record_and_the_suite_goes_on(micro_suite: Path, tmp_path: Path) -> None:
    text = micro_suite.read_text().replace(
        "  child:\n    from: base\n", "  child:\n    model: yolov5n.yaml\n"
    )
    micro_suite.write_text(text)  # two independent variants
    outcome, records = run(micro_suite, tmp_path, FakeWorkers(fail={"base": KeyError("checkpoint")}))
    assert outcome.done == {"base": "failed", "child": "ok"}
    assert "internal error: KeyError" in (records[0].error or "")
