"""The local executor: each job in a fresh Python process on this machine.

A fresh process per job keeps a measurement free of the previous job's threads, allocator
state and ultralytics' global thread setting, and samples process-level effects across the
rounds of the interleaved protocol. The worker dies with the runner (SIGTERM on parent death),
and an interrupted runner stops it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from greenbench import jobs
from greenbench.executors.base import JobFailed, Outcome, Where
from greenbench.measure.energy.composite import IdleBaseline


def _file_stem(label: str, kind: str, serial: int) -> str:
    """A log file name that keeps the whole label (``v1.5`` and ``v1.6`` stay apart) and is safe."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", label)[:120]
    return f"{serial:03d}-{safe}-{kind}"


class LocalExecutor:
    """Runs jobs as ``python -m greenbench.worker JOB RESULT`` in ``logdir``.

    device: this machine's fingerprint. idle: measures the idle baseline (called once, lazily,
    so that a run with nothing to do measures nothing). progress: receives the workers' lines.
    """

    name = "local"

    def __init__(
        self,
        logdir: Path,
        device: dict[str, object],
        idle: Callable[[], IdleBaseline],
        progress: Callable[[str], None] = lambda _msg: None,
        cwd: Path | None = None,
    ) -> None:
        self.logdir = logdir
        self.device = dict(device)
        self._idle_probe = idle
        self._where: Where | None = None
        self.progress = progress
        self.cwd = cwd
        self._serial = 0

    def where(self) -> Where:
        """This machine, with its idle baseline measured on first use."""
        if self._where is None:
            self._where = Where(self.device, self._idle_probe())
        return self._where

    def run(self, job: jobs.Job) -> Outcome:
        """Run ``job`` in a fresh process and wait for it."""
        where = self.where()
        self.logdir.mkdir(parents=True, exist_ok=True)
        self._serial += 1
        kind = type(job).__name__.removesuffix("Job").lower()
        stem = self.logdir / _file_stem(job.label, kind, self._serial)
        job_file, result_file, log_file, events = (
            Path(f"{stem}{s}") for s in (".job.json", ".result.json", ".log", ".events")
        )
        job_file.write_text(jobs.dump(job))
        with log_file.open("w") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "greenbench.worker", str(job_file), str(result_file), str(events)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.cwd or self.logdir,
            )
            seen = 0
            try:
                while proc.poll() is None:
                    time.sleep(0.2)
                    seen = self._relay(events, seen)
            finally:  # interrupted or killed: never leave a worker running on its own
                if proc.poll() is None:
                    proc.terminate()
                    try:
                        proc.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
            self._relay(events, seen)
        if not result_file.exists():
            raise JobFailed(
                f"the {kind} process of '{job.label}' died with exit code {proc.returncode} before "
                f"writing a result; see {log_file}."
            )
        reply = json.loads(result_file.read_text())
        if not reply.get("ok"):
            hint = "" if reply.get("user") else f" (traceback in {log_file})"
            raise JobFailed(f"{reply.get('error')}{hint}")
        return Outcome(jobs.load(reply["result"]), where, str(log_file))

    def _relay(self, events: Path, seen: int) -> int:
        if not events.exists():
            return seen
        lines = events.read_text().splitlines()
        for line in lines[seen:]:
            self.progress(line)
        return len(lines)
