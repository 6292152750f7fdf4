"""Hostile conditions: a second run, a full disk, a damaged store, a hung worker, hostile files.

Each case ends in a clear one-paragraph error or a recorded failure, never a traceback or a hang
(every subprocess and every call that could block runs under a timeout), and nothing measured is
lost.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections import namedtuple
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from greenbench.errors import GreenbenchError
from greenbench.executors.base import JobFailed
from greenbench.executors.local import LocalExecutor
from greenbench.run import jobs
from greenbench.run.jobs import IdleJob
from greenbench.run.lock import WorkdirBusy, WorkdirLock
from greenbench.run.runner import Runner, RunOptions
from greenbench.runtimes.base import Artifact
from greenbench.store import (
    RESERVE_BYTES,
    RESERVE_NAME,
    RunRecord,
    Store,
    StoreFull,
    pending_name,
    reserve_space,
    save_pending,
    store_pending,
    store_record,
)
from greenbench.store import db as store_db
from greenbench.store import pending as pending_module
from greenbench.suite import load_suite
from tests.clitools import assert_one_paragraph_error
from tests.hostile.hostile_tools import gb, store_of, table_record
from tests.test_runner import FakeExecutor


def within(seconds: float, fn: Callable[[], Any]) -> Any:
    """``fn()``, failing the test if it has not returned after ``seconds`` (a hang)."""
    box: dict[str, Any] = {}

    def call() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # handed back to the test below
            box["error"] = e

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds} s: a hang"
    if "error" in box:
        raise box["error"]
    return box.get("value")


# --- one run per work folder ---------------------------------------------------------------

HOLDER = textwrap.dedent(
    """
    import fcntl, os, sys, time
    fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
    os.ftruncate(fd, 0)
    os.write(fd, sys.argv[2].encode())
    fcntl.flock(fd, fcntl.LOCK_EX)
    print("held", flush=True)
    time.sleep(60)
    """
)


@pytest.fixture
def hold_lock() -> Iterator[Callable[[Path, str], subprocess.Popen[str]]]:
    """Starts a process that writes ``note`` into a lock file and holds its flock."""
    started: list[subprocess.Popen[str]] = []

    def hold(path: Path, note: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(path), note], stdout=subprocess.PIPE, text=True
        )
        started.append(proc)
        assert proc.stdout is not None and proc.stdout.readline() == "held\n"
        return proc

    yield hold
    for proc in started:
        proc.kill()
        proc.wait()


def test_a_held_lock_names_its_holder_and_frees_when_the_holder_is_killed(
    tmp_path: Path, hold_lock: Callable[[Path, str], subprocess.Popen[str]]
) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    note = json.dumps({"pid": 4242, "started": "2030-01-01T00:00:00+00:00", "suite": "first"})
    holder = hold_lock(workdir / ".lock", note)
    with pytest.raises(WorkdirBusy) as err:
        WorkdirLock(workdir, "second").acquire()
    msg = str(err.value)
    assert "another greenbench run (pid 4242, started 2030-01-01T00:00:00+00:00, suite first)" in msg
    assert str(workdir) in msg and "--workdir" in msg and "\n" not in msg
    os.kill(holder.pid, signal.SIGKILL)  # the kernel drops the flock with its last descriptor
    holder.wait()
    with WorkdirLock(workdir, "second"):
        assert json.loads((workdir / ".lock").read_text())["pid"] == os.getpid()
    with WorkdirLock(workdir, "third"):  # released on exit; a stale file never blocks
        pass


@pytest.mark.parametrize(
    "note",
    [
        "\x1b[2J\x1b]0;owned\x07garbage \u202e not json",  # escapes that would repaint a terminal
        json.dumps({"pid": "1\n2", "suite": "s\x1b[31m\u2028x", "started": ["a"] * 1000}),
        "",  # the holder has not written its note yet
        "\xff" * 10000,  # bigger than the note is ever read
    ],
    ids=["escapes", "hostile-json", "empty", "huge"],
)
def test_a_second_run_on_a_held_work_folder_stops_with_a_clean_message(
    micro_suite: Path, tmp_path: Path, hold_lock: Callable[[Path, str], subprocess.Popen[str]], note: str
) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    hold_lock(workdir / ".lock", note)
    out = gb(
        "run", str(micro_suite), "--store", str(tmp_path / "gb.db"), "--workdir", str(workdir), cwd=tmp_path
    )
    assert out.returncode == 1
    assert_one_paragraph_error(out.stderr, "another greenbench run (pid", str(workdir), "wait for it")
    assert not any(c in out.stderr for c in "\x1b\x07\u202e\u2028")
    assert len(out.stderr) < 1000
    assert not (tmp_path / "gb.db").exists()  # the store is not even opened


def _symlink_lock(workdir: Path) -> Path:
    victim = workdir.parent / "victim.txt"
    victim.write_text("keep me")
    (workdir / ".lock").symlink_to(victim)
    return victim


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda w: (w / ".lock").mkdir(), "it is a folder"),
        (_symlink_lock, "symbolic link"),
    ],
    ids=["lock-is-a-folder", "lock-is-a-symlink"],
)
def test_a_lock_file_that_is_not_a_file_is_refused(
    micro_suite: Path, tmp_path: Path, make: Callable[[Path], Any], needle: str
) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    victim = make(workdir)
    out = gb(
        "run", str(micro_suite), "--store", str(tmp_path / "gb.db"), "--workdir", str(workdir), cwd=tmp_path
    )
    assert out.returncode == 1
    assert_one_paragraph_error(out.stderr, "cannot lock the work folder", needle, "--workdir")
    if isinstance(victim, Path):
        assert victim.read_text() == "keep me"  # the symlink's target was not truncated


def test_a_work_folder_that_is_a_file_is_refused(micro_suite: Path, tmp_path: Path) -> None:
    (tmp_path / "work").write_text("not a folder")
    out = gb("run", str(micro_suite), "--store", str(tmp_path / "gb.db"), "--workdir", "work", cwd=tmp_path)
    assert out.returncode == 1
    assert_one_paragraph_error(out.stderr, "cannot create the work folder", "--workdir")


# --- a reader beside a writer ----------------------------------------------------------------

WRITER = textwrap.dedent(
    """
    import json, sqlite3, sys, time
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute("BEGIN " + sys.argv[2])
    conn.execute("UPDATE records SET record = ? WHERE variant = 'a'", (sys.argv[3],))
    print("locked", flush=True)
    if sys.argv[2] == "EXCLUSIVE":
        time.sleep(1.5)  # the reader waits meanwhile
    else:
        sys.stdin.readline()  # commits once the test has read
    conn.execute("COMMIT")
    """
)


@pytest.mark.parametrize(("mode", "shows"), [("IMMEDIATE", "a (baseline)"), ("EXCLUSIVE", "renamed")])
def test_table_reads_while_another_process_writes(tmp_path: Path, mode: str, shows: str) -> None:
    """An open write transaction: the reader sees the last commit. A commit in progress
    (EXCLUSIVE): the reader waits for it (busy timeout) instead of failing."""
    path = store_of(tmp_path / "gb.db", table_record("a"))
    renamed = json.dumps(table_record("renamed").to_dict())
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), mode, renamed],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout is not None and writer.stdout.readline() == "locked\n"
        out = gb("table", "s", "--store", str(path), "--device", "dev", "--format", "md", cwd=tmp_path)
    finally:
        writer.communicate("\n", timeout=30)
    assert out.returncode == 0, out.stderr
    assert shows in out.stdout and "Traceback" not in out.stderr


def test_a_store_locked_past_the_busy_timeout_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = store_of(tmp_path / "gb.db", table_record("a"))
    monkeypatch.setattr(store_db, "BUSY_TIMEOUT_S", 0.2)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(GreenbenchError, match="another process held it locked") as err:
            within(20, lambda: Store(path, readonly=True))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert str(path) in str(err.value) and "\n" not in str(err.value)


# --- a full disk -----------------------------------------------------------------------------


class FullDiskConnection:
    """An SQLite connection whose INSERTs fail the way a full disk makes them fail."""

    def __init__(self, conn: sqlite3.Connection, error: Exception) -> None:
        self._conn, self._error = conn, error

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if sql.lstrip().upper().startswith("INSERT"):
            raise self._error
        return self._conn.execute(sql, *args)

    def __enter__(self) -> sqlite3.Connection:
        return self._conn.__enter__()

    def __exit__(self, *exc: Any) -> Any:
        return self._conn.__exit__(*exc)

    def close(self) -> None:
        self._conn.close()


@pytest.mark.parametrize(
    "error",
    [sqlite3.OperationalError("database or disk is full"), OSError(errno.ENOSPC, "No space left on device")],
    ids=["sqlite-full", "enospc"],
)
def test_a_full_disk_at_the_record_write_keeps_the_record_for_the_next_run(
    micro_suite: Path, tmp_path: Path, error: Exception
) -> None:
    suite = load_suite(micro_suite)
    path, workdir = tmp_path / "gb.db", tmp_path / "work"
    with Store(path) as store:
        store._conn = FullDiskConnection(store._conn, error)  # type: ignore[assignment]
        runner = Runner(suite, store, RunOptions(workdir=workdir, skip_idle=True, executor=FakeExecutor()))
        with pytest.raises(StoreFull) as err:
            runner.run()
    msg = str(err.value)
    kept = list((workdir / "pending").glob("*.json"))
    assert len(kept) == 1 and str(kept[0]) in msg
    assert f"no space left in {tmp_path}" in msg and "trained stages are cached" in msg and "\n" not in msg
    measured_in = json.loads(kept[0].read_text())["run_id"]

    again = FakeExecutor()
    with Store(path) as store:
        outcome = Runner(suite, store, RunOptions(workdir=workdir, skip_idle=True, executor=again)).run()
        records = store.records()
    assert outcome.done == {"base": "resumed", "child": "ok"}
    assert [(r.variant, r.status) for r in records] == [("base", "ok"), ("child", "ok")]
    assert records[0].run_id == measured_in  # stored as measured, not measured again
    assert not list((workdir / "pending").glob("*.json"))


def test_the_reserve_makes_room_for_a_pending_record_on_a_full_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "pending"
    reserve_space(folder)
    assert (folder / RESERVE_NAME).stat().st_size >= RESERVE_BYTES
    real = pending_module._write_synced

    def full_while_reserved(path: Path, data: bytes) -> None:
        if (folder / RESERVE_NAME).exists():
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, data)

    monkeypatch.setattr(pending_module, "_write_synced", full_while_reserved)
    kept = save_pending(table_record("a"), folder)
    assert RunRecord.from_dict(json.loads(kept.read_text())).variant == "a"
    assert not (folder / RESERVE_NAME).exists()


def test_a_pending_record_already_stored_is_not_stored_twice(tmp_path: Path) -> None:
    folder = tmp_path / "pending"
    mine, other_run = table_record("a", run_id="r1"), table_record("b", run_id="r1")
    kept = [save_pending(r, folder) for r in (mine, other_run)]
    with Store(tmp_path / "gb.db") as s:
        s.add(mine)  # stored, but the run died before removing its pending file
        s.add(table_record("b", run_id="r0"))  # the key is already stored ok by another run
        assert store_pending(s, folder) == []
        assert s.count() == 2 and s.warnings == []
    assert not any(p.exists() for p in kept)


def _pipe(path: Path) -> None:
    os.mkfifo(path)


def _link_outside(path: Path) -> None:
    outside = path.parent.parent / "outside.json"
    outside.write_text(json.dumps(table_record("planted").to_dict()))
    path.symlink_to(outside)


HOSTILE_PENDING: dict[str, Callable[[Path], Any]] = {
    "not-json": lambda p: p.write_text("{oops"),
    "json-list": lambda p: p.write_text("[1, 2]"),
    "metrics-not-a-mapping": lambda p: p.write_text(
        json.dumps({**table_record("x").to_dict(), "metrics": [1]})
    ),
    "unknown-field": lambda p: p.write_text(json.dumps({**table_record("x").to_dict(), "__class__": "os"})),
    "bad-utf8": lambda p: p.write_bytes(b"\xff\xfe{}"),
    "deep-nesting": lambda p: p.write_text("[" * 200_000 + "]" * 200_000),
    "a-pipe": _pipe,
    "a-symlink": _link_outside,
    "a-folder": lambda p: p.mkdir(),
}


@pytest.mark.parametrize("kind", list(HOSTILE_PENDING))
def test_a_hostile_pending_file_is_set_aside_and_the_rest_stored(tmp_path: Path, kind: str) -> None:
    folder = tmp_path / "pending"
    folder.mkdir()
    HOSTILE_PENDING[kind](folder / "0-bad.json")
    good = save_pending(table_record("good"), folder)

    def store_them() -> tuple[list[str], list[str], list[str]]:
        with Store(tmp_path / "gb.db") as s:  # SQLite objects stay in the thread that made them
            stored = store_pending(s, folder)
            return [r.variant for r in stored], [r.variant for r in s.records()], s.warnings

    stored, records, warnings = within(20, store_them)
    assert stored == records == ["good"]
    assert len(warnings) == 1 and "0-bad.json" in warnings[0] and "\n" not in warnings[0]
    assert not good.exists() and not (folder / "0-bad.json").exists()
    assert (folder / "0-bad.json.bad").is_symlink() or (folder / "0-bad.json.bad").exists()
    with Store(tmp_path / "gb.db") as s:  # set aside once, not retried
        assert store_pending(s, folder) == [] and s.warnings == []


def test_a_pending_file_too_big_to_be_a_record_is_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pending_module, "MAX_PENDING_BYTES", 100)
    folder = tmp_path / "pending"
    save_pending(table_record("big", measurement={"pad": "x" * 1000}), folder)
    with Store(tmp_path / "gb.db") as s:
        assert store_pending(s, folder) == [] and "larger than" in s.warnings[0]


@pytest.mark.parametrize(
    "variant", ["../../../etc/passwd", "a/b", "a_b", "x" * 500, "\x00\n\x1b[2J", "", "..", "con:nul?*"]
)
def test_pending_file_names_stay_in_their_folder(tmp_path: Path, variant: str) -> None:
    folder = tmp_path / "pending"
    kept = save_pending(table_record(variant), folder)
    assert kept.parent == folder and kept.is_file() and len(kept.name) < 200
    assert pending_name(table_record(variant)) != pending_name(table_record(variant + "/"))
    assert RunRecord.from_dict(json.loads(kept.read_text())).variant == variant


# --- the worker's side of a full disk, a broken result, a hang -------------------------------

JOB = jobs.EvaluateJob(
    label="v1", task="detect", workdir="w", device="cpu", artifact=None, model="yolov5n.yaml",
    weights=None, data_yaml="d.yaml", eval_split="test", eval_imgsz=64, imgsz=64, out_dir="o",
)  # fmt: skip
RESULT = jobs.EvaluateResult(Artifact("torch", "m.pt"), 10, 20, "test", 1.0, 50.0, {"map50": 0.5})
# the worker's command line ends in JOB RESULT EVENTS
WRITE_RESULT = "import sys; open(sys.argv[2], 'w').write({!r}); sys.exit({})"


def local(tmp_path: Path, script: str, stall_s: float | None = None) -> LocalExecutor:
    """A local executor whose worker is ``python -c script``."""
    ex = LocalExecutor(tmp_path / "logs", {"device_id": "d"}, IdleJob.skip("test"), stall_s=stall_s)
    ex.argv = [sys.executable, "-c", script]
    return ex


Usage = namedtuple("Usage", "total used free")


@pytest.mark.parametrize(
    ("script", "free_mb", "needles"),
    [
        ("import sys; sys.exit(1)", 1, ["no space left in", "(1 MB free)", "free space and re-run"]),
        (
            "print('OSError: [Errno 28] No space left on device'); raise SystemExit(1)",
            10_000,
            ["no space left in", "trained stages are cached"],
        ),
        (WRITE_RESULT.format('{"ok": tr', 1), 10_000, ["ended with exit code 1", "readable result"]),
        (WRITE_RESULT.format("[]", 0), 10_000, ["ended with exit code 0", "readable result"]),
        (
            WRITE_RESULT.format('{"ok": true, "result": "{\\"version\\": 1}"}', 0),
            10_000,
            ["returned a result greenbench cannot read"],
        ),
        ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", 10_000, ["ended with signal SIGKILL"]),
    ],
    ids=["died-on-a-full-disk", "log-says-disk-full", "cut-short", "not-an-object", "wrong-shape", "killed"],
)
def test_a_worker_without_a_readable_result_is_a_clear_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str, free_mb: int, needles: list[str]
) -> None:
    monkeypatch.setattr(
        "greenbench.executors.local.shutil.disk_usage", lambda _p: Usage(10**12, 0, free_mb * 2**20)
    )
    with pytest.raises(JobFailed) as err:
        within(30, lambda: local(tmp_path, script).run(JOB))
    msg = str(err.value)
    assert all(n in msg for n in needles), msg
    assert "\n" not in msg and ".log" in msg


def test_no_space_for_the_job_file_is_a_clear_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(self: Path, *args: Any, **kwargs: Any) -> int:
        raise OSError(errno.ENOSPC, "No space left on device", str(self))

    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(JobFailed, match=r"no space left in .*: cannot write the job files"):
        local(tmp_path, "pass").run(JOB)


def test_a_silent_worker_is_stopped_as_hung(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(JobFailed, match="made no progress for 1 s") as err:
        within(30, lambda: local(tmp_path, "import time; time.sleep(120)", stall_s=1).run(JOB))
    assert "--stall-timeout" in str(err.value) and time.monotonic() - started < 30


def test_a_worker_that_keeps_talking_is_not_stopped(tmp_path: Path) -> None:
    reply = jobs.dump_reply(jobs.Reply(True, RESULT))
    script = textwrap.dedent(
        f"""
        import sys, time
        for i in range(8):
            with open(sys.argv[3], "a") as f:
                f.write(f"step {{i}}\\n")
            time.sleep(0.3)
        open(sys.argv[2], "w").write({reply!r})
        """
    )
    lines: list[str] = []
    ex = local(tmp_path, script, stall_s=1)
    ex.progress = lines.append
    outcome = within(30, lambda: ex.run(JOB))
    assert outcome.result == RESULT and lines == [f"step {i}" for i in range(8)]


def test_a_hung_worker_becomes_a_failed_record_and_the_suite_goes_on(
    micro_suite: Path, tmp_path: Path
) -> None:
    ex = local(tmp_path, "import time; time.sleep(120)", stall_s=1)

    def run() -> tuple[Any, list[RunRecord]]:
        with Store(tmp_path / "gb.db") as store:
            options = RunOptions(workdir=tmp_path / "work", skip_idle=True, executor=ex)
            return Runner(load_suite(micro_suite), store, options).run(), store.records()

    outcome, records = within(60, run)
    assert outcome.done == {"base": "failed", "child": "failed"}
    assert "made no progress for 1 s" in (records[0].error or "")
    assert records[1].error == "its parent variant 'base' failed in this run"


@pytest.mark.parametrize("value", ["-1", "nan", "inf", "soon", ""])
def test_a_bad_stall_timeout_is_refused_before_anything_runs(tmp_path: Path, value: str) -> None:
    out = gb("run", "missing.yaml", "--stall-timeout", value, cwd=tmp_path)
    assert out.returncode == 2
    assert_one_paragraph_error(out.stderr, "--stall-timeout must be a number of seconds >= 0")


# --- a real full file system, where one can be mounted ---------------------------------------


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    """An 8 MB tmpfs (needs root and mount rights; skipped where it cannot be mounted: the
    simulated ENOSPC tests above cover the same code)."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)], capture_output=True, timeout=30
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace').strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], timeout=30, check=False)


