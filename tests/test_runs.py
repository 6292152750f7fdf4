"""``greenbench runs``: what a store holds, as a table and as JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from greenbench.cli import main
from greenbench.commands.runs import summarize
from greenbench.paths import STORE_ENV
from greenbench.store import RunRecord, Store
from tests.clitools import run_cli
from tests.factories import make_record

SMOKE = {"notes": ["one epoch"]}


def at(day: str, start: str, end: str) -> dict[str, str]:
    """started_at and finished_at of a record on 2026-01-``day``, at ``start`` and ``end`` (UTC)."""
    return {"started_at": f"2026-01-{day}T{start}:00+00:00", "finished_at": f"2026-01-{day}T{end}:00+00:00"}


def records() -> list[RunRecord]:
    return [
        make_record(suite="q", variant="base", run_id="r1", device_id="dev-a", **at("02", "10:00", "10:05")),
        make_record(
            suite="q", variant="pruned", run_id="r1", device_id="dev-a", status="failed", error="x",
            **at("02", "10:01", "10:06"),
        ),
        make_record(suite="q", variant="base", run_id="r2", device_id="dev-b", **at("03", "09:00", "09:09")),
        make_record(
            suite="other", variant="x", run_id="r3", device_id="dev-a", smoke=SMOKE,
            **at("01", "00:00", "00:01"),
        ),
    ]  # fmt: skip


def test_summary_per_suite() -> None:
    q, other = summarize(records())
    assert (q.suite, q.variants, q.devices, q.runs, q.records) == (
        "q",
        ["base", "pruned"],
        ["dev-a", "dev-b"],
        2,
        3,
    )
    assert (q.ok, q.failed, q.smoke) == (2, 1, 0)
    assert (q.first, q.last) == ("2026-01-02T10:00:00+00:00", "2026-01-03T09:09:00+00:00")
    assert (other.ok, other.smoke, other.runs) == (0, 1, 1)


def test_cli_text_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "gb.db"
    with Store(db) as s:
        for r in records():
            s.add(r)
    before = db.read_bytes()
    assert main(["runs", "--store", str(db)]) == 0
    text = capsys.readouterr().out
    assert "4 record(s) of 2 suite(s)" in text and "q: variants base, pruned" in text
    assert "2026-01-03 09:09" in text and "dev-a, dev-b" in text
    assert main(["runs", "--store", str(db), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["records"] == 4 and [s["suite"] for s in doc["suites"]] == ["q", "other"]
    assert doc["suites"][0]["devices"] == ["dev-a", "dev-b"]
    assert db.read_bytes() == before  # read-only


def test_missing_and_empty_stores(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs", "--store", str(tmp_path / "none.db")]) == 1
    assert "no results store at" in capsys.readouterr().err and not (tmp_path / "none.db").exists()
    with Store(tmp_path / "empty.db"):
        pass
    assert main(["runs", "--store", str(tmp_path / "empty.db")]) == 0
    assert "0 record(s) of 0 suite(s); run a suite" in capsys.readouterr().out


def test_the_store_comes_from_the_environment_in_a_real_command(tmp_path: Path) -> None:
    db = tmp_path / "elsewhere.db"
    with Store(db) as s:
        s.add(records()[0])
    done = run_cli("runs", "--json", cwd=tmp_path, env={STORE_ENV: str(db)})
    assert done.returncode == 0, done.stderr
    assert '"store": "' + str(db) in done.stdout and '"suite": "q"' in done.stdout
