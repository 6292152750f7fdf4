"""One ``greenbench run`` per work folder: an exclusive ``flock`` on ``<workdir>/.lock``.

Two runs sharing a work folder would train into the same stage folders, stage the same data
and store two records of one variant. The lock is advisory and held by an open file
descriptor, so the kernel releases it when the holder exits, however it exits (even SIGKILL):
a stale ``.lock`` file never blocks a later run. The file is never removed (removing a lock
file races with a run that is just opening it); it holds the holder's pid, start time and
suite, so the second run can say who is in the way.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType

from greenbench.errors import TERMINAL_UNSAFE, GreenbenchError

LOCK_NAME = ".lock"
_MAX_INFO_BYTES = 4096  # a hostile or damaged lock file is read no further than this


class WorkdirBusy(GreenbenchError):
    """Another greenbench run holds the work folder's lock."""


def _holder(fd: int) -> str:
    """Who holds the lock, from the file's contents: ``pid N, started T, suite S``."""
    try:
        raw = os.pread(fd, _MAX_INFO_BYTES, 0)
        info = json.loads(raw.decode("utf-8"))
    except (OSError, ValueError):  # written a moment from now, or damaged: say what is known
        info = None
    if not isinstance(info, dict):
        return "pid unknown"
    parts = [f"pid {info.get('pid', '?')}"]
    if info.get("host") not in (None, socket.gethostname()):
        parts[0] += f" on {info.get('host')}"
    parts += [f"started {info.get('started', '?')}", f"suite {info.get('suite', '?')}"]
    return _printable(", ".join(parts))[:300]


def _printable(text: str) -> str:
    """``text`` on one line without control characters (it came from a file anyone can write)."""
    return " ".join(TERMINAL_UNSAFE.sub(" ", text).split())


class WorkdirLock:
    """``with WorkdirLock(workdir, suite):`` holds the work folder for one run (non-blocking).

    Entering raises ``WorkdirBusy`` naming the holder when another run has it, and a
    ``GreenbenchError`` when the folder or its lock file cannot be used.
    """

    def __init__(
        self, workdir: Path, suite: str, name: str = LOCK_NAME, what: str = "", fix: str = ""
    ) -> None:
        self.workdir = Path(workdir)
        self.path = self.workdir / name
        self.suite = suite
        self.what = what or f"the work folder {self.workdir}"
        self.fix = fix or "pass --workdir with another folder"
        self._fd: int | None = None

    def _cannot(self, err: OSError) -> GreenbenchError:
        why = err.strerror or str(err)
        if err.errno == errno.ELOOP:
            why = "it is a symbolic link, which greenbench does not follow; remove it"
        elif err.errno == errno.EISDIR or self.path.is_dir():
            why = "it is a folder; remove it"
        elif err.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
            why = "this file system does not support file locks; use a work folder on a local disk"
        return GreenbenchError(
            f"cannot lock {self.what} through {self.path} ({why}); {self.fix}, on a writable local disk."
        )

    def acquire(self) -> None:
        """Take the lock or raise; write who holds it into the lock file."""
        try:
            self.workdir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise GreenbenchError(
                f"cannot create the work folder {self.workdir} ({e.strerror or e}). Pass --workdir with "
                f"a writable folder."
            ) from None
        try:
            # O_NOFOLLOW: a planted symlink must not make us truncate some other file
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise self._cannot(e) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise WorkdirBusy(
                f"another greenbench run ({holder}) is using {self.what}; wait for it, or {self.fix}."
            ) from None
        except OSError as e:
            os.close(fd)
            raise self._cannot(e) from None
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "suite": self.suite,
        }
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info).encode(), 0)
        except OSError:
            pass  # a full disk: the lock holds without its note; the second run says "pid unknown"
        self._fd = fd

    def release(self) -> None:
        """Give the lock back (the file stays: see the module docstring)."""
        if self._fd is not None:
            os.close(self._fd)  # closing the last descriptor releases the flock
            self._fd = None

    def __enter__(self) -> WorkdirLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def runs_dir() -> Path:
    """Where every ``greenbench run`` of this user on this machine announces itself."""
    base = os.environ.get("GREENBENCH_RUNS_DIR") or tempfile.gettempdir()
    return Path(base) / f"greenbench-runs-{os.getuid()}"


class ActiveRun:
    """``with ActiveRun(suite, workdir):`` announces this run machine-wide (a file in
    ``runs_dir()`` under a shared ``flock``), so that another run that measures meanwhile can
    say so in its records (``other_runs``). Runs on other work folders are not refused: they
    are only disclosed, since two suites may legitimately share a machine."""

    def __init__(self, suite: str, workdir: Path) -> None:
        self.info = {
            "pid": os.getpid(),
            "suite": suite,
            "workdir": str(Path(workdir).resolve()),
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        self._fd: int | None = None
        self.path: Path | None = None

    def __enter__(self) -> ActiveRun:
        try:
            folder = runs_dir()
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.path = folder / f"{os.getpid()}-{os.urandom(4).hex()}.json"
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            fcntl.flock(fd, fcntl.LOCK_SH)
            os.pwrite(fd, json.dumps(self.info).encode(), 0)
            self._fd = fd
        except OSError:
            self.path = None  # disclosure is best effort: a run is never refused for it
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            if self.path is not None:
                with contextlib.suppress(OSError):
                    self.path.unlink()
            os.close(self._fd)
            self._fd = None


def other_runs() -> list[dict[str, object]]:
    """The other ``greenbench run`` processes of this user alive on this machine now: a file in
    ``runs_dir()`` whose lock cannot be taken exclusively is held by a live run."""
    found: list[dict[str, object]] = []
    try:
        entries = sorted(runs_dir().iterdir())[:1000]
    except OSError:
        return found
    for entry in entries:
        if entry.name.startswith(f"{os.getpid()}-"):
            continue
        try:
            fd = os.open(entry, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # held: that run is alive
            try:
                info = json.loads(os.pread(fd, _MAX_INFO_BYTES, 0).decode("utf-8"))
            except (OSError, ValueError):
                info = {}
            if isinstance(info, dict):
                found.append(
                    {k: _printable(str(info.get(k, "?")))[:200] for k in ("pid", "suite", "workdir")}
                )
        except OSError:
            pass
        else:  # nobody holds it: a run that died without cleaning up
            with contextlib.suppress(OSError):
                entry.unlink()
        finally:
            os.close(fd)
    return found
