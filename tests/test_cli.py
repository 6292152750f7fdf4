"""The CLI's contract for user errors (one paragraph, the right exit code, no traceback), and
``table`` reading the store alone."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

from greenbench.store import RunRecord, Store, metric
from tests.clitools import assert_one_paragraph_error, run_cli
from tests.factories import make_record

BROKEN = Path(__file__).parent / "suites_broken"


def greenbench(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, cwd=cwd)


def test_validate_broken_suite_exits_2_naming_file_line_and_key(tmp_path: Path) -> None:
    out = greenbench("validate", str(BROKEN / "unknown_from.yaml"), cwd=tmp_path)
    assert out.returncode == 2
    assert "unknown_from.yaml:" in out.stderr and "variants." in out.stderr and ".from" in out.stderr
    assert "Traceback" not in out.stderr and out.stdout == ""


def test_validate_good_suite_exits_0(tmp_path: Path) -> None:
    suite = Path(__file__).parents[1] / "suites" / "quickstart.yaml"
    out = greenbench("validate", str(suite), cwd=tmp_path)
    assert out.returncode == 0 and "valid" in out.stdout


def test_table_without_a_store_is_a_clear_error(tmp_path: Path) -> None:
    suite = Path(__file__).parents[1] / "suites" / "quickstart.yaml"
    out = greenbench("table", str(suite), "--store", str(tmp_path / "none.db"), cwd=tmp_path)
    assert out.returncode == 1 and "no results store" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "none.db").exists()


def test_missing_suite_file(tmp_path: Path) -> None:
    out = greenbench("run", str(tmp_path / "nope.yaml"), "--store", str(tmp_path / "gb.db"), cwd=tmp_path)
    assert out.returncode == 2 and "nope.yaml" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "gb.db").exists()


# --- greenbench table: from the store alone -------------------------------------------------

MOVED_SUITE = """\
name: moved
task: detect
dataset: {path: /nonexistent/data.yaml}
baseline: base
variants:
  base: {model: yolov5n.yaml, stages: [train]}
  small: {from: base, stages: [{train: {epochs: 1}}]}
"""


def this_device() -> str:
    from greenbench.measure.device import fingerprint

    return str(fingerprint("cpu")["device_id"])


def table_record(variant: str, status: str = "ok", **fields: Any) -> RunRecord:
    """A stored record of suite 'moved' on this machine, with the table's figures."""
    e = {"method": "estimated", "source": "estimate"}
    metrics = {
        "precision": metric(0.5, "fraction"),
        "map50": metric(0.4, "fraction"),
        "params": metric(2e6 if variant == "base" else 1e6, "count"),
        "latency_ms": metric(10.0, "ms", ci_low=9.0, ci_high=11.0, threads=1, rounds=3, blocks=8),
        "energy_per_image_j": metric(0.02, "J", ci_low=0.018, ci_high=0.022, rounds=3, blocks=8, **e),
    }
    return make_record(
        **{
            "suite": "moved",
            "variant": variant,
            "variant_hash": f"key-{variant}",
            "status": status,
            "device_id": this_device(),
            "baseline": "base",
            "metrics": metrics if status == "ok" else {},
            "error": None if status == "ok" else f"{variant} broke",
            **fields,
        }
    )


def md_rows(stdout: str) -> list[list[str]]:
    """Cells of the first Markdown table, without the header and alignment rows."""
    lines = stdout.split("\n\n", 1)[0].splitlines()[2:]
    return [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines]


@pytest.fixture
def moved(tmp_path: Path) -> tuple[Path, Path]:
    """A suite file whose dataset does not exist, and a store of its records (plus one variant
    no longer in the suite), written in an order unlike the suite's."""
    suite = tmp_path / "moved.yaml"
    suite.write_text(MOVED_SUITE)
    store = tmp_path / "gb.db"
    with Store(store) as s:
        s.add(table_record("small", "failed"))
        s.add(table_record("gone"))
        s.add(table_record("base", "failed", run_id="r0"))
        s.add(table_record("base", run_id="r1", deltas={}))
        s.add(table_record("base", "failed", run_id="r2"))  # newer, but an ok record exists
    return suite, store


