"""Walk a suite's variant DAG: resume from the store, hand each variant's jobs to an executor,
measure the variants interleaved with the baseline, and store one ``RunRecord`` per variant.

A run has three phases: (1) per variant to run, its stages (cached by key) and its evaluation
(``prepare``); (2) the interleaved protocol: ``rounds`` fresh processes, each timing the
baseline and the variants in alternating blocks (``executors.rounds``); (3) one record per
variant (``records``). What is keyed and run where is the ``plan``. A failure in any job of a
variant is that variant's ``failed`` record; the suite carries on.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, as_completed, wait
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol, TypeVar

from greenbench.errors import GreenbenchError
from greenbench.executors.base import Executor, Outcome
from greenbench.executors.local import DEFAULT_STALL_S
from greenbench.executors.rounds import Rounds, run_rounds
from greenbench.measure.carbon import GridIntensity, grid_intensity
from greenbench.measure.device import fingerprint, git_commit
from greenbench.run import jobs
from greenbench.run.lock import other_runs
from greenbench.run.plan import Plan
from greenbench.run.prepare import Prepared, check_device, prepare_variant
from greenbench.run.records import Keys, Measured, RunIdentity, failed_record, now, ok_record, one_line_error
from greenbench.runtimes.base import runtime_label
from greenbench.store import RunRecord, Store, store_pending, store_record
from greenbench.suite import Suite

T = TypeVar("T")


class Pool(Protocol):
    """Where the runner's jobs of variants run: ``submit(fn, *args)`` returns its future."""

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]: ...


class Inline:
    """One slot: each job runs at once in the calling thread, so a run is sequential and Ctrl-C
    (or SIGTERM) stops the job it interrupts, its worker process included."""

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        future: Future[T] = Future()
        try:
            future.set_result(fn(*args))
        except Exception as e:  # an interrupt is not caught: it stops the run
            future.set_exception(e)
        return future


class Threads:
    """``slots`` jobs at once on daemon threads: an interrupted run ends at once instead of
    waiting for every running job, as a thread pool would (the jobs end with the process)."""

    def __init__(self, slots: int) -> None:
        self._free = threading.Semaphore(slots)

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        future: Future[T] = Future()

        def work() -> None:
            with self._free:
                if future.set_running_or_notify_cancel():
                    try:
                        future.set_result(fn(*args))
                    except BaseException as e:
                        future.set_exception(e)

        threading.Thread(target=work, daemon=True).start()
        return future


@dataclass
class RunOptions:
    """How to run a suite. ``workdir``: artifacts, logs, datasets and the task's framework files.
    ``executor``: where jobs run, built; else ``executor_name`` names one in the registry
    (``greenbench.executors``; default ``local``: fresh local processes)."""

    workdir: Path
    force: bool = False
    skip_idle: bool | None = None  # None: the suite decides
    powercap_root: Path | None = None
    progress: Callable[[str], None] = lambda _msg: None
    executor: Executor | None = None
    executor_name: str = "local"
    executor_options: dict[str, str] = field(default_factory=dict)  # --executor-option KEY=VALUE
    stall_s: float | None = DEFAULT_STALL_S  # a worker silent this long is stopped (None: never)


@dataclass
class RunOutcome:
    """What happened to each variant in one ``run``."""

    run_id: str
    device_id: str
    done: dict[str, str] = field(default_factory=dict)  # variant -> ok | failed | resumed

    @property
    def failed(self) -> list[str]:
        """Variants that failed in this run."""
        return [v for v, s in self.done.items() if s == "failed"]


