"""CodeCarbon cross-check: a real short tracker run, offline, writing only into out_dir."""

from __future__ import annotations

import builtins
import csv
import os
import signal
import socket
import time
from pathlib import Path
from typing import Any

import codecarbon  # noqa: F401 - a dependency of greenbench: never skipped
import pytest

from greenbench.errors import GreenbenchError
from greenbench.measure.codecarbon_check import CodeCarbonCheck


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """HOME and cwd in tmp, hostile CodeCarbon config, every name lookup and connect recorded."""
    home = tmp_path / "home"
    cwd = tmp_path / "cwd"
    home.mkdir()
    cwd.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(cwd)
    # Config that, if obeyed, would call out or change the figures.
    (home / ".codecarbon.config").write_text(
        "[codecarbon]\nco2_signal_api_token = not-a-token\npue = 3.0\n"
        "emissions_endpoint = http://127.0.0.1:9/\n"
    )
    monkeypatch.setenv("CODECARBON_SAVE_TO_API", "true")
    monkeypatch.setenv("CODECARBON_ALLOW_MULTIPLE_RUNS", "false")
    monkeypatch.setenv("CODECARBON_FORCE_CARBON_INTENSITY_G_CO2E_KWH", "1")
    connects: list[Any] = []

    def no_connect(self: socket.socket, address: Any) -> None:
        connects.append(address)
        raise OSError("network disabled in test")

    def no_lookup(host: Any, *args: Any, **kwargs: Any) -> Any:
        connects.append(host)
        raise socket.gaierror(socket.EAI_NONAME, "name lookup disabled in test")

    monkeypatch.setattr(socket.socket, "connect", no_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", no_connect)
    monkeypatch.setattr(socket, "getaddrinfo", no_lookup)
    return {"home": home, "cwd": cwd, "connects": connects, "config": home / ".codecarbon.config"}


def tree(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


@pytest.mark.slow
def test_real_run_is_offline_and_writes_only_out_dir(tmp_path: Path, sandbox: dict[str, Any]) -> None:
    import codecarbon.lock

    out_dir = tmp_path / "out" / "cc"  # does not exist yet
    home_before = tree(sandbox["home"])
    lock_before = os.path.exists(codecarbon.lock.LOCKFILE)
    sigint_before = signal.getsignal(signal.SIGINT)

    check = CodeCarbonCheck(out_dir, "deu", project_name="gb-test")
    check.start()
    if not lock_before:
        assert not os.path.exists(codecarbon.lock.LOCKFILE)
    time.sleep(1.0)
    result = check.stop()

    csv_path = out_dir / "emissions.csv"
    assert result["csv"] == str(csv_path) and csv_path.is_file()
    assert tree(out_dir) == {csv_path}
    assert tree(sandbox["home"]) == home_before
    assert tree(sandbox["cwd"]) == set()
    assert sandbox["connects"] == []
    assert signal.getsignal(signal.SIGINT) is sigint_before

    for key in ("emissions_kg", "energy_kwh", "co2_g", "energy_j", "cpu_energy_j", "ram_energy_j"):
        assert isinstance(result[key], float) and result[key] >= 0, key
    assert result["energy_kwh"] > 0  # RAM alone is modelled at a fixed power
    assert result["energy_j"] == pytest.approx(result["energy_kwh"] * 3.6e6)
    assert result["co2_g"] == pytest.approx(result["emissions_kg"] * 1000)
    # Germany from the data file, not the forced 1 g/kWh from the environment.
    assert result["intensity_g_per_kwh"] == pytest.approx(380.95)
    assert result["duration_s"] == pytest.approx(1.0, abs=0.5)
    assert result["version"] == "3.3.2"
    assert result["country"] == "DEU" and result["tracking_mode"] == "process"

    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1
    row = rows[0]
    assert row["project_name"] == "gb-test"
    assert float(row["pue"]) == 1.0
    assert float(row["energy_consumed"]) == pytest.approx(result["energy_kwh"])
    assert float(row["emissions"]) == pytest.approx(result["emissions_kg"])

    # A second window appends a row to the same file.
    again = CodeCarbonCheck(out_dir, "USA", region="texas")
    again.start()
    second = again.stop()
    assert second["region"] == "texas"
    with open(csv_path, newline="") as f:
        assert len(list(csv.DictReader(f))) == 2
    assert sandbox["connects"] == []


def test_unknown_country_fails_before_codecarbon_runs(tmp_path: Path) -> None:
    check = CodeCarbonCheck(tmp_path / "cc", "XQZ")
    with pytest.raises(GreenbenchError, match="'XQZ'"):
        check.start()
    assert not (tmp_path / "cc").exists()
    with pytest.raises(GreenbenchError, match="not started"):
        check.stop()


def test_codecarbon_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def fake_import(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "codecarbon" or name.startswith("codecarbon."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(GreenbenchError, match="pip install codecarbon"):
        CodeCarbonCheck(tmp_path / "cc", "DEU").start()


def test_unwritable_out_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(GreenbenchError, match="output folder"):
        CodeCarbonCheck(blocker / "cc", "DEU").start()


def test_codecarbon_failure_is_reported_not_swallowed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CodeCarbon's own ``@suppress`` would log and swallow this; we must raise it."""
    from codecarbon.emissions_tracker import BaseEmissionsTracker

    def broken(self: Any) -> None:
        raise RuntimeError("hardware probe exploded")

    monkeypatch.setattr(BaseEmissionsTracker, "_ensure_hardware_ready", broken)
    check = CodeCarbonCheck(tmp_path / "cc", "DEU")
    with pytest.raises(GreenbenchError, match="failed to start: RuntimeError: hardware probe"):
        check.start()
    with pytest.raises(GreenbenchError, match="not started"):
        check.stop()


def test_bad_tracking_mode() -> None:
    with pytest.raises(ValueError, match="tracking_mode"):
        CodeCarbonCheck(Path("unused"), "DEU", tracking_mode="cluster")


@pytest.mark.slow
def test_cross_checked_meter_keeps_both_totals_apart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from greenbench.measure.codecarbon_check import CodeCarbonCheck, CrossCheckedMeter
    from greenbench.measure.energy.estimate import EstimateMeter

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    meter = CrossCheckedMeter(EstimateMeter(), CodeCarbonCheck(tmp_path / "cc", "DEU"))
    window = meter.begin()
    sum(i * i for i in range(300_000))
    reading = meter.end(window)
    assert [d.domain for d in reading.domains] == ["cpu"]  # CodeCarbon adds no domain
    cc = reading.notes["codecarbon"]
    assert cc["energy_j"] >= 0 and (tmp_path / "cc" / "emissions.csv").is_file()


def test_cross_check_failure_is_recorded_not_raised(tmp_path: Path) -> None:
    from greenbench.errors import GreenbenchError
    from greenbench.measure.codecarbon_check import CodeCarbonCheck, CrossCheckedMeter
    from greenbench.measure.energy.estimate import EstimateMeter

    class Broken(CodeCarbonCheck):
        def start(self) -> None:
            raise GreenbenchError("codecarbon is not installed")

    meter = CrossCheckedMeter(EstimateMeter(), Broken(tmp_path, "DEU"))
    reading = meter.end(meter.begin())
    assert reading.notes["codecarbon"] == {"error": "codecarbon is not installed"}