def test_table_by_suite_file_needs_no_dataset(moved: tuple[Path, Path], tmp_path: Path) -> None:
    suite, store = moved
    assert greenbench("validate", str(suite), cwd=tmp_path).returncode == 2  # load_suite would refuse it
    before = store.read_bytes()
    out = greenbench("table", str(suite), "--store", str(store), "--format", "md", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    rows = md_rows(out.stdout)
    assert [r[0] for r in rows] == ["base (baseline)", "small"]  # suite file order; 'gone' left out
    assert rows[0][1] == "0.500" and rows[1][1] == "failed"  # base: the newest ok, not the newer failure
    assert "small FAILED: small broke" in out.stdout and "base broke" not in out.stdout
    assert "10.00 [9.00, 11.00]" in out.stdout
    assert store.read_bytes() == before  # read-only


def test_table_by_stored_suite_name(moved: tuple[Path, Path], tmp_path: Path) -> None:
    _, store = moved
    (tmp_path / "moved.yaml").unlink()  # the suite file is gone too
    out = greenbench("table", "moved", "--store", str(store), "--format", "md", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    rows = md_rows(out.stdout)
    assert [r[0] for r in rows] == ["small", "gone", "base (baseline)"]  # store order; baseline from records
    assert rows[1][3].startswith("1.000 (-50.0 %)")
    csv_out = greenbench("table", "moved", "--store", str(store), "--format", "csv", cwd=tmp_path)
    assert csv_out.returncode == 0, csv_out.stderr
    head = csv_out.stdout.splitlines()[0].split(",")
    assert head[:6] == ["variant", "parent", "delta_vs", "status", "P", "P_delta_pp"] and head[-2:] == [
        "device_id",
        "run_id",
    ]


def test_table_of_an_unknown_suite_or_device_says_what_is_stored(
    moved: tuple[Path, Path], tmp_path: Path
) -> None:
    suite, store = moved
    out = greenbench("table", "nope", "--store", str(store), cwd=tmp_path)
    assert out.returncode == 1
    assert_one_paragraph_error(out.stderr, "holds no record of suite 'nope'", "suites in the store: moved")
    with Store(store) as s:
        s.add(table_record("base", device_id="elsewhere"))
    out = greenbench("table", str(suite), "--store", str(store), "--device", "nowhere", cwd=tmp_path)
    assert out.returncode == 1
    assert_one_paragraph_error(out.stderr, "on device nowhere", "elsewhere", "--device")
    out = greenbench(
        "table", str(suite), "--store", str(store), "--device", "elsewhere", "--format", "md", cwd=tmp_path
    )
    assert out.returncode == 0 and [r[0] for r in md_rows(out.stdout)] == ["base (baseline)"]
    out = greenbench("table", str(tmp_path / "missing.yaml"), "--store", str(store), cwd=tmp_path)
    assert out.returncode == 2
    assert_one_paragraph_error(out.stderr, "missing.yaml", "no such suite file")


def test_table_of_a_suite_file_that_is_not_a_suite(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    for text, needle in (
        ("name: [1, 2\n", "bad.yaml:"),
        ("- a\n- b\n", "not a mapping"),
        ("name: s\nvariants: {a: {}}\nmeasure: {device: tpu}\n", "measure.device"),
        ("variants: {a: {}}\n", "key 'name'"),
    ):
        bad.write_text(text)
        out = greenbench("table", str(bad), "--store", str(tmp_path / "none.db"), cwd=tmp_path)
        assert out.returncode == 2, (text, out.stderr)
        assert_one_paragraph_error(out.stderr, needle)


def write_v1_store(path: Path, records: list[RunRecord]) -> None:
    """A store as greenbench wrote it at schema version 1: v1 record JSON, meta version 1."""
    Store(path).close()
    with sqlite3.connect(path) as c:
        c.execute("UPDATE meta SET value='1' WHERE key='schema_version'")
        for r in records:
            d = r.to_dict()
            for key in ("task", "baseline", "runtime", "deltas"):
                del d[key]
            d["schema_version"] = 1
            c.execute(
                "INSERT INTO records (schema_version, run_id, suite, suite_hash, variant, variant_hash, "
                "device_id, status, started_at, finished_at, record) "
                "VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    d["run_id"], d["suite"], d["suite_hash"], d["variant"], d["variant_hash"],
                    d["device_id"], d["status"], d["started_at"], d["finished_at"], json.dumps(d),
                ),
            )  # fmt: skip
    c.close()


def test_table_reads_a_store_of_version_1_records(tmp_path: Path) -> None:
    suite = tmp_path / "moved.yaml"
    suite.write_text(MOVED_SUITE)
    store = tmp_path / "v1.db"
    write_v1_store(store, [table_record("base"), table_record("small")])
    out = greenbench("table", str(suite), "--store", str(store), "--format", "md", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    rows = md_rows(out.stdout)
    assert [r[0] for r in rows] == ["base (baseline)", "small"]
    assert rows[1][3] == "1.000 (-50.0 %)"  # deterministic: a plain Δ
    assert "10.00 [9.00, 11.00] (+0.0 % (unpaired))" in rows[1]
    assert "schema-1 record of small and base" in out.stdout
    assert "latency_ms (schema-1 record): median of one process' samples" in out.stdout
    by_name = greenbench("table", "moved", "--store", str(store), "--format", "md", cwd=tmp_path)
    assert by_name.returncode == 0, by_name.stderr
    assert "no baseline named" in by_name.stdout and "(baseline)" not in by_name.stdout
    with sqlite3.connect(store) as c:  # still a version-1 store: table opened it read-only
        assert c.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == ("1",)
    c.close()