def fill(folder: Path) -> Path:
    """Fill ``folder``'s file system to the last byte; return the filler file."""
    filler = folder / "filler"
    try:
        with filler.open("wb") as f:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
    except OSError as e:  # from the open itself if it is full already
        assert e.errno == errno.ENOSPC
    return filler


def test_a_really_full_disk(tiny_fs: Path) -> None:
    """SQLite's own "database or disk is full", the reserve that makes room for the pending copy
    (and so for the record), a job that cannot be written, and both copies failing."""
    pending = tiny_fs / "work" / "pending"
    store = Store(tiny_fs / "gb.db")
    reserve_space(pending)
    filler = fill(tiny_fs)
    try:
        with pytest.raises(StoreFull, match=f"no space left in {tiny_fs}"):
            store.add(table_record("a", measurement={"pad": "x" * 200_000}))
        store_record(store, table_record("a", measurement={"pad": "x" * 200_000}), pending)
        assert store.count() == 1 and not list(pending.glob("*.json"))  # the reserve made room
        fill(tiny_fs / "work")
        ex = LocalExecutor(tiny_fs / "logs", {"device_id": "d"}, IdleJob.skip("test"))
        with pytest.raises(JobFailed, match=f"no space left in {tiny_fs}"):
            ex.run(JOB)
        with pytest.raises(StoreFull, match="could not be kept"):
            store_record(store, table_record("b", measurement={"pad": "x" * 200_000}), pending)
        filler.unlink()
        (tiny_fs / "work" / "filler").unlink(missing_ok=True)
        assert store_pending(store, pending) == [] and (pending / RESERVE_NAME).exists()
    finally:
        store.close()


