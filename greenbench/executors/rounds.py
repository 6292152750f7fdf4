"""The round loop of the interleaved protocol, shared by ``greenbench run`` and
``greenbench gate``: one ``RoundJob`` (a fresh process) per round on an executor. A process that
is lost (crashed, hung, killed) loses only its round, with the reason kept; an arm that cannot
run in a round is named with its error."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from greenbench.errors import GreenbenchError
from greenbench.executors.base import Executor, Where
from greenbench.measure.protocol import Block
from greenbench.run import jobs


@dataclass
class Rounds:
    """What the rounds gave one group of arms: every block (as the worker wrote it), per-arm
    runtime descriptions, arms that failed (first error each), the machine of the last round
    that came back, rounds lost and why, and how many came back."""

    blocks: list[Block] = field(default_factory=list)
    arms: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    where: Where | None = None
    lost_rounds: list[str] = field(default_factory=list)
    done: int = 0


def run_rounds(
    executor: Executor,
    job_of: Callable[[int], jobs.RoundJob],
    indices: Iterable[int],
    into: Rounds,
    announce: Callable[[int], None] = lambda _index: None,
    stop_at_failed_arm: bool = False,
) -> Rounds:
    """Run round ``index`` for each of ``indices`` (``job_of(index)``) and add what it gave to
    ``into``. ``announce(index)`` before each round. ``stop_at_failed_arm``: return at the first
    round in which an arm failed, before its blocks are added (the gate: a side that cannot run
    is a usage error, not a lost round)."""
    for index in indices:
        announce(index)
        try:
            outcome = executor.run(job_of(index))
        except GreenbenchError as e:  # a lost process: the other rounds still count
            into.lost_rounds.append(f"round {index + 1}: {e}")
            continue
        result = outcome.result
        assert isinstance(result, jobs.RoundResult)
        for variant, error in result.failed.items():
            into.failed.setdefault(variant, error)
        if result.failed and stop_at_failed_arm:
            return into
        into.where = outcome.where
        into.blocks += result.blocks
        into.arms.update(result.arms)
        into.done += 1
    return into
