"""``Meter.sync`` runs before any counter and, at the end, before the clock — also in a composite."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pytest

from greenbench.measure.energy import rapl
from greenbench.measure.energy.composite import CompositeMeter
from greenbench.measure.energy.meter import Availability, EnergyReading, Meter
from greenbench.measure.energy.nvml import NvmlMeter
from greenbench.measure.energy.rapl import RaplMeter
from tests.measure.energy.fakes import FakeGpu, FakeNvml, FakePowercap

SYNC_S = 0.05  # how long the fake GPU takes to drain its queue


class Recorder(Meter):
    """Logs the order of sync, counter reads and the clock."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    def probe(self) -> Availability:
        return Availability(True)

    def sync(self) -> None:
        self.log.append("sync")

    def _begin(self) -> None:
        self.log.append("read")

    def _end(self, token: Any, duration_s: float) -> EnergyReading:
        self.log.append("read")
        return EnergyReading(duration_s, ())


def test_base_meter_syncs_before_each_edge_read() -> None:
    log: list[str] = []
    meter = Recorder(log)
    meter.end(meter.begin())
    assert log == ["sync", "read", "sync", "read"]


@pytest.fixture
def rapl_and_nvml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[CompositeMeter, FakeNvml]:
    """A composite of RAPL (fake sysfs tree) and NVML (autospec'd fake); every RAPL file read
    is logged as ``rapl`` in the NVML fake's event list, so one list holds both in order."""
    fake_rapl = FakePowercap(tmp_path)
    fake_rapl.add_package(0, subzones=("dram",))
    fake_nvml = FakeNvml([FakeGpu(energy_mj=0)])
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml.module)
    real_read = rapl.read_text

    def logged_read(path: Path) -> str:
        fake_nvml.log("rapl", path.name)
        return real_read(path)

    monkeypatch.setattr(rapl, "read_text", logged_read)

    def gpu_sync() -> None:
        fake_nvml.log("sync")
        time.sleep(SYNC_S)  # queued kernels finishing

    meter = CompositeMeter([RaplMeter(fake_rapl.root), NvmlMeter(sync=gpu_sync)])
    return meter, fake_nvml


def test_composite_syncs_before_any_counter_read_at_both_edges(
    rapl_and_nvml: tuple[CompositeMeter, FakeNvml],
) -> None:
    meter, fake = rapl_and_nvml
    with meter:
        fake.events.clear()
        window = meter.begin()
        begin_events = [e[0] for e in fake.events]
        fake.events.clear()
        meter.end(window)
        end_events = [e[0] for e in fake.events]
    for events in (begin_events, end_events):
        assert events[0] == "sync" and events.count("sync") == 1
        assert "rapl" in events and "energy" in events  # both meters read after the sync


def test_composite_window_includes_the_end_sync_and_not_the_begin_sync(
    rapl_and_nvml: tuple[CompositeMeter, FakeNvml],
) -> None:
    meter, fake = rapl_and_nvml
    with meter:
        before = time.monotonic()
        window = meter.begin()
        reading = meter.end(window)
        total_s = time.monotonic() - before
    sync_times = [t for kind, t, _ in fake.events if kind == "sync"]
    assert window.start_s > sync_times[0] + SYNC_S  # the begin clock starts after the drain
    assert reading.duration_s >= SYNC_S  # the end drain is window time …
    assert reading.duration_s < total_s - SYNC_S  # … the begin drain is not


def test_nvml_opens_before_the_sync_and_syncs_once_per_edge(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeNvml([FakeGpu(energy_mj=0)])
    monkeypatch.setitem(sys.modules, "pynvml", fake.module)
    meter = NvmlMeter(sync=lambda: fake.log("sync"))
    meter.end(meter.begin())  # not opened: begin opens it (open probes the counter once)
    meter.close()
    assert [e[0] for e in fake.events] == ["energy", "sync", "energy", "sync", "energy"]


def test_nvml_edges_read_without_sync_still_sync(monkeypatch: pytest.MonkeyPatch) -> None:
    """A wrapper that calls ``_begin``/``_end`` and not ``sync`` (e.g. one that does not forward
    it) still gets each edge synchronised, once."""
    fake = FakeNvml([FakeGpu(energy_mj=0)])
    monkeypatch.setitem(sys.modules, "pynvml", fake.module)
    with NvmlMeter(sync=lambda: fake.log("sync")) as meter:
        fake.events.clear()
        assert isinstance(meter, NvmlMeter)
        meter._end(meter._begin(), 1.0)
        assert [e[0] for e in fake.events] == ["sync", "energy", "sync", "energy"]
        fake.events.clear()
        meter.sync()
        meter._end(meter._begin(), 1.0)  # synced by the caller first: not again
        assert [e[0] for e in fake.events] == ["sync", "energy", "sync", "energy"]
