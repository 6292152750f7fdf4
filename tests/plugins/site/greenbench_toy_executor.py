"""A toy executor from outside greenbench, registered only through its entry point (the
``greenbench_toy_executor-0.1.dist-info`` beside it): it runs each job as a fresh local process
from a thread pool, and tags every outcome with a device id of its own, as an executor whose
jobs run on another machine would."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from greenbench.executors.base import Outcome, Where
from greenbench.executors.local import LocalExecutor
from greenbench.run.jobs import Job

TOY_PREFIX = "toy-"


class ToyExecutor(LocalExecutor):
    """Jobs through a one-thread pool of fresh processes, on a pretend machine."""

    name = "toy"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.device = {**self.device, "device_id": TOY_PREFIX + str(self.device["device_id"]),
                       "hostname": "toy-node"}  # fmt: skip
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="toy-executor")

    def run(self, job: Job) -> Outcome:
        outcome = self._pool.submit(super().run, job).result()
        return replace(outcome, where=Where(self.device, outcome.where.idle))
