"""RaplMeter against a fake powercap tree: real discovery, wrap and poller logic, exact µJ."""

from __future__ import annotations

import errno
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from greenbench.errors import MeterUnavailable
from greenbench.measure.energy import rapl
from greenbench.measure.energy.meter import DomainEnergy, EnergyReading
from greenbench.measure.energy.rapl import ROOT_ENV, RaplMeter, discover, wrap_delta_uj
from tests.measure.energy.fakes import (
    XEON_MAX_RANGE_UJ,
    CannotDropPrivileges,
    FakePowercap,
    call_without_dac_override,
)

SMALL_RANGE_UJ = 1_000_000  # wraps after 1 J, so a test can wrap it many times


def joules(reading: EnergyReading) -> dict[str, float]:
    return {d.domain: d.energy_j for d in reading.domains}


def wait_for_polls(meter: RaplMeter, timeout_s: float = 5.0) -> None:
    """Return once a poll has started after this call (two more polls have completed)."""
    target = meter.poll_count + 2
    deadline = time.monotonic() + timeout_s
    while meter.poll_count < target:
        assert time.monotonic() < deadline, "the poller did not run"
        time.sleep(0.0002)


def zone_status(meter: RaplMeter) -> dict[str, dict[str, Any]]:
    return {z["zone"]: z for z in meter.probe().detail["zones"]}


# -- domains ----------------------------------------------------------------------------


def test_one_package_reads_exact_joules(tmp_path: Path) -> None:
    fake = FakePowercap(tmp_path)
    pkg = fake.add_package(0, energy_uj=5_000_000)
    meter = RaplMeter(fake.root)
    window = meter.begin()
    fake.advance(pkg, 12_345_678)
    reading = meter.end(window)
    source = f"rapl:{fake.root}/intel-rapl:0"
    assert reading.domains == (DomainEnergy("package-0", 12.345678, "measured", source),)
    assert reading.method == "measured"
    assert reading.invalid_samples == 0


def test_two_packages_sum_package_and_dram_and_keep_core_uncore_as_notes(tmp_path: Path) -> None:
    fake = FakePowercap(tmp_path)
    pkgs = [fake.add_package(i, subzones=("core", "uncore", "dram")) for i in (0, 1)]
    used = {
        pkgs[0]: 40_000_000,
        fake.sub(pkgs[0], "core"): 25_000_000,
        fake.sub(pkgs[0], "uncore"): 5_000_000,
        fake.sub(pkgs[0], "dram"): 7_000_000,
        pkgs[1]: 30_000_000,
        fake.sub(pkgs[1], "core"): 20_000_000,
        fake.sub(pkgs[1], "uncore"): 3_000_000,
        fake.sub(pkgs[1], "dram"): 6_000_000,
    }
    meter = RaplMeter(fake.root)
    window = meter.begin()
    for zone, uj in used.items():
        fake.advance(zone, uj)
    reading = meter.end(window)
    assert joules(reading) == {"package-0": 40.0, "dram-0": 7.0, "package-1": 30.0, "dram-1": 6.0}
    assert reading.energy_j == 83.0
    assert reading.notes["subzones_j"] == {"core-0": 25.0, "uncore-0": 5.0, "core-1": 20.0, "uncore-1": 3.0}
    status = zone_status(meter)
    core, dram = status[fake.sub(pkgs[0], "core")], status[fake.sub(pkgs[0], "dram")]
    assert (core["domain"], core["counted"]) == ("core-0", False)
    assert core["status"] == "core: inside the package counter (notes only)"
    assert (dram["domain"], dram["counted"], dram["status"]) == ("dram-0", True, "counted")
    assert dram["path"] == str(fake.root / "intel-rapl:0:2")


@pytest.mark.parametrize("layout", ["sysfs", "nested", "flat"])
def test_layouts_find_each_zone_once_at_its_flat_path(tmp_path: Path, layout: str) -> None:
    fake = FakePowercap(tmp_path, layout=layout)  # type: ignore[arg-type]
    pkg = fake.add_package(0, subzones=("core", "dram"))
    zones = discover(fake.root)
    assert [(z.zone_id, z.path) for z in zones] == [(zid, fake.path(zid)) for zid in fake.zones]
    if layout == "sysfs":  # the sub-zone is reported by its class entry, not the nested folder
        assert zones[2].path == fake.root / "intel-rapl:0:1"
    if layout == "nested":
        assert zones[2].path == fake.root / "intel-rapl:0" / "intel-rapl:0:1"
    meter = RaplMeter(fake.root)
    window = meter.begin()
    fake.advance(pkg, 2_000_000)
    fake.advance(fake.sub(pkg, "dram"), 1_000_000)
    assert joules(meter.end(window)) == {"package-0": 2.0, "dram-0": 1.0}


