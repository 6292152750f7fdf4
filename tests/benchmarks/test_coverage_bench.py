"""``benchmarks/coverage.py`` runs on the shipped interval and gate functions and prints the
tables the README quotes; a small run's coverage stays in a band a broken interval would leave."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_coverage_benchmark_runs_and_covers() -> None:
    proc = subprocess.run(
        [sys.executable, "benchmarks/coverage.py", "--sims", "300", "--gate-sims", "10", "--effects", "0,3.5"],  # noqa: E501
        cwd=ROOT, capture_output=True, text=True, timeout=300, env={"PYTHONPATH": str(ROOT), "PATH": ""},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = re.findall(r"^\s+([\d.]+)%\s+(1\.00|1\.05)\s+([\d.]+)", proc.stdout, re.M)
    assert len(rows) == 4, proc.stdout
    for _tau, _true, covered in rows:
        assert 0.9 <= float(covered) <= 0.99, proc.stdout  # 95 % nominal; 300 simulations
    assert "Gate outcomes" in proc.stdout and "+20%" in proc.stdout
