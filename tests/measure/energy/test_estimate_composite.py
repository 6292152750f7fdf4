"""The estimate meter's model, meter selection with reasons, and idle subtraction."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from greenbench.errors import GreenbenchError, MeterUnavailable
from greenbench.measure.energy import meter as meter_module
from greenbench.measure.energy.composite import (
    CompositeMeter,
    IdleBaseline,
    MeterNameError,
    measure_idle,
    select_meters,
    skipped_idle,
)
from greenbench.measure.energy.estimate import EstimateMeter, process_cpu_time_s
from greenbench.measure.energy.meter import Availability, DomainEnergy, EnergyReading, Meter
from tests.measure.energy.fakes import FakePowercap


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


class CounterMeter(Meter):
    """A system-scoped meter with one domain whose joule counter the test advances."""

    name = "counter"

    def __init__(self, domain: str, announce: bool = True) -> None:
        self.domain, self.announce, self.joules = domain, announce, 0.0

    @property
    def known_domains(self) -> tuple[str, ...] | None:
        return (self.domain,) if self.announce else None

    def probe(self) -> Availability:
        return Availability(True)

    def _begin(self) -> float:
        return self.joules

    def _end(self, token: float, duration_s: float) -> EnergyReading:
        return EnergyReading(
            duration_s, (DomainEnergy(self.domain, self.joules - token, "measured", "fake"),)
        )


class FakeClock:
    """``time.monotonic`` for meter.py, advanced only by ``sleep``."""

    def __init__(self) -> None:
        self.now_s = 1000.0

    def monotonic(self) -> float:
        return self.now_s


def test_composite_merges_domains_and_idle_subtracts_per_domain(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr(meter_module, "time", clock)
    package, gpu, cpu = CounterMeter("package-0"), CounterMeter("gpu:0"), CpuTime()
    meter = CompositeMeter([package, gpu, EstimateMeter(4.0, cpu)])
    watts = {"package-0": 12.5, "gpu:0": 30.0}

    def fake_sleep(s: float) -> None:
        clock.now_s += s
        package.joules += watts["package-0"] * s
        gpu.joules += watts["gpu:0"] * s
        cpu.s += 0.25 * s  # the parent's own work while it waits (a progress spinner)

    idle = measure_idle(meter, 2.0, sleep=fake_sleep)
    assert not idle.skipped and idle.duration_s == 2.0
    assert idle.power_w == {"package-0": 12.5, "gpu:0": 30.0, "cpu": 0.0}
    assert idle.notes == {"cpu": "process-scoped estimate: idle not applicable, net = gross"}
    assert idle.method == "estimated"
    reading = EnergyReading(
        4.0,
        (
            DomainEnergy("package-0", 100.0, "measured", "rapl"),
            DomainEnergy("gpu:0", 300.0, "measured", "nvml"),
            DomainEnergy("cpu", 8.0, "estimated", "estimate", scope="process"),
        ),
    )
    net = idle.net(reading)
    assert net["energy_j"] == 408.0
    assert net["idle_j"] == (12.5 + 30.0 + 0.0) * 4.0
    assert net["energy_net_j"] == 408.0 - 170.0
    only_gpu = idle.net(EnergyReading(4.0, (DomainEnergy("gpu:0", 300.0, "measured", "nvml"),)))
    assert only_gpu["idle_j"] == 120.0 and only_gpu["energy_net_j"] == 180.0
    assert measure_idle(meter, 0).skipped


def test_estimate_alone_has_no_idle_even_when_the_parent_was_busy() -> None:
    cpu = CpuTime()

    def busy_sleep(s: float) -> None:
        cpu.s += s  # one core busy the whole idle window

    idle = measure_idle(EstimateMeter(4.0, cpu), 1.0, sleep=busy_sleep)
    assert idle.power_w == {"cpu": 0.0} and "idle not applicable" in idle.notes["cpu"]
    reading = EnergyReading(1.0, (DomainEnergy("cpu", 4.0, "estimated", "estimate", scope="process"),))
    assert idle.net(reading)["energy_net_j"] == 4.0


def test_idle_baseline_round_trips_with_notes() -> None:
    idle = IdleBaseline({"package-0": 12.5, "cpu": 0.0}, 2.0, "estimated", notes={"cpu": "why"})
    d = json.loads(json.dumps(idle.to_dict()))
    assert d["notes"] == {"cpu": "why"}
    assert IdleBaseline.from_dict(d) == idle
    stored_before_notes = {k: v for k, v in d.items() if k != "notes"}
    assert IdleBaseline.from_dict(stored_before_notes).notes == {}
    assert IdleBaseline.from_dict(skipped_idle("x").to_dict()) == skipped_idle("x")


def test_domain_scope_is_in_dicts_and_defaults_to_system() -> None:
    reading = EnergyReading(
        1.0,
        (
            DomainEnergy("package-0", 1.0, "measured", "rapl"),
            DomainEnergy("cpu", 2.0, "estimated", "estimate", "process"),
        ),
    )
    assert [d["scope"] for d in reading.to_dict()["domains"]] == ["system", "process"]
    cpu = EstimateMeter(4.0, CpuTime())
    assert cpu.end(cpu.begin()).domains[0].scope == "process"
    # EnergyReading.from_dict rebuilds every domain, its scope included
    rebuilt = EnergyReading.from_dict(reading.to_dict())
    assert [(d.domain, d.energy_j, d.method, d.source, d.scope) for d in rebuilt.domains] == [
        ("package-0", 1.0, "measured", "rapl", "system"),
        ("cpu", 2.0, "estimated", "estimate", "process"),
    ]
    assert rebuilt == reading


def test_composite_rejects_duplicate_domains_it_knows_at_construction() -> None:
    with pytest.raises(ValueError, match=r"same domain \('cpu' from estimate, estimate\)"):
        CompositeMeter([EstimateMeter(2.0, CpuTime()), EstimateMeter(3.0, CpuTime())])
    with pytest.raises(ValueError, match="'gpu:0' from counter, counter"):
        CompositeMeter([CounterMeter("gpu:0"), CounterMeter("gpu:1"), CounterMeter("gpu:0")])


def test_composite_rejects_duplicate_domains_found_at_end() -> None:
    a, b = CounterMeter("package-0", announce=False), CounterMeter("package-0", announce=False)
    meter = CompositeMeter([a, b])  # domains unknown until read: accepted here
    window = meter.begin()
    a.joules += 1.0
    with pytest.raises(ValueError, match=r"same domain .*'package-0'.* count its energy twice"):
        meter.end(window)


# -- estimate beside a CPU counter, unknown names --------------------------------------------


@pytest.fixture
def readable_rapl(tmp_path: Path) -> Path:
    fake = FakePowercap(tmp_path)
    fake.add_package(0, subzones=("dram",))
    return fake.root


@pytest.mark.parametrize("names", [["estimate", "rapl"], ["rapl", "estimate"], ["auto", "estimate"]])
def test_estimate_beside_readable_rapl_is_refused(
    names: list[str], readable_rapl: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)
    with pytest.raises(MeterUnavailable) as err:
        select_meters(names, powercap_root=readable_rapl)
    message = str(err.value)
    assert "both cover the CPU" in message and "count the CPU's energy twice" in message
    assert "Use 'rapl'" in message and "'estimate' alone" in message
    assert "\n" not in message
    assert ("'rapl', which was asked for" in message) == ("rapl" in names)
    assert ("chosen by 'auto'" in message) == ("rapl" not in names)


def test_estimate_alone_or_where_rapl_cannot_read_is_allowed(
    readable_rapl: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)
    meter, choices = select_meters(["estimate"], powercap_root=readable_rapl)
    assert [m.name for m in meter.meters] == ["estimate"]
    assert [(c.name, c.used, c.reason) for c in choices] == [("estimate", True, "asked for")]
    meter, _ = select_meters(["auto", "estimate"], powercap_root=tmp_path / "none")
    assert [m.name for m in meter.meters] == ["estimate"]
    meter, _ = select_meters(["auto"], powercap_root=readable_rapl)
    assert [m.name for m in meter.meters] == ["rapl"]


@pytest.mark.parametrize("names", [["rapl", "bogus"], ["RAPL"], [""], []])
def test_unknown_meter_name_is_a_clear_greenbench_error(names: list[str]) -> None:
    with pytest.raises(MeterNameError) as err:
        select_meters(names)
    assert isinstance(err.value, GreenbenchError) and err.value.exit_code == 2
    assert "auto, rapl, nvml, estimate" in str(err.value)
    if names:
        assert f"unknown meter {names[-1]!r}" in str(err.value)


# -- the estimate's clock and its assumptions -------------------------------------------------


def test_process_cpu_time_is_getrusage_of_self_and_children(monkeypatch: pytest.MonkeyPatch) -> None:
    usage = {
        resource.RUSAGE_SELF: SimpleNamespace(ru_utime=1.000_001, ru_stime=0.000_002),
        resource.RUSAGE_CHILDREN: SimpleNamespace(ru_utime=0.000_003, ru_stime=2.000_004),
    }
    monkeypatch.setattr(resource, "getrusage", lambda who: usage[who])
    assert process_cpu_time_s() == pytest.approx(3.000_010, abs=1e-9)


def test_process_cpu_time_resolves_a_millisecond_of_work() -> None:
    before, clock_before = process_cpu_time_s(), time.process_time()
    while time.process_time() - clock_before < 0.003:  # os.times() would show 0 or 10 ms
        pass
    delta, clock_delta = process_cpu_time_s() - before, time.process_time() - clock_before
    assert delta == pytest.approx(clock_delta, abs=0.001)


def test_process_cpu_time_counts_waited_for_children() -> None:
    before = process_cpu_time_s()
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.2: pass"
    subprocess.run([sys.executable, "-c", burn], check=True)
    assert process_cpu_time_s() - before >= 0.2


def test_estimate_states_its_assumptions_in_probe_and_notes() -> None:
    meter = EstimateMeter(cpu_time_fn=CpuTime())
    assumptions = meter.probe().detail["assumptions"]
    text = " | ".join(assumptions)
    assert "only the CPU time of this process and its waited-for children" in text
    for excluded in ("other processes", "idle/static power", "RAM", "GPU", "fans"):
        assert excluded in text
    assert "4 W per busy core is CodeCarbon's default per thread for an unknown CPU" in text
    assert "net = gross" in text
    assert meter.end(meter.begin()).notes["assumptions"] == assumptions
    custom = " | ".join(EstimateMeter(6.5).assumptions)
    assert "6.5 W per busy core was set by the user" in custom and "is 4 W" in custom
