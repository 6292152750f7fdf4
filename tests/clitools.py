"""Driving the real ``greenbench`` command in a subprocess, shared by the CLI-level tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m greenbench ARGS`` with ``env`` added to this process' environment."""
    return subprocess.run(
        [sys.executable, "-m", "greenbench", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
    )


def assert_one_paragraph_error(stderr: str, *needles: str) -> None:
    """``greenbench: error: …`` on one line, no traceback, containing every needle."""
    text = stderr.strip()
    assert text.startswith("greenbench: error:") and "\n" not in text, stderr
    assert "Traceback" not in stderr
    for needle in needles:
        assert needle in text, (needle, text)
