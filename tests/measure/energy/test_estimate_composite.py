"""The estimate meter's model, meter selection with reasons, and idle subtraction."""

from __future__ import annotations

from pathlib import Path

import pytest

from greenbench.errors import MeterUnavailable
from greenbench.measure.energy.composite import CompositeMeter, measure_idle, select_meters
from greenbench.measure.energy.estimate import EstimateMeter
from greenbench.measure.energy.meter import DomainEnergy, EnergyReading


class CpuTime:
    def __init__(self) -> None:
        self.s = 0.0

    def __call__(self) -> float:
        return self.s


def test_estimate_is_cpu_time_times_watts_and_labelled() -> None:
    cpu = CpuTime()
    meter = EstimateMeter(watts_per_core=5.0, cpu_time_fn=cpu)
    w = meter.begin()
    cpu.s += 3.0
    r = meter.end(w)
    assert r.energy_j == pytest.approx(15.0)
    assert r.method == "estimated" and r.domains[0].domain == "cpu"
    assert "5 W per busy core" in r.notes["model"]
    with pytest.raises(ValueError):
        EstimateMeter(watts_per_core=0)


def test_estimate_counts_real_cpu_work() -> None:
    meter = EstimateMeter(watts_per_core=4.0)
    w = meter.begin()
    sum(i * i for i in range(2_000_000))
    assert meter.end(w).energy_j > 0


def test_auto_falls_back_to_estimate_with_reasons(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "pynvml", None)  # the NVML bindings are absent
    meter, choices = select_meters(["auto"], powercap_root=tmp_path / "no-powercap")
    by_name = {c.name: c for c in choices}
    assert not by_name["rapl"].used and "powercap" in by_name["rapl"].reason
    assert not by_name["nvml"].used and "NVML" in by_name["nvml"].reason
    assert by_name["estimate"].used and "no CPU energy counter" in by_name["estimate"].reason
    assert [m.name for m in meter.meters] == ["estimate"] and meter.method == "estimated"


def test_explicit_meter_that_cannot_read_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(MeterUnavailable, match="meter 'rapl' was asked for"):
        select_meters(["rapl"], powercap_root=tmp_path / "none")


def test_composite_merges_domains_and_idle_subtracts_per_domain() -> None:
    a, b = CpuTime(), CpuTime()
    meter = CompositeMeter([EstimateMeter(2.0, a), EstimateMeter(3.0, b)])
    clock = {"sleep": 0.0}

    def fake_sleep(s: float) -> None:
        a.s += 0.1 * s
        clock["sleep"] += s

    idle = measure_idle(meter, 1.0, sleep=fake_sleep)
    assert clock["sleep"] == 1.0 and not idle.skipped
    reading = EnergyReading(2.0, (DomainEnergy("cpu", 10.0, "measured", "x"),))
    net = idle.net(reading)
    assert net["energy_j"] == 10.0
    assert net["idle_j"] == pytest.approx(idle.power_w["cpu"] * 2.0)
    assert net["energy_net_j"] == pytest.approx(10.0 - net["idle_j"])
    assert measure_idle(meter, 0).skipped
