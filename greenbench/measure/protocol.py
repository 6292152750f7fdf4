"""The interleaved (duet) measuring protocol: arms timed in alternating blocks inside one process.

On a shared host one model's latency moves by tens of percent between seconds, so timing a
variant after its baseline compares two different machines. Instead every arm runs in short
blocks, in an order that changes every *cycle*, and the variant is compared with the baseline
block of the same cycle (``greenbench.measure.compare``): the host's drift hits both members of
a pair almost equally and cancels in their ratio. The orders follow a Williams design: every
arm takes every position equally often (a drift inside a cycle favours no arm), and every arm
follows every other arm equally often. Plain rotation (A B C, B C A, C A B) keeps the cyclic
order, so B would always run right after A: whatever A leaves behind (a cold cache, a warm
core) would always land on B. Measured here with three arms, rotation gave an exact twin of
the baseline a Δ of +0.5 to +2.6 % in three of four repetitions; the balanced order removes
that bias. A *round* is one
process; the caller runs several rounds in fresh processes, because a process' own state
(allocator, thread placement, page layout) shifts all its blocks together.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any

from greenbench.measure.energy.meter import EnergyReading, Meter


@dataclass(frozen=True)
class ProtocolConfig:
    """blocks: blocks per arm per round; min_block_s: each block lasts at least this (energy counters
    need it); min_calls: at least this many calls per block; warmup: untimed calls per arm before its
    first block in a process."""

    blocks: int = 10
    min_block_s: float = 0.5
    min_calls: int = 3
    warmup: int = 5

    def __post_init__(self) -> None:
        if self.blocks < 1:
            raise ValueError(f"blocks must be >= 1, got {self.blocks}")
        if self.min_calls < 1:
            raise ValueError(f"min_calls must be >= 1, got {self.min_calls}")
        if self.min_block_s < 0:
            raise ValueError(f"min_block_s must be >= 0 s, got {self.min_block_s}")
        if self.warmup < 0:
            raise ValueError(f"warmup must be >= 0, got {self.warmup}")


def _no_sync() -> None:
    """The CPU's sync: nothing is queued."""


@dataclass(frozen=True)
class Arm:
    """One model to time: ``call`` runs one forward pass of ``images_per_call`` images; ``sync`` waits
    for the device (no-op on CPU)."""

    name: str
    call: Callable[[], None]
    images_per_call: int = 1
    sync: Callable[[], None] = _no_sync

    def __post_init__(self) -> None:
        if self.images_per_call < 1:
            raise ValueError(f"arm {self.name!r}: images_per_call must be >= 1, got {self.images_per_call}")


@dataclass(frozen=True)
class Block:
    """One block of consecutive calls of one arm. Units in names. energy_* are None when no meter was
    given.

    round: process/round index. cycle: rotation cycle within the round (blocks of one cycle are
    paired). position: order of this arm inside its cycle (0 = first). start_s: seconds since the
    round's first block started. samples_ms: per call, ms (sync after every call). latency_ms:
    median of samples_ms. reading: the energy reading of the block's window.
    """

    arm: str
    round: int
    cycle: int
    position: int
    start_s: float
    duration_s: float
    calls: int
    images: int
    samples_ms: tuple[float, ...]
    latency_ms: float
    energy_j: float | None
    energy_per_image_j: float | None
    reading: EnergyReading | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (samples as a list, the reading as ``EnergyReading.to_dict``): what a
        record stores."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["samples_ms"] = list(self.samples_ms)
        d["reading"] = None if self.reading is None else self.reading.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Block:
        """Inverse of ``to_dict``; a missing or unknown key is an error that names it."""
        names = {f.name for f in fields(cls)}
        missing, unknown = sorted(names - d.keys()), sorted(d.keys() - names)
        if missing or unknown:
            raise ValueError(f"Block.from_dict: missing keys {missing}, unknown keys {unknown}")
        values = dict(d)
        values["samples_ms"] = tuple(float(x) for x in d["samples_ms"])
        values["reading"] = None if d["reading"] is None else EnergyReading.from_dict(d["reading"])
        return cls(**values)


def williams_period(n_arms: int) -> int:
    """Rows of the Williams design for ``n_arms``: n for an even n, 2n for an odd one."""
    return n_arms if n_arms % 2 == 0 else 2 * n_arms


