"""The round loop ``run`` and ``gate`` share, on a scripted executor: blocks gathered in order,
a lost process losing only its round, failed arms kept, and the gate's stop at a failed arm."""

from __future__ import annotations

from typing import Any

from greenbench.errors import GreenbenchError
from greenbench.executors.base import Outcome, Where
from greenbench.executors.rounds import Rounds, run_rounds
from greenbench.measure.energy.composite import skipped_idle
from greenbench.run import jobs


class Scripted:
    """An executor whose round ``i`` returns ``script[i]``: a RoundResult, or an error to raise."""

    name = "scripted"
    slots = 1

    def __init__(self, script: dict[int, Any]) -> None:
        self.device = {"device_id": "dev"}
        self.script = script
        self.ran: list[int] = []

    def where(self) -> Where:
        return Where(self.device, skipped_idle("test"))

    def run(self, job: Any) -> Outcome:
        self.ran.append(job)
        got = self.script[job]
        if isinstance(got, Exception):
            raise got
        return Outcome(got, self.where())


def result(index: int, failed: dict[str, str] | None = None) -> jobs.RoundResult:
    return jobs.RoundResult(index, ({"arm": "a", "round": index},), {"a": {"runtime": "torch"}}, failed or {})


def test_rounds_gather_in_order_and_a_lost_process_loses_only_its_round() -> None:
    executor = Scripted({0: result(0), 1: GreenbenchError("worker killed"), 2: result(2, {"b": "no file"})})
    announced: list[int] = []
    out = run_rounds(executor, lambda i: i, range(3), Rounds(), announced.append)  # type: ignore[arg-type,return-value]
    assert announced == executor.ran == [0, 1, 2]
    assert [b["round"] for b in out.blocks] == [0, 2] and out.done == 2
    assert out.lost_rounds == ["round 2: worker killed"] and out.failed == {"b": "no file"}
    assert out.where is not None and out.where.device_id == "dev"
    # rounds continue into the same Rounds (the gate adds rounds while inconclusive)
    more = run_rounds(Scripted({3: result(3)}), lambda i: i, [3], out)  # type: ignore[arg-type,return-value]
    assert more is out and out.done == 3 and [b["round"] for b in out.blocks] == [0, 2, 3]


def test_the_gate_stops_at_the_first_failed_arm() -> None:
    executor = Scripted({0: result(0, {"candidate": "cannot load"}), 1: result(1)})
    out = run_rounds(executor, lambda i: i, range(2), Rounds(), stop_at_failed_arm=True)  # type: ignore[arg-type,return-value]
    assert executor.ran == [0] and out.failed == {"candidate": "cannot load"}
    assert out.blocks == [] and out.done == 0 and out.where is None
