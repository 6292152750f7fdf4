"""The Ray executor: every job in a fresh process on a node of a Ray cluster.

``greenbench run SUITE --executor ray --executor-option address=HOST:PORT``. Each node that
takes greenbench work advertises a custom resource (``ray start … --resources
'{"greenbench": 1}'``). A measuring job (an interleaved round, the idle baseline) asks for all of
it, so no two measuring jobs ever share a node; a training or evaluation job asks for
``train_fraction`` of it (1 by default: alone too). On the node, the job runs exactly as the
local executor runs it (``python -m greenbench.run.worker`` in a fresh process, stopped if it
hangs); Ray only places it.

What the driver relies on:

- **One kind of device.** The nodes with the resource are fingerprinted when the executor
  starts; nodes of different kinds are refused (give each kind its own resource and pick it
  with ``resource=``), so a suite's records and resume keys name one device. Each outcome names
  its node (``node_id`` in the record's device).
- **A shared work folder.** Artifacts are addressed by their cache key under the work folder,
  which every node must see at the same path (one machine, or a shared mount); a node that
  does not is an error naming it.
- **Idle per node.** Each node's idle baseline is measured on that node, holding its whole
  resource, before it runs anything else; Ray's own daemons run meanwhile and are part of it
  (the baseline's notes say so).
- **Paired rounds stay on one node.** The rounds of one interleaved group are pinned to the
  node that ran its first round while that node lives.
- **Faults.** A job whose node or worker is lost is retried on another node up to ``retries``
  times, each reason kept in its error; a cluster that cannot be reached is an error within
  30 s naming the address. A killed driver loses nothing stored: re-running resumes.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from greenbench.errors import GreenbenchError
from greenbench.executors.base import ExecutorOptionError, JobFailed, Outcome, Where
from greenbench.executors.local import DEFAULT_STALL_S, LocalExecutor, file_stem, relay
from greenbench.measure.energy.composite import IdleBaseline, skipped_idle
from greenbench.run import jobs

RESOURCE = "greenbench"
CONNECT_TIMEOUT_S = 30.0
#: how long no alive node may offer the resource before a waiting job fails
NO_NODE_TIMEOUT_S = 60.0
JOURNAL = "ray-jobs.jsonl"
OPTIONS = ("address", "resource", "train_fraction", "retries")
INSTALL = "pip install 'greenbench[ray]'"
DAEMONS_NOTE = "measured on a Ray node: Ray's daemons (raylet, object store) ran meanwhile and are part of it"


class ClusterUnreachable(GreenbenchError):
    """The Ray cluster cannot be reached (a usage error: exit code 2)."""

    exit_code = 2


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ExecutorOptionError(f"--executor ray needs Ray: {INSTALL}") from None
    return ray


def _reachable(address: str) -> None:
    """A TCP connection to ``address`` (``host:port``) within a few seconds, or a clear error."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ExecutorOptionError(
            f"--executor-option address={address[:80]!r}: expected HOST:PORT of the Ray head (its GCS "
            "port, 6379 unless 'ray start --head --port' chose another)."
        )
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=5).close()
    except OSError as e:
        raise ClusterUnreachable(
            f"cannot reach the Ray cluster at {address} ({e.strerror or e}); start it with 'ray start "
            f"--head --port {port} --resources '{{\"{RESOURCE}\": 1}}'' on that machine (README, Ray), "
            "or pass the right --executor-option address=HOST:PORT."
        ) from None


def _connect(ray: Any, address: str) -> None:
    """``ray.init`` against ``address``, given up after ``CONNECT_TIMEOUT_S``."""
    _reachable(address)
    # Ray warns on stderr that a thread other than the main one cannot set its SIGTERM handler:
    # greenbench handles its own signals, so only Ray's errors are shown
    logging.getLogger("ray").setLevel(logging.ERROR)
    failure: list[BaseException] = []

    def init() -> None:
        try:
            ray.init(address=address, logging_level="ERROR", log_to_driver=False, configure_logging=False)
        except BaseException as e:  # reported below, on the caller's thread
            failure.append(e)

    thread = threading.Thread(target=init, daemon=True)
    thread.start()
    thread.join(CONNECT_TIMEOUT_S)
    if thread.is_alive() or failure:
        why = (
            f"{type(failure[0]).__name__}: {failure[0]}"
            if failure
            else f"no answer in {CONNECT_TIMEOUT_S:g} s"
        )
        raise ClusterUnreachable(
            f"cannot join the Ray cluster at {address} ({' '.join(why.split())[:300]}); check that a Ray "
            "head runs there with the same Ray and Python versions as this machine."
        )


