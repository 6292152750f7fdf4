"""The runner: stage plans shared along the DAG, and the runner driven through a fake executor."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from greenbench.errors import GreenbenchError
from greenbench.executors.base import Outcome, Where
from greenbench.measure.energy.composite import skipped_idle
from greenbench.measure.energy.meter import EnergyReading
from greenbench.measure.protocol import Block
from greenbench.run import jobs
from greenbench.run.runner import Runner, RunOptions
from greenbench.runtimes.base import Artifact
from greenbench.store import RunRecord, Store
from greenbench.suite import load_suite
from greenbench.suite.identity import PlannedStage, stage_plan
from tests.conftest import MICRO_SUITE


def plans(suite_file: Path, tmp_path: Path, data_key: str = "data-1") -> dict[str, list[PlannedStage]]:
    suite = load_suite(suite_file)
    return {v: stage_plan(suite, v, data_key) for v in suite.order()}


def test_child_reuses_parent_stage_keys(micro_suite: Path, tmp_path: Path) -> None:
    p = plans(micro_suite, tmp_path)
    assert [s.variant for s in p["child"]] == ["base", "child"]
    assert p["child"][0].key == p["base"][0].key  # the parent is trained once
    assert p["child"][0].address == p["base"][0].address
    assert p["child"][1].key != p["base"][0].key


def test_upstream_change_changes_downstream_keys(micro_suite: Path, tmp_path: Path) -> None:
    before = plans(micro_suite, tmp_path)
    micro_suite.write_text(micro_suite.read_text().replace("lr0: 0.01,", "lr0: 0.02,"))
    after = plans(micro_suite, tmp_path)
    assert after["base"][0].key != before["base"][0].key
    assert after["child"][1].key != before["child"][1].key


def test_child_param_change_leaves_parent_alone(micro_suite: Path, tmp_path: Path) -> None:
    before = plans(micro_suite, tmp_path)
    micro_suite.write_text(micro_suite.read_text().replace("lr0: 0.001", "lr0: 0.003"))
    after = plans(micro_suite, tmp_path)
    assert after["base"] == before["base"]
    assert after["child"][1].key != before["child"][1].key


def test_other_data_changes_every_key(micro_suite: Path, tmp_path: Path) -> None:
    a, b = plans(micro_suite, tmp_path, "data-1"), plans(micro_suite, tmp_path, "data-2")
    assert all(x.key != y.key for v in a for x, y in zip(a[v], b[v], strict=True))


# --- the runner on a fake executor: typed jobs in, typed results out -----------------------

CPU = {"domain": "cpu", "energy_j": 2.0, "method": "estimated", "source": "estimate:x", "scope": "process"}
WINDOW = {"energy_j": 2.0, "duration_s": 1.0, "method": "estimated", "source": "estimate:x", "domains": [CPU]}
READING = EnergyReading.from_dict(WINDOW)


def block(arm: str, rnd: int, cycle: int, latency_ms: float) -> Block:
    return Block.from_dict({
        "arm": arm, "round": rnd, "cycle": cycle, "position": 0, "start_s": 0.0, "duration_s": 1.0,
        "calls": 100, "images": 100, "samples_ms": [latency_ms], "latency_ms": latency_ms,
        "energy_j": 2.0, "energy_per_image_j": 0.02, "reading": WINDOW,
    })  # fmt: skip


@dataclass
class FakeExecutor:
    """Answers like the workers would; ``slow``: latency factor per variant; ``fail``: per variant
    and job type, the error its job raises."""

    slow: dict[str, float] = field(default_factory=dict)
    fail: dict[tuple[str, type[Any]], Exception] = field(default_factory=dict)
    jobs: list[jobs.Job] = field(default_factory=list)
    name: str = "fake"
    device: dict[str, Any] = field(default_factory=lambda: {"device_id": "fake-dev", "device": "cpu"})
    slots: int = 1

    def where(self) -> Where:
        return Where(self.device, skipped_idle("fake"))

    def run(self, job: jobs.Job) -> Outcome:
        self.jobs.append(job)
        for (label, kind), error in self.fail.items():
            if job.label == label and isinstance(job, kind):
                raise error
        if isinstance(job, jobs.StagesJob):
            done = tuple(
                jobs.StageDone(
                    p.key,
                    p.name,
                    p.variant,
                    p.params,
                    f"{p.folder(Path(job.workdir))}/best.pt",
                    READING,
                    {},
                    (),
                )
                for p in job.stages
            )
            return Outcome(jobs.StagesResult(done, done[-1].checkpoint), self.where())
        if isinstance(job, jobs.EvaluateJob):
            artifact = job.artifact or Artifact("torch", f"{job.out_dir}/untrained.pt")
            accuracy = {"precision": 0.1, "recall": 0.2, "map50": 0.3, "map50_95": 0.1, "split": "test"}
            return Outcome(
                jobs.EvaluateResult(artifact, 1000, 10**9, "fake", 1.0, 100.0, accuracy), self.where()
            )
        assert isinstance(job, jobs.RoundJob)
        blocks = tuple(
            block(arm.variant, job.round, c, 10.0 * self.slow.get(arm.variant, 1.0) * (1 + 0.01 * (c % 3)))
            for c in range(job.protocol.blocks)
            for arm in job.arms
        )
        arms = {a.variant: {"runtime": a.runtime, "threads": 1} for a in job.arms}
        return Outcome(jobs.RoundResult(job.round, blocks, arms), self.where())


def run(
    suite_file: Path, tmp_path: Path, executor: FakeExecutor, force: bool = False
) -> tuple[Any, list[RunRecord]]:
    suite = load_suite(suite_file)
    with Store(tmp_path / "gb.db") as store:
        options = RunOptions(workdir=tmp_path / "work", force=force, skip_idle=True, executor=executor)
        outcome = Runner(suite, store, options).run()
        return outcome, store.records(suite=suite.name)


def test_resume_skips_ok_variants_and_force_retrains_own_stages(micro_suite: Path, tmp_path: Path) -> None:
    first = FakeExecutor()
    outcome, records = run(micro_suite, tmp_path, first)
    assert outcome.done == {"base": "ok", "child": "ok"} and len(records) == 2
    child_stages = next(j for j in first.jobs if j.label == "child" and isinstance(j, jobs.StagesJob))
    assert [s.variant for s in child_stages.stages] == ["base", "child"]
    assert child_stages.force_keys == ()
    assert records[1].metrics["train_energy_lineage_j"]["value"] == 4.0  # parent's stage + its own

    again = FakeExecutor()
    outcome, records = run(micro_suite, tmp_path, again)
    assert outcome.done == {"base": "resumed", "child": "resumed"} and again.jobs == [] and len(records) == 2

    forced = FakeExecutor()
    outcome, records = run(micro_suite, tmp_path, forced, force=True)
    assert outcome.done == {"base": "ok", "child": "ok"} and len(records) == 4  # added, nothing replaced
    job = next(j for j in forced.jobs if j.label == "child" and isinstance(j, jobs.StagesJob))
    assert job.force_keys == tuple(s.key for s in job.stages if s.variant == "child")  # parent stays cached


def test_every_round_is_one_job_with_the_baseline(micro_suite: Path, tmp_path: Path) -> None:
    executor = FakeExecutor(slow={"child": 1.25})
    _, records = run(micro_suite, tmp_path, executor)
    rounds = [j for j in executor.jobs if isinstance(j, jobs.RoundJob)]
    assert [j.round for j in rounds] == [0, 1]  # micro suite: 2 rounds
    assert [[a.variant for a in j.arms] for j in rounds] == [["base", "child"]] * 2  # the worker orders
    assert all(j.protocol.blocks == 3 and j.min_window_s == 0.1 for j in rounds)
    base, child = records
    assert base.deltas == {} and base.baseline == "base" and base.runtime == "torch"
    lat = child.deltas["latency_ms"]
    assert lat["paired"] and lat["baseline_key"] == base.variant_hash and lat["run_id"] == child.run_id
    assert lat["delta_pct"] == __import__("pytest").approx(25.0) and lat["significant"]
    assert child.metrics["latency_ms"]["rounds"] == 2 and child.metrics["latency_ms"]["blocks"] == 6
    assert len(child.measurement["blocks"]) == 6 and child.measurement["protocol"]["paired_with_baseline"]
    assert [b["arm"] for b in child.measurement["baseline_blocks"]] == ["base"] * 6  # the partner blocks


def test_a_new_variant_is_paired_with_the_baseline_measured_again(micro_suite: Path, tmp_path: Path) -> None:
    run(micro_suite, tmp_path, FakeExecutor())
    micro_suite.write_text(micro_suite.read_text().replace("lr0: 0.001", "lr0: 0.003"))  # edit the child
    with Store(tmp_path / "gb.db") as first:
        kept = Path(first.records()[0].measurement["artifact"]["path"])
    kept.parent.mkdir(parents=True, exist_ok=True)
    kept.write_bytes(b"the baseline's model file, still on disk")
    executor = FakeExecutor()
    outcome, records = run(micro_suite, tmp_path, executor)
    assert outcome.done == {"base": "resumed", "child": "ok"}
    rounds = [j for j in executor.jobs if isinstance(j, jobs.RoundJob)]
    assert all({a.variant for a in j.arms} == {"base", "child"} for j in rounds)  # a partner in time
    assert all(next(a for a in j.arms if a.variant == "base").artifact.path == str(kept) for j in rounds)
    assert [j.label for j in executor.jobs if not isinstance(j, jobs.RoundJob)] == ["child", "child"]
    assert len(records) == 3 and records[-1].deltas["latency_ms"]["run_id"] == outcome.run_id


def test_editing_the_baseline_re_measures_every_variant_beside_it(micro_suite: Path, tmp_path: Path) -> None:
    run(micro_suite, tmp_path, FakeExecutor())
    text = micro_suite.read_text()
    micro_suite.write_text(text.replace("base: {model: yolov5n.yaml,", "base: {model: yolov5s.yaml,"))
    outcome, _ = run(micro_suite, tmp_path, FakeExecutor())
    assert outcome.done == {"base": "ok", "child": "ok"}


def test_twins_with_one_config_are_two_variants(micro_suite: Path, tmp_path: Path) -> None:
    text = micro_suite.read_text().replace("  child:\n    from: base\n", "  child:\n    from: twin\n")
    micro_suite.write_text(text + "  twin: {model: yolov5n.yaml, stages: [train]}\n")
    first, records = run(micro_suite, tmp_path, FakeExecutor())
    assert first.done == {"base": "ok", "twin": "ok", "child": "ok"}
    twin = next(r for r in records if r.variant == "twin")
    assert twin.metrics["train_energy_j"]["value"] > 0  # the shared stage counts as its own too
    again, _ = run(micro_suite, tmp_path, FakeExecutor())
    assert again.done == {"base": "resumed", "twin": "resumed", "child": "resumed"}


def test_a_lost_round_leaves_the_others_and_a_lost_group_writes_the_baseline_once(
    micro_suite: Path, tmp_path: Path
) -> None:
    text = micro_suite.read_text().replace("protocol: {rounds: 2,", "protocol: {group: pairs, rounds: 2,")
    micro_suite.write_text(
        text + "  other:\n    from: base\n    stages: [{train: {epochs: 1, lr0: 0.002}}]\n"
    )

    class LosesRounds(FakeExecutor):
        def run(self, job: jobs.Job) -> Outcome:
            arms = {a.variant for a in job.arms} if isinstance(job, jobs.RoundJob) else set()
            if "child" in arms:  # the child's whole group is lost
                raise GreenbenchError("worker died")
            if "other" in arms and job.round == 0:  # one round of the other's group is lost
                raise GreenbenchError("worker died once")
            return super().run(job)

    outcome, records = run(micro_suite, tmp_path, LosesRounds())
    assert outcome.done == {"base": "failed", "child": "failed", "other": "ok"}
    assert [r.variant for r in records].count("base") == 1
    other = next(r for r in records if r.variant == "other")
    assert other.metrics["latency_ms"]["rounds"] == 1
    assert other.measurement["protocol"]["lost_rounds"] == ["round 1: worker died once"]


def test_failed_parent_fails_child_without_running_it(micro_suite: Path, tmp_path: Path) -> None:
    executor = FakeExecutor(fail={("base", jobs.StagesJob): GreenbenchError("training diverged")})
    outcome, records = run(micro_suite, tmp_path, executor)
    assert outcome.failed == ["base", "child"]
    assert records[0].error == "training diverged"
    assert records[1].error == "its parent variant 'base' failed in this run"
    assert [j.label for j in executor.jobs] == ["base"]
    assert records[1].stages == [{"name": "train", "params": {"epochs": 1, "lr0": 0.001}}]


def test_unexpected_error_is_a_failed_record_and_the_suite_goes_on(micro_suite: Path, tmp_path: Path) -> None:
    text = micro_suite.read_text().replace(
        "  child:\n    from: base\n", "  child:\n    model: yolov5n.yaml\n"
    )
    micro_suite.write_text(text)  # two independent variants
    executor = FakeExecutor(fail={("base", jobs.StagesJob): KeyError("checkpoint")})
    outcome, records = run(micro_suite, tmp_path, executor)
    assert outcome.done == {"base": "failed", "child": "ok"}
    assert "internal error: KeyError" in (records[0].error or "")
    assert records[1].deltas == {}  # no baseline to pair with: no Δ claimed
    assert not records[1].measurement["protocol"]["paired_with_baseline"]


def test_pairs_group_gives_each_variant_its_own_processes(micro_suite: Path, tmp_path: Path) -> None:
    text = micro_suite.read_text().replace("protocol: {rounds: 2,", "protocol: {group: pairs, rounds: 2,")
    text += "  other:\n    from: base\n    stages: [{train: {epochs: 1, lr0: 0.002}}]\n"
    micro_suite.write_text(text)
    executor = FakeExecutor()
    outcome, records = run(micro_suite, tmp_path, executor)
    assert outcome.done == {"base": "ok", "child": "ok", "other": "ok"}
    groups = [sorted(a.variant for a in j.arms) for j in executor.jobs if isinstance(j, jobs.RoundJob)]
    assert groups == [["base", "child"]] * 2 + [["base", "other"]] * 2
    assert [r.variant for r in records].count("base") == 1


def test_jobs_round_trip_through_json(micro_suite: Path, tmp_path: Path) -> None:
    executor = FakeExecutor()
    run(micro_suite, tmp_path, executor)
    for job in executor.jobs:
        assert jobs.load(jobs.dump(job)) == job
    result = executor.run(executor.jobs[-1]).result
    assert jobs.load(jobs.dump(result)) == result


def test_a_stored_error_is_one_clean_bounded_line(micro_suite: Path, tmp_path: Path) -> None:
    noisy = GreenbenchError("\x1b[31mtraining diverged\x1b[0m\n" + "detail " * 1000)
    executor = FakeExecutor(fail={("base", jobs.StagesJob): noisy})
    _, records = run(micro_suite, tmp_path, executor)
    error = records[0].error or ""
    assert error.startswith("training diverged detail") and "\x1b" not in error and "\n" not in error
    assert len(error) <= 1000 and error.endswith("more characters; see the log)")


def test_a_stage_that_writes_onnx_is_measured_by_onnx_runtime(micro_suite: Path, tmp_path: Path) -> None:
    class ExportsOnnx(FakeExecutor):  # as an export stage will: the last artifact is a .onnx file
        def run(self, job: jobs.Job) -> Outcome:
            outcome = super().run(job)
            if isinstance(job, jobs.StagesJob) and job.label == "child":
                done = outcome.result
                assert isinstance(done, jobs.StagesResult)
                return Outcome(
                    jobs.StagesResult(done.stages, f"{job.stages[-1].folder(Path(job.workdir))}/model.onnx"),
                    outcome.where,
                )
            return outcome

    executor = ExportsOnnx()
    _, records = run(micro_suite, tmp_path, executor)
    arms = {a.variant: a for j in executor.jobs if isinstance(j, jobs.RoundJob) for a in j.arms}
    assert arms["child"].artifact.kind == "onnx" and arms["child"].runtime == "onnxruntime"
    assert arms["base"].runtime == "torch" and records[1].runtime == "onnxruntime"


def test_the_idle_job_reads_the_suites_meters_but_never_codecarbon(tmp_path: Path) -> None:
    """The idle baseline runs the suite's meters on the executor's machine; the CodeCarbon
    cross-check is for the stages' windows only, as before the idle baseline was a job."""
    from greenbench.run.plan import Plan
    from greenbench.suite import load_suite

    path = tmp_path / "s.yaml"
    path.write_text(
        "name: s\ntask: detect\ndataset: {synthetic: {}}\nbaseline: a\n"
        "variants:\n  a: {model: yolov8n.yaml}\n"
        "measure: {energy: {meters: [estimate], idle_s: 2.5, codecarbon: true}}\n"
    )
    plan = Plan(load_suite(path), tmp_path, codecarbon_dir=tmp_path / "cc")
    assert plan.meter_spec().codecarbon is not None
    job = plan.idle_job()
    assert job.energy.codecarbon is None and job.energy.meters == ("estimate",)
    assert job.seconds == 2.5 and not job.skipped and job.context == str(path)
    assert plan.idle_job("skipped by --no-idle").skipped == "skipped by --no-idle"


