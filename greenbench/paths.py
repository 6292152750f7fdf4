"""Where greenbench reads and writes when no option says: the results store and the work folder.

``GREENBENCH_STORE`` (a results store file) and ``GREENBENCH_WORKDIR`` (a work folder) replace the
built-in defaults for every verb that takes ``--store`` or ``--workdir``; an option given on the
command line always wins. The default outputs of ``leaderboard`` and ``report`` are named after
the store and sit beside it, so they never overwrite the sample committed under ``results/``.
"""

from __future__ import annotations

import os
from pathlib import Path

from greenbench.store import DEFAULT_STORE

STORE_ENV = "GREENBENCH_STORE"
WORKDIR_ENV = "GREENBENCH_WORKDIR"

#: one line for ``--help`` texts: what the environment can change
ENV_HELP = (
    f"environment: {STORE_ENV} is the default of --store (else {DEFAULT_STORE}); {WORKDIR_ENV} is "
    f"the default work folder (else work/ beside the store); a command-line option wins."
)


def default_store() -> Path:
    """``$GREENBENCH_STORE`` if set and not empty, else ``results/greenbench.db``."""
    return Path(os.environ.get(STORE_ENV) or DEFAULT_STORE)


def store_help(what: str = "SQLite results file") -> str:
    """The ``--store`` help text: ``what`` and where the default comes from."""
    return f"{what} (default: ${STORE_ENV}, else {DEFAULT_STORE})"


def default_workdir(store: Path) -> Path:
    """``$GREENBENCH_WORKDIR`` if set and not empty, else ``work/`` beside ``store``."""
    env = os.environ.get(WORKDIR_ENV)
    return Path(env) if env else store.parent / "work"


def beside_store(store: Path, what: str) -> Path:
    """A default output named after ``store`` beside it: ``results/greenbench.db`` and
    ``leaderboard.csv`` give ``results/greenbench-leaderboard.csv`` (not a committed path)."""
    return store.parent / f"{store.stem}-{what}"
