"""Builders of test records, shared by the store and report tests."""

from __future__ import annotations

from typing import Any

from greenbench.store import RunRecord


def make_record(**fields: Any) -> RunRecord:
    """A ``RunRecord`` with placeholder identity; ``fields`` override any of them."""
    base: dict[str, Any] = {
        "run_id": "r1",
        "suite": "s",
        "suite_hash": "x",
        "variant": "a",
        "variant_hash": "h1",
        "parent": None,
        "status": "ok",
        "device_id": "dev",
        "started_at": "t0",
        "finished_at": "t1",
    }
    return RunRecord(**{**base, **fields})