class Runner:
    """Runs one suite on one executor into one store."""

    def __init__(self, suite: Suite, store: Store, options: RunOptions) -> None:
        self.suite = suite
        self.store = store
        self.opt = options
        self.workdir = options.workdir.resolve()
        self.run_id = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S-") + uuid.uuid4().hex[:6]
        self.logdir = self.workdir / "logs" / self.run_id
        # the data is identified in run(): walking it is work, not set-up
        self.plan = self._plan(identified=False)
        self._intensity: GridIntensity | None = None
        self._others: dict[str, dict[str, object]] = {}  # other greenbench runs seen, by pid
        m = suite.measure
        # this machine and the suite's commit, read together (an executor may report other machines)
        here = fingerprint(m.device, threads=m.latency.threads) if options.executor is None else {}
        commit = git_commit(suite.path.parent) or "none"
        executor = options.executor
        if executor is None:
            from greenbench.executors import factory

            executor = factory(options.executor_name)(
                logdir=self.logdir,
                device=here,
                idle=self.plan.idle_job(self._idle_skipped()),
                progress=options.progress,
                cwd=self.workdir,
                stall_s=options.stall_s,
                options=options.executor_options,
            )
        self.executor: Executor = executor
        # the executor says which device its jobs run on; records and resume key on that one
        self.device = dict(executor.device)
        self.identity = RunIdentity(self.run_id, suite, self.device, commit)

    def _plan(self, identified: bool) -> Plan:
        """This run's plan, its meters reading the powercap tree given and writing CodeCarbon's
        CSV into the run's log folder; ``identified``: with the suite's data identified."""
        make = Plan.of if identified else Plan
        return make(self.suite, self.workdir, powercap_root=self.opt.powercap_root,
                    codecarbon_dir=self.logdir / "codecarbon")  # fmt: skip

    # --- jobs -------------------------------------------------------------------------
    def _run_job(self, job: jobs.Job) -> Outcome:
        """Run ``job`` on the executor, noting any other greenbench run active on this machine
        meanwhile (its load would move our figures: the records say so)."""
        self._note_other_runs()
        return self.executor.run(job)

    def _note_other_runs(self) -> None:
        for other in other_runs():
            self._others.setdefault(f"{other['pid']}", other)

    def _stored_ok(self, name: str) -> RunRecord | None:
        """The newest ok record of ``name`` under its key on this run's device, if any."""
        return self.store.latest(self.suite.name, self.plan.key(name), self.device["device_id"], variant=name)

    def _measure(self, arms: list[jobs.ArmSpec]) -> Rounds:
        """The interleaved protocol over ``arms``: one fresh process per round."""
        rounds = self.suite.measure.protocol.rounds

        def announce(r: int) -> None:
            self.opt.progress(f"interleaved round {r + 1}/{rounds}: {', '.join(a.variant for a in arms)}")
            self._note_other_runs()

        def job_of(r: int) -> jobs.RoundJob:  # the order within cycles continues over rounds (worker)
            return self.plan.round_job(r, arms)

        out = run_rounds(self.executor, job_of, range(rounds), Rounds(), announce)
        if out.where is None:  # no round came back at all
            raise GreenbenchError("; ".join(out.lost_rounds))
        return out

    # --- records ------------------------------------------------------------------------
    def _failed(self, name: str, started: str, error: BaseException) -> RunRecord:
        return failed_record(self.identity, name, self.plan.key(name), started, error)

    def _ok(self, name: str, started: str, prep: Prepared, measured: Rounds, paired: bool) -> RunRecord:
        assert self._intensity is not None and measured.where is not None
        where = measured.where
        found = Measured(measured.blocks, measured.arms, measured.lost_rounds, where.idle, where.device)
        plan = self.plan
        parent = self.suite.variants[name].from_
        keys = Keys(
            plan.key(name), plan.key(self.suite.baseline),
            runtime_label(*plan.runtime(name, prep.artifact.kind)), plan.data, plan.latency_imgsz,
            None if parent is None else plan.key(parent),
        )  # fmt: skip
        return ok_record(
            self.identity,
            keys,
            name,
            started,
            prep,
            found,
            paired,
            self._intensity,
            list(self._others.values()),
        )

    # --- the whole suite ----------------------------------------------------------------
    def _idle_skipped(self) -> str:
        """Why the idle baseline is not measured in this run ("" when it is)."""
        e, opt = self.suite.measure.energy, self.opt
        skip = e.skip_idle if opt.skip_idle is None else opt.skip_idle
        if not skip:
            return ""
        return f"skipped by {'--no-idle' if opt.skip_idle else 'measure.energy.skip_idle'}"

    def _prepare(self) -> None:
        """Carbon intensity, the dataset, the idle baseline: once per run, before any variant."""
        suite = self.suite
        check_device(suite.measure.device, suite.path)
        try:
            self.logdir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise GreenbenchError(
                f"cannot create the work folder {self.logdir}: {err.strerror}. Pass --workdir with a "
                f"writable folder."
            ) from None
        self.plan.resolve()
        c = suite.measure.carbon
        self._intensity = grid_intensity(c.country, c.region, c.intensity_g_per_kwh)
        self.executor.where()  # the idle baseline, before any work heats the machine

    def _finish(self, outcome: RunOutcome, record: RunRecord) -> None:
        store_record(self.store, record, self.workdir / "pending")  # kept on disk until stored
        outcome.done[record.variant] = record.status
        if record.status == "failed":
            self.opt.progress(f"{record.variant}: FAILED: {record.error}")
        else:
            self.opt.progress(f"{record.variant}: ok")

    def run(self) -> RunOutcome:
        """Run every variant not already stored ``ok`` (all of them with ``force``)."""
        suite, opt = self.suite, self.opt
        outcome = RunOutcome(self.run_id, self.device["device_id"])
        for kept in store_pending(self.store, self.workdir / "pending"):  # measured, never stored
            opt.progress(f"{kept.variant}: stored its {kept.status} record kept from run {kept.run_id}")
        # the data is walked once: its fingerprint keys resume, and staging reuses the walk
        self.plan = Plan.of(
            suite, self.workdir, powercap_root=opt.powercap_root, codecarbon_dir=self.plan.codecarbon_dir
        )
        todo: list[str] = []
        for name in suite.order():
            done = self._stored_ok(name)
            if done is not None and not opt.force:
                outcome.done[name] = "resumed"
                opt.progress(f"{name}: already stored ok (run {done.run_id}); skipped")
            else:
                todo.append(name)
        if not todo:
            return outcome
        self._prepare()
        started: dict[str, str] = {}
        failed: set[str] = set()
        slots = max(1, self.executor.slots)
        pool: Pool = Inline() if slots == 1 else Threads(slots)
        prepared = self._prepare_all(todo, pool, started, failed, outcome)
        if prepared:
            self._measure_all(prepared, started, failed, outcome, pool)
        return outcome

    def _blocked(self, name: str, failed: set[str]) -> GreenbenchError | None:
        """Why ``name`` cannot be prepared: its parent, or a variant it reads, failed."""
        parent = self.suite.variants[name].from_
        if parent is not None and parent in failed:
            return GreenbenchError(f"its parent variant '{parent}' failed in this run")
        read = [v for v in self.suite.variants_read(name) if v in failed]  # e.g. its teacher
        if read:
            return GreenbenchError(f"variant '{read[0]}', whose model it reads, failed in this run")
        return None

    def _prepare_all(
        self,
        todo: list[str],
        pool: Pool,
        started: dict[str, str],
        failed: set[str],
        outcome: RunOutcome,
    ) -> dict[str, Prepared]:
        """Prepare ``todo`` on the executor's slots: a variant starts once its parent and the
        variants it reads are done, in suite order; with one slot, one after another."""
        suite, slots = self.suite, max(1, self.executor.slots)
        waiting, done = list(todo), set[str]()
        needs = {n: ({suite.variants[n].from_, *suite.variants_read(n)} - {None}) & set(todo) for n in todo}
        running: dict[Future[Prepared], str] = {}
        prepared: dict[str, Prepared] = {}
        while waiting or running:
            for name in [n for n in waiting if needs[n] <= done]:
                if len(running) >= slots:
                    break
                waiting.remove(name)
                started[name] = now()
                blocked = self._blocked(name, failed)
                if blocked is not None:
                    failed.add(name)
                    done.add(name)
                    self._finish(outcome, self._failed(name, started[name], blocked))
                    continue
                running[pool.submit(prepare_variant, self.plan, name, self._run_job, self.opt.force)] = name
            if not running:
                if waiting and not any(needs[n] <= done for n in waiting):  # never: no cycles pass the checks
                    raise GreenbenchError(f"variants {', '.join(waiting)} wait on each other")
                continue  # a failed parent released its children: look again
            for future in wait(running, return_when=FIRST_COMPLETED).done:
                name = running.pop(future)
                done.add(name)
                try:
                    prepared[name] = future.result()
                except Exception as e:
                    failed.add(name)
                    self._finish(outcome, self._failed(name, started[name], e))
                else:
                    self.opt.progress(f"{name}: prepared")  # stages and evaluation done
        return prepared

    def _baseline_arm(self, prepared: dict[str, Prepared]) -> tuple[jobs.ArmSpec | None, str | None]:
        """The baseline's arm: prepared in this run, or the model file of its stored record (a
        stored baseline is not a partner in time: it is measured again beside the variants);
        prepared again only when that file is gone."""
        base = self.suite.baseline
        stored = self._stored_ok(base)
        kept = (stored.measurement.get("artifact") or {}) if stored is not None else {}
        usable = kept.get("kind") in ("torch", "onnx") and Path(str(kept.get("path"))).is_file()
        if base not in prepared and usable:
            return self.plan.arm(base, jobs.Artifact(kept["kind"], kept["path"])), None  # the record's file
        if base not in prepared:
            try:
                prepared_base = prepare_variant(self.plan, base, self._run_job)
            except Exception as e:
                return None, one_line_error(e)
        else:
            prepared_base = prepared[base]
        return self.plan.arm(base, prepared_base.artifact), None

    def _measure_all(
        self,
        prepared: dict[str, Prepared],
        started: dict[str, str],
        failed: set[str],
        outcome: RunOutcome,
        pool: Pool,
    ) -> None:
        suite = self.suite
        base = suite.baseline
        baseline_arm, base_error = (None, None) if base in failed else self._baseline_arm(prepared)
        if base in failed:
            base_error = "it failed in this run"
        planned = []  # (group, its arms, the variants it records, the baseline's preparation)
        for group in self.plan.groups(list(prepared)):
            arms = [baseline_arm] if baseline_arm is not None else []
            arms += [self.plan.arm(name, prepared[name].artifact) for name in group]
            members = group + ([base] if base in prepared and base not in group else [])
            prepared_base = prepared.pop(base, None)  # the baseline's record: once, with its first group
            planned.append((group, [a for a in arms if a is not None], members, prepared_base))
        # the groups run on the executor's slots (one after another with one slot); each
        # group's records are stored as soon as its rounds are done
        futures = {pool.submit(self._measure, arms): i for i, (_, arms, _, _) in enumerate(planned)}
        for future in as_completed(futures):
            group, _, members, prepared_base = planned[futures[future]]
            try:
                measured = future.result()
            except Exception as e:
                for name in members:
                    self._finish(outcome, self._failed(name, started[name], e))
                continue
            paired = baseline_arm is not None and base not in measured.failed
            if not paired and group:
                why = measured.failed.get(base, base_error)
                self.opt.progress(f"baseline '{base}' not measured ({why}): Δ of {', '.join(group)} unpaired")
            order = self.suite.order()
            for name in sorted(members, key=order.index):  # records in suite order
                if name in measured.failed or not any(b.arm == name for b in measured.blocks):
                    error = GreenbenchError(measured.failed.get(name, "no block was measured"))
                    self._finish(outcome, self._failed(name, started[name], error))
                else:
                    prep = prepared_base if name == base else prepared[name]
                    assert prep is not None
                    try:
                        record = self._ok(name, started[name], prep, measured, paired)
                    except Exception as e:  # a figure that cannot be computed: this variant fails
                        record = self._failed(name, started[name], e)
                    self._finish(outcome, record)