def balanced_blocks(blocks: int, rounds: int, n_arms: int) -> int:
    """The fewest cycles per round, at least ``blocks``, for which ``rounds`` rounds make whole
    Williams periods (every arm in every position and after every other arm equally often):
    8 models × 3 rounds × 12 blocks is 36 cycles, 4.5 periods; padded to 16 blocks, 6 periods.
    Padding that would add more than half of ``blocks`` is not done (``blocks`` comes back; the
    caller says the order is only nearly balanced)."""
    if n_arms < 2:
        return blocks
    period = williams_period(n_arms)
    step = period // math.gcd(period, max(1, rounds))
    padded = -(-blocks // step) * step
    return padded if padded <= blocks * 1.5 else blocks


def rotation(n_arms: int, cycle: int) -> list[int]:
    """Arm indices in the order they run in ``cycle``: row ``cycle`` of a Williams design.

    The first row is 0, 1, n-1, 2, n-2, …; row r adds r to each index (mod n). For an even n
    these n rows are balanced for first-order carry-over; for an odd n the mirrored rows follow
    (2n rows in all). Two arms give A B, B A, A B, …
    """
    if n_arms < 1:
        raise ValueError(f"n_arms must be >= 1, got {n_arms}")
    first, low, high = [0], 1, n_arms - 1
    while len(first) < n_arms:
        first.append(low)
        low += 1
        if len(first) < n_arms:
            first.append(high)
            high -= 1
    row = cycle % williams_period(n_arms)
    order = [(i + row) % n_arms for i in first]
    return order[::-1] if row >= n_arms else order


def _warm(arm: Arm, calls: int) -> None:
    """Untimed calls, then drain the device so the block starts from an idle queue."""
    for _ in range(calls):
        arm.call()
    arm.sync()


def _time_block(arm: Arm, config: ProtocolConfig, clock: Callable[[], float]) -> list[float]:
    """Call ``arm`` until both ``min_calls`` and ``min_block_s`` are reached; per-call ms."""
    samples_ms: list[float] = []
    started = clock()
    while True:
        t0 = clock()
        arm.call()
        arm.sync()  # an async device would otherwise only time the enqueue
        t1 = clock()
        samples_ms.append((t1 - t0) * 1e3)
        if len(samples_ms) >= config.min_calls and t1 - started >= config.min_block_s:
            return samples_ms


def _median(values: Sequence[float]) -> float:
    """Median without numpy (the protocol runs inside the measured process; keep it light)."""
    s = sorted(values)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2


def run_round(
    arms: Sequence[Arm],
    config: ProtocolConfig,
    round_index: int,
    meter: Meter | None = None,
    clock: Callable[[], float] = time.perf_counter,
    first_cycle: int = 0,
) -> list[Block]:
    """Run one round in this process: ``config.blocks`` cycles of one block per arm.

    ``meter`` must already be open; thread settings are the caller's business. Each arm is warmed
    right before its first block, not all up front, so its warm state is as fresh as the others'.
    ``first_cycle``: where this round starts in the order design, so that rounds continue one
    design instead of each restarting it (balance holds over rounds × blocks cycles).
    """
    if not arms:
        raise ValueError("run_round needs at least one arm")
    names = [a.name for a in arms]
    if len(set(names)) != len(names):
        raise ValueError(f"arm names must be unique, got {names}")
    warmed: set[str] = set()
    blocks: list[Block] = []
    round_start: float | None = None
    for cycle in range(config.blocks):
        for position, index in enumerate(rotation(len(arms), first_cycle + cycle)):
            arm = arms[index]
            if arm.name not in warmed:
                _warm(arm, config.warmup)
                warmed.add(arm.name)
            window = meter.begin() if meter is not None else None
            start = clock()
            if round_start is None:
                round_start = start
            samples_ms = _time_block(arm, config, clock)
            duration_s = clock() - start
            reading = meter.end(window) if meter is not None and window is not None else None
            images = len(samples_ms) * arm.images_per_call
            energy_j = reading.energy_j if reading is not None else None
            blocks.append(
                Block(
                    arm=arm.name,
                    round=round_index,
                    cycle=cycle,
                    position=position,
                    start_s=start - round_start,
                    duration_s=duration_s,
                    calls=len(samples_ms),
                    images=images,
                    samples_ms=tuple(samples_ms),
                    latency_ms=_median(samples_ms),
                    energy_j=energy_j,
                    energy_per_image_j=energy_j / images if energy_j is not None else None,
                    reading=reading,
                )
            )
    return blocks
