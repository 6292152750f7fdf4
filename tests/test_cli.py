"""The CLI's contract for user errors: one paragraph, the right exit code, no traceback."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.clitools import run_cli

BROKEN = Path(__file__).parent / "suites_broken"


def greenbench(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, cwd=cwd)


def test_validate_broken_suite_exits_2_naming_file_line_and_key(tmp_path: Path) -> None:
    out = greenbench("validate", str(BROKEN / "unknown_from.yaml"), cwd=tmp_path)
    assert out.returncode == 2
    assert "unknown_from.yaml:" in out.stderr and "variants." in out.stderr and ".from" in out.stderr
    assert "Traceback" not in out.stderr and out.stdout == ""


def test_validate_good_suite_exits_0(tmp_path: Path) -> None:
    suite = Path(__file__).parents[1] / "suites" / "quickstart.yaml"
    out = greenbench("validate", str(suite), cwd=tmp_path)
    assert out.returncode == 0 and "valid" in out.stdout


def test_table_without_a_store_is_a_clear_error(tmp_path: Path) -> None:
    suite = Path(__file__).parents[1] / "suites" / "quickstart.yaml"
    out = greenbench("table", str(suite), "--store", str(tmp_path / "none.db"), cwd=tmp_path)
    assert out.returncode == 1 and "no results store" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "none.db").exists()


def test_missing_suite_file(tmp_path: Path) -> None:
    out = greenbench("run", str(tmp_path / "nope.yaml"), "--store", str(tmp_path / "gb.db"), cwd=tmp_path)
    assert out.returncode == 2 and "nope.yaml" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "gb.db").exists()
