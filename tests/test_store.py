"""The SQLite store: typed records, resume lookups, nothing overwritten."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from greenbench.errors import GreenbenchError
from greenbench.store import APPLICATION_ID, SCHEMA_VERSION, RunRecord, Store, metric
from tests.factories import make_record


def record(variant: str = "a", status: str = "ok", run: str = "r1", vhash: str = "h1") -> RunRecord:
    return make_record(
        run_id=run,
        variant=variant,
        variant_hash=vhash,
        status=status,
        metrics={"latency_ms": metric(1.5, "ms")},
    )


def store_with_schema_version(path: Path, version: str) -> None:
    """An empty greenbench store whose meta table claims ``version``."""
    Store(path).close()
    with sqlite3.connect(path) as c:
        c.execute("UPDATE meta SET value=? WHERE key='schema_version'", (version,))
    c.close()


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
    store_with_schema_version(path, "99")
    with pytest.raises(GreenbenchError, match="schema version 99"):
        Store(path)


def test_status_is_checked_by_sqlite(tmp_path: Path) -> None:
    with Store(tmp_path / "gb.db") as s, pytest.raises(sqlite3.IntegrityError):
        s.add(record(status="weird"))


def test_new_store_carries_the_greenbench_marker(tmp_path: Path) -> None:
    path = tmp_path / "gb.db"
    Store(path).close()
    assert APPLICATION_ID == int.from_bytes(b"GrnB", "big")
    assert path.read_bytes()[68:72] == b"GrnB"  # PRAGMA application_id lives at offset 68
    with sqlite3.connect(path) as c:
        assert c.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == (
            str(SCHEMA_VERSION),
        )


def test_version_1_records_stay_readable_and_the_store_is_marked_version_2(tmp_path: Path) -> None:
    path = tmp_path / "gb.db"
    store_with_schema_version(path, "1")
    v1 = record().to_dict()
    for key in ("task", "baseline", "runtime", "deltas"):
        del v1[key]  # what a version-1 record did not have
    v1["schema_version"] = 1
    with sqlite3.connect(path) as c:
        c.execute(
            "INSERT INTO records (schema_version, run_id, suite, suite_hash, variant, variant_hash, "
            "device_id, status, started_at, finished_at, record) VALUES (1, 'r0', 's', 'x', 'a', 'h1', "
            "'dev', 'ok', 't0', 't1', ?)",
            (json.dumps(v1),),
        )
    c.close()
    with Store(path) as s:  # a writable open marks the file version 2; the row keeps version 1
        (old,) = s.records()
        s.add(record(run="r2"))
        assert [r.schema_version for r in s.records()] == [1, SCHEMA_VERSION]
    assert old.deltas == {} and old.task == "detect" and old.value("latency_ms") == 1.5
    assert "one process" in old.metrics["latency_ms"]["ci_method"]
    with sqlite3.connect(path) as c:
        assert c.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == ("2",)
    c.close()


def test_a_record_of_a_newer_schema_is_a_clear_error() -> None:
    newer = {**record().to_dict(), "schema_version": SCHEMA_VERSION + 1}
    with pytest.raises(GreenbenchError, match="schema version 3"):
        RunRecord.from_dict(newer)


@pytest.mark.parametrize(
    "ddl",
    [
        # another program's results, with its own `records` table
        "CREATE TABLE records (id INTEGER PRIMARY KEY, name TEXT, score REAL);"
        "INSERT INTO records (name, score) VALUES ('x', 1.0);",
        # an unrelated table, even a key/value `meta` of the same shape without our rows
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "INSERT INTO meta VALUES ('owner', 'someone else');"
        "CREATE TABLE photos (id INTEGER PRIMARY KEY, blob BLOB);",
        # a database marked by another program, even with no table yet
        "PRAGMA application_id = 1234;",
    ],
)
def test_foreign_database_is_refused_and_left_unchanged(tmp_path: Path, ddl: str) -> None:
    path = tmp_path / "theirs.db"
    with sqlite3.connect(path) as c:
        c.executescript(ddl)
    c.close()
    before = path.read_bytes()
    with pytest.raises(GreenbenchError, match="greenbench did not create") as err:
        Store(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(GreenbenchError, match="greenbench did not create"):
        Store(path, readonly=True)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["theirs.db"]


def test_store_from_before_the_marker_still_opens_and_gets_marked(tmp_path: Path) -> None:
    path = tmp_path / "gb.db"
    with Store(path) as s:
        s.add(record("old"))
    with sqlite3.connect(path) as c:
        c.execute("PRAGMA application_id = 0")  # what a store written before the marker looks like
    c.close()
    assert path.read_bytes()[68:72] == b"\0\0\0\0"
    with Store(path, readonly=True) as s:  # read-only: readable, but not marked
        assert [r.variant for r in s.records()] == ["old"]
    assert path.read_bytes()[68:72] == b"\0\0\0\0"
    with Store(path) as s:
        s.add(record("new"))
        assert [r.variant for r in s.records()] == ["old", "new"]
    assert path.read_bytes()[68:72] == b"GrnB"


def test_non_integer_schema_version_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "gb.db"
    store_with_schema_version(path, "one")
    before = path.read_bytes()
    for readonly in (False, True):
        with pytest.raises(GreenbenchError, match=r"schema_version 'one' .* not a whole number"):
            Store(path, readonly=readonly)
    assert path.read_bytes() == before


def test_readonly_open_of_a_missing_file_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "gb.db"
    with pytest.raises(GreenbenchError, match="there is no results store at"):
        Store(path, readonly=True)
    assert list(tmp_path.iterdir()) == []


def test_readonly_open_of_an_empty_file_is_an_error_and_keeps_it_empty(tmp_path: Path) -> None:
    path = tmp_path / "gb.db"
    path.touch()
    with pytest.raises(GreenbenchError, match="not a results store"):
        Store(path, readonly=True)
    assert path.read_bytes() == b""


def test_readonly_store_reads_but_cannot_add(tmp_path: Path) -> None:
    path = tmp_path / "a?b#c%20.db"  # characters that mean something in a file: URI
    with Store(path) as s:
        s.add(record("a", run="r1"))
        s.add(record("a", run="r2", status="failed"))
    before = path.read_bytes()
    with Store(path, readonly=True) as s:
        assert s.readonly and s.count() == 2
        assert [r.run_id for r in s.records(suite="s")] == ["r1", "r2"]
        latest = s.latest("s", "h1", "dev")
        assert latest is not None and latest.run_id == "r1"
        with pytest.raises(GreenbenchError, match="read-only"):
            s.add(record("b"))
        assert s.count() == 2
    assert path.read_bytes() == before


def test_readonly_refuses_a_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "gb.db"
    store_with_schema_version(path, "99")
    with pytest.raises(GreenbenchError, match="schema version 99"):
        Store(path, readonly=True)