def test_mmio_interface_and_control_folder_are_not_zones(tmp_path: Path) -> None:
    fake = FakePowercap(tmp_path)  # its root also holds the `intel-rapl` control-type link
    fake.add_package(0)
    mmio = fake.root / "intel-rapl-mmio:0"  # same package counter through MMIO (newer kernels)
    mmio.mkdir()
    (mmio / "name").write_text("package-0\n")
    assert [z.zone_id for z in discover(fake.root)] == ["intel-rapl:0"]


def test_psys_beside_packages_is_not_summed(tmp_path: Path) -> None:
    fake = FakePowercap(tmp_path)
    pkg = fake.add_package(0)
    psys = fake.add_zone("psys")
    meter = RaplMeter(fake.root)
    window = meter.begin()
    fake.advance(pkg, 10_000_000)
    fake.advance(psys, 15_000_000)
    reading = meter.end(window)
    assert joules(reading) == {"package-0": 10.0}
    assert reading.notes["not_counted"] == {psys: "psys: contains packages"}
    detail = zone_status(meter)[psys]
    assert (detail["name"], detail["counted"], detail["status"]) == ("psys", False, "psys: contains packages")


def test_psys_alone_is_reported_as_psys(tmp_path: Path) -> None:
    fake = FakePowercap(tmp_path)
    psys = fake.add_zone("psys")
    meter = RaplMeter(fake.root)
    window = meter.begin()
    fake.advance(psys, 21_000_000)
    assert joules(meter.end(window)) == {"psys": 21.0}


@pytest.mark.parametrize("prefix", ["intel-rapl", "amd-rapl"])
def test_mirrored_zones_are_counted_once(tmp_path: Path, prefix: str) -> None:
    fake = FakePowercap(tmp_path, prefix=prefix)
    pkg = fake.add_package(0, energy_uj=123_456_789, subzones=("core",))
    mirror = fake.add_zone("package-0", mirror_of=pkg)  # multi-die AMD: one counter, two zones
    meter = RaplMeter(fake.root)
    status = zone_status(meter)
    assert status[mirror]["counted"] is False
    assert status[mirror]["status"] == f"mirror of {prefix}:0"
    window = meter.begin()
    fake.advance(pkg, 9_000_000)
    assert (fake.root / mirror / "energy_uj").read_text() == (fake.root / pkg / "energy_uj").read_text()
    reading = meter.end(window)
    assert joules(reading) == {"package-0": 9.0}
    assert reading.notes["not_counted"] == {mirror: f"mirror of {prefix}:0"}


def test_same_name_but_different_counters_are_both_counted(tmp_path: Path) -> None:
    fake = FakePowercap(tmp_path)
    first = fake.add_zone("package-0", energy_uj=1_000)
    second = fake.add_zone("package-0", energy_uj=2_000)
    meter = RaplMeter(fake.root)
    window = meter.begin()
    fake.advance(first, 1_000_000)
    fake.advance(second, 2_000_000)
    assert joules(meter.end(window)) == {"package-0": 1.0, f"package-0@{second}": 2.0}


# -- wraparound and the poller ----------------------------------------------------------


def test_wrap_delta_adds_the_range_once() -> None:
    assert wrap_delta_uj(100, 250, SMALL_RANGE_UJ) == 150
    assert wrap_delta_uj(900_000, 200_000, SMALL_RANGE_UJ) == 300_000


def test_one_wrap_without_poller_is_exact(tmp_path: Path) -> None:
    fake = FakePowercap(tmp_path)
    pkg = fake.add_package(0, max_range_uj=SMALL_RANGE_UJ, energy_uj=900_000)
    meter = RaplMeter(fake.root)
    window = meter.begin()
    fake.advance(pkg, 300_000)
    reading = meter.end(window)
    assert fake.energy(pkg) == 200_000  # the counter did wrap
    assert joules(reading) == {"package-0": 0.3}
    assert reading.invalid_samples == 0


