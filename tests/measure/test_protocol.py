"""The interleaved protocol, driven by fake predictors on a fake host whose speed drifts."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any

import pytest

from greenbench.measure.compare import paired_ratio, pairs
from greenbench.measure.energy.meter import Availability, DomainEnergy, EnergyReading, Meter
from greenbench.measure.protocol import Arm, Block, ProtocolConfig, rotation, run_round


class FakeHost:
    """A shared host on a fake clock: a call costs ``base_cost_s × factor`` of fake time, where the
    factor jumps from 1.0 to ``slow`` once ``now`` reaches ``switch_s`` (a co-tenant arrives)."""

    def __init__(self, switch_s: float = float("inf"), slow: float = 1.4) -> None:
        self.now = 0.0
        self.switch_s, self.slow = switch_s, slow
        self.log: list[str] = []

    def clock(self) -> float:
        """The fake ``perf_counter`` (s)."""
        return self.now

    def factor(self) -> float:
        """How much slower than nominal the host runs at ``now``."""
        return 1.0 if self.now < self.switch_s else self.slow

    def arm(self, name: str, base_cost_s: float = 0.01, images_per_call: int = 1) -> Arm:
        """An arm whose calls and syncs are logged and advance the clock."""

        def call() -> None:
            self.log.append(name)
            self.now += base_cost_s * self.factor()

        return Arm(name, call, images_per_call, sync=lambda: self.log.append(f"sync:{name}"))


class ClockMeter(Meter):
    """A constant-power meter on the host's fake clock: energy_j = power_w × fake seconds."""

    name = "fake"

    def __init__(self, host: FakeHost, power_w: float = 20.0) -> None:
        self.host, self.power_w = host, power_w

    def probe(self) -> Availability:
        return Availability(True)

    def _begin(self) -> float:
        self.host.log.append("begin")
        return self.host.now

    def _end(self, token: Any, duration_s: float) -> EnergyReading:
        self.host.log.append("end")
        joules = self.power_w * (self.host.now - token)
        domain = DomainEnergy("package-0", joules, "measured", "fake:clock")
        return EnergyReading(duration_s=duration_s, domains=(domain,))


def run_sequential(arms: list[Arm], config: ProtocolConfig, clock: Callable[[], float]) -> list[Block]:
    """The naive protocol: all of one arm's blocks, then all of the next one's."""
    return [block for arm in arms for block in run_round([arm], config, 0, clock=clock)]


CONFIG = ProtocolConfig(blocks=10, min_block_s=0.05, min_calls=3, warmup=2)


def test_rotation_order() -> None:
    assert [rotation(2, c) for c in range(3)] == [[0, 1], [1, 0], [0, 1]]
    three = [rotation(3, c) for c in range(7)]
    assert three[:6] == [[0, 1, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0], [0, 2, 1], [1, 0, 2]]
    assert three[6] == three[0]  # period 2n for an odd n


@pytest.mark.parametrize("n", [2, 3, 4, 5, 6])
def test_rotation_is_balanced_for_position_and_carry_over(n: int) -> None:
    period = n if n % 2 == 0 else 2 * n
    rows = [rotation(n, c) for c in range(period)]
    assert all(sorted(row) == list(range(n)) for row in rows)
    positions = {(row.index(a), a) for row in rows for a in range(n)}
    assert len(positions) == n * n  # every arm in every position
    follows: dict[tuple[int, int], int] = {}
    for row in rows:
        for before, after in itertools.pairwise(row):
            follows[(before, after)] = follows.get((before, after), 0) + 1
    assert len(follows) == n * (n - 1) and len(set(follows.values())) == 1  # each after each, equally
    assert rotation(1, 5) == [0]
    with pytest.raises(ValueError):
        rotation(0, 0)


def test_run_round_rotates_arms_and_numbers_blocks() -> None:
    host = FakeHost()
    arms = [host.arm(n) for n in "abc"]
    blocks = run_round(
        arms, ProtocolConfig(blocks=3, min_block_s=0.0, min_calls=1, warmup=0), 4, clock=host.clock
    )
    assert ["".join(b.arm for b in blocks if b.cycle == c) for c in range(3)] == ["abc", "bca", "cab"]
    assert [b.position for b in blocks] == [0, 1, 2] * 3
    assert {b.round for b in blocks} == {4}
    assert blocks[0].start_s == 0.0
    assert all(later.start_s > earlier.start_s for earlier, later in itertools.pairwise(blocks))


