"""The pytest-benchmark export: its statistics against pytest-benchmark's own ``Stats``, the record
selection, and the files fed to the real ``pytest-benchmark compare`` console script."""

from __future__ import annotations

import csv
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from pytest_benchmark.stats import Stats

from greenbench.cli import main
from greenbench.errors import GreenbenchError
from greenbench.export import pytest_benchmark as pb
from greenbench.export.selection import is_smoke
from greenbench.store import Store
from tests.clitools import assert_one_paragraph_error, run_cli
from tests.export.export_records import HOSTILE, measured, store_of


def pytest_benchmark_script() -> str:
    """The ``pytest-benchmark`` console script of this interpreter's environment."""
    beside = Path(sys.executable).with_name("pytest-benchmark")
    found = str(beside) if beside.is_file() else shutil.which("pytest-benchmark")
    assert found, "pytest-benchmark's console script is not installed"
    return found


def compare(tmp_path: Path, *files: Path) -> tuple[subprocess.CompletedProcess[str], list[dict[str, str]]]:
    """``pytest-benchmark compare --csv`` of ``files`` (exact paths; storage kept inside tmp_path)."""
    out_csv = tmp_path / "compared.csv"
    proc = subprocess.run(
        [
            pytest_benchmark_script(), "--storage", f"file://{tmp_path / 'pb-storage'}", "compare",
            "--columns", "min,max,mean,median,rounds,iterations", "--csv", str(out_csv), *map(str, files),
        ],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    rows = list(csv.DictReader(out_csv.open())) if out_csv.exists() else []
    return proc, rows


SAMPLES = {
    "one": [0.01],
    "two": [0.01, 0.03],
    "five": [0.01, 0.02, 0.05, 0.02, 0.011],
    "six": [3.0, 1.0, 2.0, 2.5, 9.0, 1.5],
    "seven": [1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 40.0],
    "nine": [5.0, 1.0, 4.0, 2.0, 3.0, 9.0, 7.0, 6.0, 8.0],
    "heavy": [0.010 + 0.0001 * i for i in range(50)] + [0.5, 0.9, 0.011, 0.0101],
}


@pytest.mark.parametrize("data", SAMPLES.values(), ids=SAMPLES.keys())
def test_stats_are_those_pytest_benchmark_computes(data: list[float]) -> None:
    theirs = Stats()
    for x in data:
        theirs.update(x)
    expected = theirs.as_dict()
    ours = pb.call_stats(data)
    assert ours["data"] == data and ours["iterations"] == 1
    # pytest-benchmark computes one field as text: ``outliers`` ("<stddev outliers>;<IQR outliers>");
    # the counts (rounds, *_outliers) are ints. Those must match exactly, in type too; only the
    # floats are compared to a tolerance (pytest >= 9.1's approx refuses a str expected value).
    assert {type(v) for v in expected.values()} <= {float, int, str}, "a new field kind in Stats"
    for name, value in expected.items():
        if isinstance(value, float):
            assert ours[name] == pytest.approx(value, rel=1e-12, abs=1e-15), name
        else:
            assert type(ours[name]) is type(value) and ours[name] == value, name


def test_document_has_pytest_benchmark_layout_and_seconds(tmp_path: Path) -> None:
    store = store_of(tmp_path / "gb.db", measured("base"), measured("fast", scale=0.5))
    with Store(store, readonly=True) as s:
        doc = json.loads(pb.export(s).text)
    assert set(doc) == {"machine_info", "commit_info", "benchmarks", "datetime", "version"}
    assert doc["commit_info"]["id"] == "abc123" and doc["commit_info"]["dirty"] is True
    assert doc["machine_info"]["cpu"]["brand_raw"] == "Test CPU @ 2.0GHz"
    by_name = {b["name"]: b for b in doc["benchmarks"]}
    assert set(by_name) == {"base[onnxruntime]", "fast[onnxruntime]"}
    base, fast = by_name["base[onnxruntime]"], by_name["fast[onnxruntime]"]
    record = measured("base")
    samples_s = [x / 1e3 for b in record.measurement["blocks"] for x in b["samples_ms"]]
    stats = base["stats"]
    assert set(Stats.fields) | {"data", "iterations"} == set(stats)
    assert stats["rounds"] == len(samples_s) == 16 and stats["data"] == pytest.approx(samples_s)
    assert stats["median"] == pytest.approx(statistics.median(samples_s))
    assert 0.005 < stats["min"] <= stats["median"] <= stats["max"] < 0.05  # seconds, not ms
    assert fast["stats"]["median"] == pytest.approx(stats["median"] / 2)
    assert base["group"] == "s" and base["fullname"] == "s::base[onnxruntime]"
    assert base["params"] == {"runtime": "onnxruntime"} and base["param"] == "onnxruntime"
    info = base["extra_info"]
    assert info["unit"] == "s" and "raw per-call samples" in info["stats_from"]
    assert info["images_per_call"] == 1 and info["rounds"] == 2 and info["blocks"] == 4
    assert info["energy_per_image_j"] == 0.5 and info["energy_method"] == "measured"
    assert info["device_id"] == "dev" and info["run_id"] == "r1" and info["variant_hash"] == "h-base"
    assert info["greenbench_latency_ms"] == pytest.approx(10.8)


def test_one_benchmark_per_variant_and_runtime_from_the_newest_ok_record(tmp_path: Path) -> None:
    store = store_of(
        tmp_path / "gb.db",
        measured("base", run_id="old"),
        measured("base", run_id="new", scale=2.0),
        measured("base", run_id="broken", status="failed", error="boom", measurement={}),
        measured(
            "base",
            run_id="torch",
            runtime="torch",
            versions={"suite_git_commit": "none"},
            finished_at="2025-01-03T00:00:00+00:00",
        ),
    )
    with Store(store, readonly=True) as s:
        doc = json.loads(pb.export(s).text)
    assert doc["commit_info"]["id"] == "unversioned" and doc["commit_info"]["dirty"] is False  # newest
    runs = {b["name"]: b["extra_info"]["run_id"] for b in doc["benchmarks"]}
    assert runs == {"base[onnxruntime]": "new", "base[torch]": "torch"}


def test_records_without_samples_are_left_out_with_a_note(tmp_path: Path) -> None:
    old = measured("legacy", measurement={"carbon": {"g_per_kwh": 400.0, "pue": 1.0}})
    store = store_of(tmp_path / "gb.db", measured("base"), old)
    with Store(store, readonly=True) as s:
        exported = pb.export(s)
        assert exported.items == 1 and any("legacy" in n and "no per-call" in n for n in exported.notes)
    only_old = store_of(tmp_path / "old.db", old)
    with (
        Store(only_old, readonly=True) as s,
        pytest.raises(GreenbenchError, match="per-call latency samples"),
    ):
        pb.export(s)


def test_records_of_two_devices_need_device(tmp_path: Path) -> None:
    store = store_of(tmp_path / "gb.db", measured("base"), measured("base", device_id="other"))
    with Store(store, readonly=True) as s:
        with pytest.raises(GreenbenchError, match=r"2 devices .*pass --device"):
            pb.export(s)
        doc = json.loads(pb.export(s, device_id="other").text)
    assert [b["extra_info"]["device_id"] for b in doc["benchmarks"]] == ["other"]


def test_smoke_records_are_not_exported(tmp_path: Path) -> None:
    smoke = measured("base", run_id="quick", smoke={"settings": {"epochs": 1}})
    assert is_smoke(smoke) and not is_smoke(measured("base"))
    store = store_of(tmp_path / "gb.db", measured("base"), smoke)
    with Store(store, readonly=True) as s:
        assert len(s.records()) == 2  # the smoke record is readable: left out by the export itself
        doc = json.loads(pb.export(s).text)
    assert [b["extra_info"]["run_id"] for b in doc["benchmarks"]] == ["r1"]
    only_smoke = store_of(tmp_path / "smoke.db", smoke)
    with Store(only_smoke, readonly=True) as s, pytest.raises(GreenbenchError, match=r"smoke runs \(1\)"):
        pb.export(s)


def test_pytest_benchmark_compare_reads_two_exports(tmp_path: Path) -> None:
    """Two runs of one suite, exported by the real CLI and compared by the real pytest-benchmark."""
    first = store_of(tmp_path / "a.db", measured("base"), measured(HOSTILE, scale=0.5))
    second = store_of(
        tmp_path / "b.db", measured("base", run_id="r2", scale=1.1), measured(HOSTILE, run_id="r2", scale=0.6)
    )
    files = []
    for store in (first, second):
        out = tmp_path / f"{store.stem}.json"
        done = run_cli("export", "pytest-benchmark", "--store", str(store), "-o", str(out), cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert "wrote 2 benchmark(s)" in done.stderr and "Traceback" not in done.stderr
        files.append(out)
    proc, rows = compare(tmp_path, *files)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "Failed to load" not in output  # compare only warns about a file it cannot read
    printed = "v,1 \"q\" 'x' =cmd|' /C calc'!A0  [31mred[onnxruntime]"  # controls folded to spaces
    assert "base[onnxruntime]" in output and printed in output and "\x1b" not in output
    assert len(rows) == 4 and {r["name"] for r in rows} == {"s::base[onnxruntime]", f"s::{printed}"}
    for path in files:
        doc = json.loads(path.read_text())
        assert {b["extra_info"]["variant"] for b in doc["benchmarks"]} == {"base", HOSTILE}  # exact
        for bench in doc["benchmarks"]:
            assert any(float(r["median"]) == pytest.approx(bench["stats"]["median"]) for r in rows)


def test_cli_errors_are_one_paragraph(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = store_of(tmp_path / "gb.db", measured("base"))
    out = str(tmp_path / "x.json")
    cases = [
        (["--store", str(store), "--suite", "nope"], out, ("suite 'nope'", "suites in it: s")),
        (["--store", str(store), "--device", "elsewhere"], out, ("device 'elsewhere'", "devices: dev")),
        (["--store", str(tmp_path / "missing.db")], out, ("no results store",)),
        (["--store", str(store)], str(tmp_path / "no" / "x.json"), ("does not exist",)),
        (["--store", str(store)], str(tmp_path), ("not a regular file",)),
        (["--store", str(store)], str(store), ("the results store itself",)),
        (["--store", str(store)], "/proc/gb-export-test.json", ("cannot write /proc/gb-export-test.json",)),
    ]
    for args, target, needles in cases:
        assert main(["export", "pytest-benchmark", *args, "-o", target]) == 1
        assert_one_paragraph_error(capsys.readouterr().err, *needles)
    assert not (tmp_path / "x.json").exists()
    with pytest.raises(SystemExit) as usage:
        main(["export", "pytest-benchmark", "--store", str(store)])  # no -o
    assert usage.value.code == 2


def test_cli_writes_to_standard_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = store_of(tmp_path / "gb.db", measured("base"))
    assert main(["export", "pytest-benchmark", "--store", str(store), "-o", "-"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["benchmarks"][0]["name"] == "base[onnxruntime]"
    assert "wrote 1 benchmark(s) to standard output" in captured.err
