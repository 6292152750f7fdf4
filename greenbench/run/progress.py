"""Progress of a suite run that a person can follow for 50 hours, or a CI log can keep.

``RunProgress`` is the runner's ``progress`` callback. It reads the runner's and the workers'
one-line events ("v: train epoch 3/50", "v: accuracy", "v: prepared", "interleaved round 2/3: …",
"v: ok") and keeps: variants prepared (stages and evaluation done: the runner's "v: prepared")
and done (stored ok or failed) out of the total, each counted as it happens (variants measured
interleaved are stored together, when their last round is done); the current variant and
stage, the epoch inside training, the measurement round, the elapsed time and an ETA.

The ETA comes from the stages' estimated cost: a training stage costs its epochs, other stages
and each evaluation a fraction of an epoch, and the interleaved rounds their planned length
(rounds × blocks × models × block length). Seconds per unit of cost are measured as the run goes,
so the ETA is "estimating…" until the first unit is done, and then follows the machine.

On a terminal a rich live line is redrawn; elsewhere (CI logs) a plain line is printed at most
every ``interval_s`` seconds, and lines that matter (a variant ok, failed, skipped) always.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from greenbench.errors import TERMINAL_UNSAFE

if TYPE_CHECKING:
    from rich.console import Console

    from greenbench.suite import Suite

TRAINING_STAGES = ("train", "sparse_train", "finetune", "distill")
OTHER_STAGE_COST = 0.2  # epochs' worth of an export, prune or quantize stage
EVALUATE_COST = 0.3  # epochs' worth of one variant's accuracy and complexity job
ROUND_OVERHEAD_S = 10.0  # a fresh process: imports, model loads, warm-up
BLOCK_OVERHEAD = 1.5  # a block lasts longer than min_window_s (whole calls, a slow model)

_EPOCH = re.compile(r"^(?P<v>\S+): (?P<stage>\w+) epoch (?P<x>\d+)/(?P<y>\d+)$")
_STAGE = re.compile(r"^(?P<v>\S+): (?P<stage>\w+)$")
_ROUND = re.compile(r"^interleaved round (?P<r>\d+)/(?P<n>\d+)")
_DONE = re.compile(r"^(?P<v>\S+): (ok|FAILED|already stored ok)")
_PREPARED = re.compile(r"^(?P<v>\S+): prepared$")
_SHOWN = re.compile(r": ok$|: FAILED|skipped$| kept from run |^idle|^baseline |retrying on another node")


def _cost(suite: Suite, name: str) -> float:
    """Epoch units of a variant's own stages and its evaluation."""
    total = EVALUATE_COST
    for stage in suite.variants[name].stages:
        if stage.name in TRAINING_STAGES:
            epochs = stage.params.get("epochs", suite.defaults.get("epochs", 100))
            total += float(epochs) if isinstance(epochs, int | float) else 1.0
        else:
            total += OTHER_STAGE_COST
    return total


def _measure_s(suite: Suite) -> float:
    """Planned seconds of the interleaved rounds of all variants."""
    m = suite.measure
    models = len(suite.variants)
    block_s = max(m.energy.min_window_s, 0.05) * BLOCK_OVERHEAD
    return m.protocol.rounds * (m.protocol.blocks * models * block_s + ROUND_OVERHEAD_S)


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


@dataclass
class _State:
    started: float
    costs: dict[str, float]
    measure_s: float
    units_done: dict[str, float] = field(default_factory=dict)
    prepared: set[str] = field(default_factory=set)
    finished: set[str] = field(default_factory=set)
    variant: str = ""
    stage: str = ""
    epoch: str = ""
    round: str = ""
    measuring_since: float | None = None