# --- a damaged store -------------------------------------------------------------------------


def many_records(path: Path) -> Path:
    """A store of 60 records of suite ``s`` spread over many pages."""
    recs = [table_record(f"v{i}", measurement={"pad": "x" * 3000}) for i in range(60)]
    return store_of(path, *recs)


def _overwrite_middle(b: bytes) -> bytes:
    m = len(b) // 2
    return b[:m] + b"\xff" * 8192 + b[m + 8192 :]


DAMAGE: dict[str, Callable[[bytes], bytes]] = {
    "middle-pages": _overwrite_middle,
    "header": lambda b: b"\0" * 100 + b[100:],
    "first-page": lambda b: b[:100] + b"\xaa" * 3000 + b[3100:],
    "truncated": lambda b: b[: len(b) // 2 + 100],
    "empty-but-for-junk": lambda b: b"SQLite format 3\0" + b"\x01" * 50,
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_table_of_a_damaged_store_says_how_to_recover(tmp_path: Path, damage: str) -> None:
    path = many_records(tmp_path / "gb.db")
    path.write_bytes(DAMAGE[damage](path.read_bytes()))
    before = path.read_bytes()
    out = gb("table", "s", "--store", str(path), "--device", "dev", cwd=tmp_path)
    assert out.returncode == 1
    assert_one_paragraph_error(out.stderr, str(path), "move the file aside")
    assert ".recover" in out.stderr or "greenbench did not create" in out.stderr
    assert path.read_bytes() == before


@pytest.mark.parametrize("damage", ["header", "first-page", "truncated"])
def test_run_on_a_damaged_store_says_how_to_recover(micro_suite: Path, tmp_path: Path, damage: str) -> None:
    path = many_records(tmp_path / "gb.db")
    path.write_bytes(DAMAGE[damage](path.read_bytes()))
    out = gb("run", str(micro_suite), "--store", str(path), cwd=tmp_path)
    assert out.returncode == 1
    assert_one_paragraph_error(out.stderr, str(path), ".recover", "move the file aside")


def _set_record(path: Path, row: int, value: object) -> None:
    with sqlite3.connect(path) as c:
        c.execute("UPDATE records SET record=? WHERE id=?", (value, row))
    c.close()


def _shape(**change: Any) -> str:
    return json.dumps({**table_record("bad").to_dict(), **change})


BAD_ROWS: dict[str, object] = {
    "not-json": "{oops",
    "json-array": "[]",
    "bad-utf8-blob": b"\xff\xfe\x00",
    "missing-field": json.dumps(
        {k: v for k, v in table_record("bad").to_dict().items() if k != "variant_hash"}
    ),
    "metrics-a-list": _shape(metrics=[1, 2]),
    "metric-a-number": _shape(metrics={"latency_ms": 5}),
    "status-unknown": _shape(status="maybe"),
    "schema-version-text": _shape(schema_version="2"),
    "schema-version-newer": _shape(schema_version=99),
    "unknown-field": _shape(__init__="os.system('x')"),
    "variant-a-number": _shape(variant=7),
    "deep-nesting": '{"a":' * 100_000 + "1" + "}" * 100_000,
}


@pytest.mark.parametrize("kind", list(BAD_ROWS))
def test_an_unreadable_record_is_skipped_with_a_note_naming_its_row(tmp_path: Path, kind: str) -> None:
    path = store_of(tmp_path / "gb.db", table_record("a", baseline="a"), table_record("b"), table_record("c"))
    _set_record(path, 2, BAD_ROWS[kind])
    out = gb("table", "s", "--store", str(path), "--device", "dev", "--format", "md", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "a (baseline)" in out.stdout and "| c " in out.stdout and "| b " not in out.stdout
    note = next(line for line in out.stdout.splitlines() if "row 2 of" in line)
    assert f"row 2 of {path}" in note
    term = gb("table", "s", "--store", str(path), "--device", "dev", cwd=tmp_path, env={"COLUMNS": "400"})
    assert f"row 2 of {path}" in term.stdout  # the terminal's short footer says it too
    csv = gb("table", "s", "--store", str(path), "--device", "dev", "--format", "csv", cwd=tmp_path)
    assert csv.returncode == 0 and len(csv.stdout.split()) == 3  # header, a, c
    assert csv.stderr.startswith(f"greenbench: warning: row 2 of {path} skipped")
    with Store(path) as s:  # resume looks past it too
        assert s.latest("s", "h-b", "dev") is None and s.latest("s", "h-c", "dev") is not None
        assert s.warnings and "row 2" in s.warnings[0]


NESTED: dict[str, dict[str, Any]] = {
    "idle-a-list": {"measurement": {"idle": [1, 2]}},
    "carbon-text": {"measurement": {"carbon": {"g_per_kwh": "lots", "source": 1, "pue": None}}},
    "settings-a-string": {"measurement": {"settings": "x"}},
    "huge-integer": {"metrics": {"latency_ms": {"value": 10**400, "unit": "ms", "ci_low": 10**400}}},
    "stage-params-a-list": {"stages": [{"name": "train", "params": [1], "energy_j": "x", "cached": 1}]},
    "delta-a-string": {"deltas": {"latency_ms": "+5 %"}},
}


@pytest.mark.parametrize("kind", list(NESTED))
def test_a_record_with_malformed_nested_values_still_renders(tmp_path: Path, kind: str) -> None:
    bad = table_record("bad", **NESTED[kind])
    path = store_of(tmp_path / "gb.db", table_record("a", baseline="a"), bad)
    for fmt in ("term", "md", "csv", "latex", "json"):
        out = gb("table", "s", "--store", str(path), "--device", "dev", "--format", fmt, cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        assert "bad" in out.stdout and "Traceback" not in out.stderr


def _fifo(path: Path) -> None:
    os.mkfifo(path)


@pytest.mark.parametrize("make", [_fifo, lambda p: p.mkdir()], ids=["a-pipe", "a-folder"])
def test_a_store_path_that_is_not_a_file_is_refused_without_hanging(
    micro_suite: Path, tmp_path: Path, make: Callable[[Path], None]
) -> None:
    path = tmp_path / "gb.db"
    make(path)
    for args in (("table", "s"), ("run", str(micro_suite))):
        out = gb(*args, "--store", str(path), cwd=tmp_path, timeout=60)
        assert out.returncode == 1
        assert_one_paragraph_error(out.stderr, str(path), "not a regular file")


def test_a_hot_journal_left_by_a_killed_writer_is_explained_to_a_reader(tmp_path: Path) -> None:
    path = store_of(tmp_path / "gb.db", table_record("a"))
    killed_mid_write = textwrap.dedent(
        """
        import os, sqlite3, sys
        c = sqlite3.connect(sys.argv[1])
        c.execute("PRAGMA cache_size=1")  # spill pages into the file before the commit
        c.execute("BEGIN")
        for i in range(2000):
            c.execute("INSERT INTO meta VALUES (?, ?)", ("k%d" % i, "x" * 2000))
        os._exit(0)
        """
    )
    subprocess.run([sys.executable, "-c", killed_mid_write, str(path)], check=True, timeout=60)
    assert Path(f"{path}-journal").exists()
    out = gb("table", "s", "--store", str(path), "--device", "dev", cwd=tmp_path)
    assert out.returncode == 1
    assert_one_paragraph_error(out.stderr, f"{path}-journal", "greenbench run")
    with Store(path) as s:  # a writable open rolls the journal back: nothing stored was lost
        assert [r.variant for r in s.records()] == ["a"]
    assert gb("table", "s", "--store", str(path), "--device", "dev", cwd=tmp_path).returncode == 0


# --- hostile suite files given to `table` ----------------------------------------------------

BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True)
)


@pytest.mark.parametrize(
    "text",
    [BOMB + "name: *i\nvariants: {a: {}}\n", "[" * 50_000 + "]" * 50_000, "name: s\nvariants: *undefined\n"],
    ids=["alias-bomb", "deep-nesting", "undefined-alias"],
)
def test_table_of_a_hostile_suite_file_is_a_quick_clear_error(tmp_path: Path, text: str) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text(text)
    store_of(tmp_path / "gb.db", table_record("a"))
    out = gb("table", str(suite), "--store", str(tmp_path / "gb.db"), cwd=tmp_path, timeout=60)
    assert out.returncode == 2
    assert_one_paragraph_error(out.stderr, str(suite))
    assert len(out.stderr) < 2000