def _fingerprint(device: str, threads: int | None) -> dict[str, Any]:
    """On a node: its device fingerprint and node id."""
    import ray

    from greenbench.measure.device import fingerprint

    return {**fingerprint(device, threads), "node_id": ray.get_runtime_context().get_node_id()}


def _run_on_node(
    job: jobs.Job,
    stem: str,
    logdir: str,
    cwd: str,
    stall_s: float | None,
    idle: jobs.IdleJob | None,
    measured: frozenset[str],
) -> tuple[str, jobs.Result, IdleBaseline | None, tuple[float, float]]:
    """On a node: its idle baseline first (``idle``, unless the node is among ``measured``),
    then ``job``, each in a fresh worker process; the node id, the result, the baseline and
    when the job ran (Unix times on the node). The node's id is written to ``STEM.node`` first."""
    import ray

    started = time.time()
    node = ray.get_runtime_context().get_node_id()
    if node in measured:
        idle = None
    if not Path(cwd).is_dir():
        raise GreenbenchError(
            f"Ray node {node[:12]} ({socket.gethostname()}) does not see the work folder {cwd}; every "
            "node must mount it at the same path (README, Ray)."
        )
    Path(f"{stem}.node").write_text(node, encoding="utf-8")
    local = LocalExecutor(Path(logdir), {}, jobs.IdleJob.skip("not used"), cwd=Path(cwd), stall_s=stall_s)
    baseline = None
    if idle is not None:
        found, _ = local.execute(idle, Path(f"{stem}-idle"))
        assert isinstance(found, jobs.IdleResult)
        baseline = found.idle
    result, _ = local.execute(job, Path(stem))
    return node, result, baseline, (started, time.time())


