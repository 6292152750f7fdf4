"""The local executor: each job in a fresh Python process on this machine.

A fresh process per job keeps a measurement free of the previous job's threads, allocator
state and ultralytics' global thread setting, and samples process-level effects across the
rounds of the interleaved protocol. The worker dies with the runner (SIGTERM on parent death),
and an interrupted runner stops it. A worker whose log and events files stay unchanged for
``stall_s`` is hung: it is stopped and its job fails with that reason. A worker that dies
without a readable result on a nearly full disk is reported as a full disk (its own log was
cut off before it could say so).
"""

from __future__ import annotations

import errno
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError

from greenbench.errors import GreenbenchError
from greenbench.executors.base import ExecutorOptionError, JobFailed, Outcome, Where
from greenbench.measure.energy.composite import skipped_idle
from greenbench.run import jobs

DEFAULT_STALL_S = 1800.0  # no line of log or progress for 30 min: longer than any epoch prints nothing
LOW_SPACE_BYTES = 64 * 2**20  # below this a worker that died without a result is taken as out of space


def file_stem(label: str, kind: str, serial: int) -> str:
    """A log file name that keeps the whole label (``v1.5`` and ``v1.6`` stay apart) and is safe."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", label)[:120]
    return f"{serial:03d}-{safe}-{kind}"


class LocalExecutor:
    """Runs jobs as ``python -m greenbench.run.worker JOB RESULT EVENTS`` in ``logdir``.

    device: this machine's fingerprint. idle: the job that measures this machine's idle
    baseline, run once, lazily, in a fresh process like every other job (so that a run with
    nothing to do measures nothing; a skipped one starts nothing). progress: receives the
    workers' lines.
    stall_s: seconds without a change to a worker's log or events file after which it is
    stopped as hung (None or 0: never). options: ``--executor-option`` settings (it has none).
    """

    name = "local"
    slots = 1  # one machine: a job at a time, so that no two measurements overlap

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
        if options:
            raise ExecutorOptionError(
                f"executor {self.name!r} takes no --executor-option; got {', '.join(sorted(options))[:200]}. "
                "Remove them, or choose the executor they belong to with --executor."
            )
        self.logdir = logdir
        self.device = dict(device)
        self._idle_job = idle
        self._where: Where | None = None
        self.progress = progress
        self.cwd = cwd
        self.stall_s = stall_s or None
        #: the worker command, before its JOB RESULT EVENTS arguments (a seam for tests)
        self.argv: list[str] = [sys.executable, "-m", "greenbench.run.worker"]
        self._serial = 0

    def where(self) -> Where:
        """This machine, with its idle baseline measured on first use (by ``IdleJob``)."""
        if self._where is None:
            job = self._idle_job
            if job.skipped:
                idle = skipped_idle(job.skipped)
            else:
                result, _ = self.execute(job)
                assert isinstance(result, jobs.IdleResult)
                idle = result.idle
            self._where = Where(self.device, idle)
        return self._where

    def run(self, job: jobs.Job) -> Outcome:
        """Run ``job`` in a fresh process and wait for it (stopping it if it hangs)."""
        where = self.where()
        result, log_file = self.execute(job)
        return Outcome(result, where, str(log_file))

    def stem(self, job: jobs.Job) -> Path:
        """Where the next job's files go: ``logdir/<serial>-<label>-<kind>`` (+ suffixes)."""
        self._serial += 1
        kind = type(job).__name__.removesuffix("Job").lower()
        return self.logdir / file_stem(job.label, kind, self._serial)

    def execute(self, job: jobs.Job, stem: Path | None = None) -> tuple[jobs.Result, Path]:
        """``job``'s result, from a fresh worker process, and the process' log; its files at
        ``stem`` (default: the next ``stem``)."""
        stem = stem if stem is not None else self.stem(job)
        kind = type(job).__name__.removesuffix("Job").lower()
        job_file, result_file, log_file, events = (
            Path(f"{stem}{s}") for s in (".job.json", ".result.json", ".log", ".events")
        )
        what = f"the {kind} process of '{job.label}'"
        try:
            self.logdir.mkdir(parents=True, exist_ok=True)
            job_file.write_text(jobs.dump(job))
            log = log_file.open("w")
        except OSError as e:
            raise self._cannot_write(e, f"cannot write the job files of {what}") from None
        with log:
            try:
                proc = subprocess.Popen(
                    [*self.argv, str(job_file), str(result_file), str(events)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.cwd or self.logdir,
                )
            except OSError as e:
                raise JobFailed(f"cannot start {what}: {e.strerror or e}.") from None
            stalled = self._wait(proc, events, log_file, self._stall_limit(job))
        if stalled:
            raise JobFailed(
                f"{what} made no progress for {self.stall_s:g} s (its log and events files did not "
                f"change) and was stopped as hung; see {log_file}. If this step is that slow, pass "
                f"a larger --stall-timeout (0 turns the check off)."
            )
        text = self._reply_text(result_file)
        if text is None:
            raise self._died(proc.returncode, what, log_file)
        try:
            reply = jobs.load_reply(text)
        except (GreenbenchError, ValidationError, ValueError, TypeError) as e:
            why = " ".join(str(e).split())[:300]
            raise JobFailed(
                f"{what} returned a result greenbench cannot read ({why}); see {log_file}."
            ) from None
        if not reply.ok or reply.result is None:
            hint = "" if reply.user else f" (traceback in {log_file})"
            raise JobFailed(f"{reply.error}{hint}")
        return reply.result, log_file

    def _stall_limit(self, job: jobs.Job) -> float | None:
        """How long ``job`` may stay silent: the idle job is silent for its whole window by
        design, so it gets that window on top of the limit."""
        if self.stall_s is None or not isinstance(job, jobs.IdleJob):
            return self.stall_s
        return self.stall_s + job.seconds

    def _wait(
        self, proc: subprocess.Popen[bytes], events: Path, log_file: Path, stall_s: float | None
    ) -> bool:
        """Relay progress until ``proc`` ends; True if it was stopped for making no progress."""
        offset = 0
        marks = (_mark(log_file), _mark(events))
        moved = time.monotonic()
        try:
            while proc.poll() is None:
                time.sleep(0.2)
                offset = self._relay(events, offset)
                now = (_mark(log_file), _mark(events))
                if now != marks:
                    marks, moved = now, time.monotonic()
                elif stall_s is not None and time.monotonic() - moved > stall_s:
                    return True
            return False
        finally:  # hung, interrupted or killed: never leave a worker running on its own
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            self._relay(events, offset)

    def _reply_text(self, result_file: Path) -> str | None:
        """The worker's reply as written, or None if it wrote none, or one cut short (a full
        disk) or not a JSON object."""
        try:
            text = result_file.read_text(encoding="utf-8")
            return text if isinstance(json.loads(text), dict) else None
        except (OSError, ValueError):
            return None

    def _folders(self) -> list[Path]:
        return list(dict.fromkeys(p for p in (self.cwd, self.logdir) if p is not None))

    def _low_space(self) -> tuple[Path, int] | None:
        """The first work folder with less than ``LOW_SPACE_BYTES`` free, and its free bytes."""
        for folder in self._folders():
            try:
                free = shutil.disk_usage(folder).free
            except OSError:
                continue
            if free < LOW_SPACE_BYTES:
                return folder, free
        return None

    def _cannot_write(self, e: OSError, doing: str) -> JobFailed:
        low = self._low_space()
        if e.errno == errno.ENOSPC or low is not None:
            folder, free = low or (self.logdir, 0)
            return JobFailed(
                f"no space left in {folder} ({free / 2**20:.0f} MB free): {doing}; free space and "
                f"re-run (trained stages are cached)."
            )
        return JobFailed(
            f"{doing} in {self.logdir} ({e.strerror or e}); pass --workdir with a writable folder."
        )

    def _died(self, returncode: int, what: str, log_file: Path) -> JobFailed:
        """Why a worker left no readable result: a full disk if it looks like one."""
        how = f"exit code {returncode}"
        if returncode < 0:
            try:
                how = f"signal {signal.Signals(-returncode).name}"
            except ValueError:
                how = f"signal {-returncode}"
        low = self._low_space()
        if low is not None or _says_disk_full(log_file):
            folder, free = low or (self.cwd or self.logdir, _free(self.cwd or self.logdir))
            return JobFailed(
                f"no space left in {folder} ({free / 2**20:.0f} MB free): {what} ended with {how} "
                f"without a readable result; free space and re-run (trained stages are cached); "
                f"see {log_file}."
            )
        return JobFailed(f"{what} ended with {how} before writing a readable result; see {log_file}.")

    def _relay(self, events: Path, offset: int) -> int:
        return relay(events, offset, self.progress)


def relay(events: Path, offset: int, progress: Callable[[str], None]) -> int:
    """Pass on to ``progress`` the complete lines appended to ``events`` since byte ``offset``;
    the offset to read from next."""
    try:
        with events.open("rb") as f:
            f.seek(offset)
            data = f.read()
    except OSError:
        return offset
    end = data.rfind(b"\n") + 1  # a line still being written waits for the next call
    for line in data[:end].decode("utf-8", errors="replace").splitlines():
        progress(line)
    return offset + end


def _mark(path: Path) -> tuple[int, int] | None:
    """Size and modification time of ``path``: what changes while a worker makes progress."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def _free(folder: Path) -> int:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return 0


def _says_disk_full(log_file: Path) -> bool:
    """Whether the end of a worker's log says the disk is full."""
    try:
        with log_file.open("rb") as f:
            f.seek(max(0, log_file.stat().st_size - 8192))
            tail = f.read().decode("utf-8", errors="replace")
    except OSError:
        return False
    return "No space left on device" in tail or "database or disk is full" in tail