class RunProgress:
    """The ``progress`` callback of a suite run: a live line on a terminal, throttled plain lines
    elsewhere. ``clock``: seconds (monotonic), replaceable in tests."""

    def __init__(
        self,
        suite: Suite,
        console: Console,
        interval_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.console, self.interval_s, self.clock = console, interval_s, clock
        self.live = console.is_terminal
        costs = {name: _cost(suite, name) for name in suite.variants}
        self.state = _State(clock(), costs, _measure_s(suite))
        self._last_plain = -float("inf")
        self._progress: Any = None
        self._task: Any = None

    # --- the live display ---------------------------------------------------------------
    def __enter__(self) -> RunProgress:
        if self.live:
            from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn

            self._progress = Progress(
                SpinnerColumn(),
                BarColumn(bar_width=24),
                TextColumn("{task.description}", markup=False),
                console=self.console,
                transient=True,
            )
            self._progress.__enter__()
            self._task = self._progress.add_task(self.line(), total=1.0)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Take the live line off the screen (again: nothing)."""
        if self._progress is not None:
            self._progress.__exit__(None, None, None)
            self._progress = None

    # --- events -------------------------------------------------------------------------
    def __call__(self, message: str) -> None:
        """Take one event line; show it as the live line, or print it (throttled)."""
        message = TERMINAL_UNSAFE.sub("?", message)
        self._update(message)
        now = self.clock()
        if _SHOWN.search(message):
            self._print(f"[{now - self.state.started:7.1f} s] {message}")
        elif not self.live and now - self._last_plain >= self.interval_s:
            self._last_plain = now
            self._print(self.line())
        if self._progress is not None:
            self._progress.update(self._task, description=self.line(), completed=self.fraction())

    def _print(self, text: str) -> None:
        target = self._progress.console if self._progress is not None else self.console
        target.print(text, highlight=False, markup=False)

    def _update(self, message: str) -> None:
        st = self.state
        if m := _EPOCH.match(message):
            st.variant, st.stage, st.epoch = m["v"], m["stage"], f"{m['x']}/{m['y']}"
            done_before = st.units_done.get(f"{m['v']}:{m['stage']}", 0.0)
            st.units_done[f"{m['v']}:{m['stage']}"] = max(done_before, float(m["x"]))
        elif m := _ROUND.match(message):
            st.round, st.stage, st.epoch = f"{m['r']}/{m['n']}", "interleaved measurement", ""
            st.measuring_since = st.measuring_since or self.clock()
            st.variant = ""
        elif m := _DONE.match(message):
            if m["v"] in st.costs:
                st.finished.add(m["v"])
                if "already stored" in message:  # resumed: its cost is not this run's
                    st.costs.pop(m["v"])
        elif (m := _PREPARED.match(message)) and m["v"] in st.costs:
            st.prepared.add(m["v"])
        elif (m := _STAGE.match(message)) and m["v"] in st.costs:
            st.variant, st.stage, st.epoch = m["v"], m["stage"], ""

    # --- figures ------------------------------------------------------------------------
    def _units(self) -> tuple[float, float]:
        """(done, total) epoch units of preparation (stages and evaluations)."""
        st = self.state
        total = sum(st.costs.values())
        done = sum(st.costs[v] for v in st.prepared if v in st.costs)
        done += sum(u for k, u in st.units_done.items() if k.split(":")[0] not in st.prepared)
        return min(done, total), total

    def eta_s(self) -> float | None:
        """Seconds left, or None while there is nothing to extrapolate from."""
        st = self.state
        now = self.clock()
        if st.measuring_since is not None:
            left = st.measure_s - (now - st.measuring_since)
            return max(left, 0.0)
        done, total = self._units()
        if done <= 0:
            return None
        per_unit = (now - st.started) / done
        return (total - done) * per_unit + st.measure_s

    def fraction(self) -> float:
        """Share of the run's estimated cost done, 0..1."""
        eta = self.eta_s()
        elapsed = self.clock() - self.state.started
        return 0.0 if eta is None else elapsed / max(elapsed + eta, 1e-9)

    def line(self) -> str:
        """One line: variants prepared and finished / total, current variant, stage, epoch or
        round, elapsed, ETA."""
        st = self.state
        n = len(st.costs)
        where = " · ".join(x for x in (st.variant, st.stage) if x) or "starting"
        detail = f" epoch {st.epoch}" if st.epoch else (f" round {st.round}" if st.round else "")
        eta = self.eta_s()
        shown_eta = "estimating…" if eta is None else _clock(eta)
        return (
            f"variants {len(st.prepared & set(st.costs))}/{n} prepared, {len(st.finished)}/{n} done · "
            f"{where}{detail} · {_clock(self.clock() - st.started)} elapsed · ETA {shown_eta}"
        )
