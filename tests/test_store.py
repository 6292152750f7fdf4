"""The SQLite store: typed records, resume lookups, nothing overwritten."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from greenbench.errors import GreenbenchError
from greenbench.store import SCHEMA_VERSION, RunRecord, Store, metric
from tests.factories import make_record


def record(variant: str = "a", status: str = "ok", run: str = "r1", vhash: str = "h1") -> RunRecord:
    return make_record(
        run_id=run,
        variant=variant,
        variant_hash=vhash,
        status=status,
        metrics={"latency_ms": metric(1.5, "ms")},
    )


def test_round_trip_and_latest(tmp_path: Path) -> None:
    with Store(tmp_path / "sub" / "gb.db") as s:
        s.add(record(run="r1"))
        s.add(record(run="r2", status="failed"))
        s.add(record(run="r3"))
        assert s.count() == 3
        latest = s.latest("s", "h1", "dev")
        assert latest is not None and latest.run_id == "r3"
        assert latest.value("latency_ms") == 1.5 and latest.schema_version == SCHEMA_VERSION
        newest_any = s.latest("s", "h1", "dev", status=None)
        assert newest_any is not None and newest_any.run_id == "r3"
        assert s.latest("s", "other-hash", "dev") is None
        assert s.latest("s", "h1", "other-device") is None


def test_failed_only_is_not_resumed(tmp_path: Path) -> None:
    with Store(tmp_path / "gb.db") as s:
        s.add(record(status="failed"))
        assert s.latest("s", "h1", "dev") is None
        failed = s.latest("s", "h1", "dev", status=None)
        assert failed is not None and failed.status == "failed"


def test_records_survive_reopen_and_filter(tmp_path: Path) -> None:
    path = tmp_path / "gb.db"
    with Store(path) as s:
        s.add(record("a"))
        s.add(record("b"))
    with Store(path) as s:
        assert [r.variant for r in s.records(suite="s")] == ["a", "b"]
        assert s.records(suite="nope") == []


def test_not_a_database_is_a_clear_error_and_file_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "gb.db"
    path.write_text("this is not sqlite\n" * 100)
    with pytest.raises(GreenbenchError, match="cannot open the results store"):
        Store(path)
    assert path.read_text().startswith("this is not sqlite")


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "gb.db"
    Store(path).close()
    with sqlite3.connect(path) as c:
        c.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    with pytest.raises(GreenbenchError, match="schema version 99"):
        Store(path)


def test_status_is_checked_by_sqlite(tmp_path: Path) -> None:
    with Store(tmp_path / "gb.db") as s, pytest.raises(sqlite3.IntegrityError):
        s.add(record(status="weird"))