def test_several_wraps_in_one_window_are_exact_with_the_poller(tmp_path: Path) -> None:
    fake = FakePowercap(tmp_path)
    pkg = fake.add_package(0, max_range_uj=SMALL_RANGE_UJ, energy_uj=600_000)
    with RaplMeter(fake.root) as meter:  # default interval: 0.5 × 1e6 µJ / 500 W = 1 ms
        assert isinstance(meter, RaplMeter)
        assert meter.poll_interval_s == pytest.approx(0.001)
        window = meter.begin()
        for _ in range(14):  # 14 × 0.25 range = 3.5 ranges, each step seen by a poll
            fake.advance(pkg, 250_000)
            wait_for_polls(meter)
        reading = meter.end(window)
    assert fake.advanced_uj[pkg] == 3_500_000
    assert joules(reading) == {"package-0": 3.5}
    assert reading.invalid_samples == 0
    assert reading.notes["polls"] >= 14


def test_several_wraps_without_the_poller_are_lost(tmp_path: Path) -> None:
    """Why the poller exists: two reads alone see 3.5 ranges as half a range."""
    fake = FakePowercap(tmp_path)
    pkg = fake.add_package(0, max_range_uj=SMALL_RANGE_UJ)
    meter = RaplMeter(fake.root)
    window = meter.begin()
    for _ in range(14):
        fake.advance(pkg, 250_000)
    time.sleep(0.005)  # longer than one wrap at max_power_w (2 ms)
    reading = meter.end(window)
    assert joules(reading) == {"package-0": 0.5}
    assert "without the poller" in reading.notes["warning"]


def test_poller_keeps_exact_totals_while_counters_run_in_real_time(tmp_path: Path) -> None:
    fake = FakePowercap(tmp_path)
    pkg = fake.add_package(0, max_range_uj=SMALL_RANGE_UJ, subzones=("dram",))
    dram = fake.sub(pkg, "dram")
    with RaplMeter(fake.root, max_power_w=25.0) as meter:  # polls every 20 ms
        window = meter.begin()
        # A wrap every 400 ms on the package: exact as long as no poll comes 400 ms late.
        with fake.run_at({pkg: 2.5, dram: 1.0}):
            time.sleep(1.2)
        reading = meter.end(window)
    assert fake.advanced_uj[pkg] > 2.5 * SMALL_RANGE_UJ  # several wraps really happened
    assert joules(reading) == {
        "package-0": fake.advanced_uj[pkg] / 1e6,
        "dram-0": fake.advanced_uj[dram] / 1e6,
    }
    assert reading.invalid_samples == 0


@pytest.mark.parametrize(
    ("max_range_uj", "max_power_w", "override", "expected_s"),
    [
        (XEON_MAX_RANGE_UJ, 500.0, None, 1.0),
        (2**32, 500.0, None, 1.0),  # 32-bit µJ counter: wraps in 8.6 s at 500 W, capped to 1 s
        (SMALL_RANGE_UJ, 500.0, None, 0.001),
        (SMALL_RANGE_UJ, 1.0, None, 0.5),
        (SMALL_RANGE_UJ, 500.0, 0.25, 0.25),
    ],
)
def test_poll_interval(
    tmp_path: Path, max_range_uj: int, max_power_w: float, override: float | None, expected_s: float
) -> None:
    fake = FakePowercap(tmp_path)
    fake.add_package(0, max_range_uj=max_range_uj)
    meter = RaplMeter(fake.root, poll_interval_s=override, max_power_w=max_power_w)
    assert meter.poll_interval_s == pytest.approx(expected_s)
    assert meter.probe().detail["poll_interval_s"] == pytest.approx(expected_s)


def test_open_starts_and_close_stops_the_poller_twice_safely(tmp_path: Path) -> None:
    fake = FakePowercap(tmp_path)
    fake.add_package(0)
    meter = RaplMeter(fake.root, poll_interval_s=0.01)
    meter.open()
    meter.open()
    names = [t.name for t in threading.enumerate()]
    assert names.count("greenbench-rapl-poller") == 1
    wait_for_polls(meter)
    meter.close()
    meter.close()
    assert "greenbench-rapl-poller" not in [t.name for t in threading.enumerate()]
    assert meter.poller_cpu_s > 0


# -- invalid samples ----------------------------------------------------------------------


