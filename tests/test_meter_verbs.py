"""``greenbench measure`` and ``greenbench env`` through the real CLI, on fake powercap trees."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from greenbench.commands.meter_verbs import (
    MeasureOptions,
    MeasureUsageError,
    check_options,
    check_output,
    measure_command,
    note_warnings,
    render_measure,
    write_report,
)
from greenbench.errors import GreenbenchError
from tests.clitools import assert_one_paragraph_error, run_cli
from tests.measure.energy.fakes import FakeGpu, FakeNvml, FakePowercap

# Advances each counter by STEP µJ every 10 ms for ~2 s, wrapping at its max range exactly as
# the kernel does; prints the total advanced per zone. The meter's poller (1 ms interval for a
# 1 J range) sees every step, so the total spans many wraps and must still come out exact.
ADVANCER = textwrap.dedent(
    """
    import json, os, sys, time
    from pathlib import Path
    files = [Path(p) for p in sys.argv[2:]]
    step = int(sys.argv[1])
    total = {str(f): 0 for f in files}
    for _ in range(200):
        for f in files:
            rng = int((f.parent / "max_energy_range_uj").read_text())
            tmp = f.with_suffix(".tmp")  # sysfs reads are atomic: never show a half-written file
            tmp.write_text(str((int(f.read_text()) + step) % rng) + "\\n")
            os.replace(tmp, f)
            total[str(f)] += step
        time.sleep(0.01)
    print(json.dumps(total))
    """
)


def greenbench(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, env=env)


def test_measure_reports_exactly_what_the_counters_advanced(tmp_path: Path) -> None:
    fake = FakePowercap(tmp_path)
    one_joule = 1_000_000
    pkg0 = fake.add_package(0, max_range_uj=one_joule, energy_uj=900_000, subzones=("core", "dram"))
    pkg1 = fake.add_package(1, max_range_uj=one_joule, energy_uj=10)
    fake.add_zone("psys", max_range_uj=one_joule)  # never added to the packages
    files = [fake.path(z) / "energy_uj" for z in (pkg0, pkg1, fake.sub(pkg0, "dram"))]
    script = tmp_path / "advance.py"
    script.write_text(ADVANCER)
    report = tmp_path / "report.json"
    out = greenbench(
        "measure", "--json", "--idle-s", "0.2", "-o", str(report), "--",
        sys.executable, str(script), "150000", *map(str, files),
        env={"GREENBENCH_POWERCAP_ROOT": str(fake.root)},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    advanced = json.loads(out.stdout)  # the command's stdout is its own
    r = json.loads(report.read_text())
    assert r["method"] == "measured" and r["exit_code"] == 0 and r["invalid_samples"] == 0
    by_domain = {d["domain"]: d for d in r["domains"]}
    assert set(by_domain) == {"package-0", "package-1", "dram-0"}
    for domain, file in zip(("package-0", "package-1", "dram-0"), files, strict=True):
        assert advanced[str(file)] == 200 * 150_000  # 30 J: 30 wraps of a 1 J counter
        assert round(by_domain[domain]["energy_j"] * 1e6) == advanced[str(file)]
        assert by_domain[domain]["method"] == "measured"
    assert r["energy_j"] == sum(d["energy_j"] for d in r["domains"])
    assert r["idle"]["skipped"] is False and r["energy_net_j"] == r["energy_j"]  # idle: nothing moved
    assert r["co2_g"] == r["energy_j"] / 3.6e6 * r["carbon"]["g_per_kwh"]


def test_measure_falls_back_to_estimate_and_says_why(tmp_path: Path) -> None:
    out = greenbench(
        "measure", "--idle-s", "0", "--", sys.executable, "-c", "import sys; sys.exit(7)",
        env={"GREENBENCH_POWERCAP_ROOT": str(tmp_path / "none")},
    )  # fmt: skip
    assert out.returncode == 7  # the command's own exit code
    assert "estimated" in out.stderr and "ESTIMATED" in out.stderr
    assert "rapl not used: no powercap folder" in out.stderr
    assert "nvml not used" in out.stderr


def test_measure_unknown_command_is_a_clear_error(tmp_path: Path) -> None:
    out = greenbench("measure", "--idle-s", "0", "--", "no-such-command-xyz", env={})
    assert out.returncode == 127
    assert "cannot start 'no-such-command-xyz'" in out.stderr and "Traceback" not in out.stderr


def test_env_lists_zones_counting_psys_and_mirrors_correctly(tmp_path: Path) -> None:
    fake = FakePowercap(tmp_path)
    pkg0 = fake.add_package(0, subzones=("dram",))
    fake.add_zone("psys")
    fake.add_zone("package-0", mirror_of=pkg0)  # a second die showing the same counter
    env = {"GREENBENCH_POWERCAP_ROOT": str(fake.root)}
    out = greenbench("env", "--json", env=env)
    assert out.returncode == 0, out.stderr
    rapl = json.loads(out.stdout)["meters"]["rapl"]
    assert rapl["available"] is True
    zones = {z["zone"]: z for z in rapl["detail"]["zones"]}
    assert zones[pkg0]["counted"] and zones[fake.sub(pkg0, "dram")]["counted"]
    assert not zones["intel-rapl:1"]["counted"] and "psys" in zones["intel-rapl:1"]["status"]
    assert (
        not zones["intel-rapl:2"]["counted"] and "mirror of intel-rapl:0" in zones["intel-rapl:2"]["status"]
    )
    text = greenbench("env", env=env).stdout
    assert "rapl     available (measured)" in text and "mirror of intel-rapl:0" in text


def test_env_without_counters_gives_reasons(tmp_path: Path) -> None:
    out = greenbench("env", "--json", env={"GREENBENCH_POWERCAP_ROOT": str(tmp_path / "none")})
    meters = json.loads(out.stdout)["meters"]
    assert not meters["rapl"]["available"] and "no powercap folder" in meters["rapl"]["reason"]
    assert meters["estimate"]["available"] and meters["estimate"]["method"] == "estimated"
    assert "W per busy core" in meters["estimate"]["detail"]["model"]


# -- options checked before the command runs; exit codes like a shell ------------------------


def test_measure_killed_by_a_signal_exits_128_plus_n(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    env = {"GREENBENCH_POWERCAP_ROOT": str(tmp_path / "none")}
    args = ("measure", "--idle-s", "0", "--", "sh", "-c", "kill -TERM $$")
    out = greenbench(*args, env=env)
    assert out.returncode == 143, out.stderr  # 128 + SIGTERM, as a shell reports it
    assert "killed by SIGTERM, exit code 143" in out.stderr
    out = greenbench("measure", "--json", "-o", str(report), *args[1:], env=env)
    assert out.returncode == 143
    r = json.loads(report.read_text())
    assert r["exit_code"] == 143 and r["signal"] == "SIGTERM"
    assert greenbench(*args[:-1], "kill -KILL $$", env=env).returncode == 137


def test_measure_unknown_meter_is_refused_before_the_command_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    out = greenbench(
        "measure", "--meters", "rapl, bogus", "--idle-s", "0", "--", "touch", str(marker), env={}
    )  # fmt: skip
    assert out.returncode == 2
    assert "unknown meter 'bogus'" in out.stderr and "auto, rapl, nvml, estimate" in out.stderr
    assert out.stderr.startswith("greenbench: error:") and "Traceback" not in out.stderr
    assert not marker.exists()


def test_measure_pue_below_one_is_refused_before_the_command_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    for pue in ("0.5", "nan"):
        out = greenbench("measure", "--pue", pue, "--idle-s", "0", "--", "touch", str(marker), env={})
        assert out.returncode == 2, out.stderr
        assert "--pue must be a finite number >= 1" in out.stderr and "Traceback" not in out.stderr
        assert not marker.exists()


def test_measure_estimate_beside_rapl_is_refused_before_the_command_runs(tmp_path: Path) -> None:
    fake = FakePowercap(tmp_path)
    fake.add_package(0)
    marker = tmp_path / "ran"
    out = greenbench(
        "measure", "--meters", "auto,estimate", "--idle-s", "0", "--", "touch", str(marker),
        env={"GREENBENCH_POWERCAP_ROOT": str(fake.root)},
    )  # fmt: skip
    assert out.returncode == 1
    assert "both cover the CPU" in out.stderr and "Traceback" not in out.stderr
    assert not marker.exists()


# -- what the estimate assumes, and meter warnings ---------------------------------------------


def test_env_prints_the_estimate_assumptions(tmp_path: Path) -> None:
    env = {"GREENBENCH_POWERCAP_ROOT": str(tmp_path / "none")}
    text = greenbench("env", env=env).stdout
    assert "assumes: counts only the CPU time of this process and its waited-for children" in text
    assert "assumes: other processes, idle/static power, RAM, GPU and fans are excluded" in text
    assert "CodeCarbon's default per thread for an unknown CPU" in text
    assert "assumes: idle baseline not applicable: net = gross" in text
    detail = json.loads(greenbench("env", "--json", env=env).stdout)["meters"]["estimate"]["detail"]
    assert len(detail["assumptions"]) == 4


def test_measure_prints_the_estimate_assumptions_and_takes_no_idle_from_it(tmp_path: Path) -> None:
    env = {"GREENBENCH_POWERCAP_ROOT": str(tmp_path / "none")}
    # greenbench's own CPU work during the idle window must not be subtracted from the command
    cmd = ("--", sys.executable, "-c", "pass")
    out = greenbench("measure", "--meters", "estimate", "--idle-s", "0.3", *cmd, env=env)
    assert out.returncode == 0, out.stderr
    assert "assumes: counts only the CPU time of this process and its waited-for children" in out.stderr
    assert "assumes: other processes, idle/static power, RAM, GPU and fans are excluded" in out.stderr
    assert "idle cpu: process-scoped estimate: idle not applicable, net = gross" in out.stderr
    report = tmp_path / "r.json"
    greenbench(
        "measure", "--json", "-o", str(report), "--meters", "estimate", "--idle-s", "0.3", *cmd, env=env
    )
    r = json.loads(report.read_text())
    assert r["idle"]["power_w"] == {"cpu": 0.0} and r["energy_net_j"] == r["energy_j"] > 0
    assert r["domains"][0]["scope"] == "process"


def test_measure_prints_warnings_the_meters_put_in_notes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml([FakeGpu(energy_mj=0)]).module)
    opt = MeasureOptions(meters=("nvml",), idle_s=0, powercap_root=tmp_path / "none")
    code, report = measure_command(["true"], opt)  # a few ms: shorter than NVML's update period
    assert code == 0
    text = render_measure(report)
    assert "warning: nvml: " in text and "shorter than NVML's update period" in text
    nested = {"rapl": {"polls": 3, "warning": "window without the poller"}, "estimate": {"model": "m"}}
    assert note_warnings(nested) == ["rapl: window without the poller"]
    assert note_warnings({"warning": "top level"}) == ["top level"]


# -- review findings: refusals before the command runs, and a report that is never lost -------


def test_measure_output_in_a_missing_folder_is_refused_before_the_command_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    missing = tmp_path / "no-such-folder" / "report.json"
    out = greenbench("measure", "--idle-s", "0", "-o", str(missing), "--", "touch", str(marker), env={})
    assert out.returncode == 2, out.stderr
    assert_one_paragraph_error(out.stderr, "-o/--output", f"{missing.parent} does not exist")
    assert not marker.exists()


def test_measure_output_that_is_a_folder_is_refused_before_the_command_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    out = greenbench("measure", "--idle-s", "0", "-o", str(tmp_path), "--", "touch", str(marker), env={})
    assert out.returncode == 2, out.stderr
    assert_one_paragraph_error(out.stderr, f"-o/--output {tmp_path} is a folder")
    assert not marker.exists()


def test_measure_output_under_a_file_is_refused_before_the_command_runs(tmp_path: Path) -> None:
    marker, a_file = tmp_path / "ran", tmp_path / "a_file"
    a_file.write_text("")
    out = greenbench(
        "measure", "--idle-s", "0", "-o", str(a_file / "r.json"), "--", "touch", str(marker), env={}
    )  # fmt: skip
    assert out.returncode == 2, out.stderr
    assert_one_paragraph_error(out.stderr, f"{a_file} is not a folder")
    assert not marker.exists()


def test_measure_output_unwritable_after_the_run_prints_the_report_to_stderr(tmp_path: Path) -> None:
    marker, report = tmp_path / "ran", tmp_path / "report.txt"
    # The command itself takes the report's path, so the write after it fails.
    script = f"touch {shlex.quote(str(marker))} && mkdir {shlex.quote(str(report))}"
    out = greenbench(
        "measure", "--idle-s", "0", "-o", str(report), "--", "sh", "-c", script,
        env={"GREENBENCH_POWERCAP_ROOT": str(tmp_path / "none")},
    )  # fmt: skip
    assert marker.exists()
    assert out.returncode == 1  # the command succeeded, but the report file asked for is missing
    assert "Traceback" not in out.stderr
    assert "greenbench measure: sh -c" in out.stderr and "wall time (exit code 0)" in out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith(f"greenbench: error: cannot write the report to {report}")
    assert "printed above on stderr instead" in last


@pytest.mark.parametrize("idle_s", ["1e12", "3601", "inf", "-1"])
def test_measure_idle_out_of_range_is_refused_before_the_command_runs(tmp_path: Path, idle_s: str) -> None:
    marker = tmp_path / "ran"
    out = greenbench("measure", f"--idle-s={idle_s}", "--", "touch", str(marker), env={})
    assert out.returncode == 2, out.stderr
    assert_one_paragraph_error(out.stderr, "--idle-s must be a finite number of seconds from 0 to 3600")
    assert not marker.exists()


def test_measure_negative_intensity_is_refused_naming_the_option(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    out = greenbench("measure", "--intensity", "-5", "--idle-s", "0", "--", "touch", str(marker), env={})
    assert out.returncode == 2, out.stderr
    assert_one_paragraph_error(out.stderr, "--intensity must be a finite number >= 0")
    assert "measure.carbon" not in out.stderr
    assert not marker.exists()


def test_measure_unknown_country_is_refused_naming_the_options(tmp_path: Path) -> None:
    pytest.importorskip("codecarbon")
    marker = tmp_path / "ran"
    out = greenbench("measure", "--country", "xx", "--idle-s", "0", "--", "touch", str(marker), env={})
    assert out.returncode == 2, out.stderr
    assert_one_paragraph_error(out.stderr, "Unknown grid country 'xx' (--country)", "pass --intensity")
    assert "measure.carbon" not in out.stderr and "suite" not in out.stderr
    assert not marker.exists()


def test_measure_intensity_option_is_the_reported_source(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    out = greenbench(
        "measure", "--json", "-o", str(report), "--intensity", "300", "--idle-s", "0", "--", "true",
        env={"GREENBENCH_POWERCAP_ROOT": str(tmp_path / "none")},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    carbon = json.loads(report.read_text())["carbon"]
    assert carbon == {"g_per_kwh": 300.0, "source": "option --intensity", "pue": 1.0}


@pytest.mark.parametrize("rest", [(), ("--",)])
def test_measure_without_a_command_is_a_usage_error(rest: tuple[str, ...]) -> None:
    out = greenbench("measure", "--idle-s", "0", *rest, env={})
    assert out.returncode == 2, out.stderr
    assert_one_paragraph_error(out.stderr, "no command given")


def test_check_output_and_check_options_without_the_cli(tmp_path: Path) -> None:
    check_output(None)
    check_output(str(tmp_path / "new.json"))  # a new file in an existing folder: fine
    for bad, why in [
        ("", "is empty"),
        (str(tmp_path), "is a folder"),
        (str(tmp_path / "missing" / "r.json"), "does not exist"),
    ]:
        with pytest.raises(MeasureUsageError, match=why):
            check_output(bad)
    with pytest.raises(MeasureUsageError, match="is a folder"):
        check_options(MeasureOptions(output=str(tmp_path)))
    with pytest.raises(MeasureUsageError, match="--intensity"):
        check_options(MeasureOptions(intensity_g_per_kwh=float("nan")))
    assert not (tmp_path / "new.json").exists()  # checking never creates the file


def test_write_report_failure_exits_with_the_commands_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(GreenbenchError) as info:
        write_report("the report\n", str(tmp_path), command_exit_code=7)
    assert info.value.exit_code == 7 and str(tmp_path) in str(info.value)
    assert capsys.readouterr().err == "the report\n"
    with pytest.raises(GreenbenchError) as info:
        write_report("the report\n", str(tmp_path))
    assert info.value.exit_code == 1