def test_sequential_timing_sees_the_drift_and_interleaving_cancels_it() -> None:
    """Two identical models; the host turns 40 % slower halfway through."""
    dry = FakeHost()
    run_sequential([dry.arm("a"), dry.arm("b")], CONFIG, dry.clock)
    host = FakeHost(switch_s=dry.now / 2)  # the co-tenant arrives exactly when A is done
    sequential = run_sequential([host.arm("a"), host.arm("b")], CONFIG, host.clock)
    assert len(host.log) - host.log[::-1].index("a") - 1 < host.log.index("b")  # all A, then all B
    naive = paired_ratio(pairs(sequential, "b", "a"))
    assert naive.ratio == pytest.approx(1.4, rel=0.01)
    assert naive.delta_pct == pytest.approx(40.0, abs=0.05)
    assert naive.ci_low is None and naive.significant is None  # one process: no interval is claimed

    interleaved: list[Block] = []
    for rnd, switch_s in enumerate((0.3, 0.55, 0.8)):  # the round lasts ~1.1 s
        host = FakeHost(switch_s)
        interleaved += run_round([host.arm("a"), host.arm("b")], CONFIG, rnd, clock=host.clock)
        slowed = [blk for blk in interleaved if blk.round == rnd and blk.latency_ms > 12]
        assert 0 < len(slowed) < 2 * CONFIG.blocks  # the drift did land inside the round
    fair = paired_ratio(pairs(interleaved, "b", "a"))
    assert abs(fair.delta_pct) < 3
    assert fair.rounds == 3 and fair.pairs == 3 * CONFIG.blocks


def test_warmup_runs_right_before_each_arms_first_block() -> None:
    host = FakeHost()
    meter = ClockMeter(host)
    config = ProtocolConfig(blocks=2, min_block_s=0.0, min_calls=1, warmup=2)
    run_round([host.arm("a"), host.arm("b")], config, 0, meter=meter, clock=host.clock)
    assert host.log == [
        *["a", "a", "sync:a"],  # A's warm-up, then its first block
        *["begin", "a", "sync:a", "end"],
        *["b", "b", "sync:b"],  # B warms only now, after A's block: fresh, not up front
        *["begin", "b", "sync:b", "end"],
        *["begin", "b", "sync:b", "end"],  # cycle 1: B A, no more warm-up
        *["begin", "a", "sync:a", "end"],
    ]


def test_min_calls_and_min_block_s_are_honoured() -> None:
    host = FakeHost(switch_s=0.2)
    by_calls = run_round(
        [host.arm("a")],
        ProtocolConfig(blocks=3, min_block_s=0.001, min_calls=7, warmup=0),
        0,
        clock=host.clock,
    )
    assert [blk.calls for blk in by_calls] == [7, 7, 7]

    host = FakeHost(switch_s=0.5)
    by_time = run_round(
        [host.arm("a")], ProtocolConfig(blocks=6, min_block_s=0.1, min_calls=1, warmup=0), 0, clock=host.clock
    )
    for blk in by_time:
        assert blk.duration_s >= 0.1
        assert blk.duration_s - blk.samples_ms[-1] / 1e3 < 0.1  # it stopped at the first call past it
        assert blk.duration_s == pytest.approx(sum(blk.samples_ms) / 1e3)
    assert by_time[0].calls > by_time[-1].calls  # 10 ms calls at first, 14 ms after the switch


