"""The executor seam: ``Executor.run(job) -> Outcome``.

The runner owns the variant DAG, the cache and the records; an executor owns *how* a job runs
(a fresh local process today, a Ray task on another node later). Every outcome says where it
ran: that machine's device fingerprint and idle baseline, so a record's energy is netted
against the idle power of the machine that measured it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from greenbench.errors import GreenbenchError
from greenbench.measure.energy.composite import IdleBaseline
from greenbench.run.jobs import Job, Result


@dataclass(frozen=True)
class Where:
    """The machine a job ran on: its device fingerprint and idle baseline."""

    device: dict[str, Any]
    idle: IdleBaseline

    @property
    def device_id(self) -> str:
        """The fingerprint's stable id."""
        return str(self.device["device_id"])


@dataclass(frozen=True)
class Outcome:
    """A job's result, where it ran, and its log (if it kept one)."""

    result: Result
    where: Where
    log: str | None = None


class ExecutorOptionError(GreenbenchError):
    """An ``--executor-option`` the chosen executor does not take (a usage error: exit code 2)."""

    exit_code = 2


class JobFailed(GreenbenchError):
    """A job that ran and failed; the message is one paragraph (and points at the log)."""


class Executor(Protocol):
    """Runs jobs. ``where()`` is the machine jobs run on (measured once, e.g. its idle power)."""

    name: str
    #: the fingerprint of the machine jobs run on (its ``device_id`` keys resume)
    device: dict[str, Any]
    #: how many jobs it runs at once (the runner prepares and measures that many variants in
    #: parallel, a variant after its parent; 1: one after another, in suite order)
    slots: int

    def where(self) -> Where:
        """The machine the next job runs on."""
        ...

    def run(self, job: Job) -> Outcome:
        """Run ``job`` to completion; raise ``JobFailed`` (or another ``GreenbenchError``)."""
        ...