def test_with_two_slots_independent_variants_prepare_at_once_and_a_child_after_its_parent(
    tmp_path: Path,
) -> None:
    import threading

    path = tmp_path / "three.yaml"
    path.write_text(
        textwrap.dedent(MICRO_SUITE).replace(
            "  child:", "  other: {model: yolov5n.yaml, stages: [{train: {epochs: 2}}]}\n  child:"
        )
    )
    both = threading.Barrier(2, timeout=20)  # passed only if base and other train at the same time

    class TwoSlots(FakeExecutor):
        def run(self, job: jobs.Job) -> Outcome:
            if isinstance(job, jobs.StagesJob) and job.label in ("base", "other"):
                both.wait()
            return super().run(job)

    executor = TwoSlots(slots=2)
    outcome, records = run(path, tmp_path, executor)
    assert outcome.done == {"base": "ok", "other": "ok", "child": "ok"}
    order = [(type(j).__name__, j.label) for j in executor.jobs]
    assert order.index(("StagesJob", "child")) > order.index(("EvaluateJob", "base"))  # after its parent
    assert sorted(r.variant for r in records) == ["base", "child", "other"]


def test_the_progress_line_counts_each_variant_as_its_preparation_ends(
    micro_suite: Path, tmp_path: Path
) -> None:
    import io

    from rich.console import Console

    from greenbench.run.progress import RunProgress

    suite = load_suite(micro_suite)
    progress = RunProgress(suite, Console(file=io.StringIO(), force_terminal=False), interval_s=1e9)
    lines: dict[str, str] = {}

    def event(message: str) -> None:
        progress(message)
        lines.setdefault(message, progress.line())

    with Store(tmp_path / "gb.db") as store:
        options = RunOptions(
            workdir=tmp_path / "work", skip_idle=True, executor=FakeExecutor(), progress=event
        )
        Runner(suite, store, options).run()
    events = list(lines)
    assert (
        events.index("base: prepared")
        < events.index("child: prepared")
        < events.index("interleaved round 1/2: base, child")
    )
    assert "1/2 prepared, 0/2 done" in lines["base: prepared"]
    assert "2/2 prepared, 0/2 done" in lines["interleaved round 1/2: base, child"]
    assert "2/2 prepared, 2/2 done" in lines["child: ok"]