def test_counter_going_backwards_is_invalid_and_not_summed(tmp_path: Path) -> None:
    fake = FakePowercap(tmp_path)
    pkg = fake.add_package(0, max_range_uj=SMALL_RANGE_UJ, energy_uj=500_000)
    meter = RaplMeter(fake.root, max_power_w=1.0)  # a wrap would need ≥ 1 J in < 0.5 s
    window = meter.begin()
    fake.set_energy(pkg, 499_000)
    reading = meter.end(window)
    assert joules(reading) == {"package-0": 0.0}
    assert reading.invalid_samples == 1


def test_after_an_invalid_sample_the_meter_rebases(tmp_path: Path) -> None:
    fake = FakePowercap(tmp_path)
    pkg = fake.add_package(0, max_range_uj=SMALL_RANGE_UJ, energy_uj=500_000)
    meter = RaplMeter(fake.root, max_power_w=1.0)
    window = meter.begin()
    fake.advance(pkg, 100_000)
    meter.poll()
    fake.set_energy(pkg, fake.energy(pkg) - 1_000)  # a glitch, not a wrap
    meter.poll()
    fake.advance(pkg, 200_000)
    reading = meter.end(window)
    assert joules(reading) == {"package-0": 0.3}
    assert reading.invalid_samples == 1


# -- unavailable ------------------------------------------------------------------------


def _probe_and_begin(root: Path) -> tuple[bool, str, str]:
    meter = RaplMeter(root)
    avail = meter.probe()
    try:
        meter.begin()
    except MeterUnavailable as err:
        return avail.ok, avail.reason, str(err)
    return avail.ok, avail.reason, ""


def _assert_permission_reason(reason: str, path: Path, root: Path) -> None:
    assert f"cannot read {path}: permission denied" in reason
    assert "Linux 5.10" in reason
    assert f"sudo chmod a+r {root}/intel-rapl:*/energy_uj" in reason


def test_unreadable_energy_uj_gets_a_real_eacces_and_says_how_to_grant_read(tmp_path: Path) -> None:
    fake = FakePowercap(tmp_path)
    pkg = fake.add_package(0)
    fake.deny_read(pkg)
    try:
        ok, reason, begin_error = call_without_dac_override(lambda: _probe_and_begin(fake.root))
    except CannotDropPrivileges as err:
        pytest.skip(f"cannot drop CAP_DAC_OVERRIDE here: {err}")
    assert ok is False
    _assert_permission_reason(reason, fake.root / pkg / "energy_uj", fake.root)
    assert begin_error == reason


def test_permission_error_from_the_reader_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakePowercap(tmp_path)
    fake.add_package(0, subzones=("dram",))
    denied = fake.root / "intel-rapl:0:0" / "energy_uj"
    real_read = rapl.read_text

    def read_text(path: Path) -> str:
        if Path(path) == denied:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_read(path)

    monkeypatch.setattr(rapl, "read_text", read_text)
    ok, reason, begin_error = _probe_and_begin(fake.root)
    assert ok is False
    _assert_permission_reason(reason, denied, fake.root)
    assert begin_error == reason


def test_env_var_sets_the_root_and_the_argument_overrides_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakePowercap(tmp_path)
    fake.add_package(0)
    monkeypatch.delenv(ROOT_ENV, raising=False)
    assert RaplMeter().root == Path("/sys/class/powercap")
    monkeypatch.setenv(ROOT_ENV, str(fake.root))
    assert RaplMeter().root == fake.root
    assert RaplMeter().probe().ok
    assert RaplMeter(tmp_path / "elsewhere").root == tmp_path / "elsewhere"


def test_missing_root_says_there_are_no_counters(tmp_path: Path) -> None:
    root = tmp_path / "no-powercap"
    avail = RaplMeter(root).probe()
    assert avail.ok is False
    assert avail.reason == (
        f"no powercap folder at {root} (this machine exposes no RAPL counters; "
        f"set GREENBENCH_POWERCAP_ROOT to a mounted copy)"
    )
    with pytest.raises(MeterUnavailable, match="no powercap folder"):
        RaplMeter(root).begin()
    with pytest.raises(MeterUnavailable, match="no powercap folder"):
        RaplMeter(root).open()


def test_root_without_zones_says_so(tmp_path: Path) -> None:
    avail = RaplMeter(FakePowercap(tmp_path).root).probe()
    assert avail.ok is False
    assert avail.reason.startswith("no RAPL zones")


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="max_power_w"):
        RaplMeter(max_power_w=0)
    with pytest.raises(ValueError, match="poll_interval_s"):
        RaplMeter(poll_interval_s=-1)