class RayExecutor:
    """Runs jobs on the nodes of a Ray cluster that advertise ``resource`` (see the module doc).

    Takes the factory's keywords (``greenbench.executors``); ``options``: ``address`` (the
    head's HOST:PORT; default ``$RAY_ADDRESS``), ``resource`` (default ``greenbench``),
    ``train_fraction`` (of the resource a training or evaluation job asks for, (0, 1], default
    1) and ``retries`` (per job after a lost node or worker, default 2).
    """

    name = "ray"

    def __init__(
        self,
        logdir: Path,
        device: dict[str, object],
        idle: jobs.IdleJob,
        progress: Callable[[str], None] = lambda _msg: None,
        cwd: Path | None = None,
        stall_s: float | None = DEFAULT_STALL_S,
        options: dict[str, str] | None = None,
    ) -> None:
        opts = dict(options or {})
        unknown = sorted(set(opts) - set(OPTIONS))
        if unknown:
            raise ExecutorOptionError(
                f"executor 'ray' takes no option {', '.join(map(repr, unknown))[:200]}; it takes "
                f"{', '.join(OPTIONS)} (--executor-option KEY=VALUE)."
            )
        self.address = opts.get("address") or os.environ.get("RAY_ADDRESS", "")
        if not self.address:
            raise ExecutorOptionError(
                "--executor ray needs the cluster's address: --executor-option address=HOST:PORT (the "
                "head's, as 'ray start --head' printed it), or RAY_ADDRESS."
            )
        self.resource = opts.get("resource", RESOURCE)
        self.train_fraction = _number(opts, "train_fraction", 1.0, 0.0, 1.0)
        self.retries = int(_number(opts, "retries", 2, 0, 10))
        self.logdir, self.cwd, self.progress = logdir, (cwd or logdir), progress
        self.stall_s = stall_s or None
        self._idle_job = idle
        self._lock = threading.Lock()
        self._serial = 0
        self._idle: dict[str, IdleBaseline] = {}
        self._group_node: dict[tuple[str, ...], str] = {}
        self._ray = _ray()
        _connect(self._ray, self.address)
        self._task = self._ray.remote(_run_on_node)  # exported to the cluster once
        requested = device.get("device")
        threads = device.get("threads_used")
        self._nodes = self._fingerprints(
            str(requested) if requested else "cpu", threads if isinstance(threads, int) else None
        )
        first = next(iter(self._nodes.values()))
        self.device: dict[str, Any] = {k: v for k, v in first.items() if k not in ("node_id", "hostname")}
        self.device["executor"] = f"ray ({len(self._nodes)} node(s) with resource '{self.resource}')"
        #: jobs that may run at once: one per node with the resource
        self.slots = len(self._nodes)

    # --- the cluster ----------------------------------------------------------------------
    def _alive(self) -> dict[str, dict[str, Any]]:
        """Alive nodes offering the resource: node id -> Ray's node entry."""
        return {
            n["NodeID"]: n
            for n in self._ray.nodes()
            if n.get("Alive") and float(n.get("Resources", {}).get(self.resource, 0)) > 0
        }

    def _fingerprints(self, device: str, threads: int | None) -> dict[str, dict[str, Any]]:
        """Each alive node's fingerprint, taken on the node; one device kind or an error."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        alive = self._alive()
        if not alive:
            raise ClusterUnreachable(
                f"no node of the Ray cluster at {self.address} advertises the resource '{self.resource}'; "
                f"start each node with ray start … --resources '{{\"{self.resource}\": 1}}' (README, Ray)."
            )
        remote = self._ray.remote(num_cpus=0)(_fingerprint)
        refs = [
            remote.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)).remote(
                device, threads
            )
            for node in alive
        ]
        found = {fp["node_id"]: fp for fp in self._ray.get(refs, timeout=120)}
        kinds = sorted({fp["device_id"] for fp in found.values()})
        if len(kinds) > 1:
            raise ExecutorOptionError(
                f"the nodes with resource '{self.resource}' are of {len(kinds)} device kinds "
                f"({', '.join(kinds)}); a suite's records name one device: give each kind its own "
                f"resource (e.g. '{self.resource}_gpu') and choose one with --executor-option resource=NAME."
            )
        return found

    def where(self) -> Where:
        """Measure every node's idle baseline now (before any work heats them); the first's."""
        missing = [node for node in self._alive() if node not in self._idle]
        if missing and not self._idle_job.skipped:
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            for node in missing:  # one at a time: a node measures nothing while another works
                strategy = NodeAffinitySchedulingStrategy(node, soft=False)
                self._submit_and_wait(self._idle_job, 1.0, strategy, with_idle=False)
        return self._where(next(iter(self._idle), next(iter(self._nodes))))

    def _where(self, node: str) -> Where:
        fp = self._nodes.get(node) or next(iter(self._nodes.values()))
        device = {**fp, "node_id": node}
        idle = self._idle.get(node)
        if idle is None:
            idle = skipped_idle(self._idle_job.skipped or "not measured on this node")
        return Where(device, idle)

    # --- jobs -------------------------------------------------------------------------------
    def run(self, job: jobs.Job) -> Outcome:
        """Run ``job`` on a node (retrying on another one if its node or worker is lost)."""
        measuring = isinstance(job, (jobs.RoundJob, jobs.IdleJob))
        share = 1.0 if measuring else self.train_fraction
        group = tuple(a.variant for a in job.arms) if isinstance(job, jobs.RoundJob) else None
        lost: list[str] = []
        for _attempt in range(self.retries + 1):
            strategy = self._pinned(group)
            try:
                node, result, log = self._submit_and_wait(job, share, strategy, with_idle=True)
            except _Lost as e:
                lost.append(str(e))
                self.progress(
                    f"{job.label}: {e}; retrying on another node" if _attempt < self.retries else str(e)
                )
                continue
            if group is not None:
                with self._lock:
                    self._group_node.setdefault(group, node)
            return Outcome(result, self._where(node), log)
        raise JobFailed(f"{job.label}: lost {len(lost)} time(s), gave up: {'; '.join(lost)[:800]}")

    def _pinned(self, group: tuple[str, ...] | None) -> Any:
        """The node a round of ``group`` must run on (its first round's, while alive), or None."""
        node = self._group_node.get(group) if group is not None else None
        if node is None or node not in self._alive():
            return None
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        return NodeAffinitySchedulingStrategy(node, soft=False)

    def _stem(self, job: jobs.Job) -> Path:
        with self._lock:
            self._serial += 1
            serial = self._serial
        kind = type(job).__name__.removesuffix("Job").lower()
        return self.logdir / file_stem(job.label, kind, serial)

    def _submit_and_wait(
        self, job: jobs.Job, share: float, strategy: Any, with_idle: bool
    ) -> tuple[str, jobs.Result, str]:
        """Submit ``job`` asking for ``share`` of the resource, relay its progress, and return
        its node, result and log; ``_Lost`` if Ray lost its node or worker."""
        ray = self._ray
        stem = self._stem(job)
        try:
            self.logdir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise JobFailed(f"cannot create the log folder {self.logdir} ({e.strerror}).") from None
        # a node that joined after where() measures its idle first, holding its whole resource
        idle = self._idle_job if (with_idle and share == 1.0 and not self._idle_job.skipped) else None
        with self._lock:
            measured = frozenset(self._idle)
        options: dict[str, Any] = {"num_cpus": 0, "resources": {self.resource: share}, "max_retries": 0}
        if strategy is not None:
            options["scheduling_strategy"] = strategy
        task = self._task.options(**options)
        ref = task.remote(job, str(stem), str(self.logdir), str(self.cwd), self.stall_s, idle, measured)
        events = Path(f"{stem}.events")
        offset, since = 0, time.monotonic()
        while True:
            ready, _ = ray.wait([ref], timeout=0.5)
            offset = relay(events, offset, self.progress)
            if ready:
                break
            if self._alive():
                since = time.monotonic()
            elif time.monotonic() - since > NO_NODE_TIMEOUT_S:
                ray.cancel(ref, force=True)
                raise JobFailed(
                    f"{job.label}: no alive node of the cluster at {self.address} offers the resource "
                    f"'{self.resource}' for {NO_NODE_TIMEOUT_S:g} s; start one (README, Ray) and re-run."
                )
        try:
            node, result, baseline, (began, ended) = ray.get(ref)
        except ray.exceptions.RayTaskError as e:
            cause = e.cause if isinstance(e.cause, BaseException) else e
            if isinstance(cause, GreenbenchError):
                raise JobFailed(str(cause)) from None
            raise JobFailed(
                f"{job.label}: internal error on a Ray node: {type(cause).__name__}: {cause}"
            ) from None
        except ray.exceptions.RayError as e:  # the node died, the worker crashed, the object is gone
            raise _Lost(f"{job.label}: its Ray node or worker was lost ({type(e).__name__})") from None
        self._journal(job, node, share, began, ended)
        if isinstance(job, jobs.IdleJob):
            assert isinstance(result, jobs.IdleResult)
            baseline = result.idle
        if baseline is not None:
            with self._lock:
                self._idle.setdefault(node, _noted(baseline, node))
        return node, result, f"{stem}.log"

    def _journal(self, job: jobs.Job, node: str, share: float, began: float, ended: float) -> None:
        """One line per job in ``logdir/ray-jobs.jsonl``: what ran where, when, with which share
        of the resource (how a run was spread over the cluster, and proof that no two measuring
        jobs shared a node)."""
        import json

        kind = type(job).__name__.removesuffix("Job").lower()
        line = {"label": job.label, "kind": kind, "node": node, "share": share, "start": began, "end": ended}
        with self._lock, (self.logdir / JOURNAL).open("a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")


class _Lost(Exception):
    """Ray lost the job's node or worker (retried)."""


def _noted(idle: IdleBaseline, node: str) -> IdleBaseline:
    """``idle`` with the note that Ray's daemons are in it."""
    if idle.skipped:
        return idle
    return dataclasses.replace(idle, notes={**idle.notes, "ray": f"{DAEMONS_NOTE} (node {node[:12]})"})


def _number(opts: dict[str, str], key: str, default: float, low: float, high: float) -> float:
    text = opts.get(key)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (low < value <= high) and not (key == "retries" and value == 0):
        raise ExecutorOptionError(
            f"--executor-option {key}={text[:40]!r}: expected a number in ({low:g}, {high:g}]."
        )
    return value
