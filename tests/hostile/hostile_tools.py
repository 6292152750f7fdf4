"""Helpers of the hostile-input tests: the CLI with a timeout (a hang fails), stores to damage."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from greenbench.store import RunRecord, Store, metric
from tests.factories import make_record

NETGUARD = Path(__file__).parents[1] / "e2e" / "netguard"


def gb(
    *args: str, cwd: Path, timeout: float = 60, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m greenbench ARGS`` with HOME in ``cwd``, non-local network refused and logged
    (``cwd/network-attempts.log``), and a timeout: a hang is a failure, not a stuck test run."""
    full = {
        **os.environ,
        "HOME": str(cwd / "home"),
        "PYTHONPATH": os.pathsep.join([str(NETGUARD), str(Path(__file__).parents[2])]),
        "GREENBENCH_NETLOG": str(cwd / "network-attempts.log"),
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "greenbench", *args],
        cwd=cwd,
        env=full,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def table_record(variant: str, **fields: Any) -> RunRecord:
    """An ok record of suite ``s`` on device ``dev``, baseline ``a``, with two figures;
    ``fields`` override any of that."""
    return make_record(
        **{
            "variant": variant,
            "variant_hash": f"h-{variant}",
            "baseline": "a",
            "metrics": {"latency_ms": metric(1.5, "ms"), "params": metric(1000, "count")},
            **fields,
        }
    )


def store_of(path: Path, *records: RunRecord) -> Path:
    """A store at ``path`` holding ``records``."""
    with Store(path) as s:
        for r in records:
            s.add(r)
    return path