def test_block_fields_and_meter_energy() -> None:
    host = FakeHost(switch_s=0.3)
    meter = ClockMeter(host, power_w=20.0)
    arms = [host.arm("a", base_cost_s=0.01, images_per_call=4), host.arm("b", base_cost_s=0.02)]
    blocks = run_round(arms, CONFIG, 2, meter=meter, clock=host.clock)
    assert len(blocks) == 2 * CONFIG.blocks
    for blk in blocks:
        assert blk.calls >= CONFIG.min_calls and blk.duration_s >= CONFIG.min_block_s
        assert blk.calls == len(blk.samples_ms)
        assert blk.images == blk.calls * (4 if blk.arm == "a" else 1)
        assert blk.latency_ms == pytest.approx(sorted(blk.samples_ms)[len(blk.samples_ms) // 2])
        assert blk.energy_j == pytest.approx(20.0 * blk.duration_s)
        assert blk.energy_per_image_j == pytest.approx(blk.energy_j / blk.images)
        assert blk.reading is not None and blk.reading.energy_j == blk.energy_j
        assert blk.reading.method == "measured" and blk.reading.source == "fake:clock"
    slow = [blk.latency_ms for blk in blocks if blk.arm == "b"]
    assert min(slow) == pytest.approx(20.0) and max(slow) == pytest.approx(28.0)


def test_block_without_meter_has_no_energy() -> None:
    host = FakeHost()
    blk = run_round([host.arm("a")], CONFIG, 0, clock=host.clock)[0]
    assert (blk.energy_j, blk.energy_per_image_j, blk.reading) == (None, None, None)


def test_block_round_trips_through_json() -> None:
    host = FakeHost()
    metered = run_round(
        [host.arm("a", images_per_call=2)], CONFIG, 1, meter=ClockMeter(host), clock=host.clock
    )
    plain = run_round([host.arm("b")], CONFIG, 1, clock=host.clock)
    for blk in (metered[0], plain[0]):
        again = Block.from_dict(json.loads(json.dumps(blk.to_dict())))
        assert again == blk and isinstance(again.samples_ms, tuple)
    with pytest.raises(ValueError, match="unknown keys \\['extra'\\]"):
        Block.from_dict({**plain[0].to_dict(), "extra": 1})
    with pytest.raises(ValueError, match="missing keys \\['calls'\\]"):
        Block.from_dict({k: v for k, v in plain[0].to_dict().items() if k != "calls"})


def test_real_clock_runs() -> None:
    """The default clock and sync: structure only, no timing assertion."""
    calls: list[int] = []
    blocks = run_round(
        [Arm("x", lambda: calls.append(1))],
        ProtocolConfig(blocks=2, min_block_s=0.0, min_calls=2, warmup=1),
        0,
    )
    assert [blk.calls for blk in blocks] == [2, 2] and len(calls) == 5


def test_invalid_settings_are_refused() -> None:
    host = FakeHost()
    for bad in ({"blocks": 0}, {"min_calls": 0}, {"min_block_s": -1.0}, {"warmup": -1}):
        with pytest.raises(ValueError):
            ProtocolConfig(**bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Arm("a", lambda: None, images_per_call=0)
    with pytest.raises(ValueError, match="unique"):
        run_round([host.arm("a"), host.arm("a")], CONFIG, 0, clock=host.clock)
    with pytest.raises(ValueError):
        run_round([], CONFIG, 0, clock=host.clock)


def test_blocks_are_padded_to_whole_williams_periods() -> None:
    from greenbench.measure.protocol import balanced_blocks, williams_period

    assert williams_period(8) == 8 and williams_period(3) == 6
    assert balanced_blocks(8, 5, 8) == 8  # 40 cycles: 5 periods as asked
    assert balanced_blocks(12, 3, 8) == 16  # 36 cycles would be 4.5 periods
    assert balanced_blocks(9, 6, 27) == 9 and balanced_blocks(1, 1, 1) == 1
    assert balanced_blocks(12, 3, 27) == 18  # half again at most
    assert balanced_blocks(10, 3, 27) == 10  # 18 blocks would add more than half: not padded, warned
    for rounds, arms, blocks in ((5, 3, 8), (3, 4, 10), (2, 5, 7)):
        padded = balanced_blocks(blocks, rounds, arms)
        if padded != blocks:
            assert (rounds * padded) % williams_period(arms) == 0 and blocks < padded <= 1.5 * blocks
        # whole periods: every arm in every position equally often over all rounds
        counts = {}
        for cycle in range(rounds * padded):
            for position, arm in enumerate(rotation(arms, cycle)):
                counts[(arm, position)] = counts.get((arm, position), 0) + 1
        if (rounds * padded) % williams_period(arms) == 0:
            assert len(set(counts.values())) == 1
