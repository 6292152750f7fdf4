"""Where verbs write: ``-o -`` for standard output, an ``-o`` that names a folder, a file or the
store itself, the environment's defaults for the store and the work folder, and default outputs
that never overwrite the sample committed under ``results/``."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pandas as pd
import pytest

from greenbench.cli import build_parser, main
from greenbench.paths import STORE_ENV, WORKDIR_ENV, beside_store, default_store, default_workdir
from greenbench.store import Store
from tests.clitools import assert_one_paragraph_error, run_cli
from tests.factories import make_measured_record

REPO = Path(__file__).parents[1]


def measured_store(path: Path) -> Path:
    """A store of two measured variants of suite 's'."""
    with Store(path) as s:
        s.add(make_measured_record("base", suite="s"))
        s.add(make_measured_record("pruned", suite="s", energy_j=0.03, latency_ms=7.0))
    return path


def committed_results() -> set[str]:
    """The paths under results/ that git tracks (the published sample)."""
    out = subprocess.run(
        ["git", "ls-files", "results/"], cwd=REPO, capture_output=True, text=True, check=True
    )
    return set(out.stdout.split())


def test_environment_gives_the_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(STORE_ENV, raising=False)
    monkeypatch.delenv(WORKDIR_ENV, raising=False)
    assert default_store() == Path("results/greenbench.db")
    assert default_workdir(tmp_path / "a.db") == tmp_path / "work"
    monkeypatch.setenv(STORE_ENV, str(tmp_path / "s.db"))
    monkeypatch.setenv(WORKDIR_ENV, str(tmp_path / "w"))
    assert default_store() == tmp_path / "s.db" and default_workdir(tmp_path / "a.db") == tmp_path / "w"
    parser = build_parser()
    for argv in (["run", "s.yaml"], ["table", "s.yaml"], ["export", "codecarbon", "-o", "-"], ["env"]):
        assert parser.parse_args(argv).store == str(tmp_path / "s.db"), argv  # every verb with --store
    assert parser.parse_args(["leaderboard"]).store is None  # read as [default_store()] when run
    assert parser.parse_args(["leaderboard", "--store", "given.db"]).store == ["given.db"]


def test_leaderboard_dash_writes_csv_to_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = measured_store(tmp_path / "a.db")
    assert main(["leaderboard", "--store", str(db), "-o", "-"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[0].startswith("suite,") and len(out.splitlines()) == 3
    assert "to standard output" in err and not (tmp_path / "-").exists()


def test_default_outputs_never_overwrite_the_committed_sample(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(STORE_ENV, raising=False)
    (tmp_path / "results").mkdir()
    measured_store(tmp_path / "results" / "greenbench.db")
    assert main(["leaderboard"]) == 0
    assert main(["report"]) == 0
    written = {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()}
    assert written - {"results/greenbench.db"}, written
    assert not written & committed_results(), written & committed_results()
    assert (tmp_path / beside_store(Path("results/greenbench.db"), "leaderboard.csv")).is_file()
    err = capsys.readouterr().err
    assert "results/greenbench-leaderboard.csv" in err and "results/greenbench-report" in err
    assert len(pd.read_csv(tmp_path / "results" / "greenbench-leaderboard.csv")) == 2


def test_outputs_that_cannot_be_written_are_clear_errors(tmp_path: Path) -> None:
    db = measured_store(tmp_path / "a.db")
    a_file = tmp_path / "board.csv"
    a_file.write_text("old")
    dash = run_cli("report", "--store", str(db), "-o", "-", cwd=tmp_path)
    assert dash.returncode == 1 and dash.stdout == ""
    assert_one_paragraph_error(dash.stderr, "standard output", "-o with a folder")
    onto_file = run_cli("report", "--store", str(db), "-o", str(a_file), cwd=tmp_path)
    assert onto_file.returncode == 1
    assert_one_paragraph_error(onto_file.stderr, str(a_file), "existing file")
    assert a_file.read_text() == "old"
    onto_folder = run_cli("leaderboard", "--store", str(db), "-o", str(tmp_path), cwd=tmp_path)
    assert onto_folder.returncode == 1
    assert_one_paragraph_error(onto_folder.stderr, str(tmp_path), "not a regular file")
    onto_store = run_cli("leaderboard", "--store", str(db), "-o", str(db), cwd=tmp_path)
    assert onto_store.returncode == 1 and "results store itself" in onto_store.stderr
    again = run_cli("leaderboard", "--store", str(db), "-o", str(a_file), cwd=tmp_path)
    assert again.returncode == 0 and a_file.read_text(encoding="utf-8-sig").startswith(
        "suite,"
    )  # a file is replaced


def test_report_in_a_folder_that_cannot_be_made(tmp_path: Path) -> None:
    db = measured_store(tmp_path / "a.db")
    (tmp_path / "plain").write_text("x")
    done = run_cli("report", "--store", str(db), "-o", str(tmp_path / "plain" / "sub"), cwd=tmp_path)
    assert done.returncode == 1
    assert_one_paragraph_error(done.stderr, "cannot write the report", "plain")


def test_measure_dash_appends_the_report_to_the_commands_stdout(tmp_path: Path) -> None:
    import json
    import sys

    cmd = [sys.executable, "-c", "print('from the command')"]
    done = run_cli(
        "measure", "--json", "--idle-s", "0", "--meters", "estimate", "-o", "-", "--", *cmd, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    first, _, report = done.stdout.partition("\n")
    assert first == "from the command" and json.loads(report)["command_exit_code"] == 0
    assert not (tmp_path / "-").exists()
