"""``greenbench leaderboard``: a deterministic, spreadsheet-safe CSV that plain pandas loads."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from greenbench.report.frame import COLUMNS, CPU_TIME_CAVEAT, KINDS, RANK_RULES, load_results
from greenbench.report.leaderboard import csv_text, safe_cell
from greenbench.store import Store
from tests.clitools import assert_one_paragraph_error, run_cli
from tests.factories import make_measured_record

HOSTILE = ["=cmd|' /C calc'!A0", "<script>alert(1)</script>", "+1+1", "-2", "@SUM(A1)", "\tx", "two\nlines"]


def store(path: Path, variants: dict[str, tuple[float, float, float]], **fields: object) -> Path:
    """A store with one record per variant: name -> (map50, energy J/img, latency ms)."""
    with Store(path) as s:
        for v, (m, e, lat) in variants.items():
            s.add(make_measured_record(v, map50=m, energy_j=e, latency_ms=lat, **fields))  # type: ignore[arg-type]
    return path


KNOWN = {"base": (0.5, 0.05, 10.0), "pruned": (0.45, 0.03, 7.0), "bad": (0.4, 0.06, 12.0)}


def test_cli_writes_documented_columns_and_says_the_rule(tmp_path: Path) -> None:
    db = store(tmp_path / "a.db", KNOWN)
    out = tmp_path / "out" / "board.csv"
    done = run_cli("leaderboard", "--store", str(db), "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert RANK_RULES["pareto"] in done.stderr and "3 row(s)" in done.stderr
    board = pd.read_csv(out)
    assert list(board.columns) == [name for name, _ in COLUMNS]
    assert list(board["variant"]) == ["pruned", "base", "bad"]
    assert list(board["rank"]) == [1, 2, 3] and list(board["pareto_optimal"]) == [True, True, False]
    assert (board["rank_rule"] == RANK_RULES["pareto"] + CPU_TIME_CAVEAT).all()  # all estimated
    for name, kind in KINDS.items():  # numbers read back as numbers
        if kind == "float" and board[name].notna().any():
            assert pd.api.types.is_numeric_dtype(board[name]), name
    energy = run_cli("leaderboard", "--store", str(db), "-o", str(out), "--rank", "energy")
    assert energy.returncode == 0 and RANK_RULES["energy"] in energy.stderr
    assert list(pd.read_csv(out)["variant"]) == ["pruned", "base", "bad"]


def test_byte_identical_and_merge_order_does_not_matter(tmp_path: Path) -> None:
    a = store(tmp_path / "a.db", KNOWN)
    b = store(tmp_path / "b.db", {"base": (0.5, 0.08, 14.0), "tiny": (0.3, 0.02, 4.0)}, device_id="dev2")
    first = csv_text(load_results([a, b]))
    assert first == csv_text(load_results([a, b])) == csv_text(load_results([b, a]))
    merged = load_results([a, b, a])
    assert len(merged) == len(KNOWN) + 2  # a given twice: its records count once
    outs = [tmp_path / "1.csv", tmp_path / "2.csv"]
    for out in outs:
        done = run_cli("leaderboard", "--store", str(a), "--store", str(b), "-o", str(out))
        assert done.returncode == 0, done.stderr
    assert outs[0].read_bytes() == outs[1].read_bytes() == first.encode()
    board = pd.read_csv(outs[0])
    assert sorted(board["device_id"].unique()) == ["dev", "dev2"]
    # ranks are per suite across devices: one rank 1, pareto flags consistent with the ranks
    assert (board["rank"] == 1).sum() == 1 and board.loc[board["rank"] == 1, "pareto_optimal"].all()


def test_filters_and_no_rows_is_one_paragraph(tmp_path: Path) -> None:
    db = store(tmp_path / "a.db", KNOWN)
    store(tmp_path / "a.db", {"z": (0.1, 0.1, 1.0)}, suite="other")
    out = tmp_path / "b.csv"
    assert run_cli("leaderboard", "--store", str(db), "--suite", "other", "-o", str(out)).returncode == 0
    assert list(pd.read_csv(out)["suite"]) == ["other"]
    done = run_cli("leaderboard", "--store", str(db), "--device", "nope", "-o", str(out))
    assert done.returncode != 0
    assert_one_paragraph_error(done.stderr, "nope", "other", "dev")
    missing = run_cli("leaderboard", "--store", str(tmp_path / "none.db"), "-o", str(out))
    assert_one_paragraph_error(missing.stderr, "none.db")


@pytest.mark.parametrize("name", HOSTILE)
def test_safe_cell_never_starts_a_formula(name: str) -> None:
    cell = safe_cell(name)
    assert "\n" not in cell and "\t" not in cell
    assert not cell.startswith(("=", "+", "-", "@", "\t", "\r"))
    assert cell.lstrip("'").strip() in name.replace("\n", " ").replace("\t", " ") or cell == name


def test_hostile_names_are_text_in_the_csv(tmp_path: Path) -> None:
    db = store(tmp_path / "a.db", {n: (0.4, 0.04, 9.0) for n in HOSTILE} | {"base": (0.5, 0.05, 10.0)})
    out = tmp_path / "h.csv"
    assert run_cli("leaderboard", "--store", str(db), "-o", str(out)).returncode == 0, out
    text = out.read_text(encoding="utf-8")
    assert len(text.splitlines()) == len(HOSTILE) + 2  # header, base, one line per hostile name
    board = pd.read_csv(out, keep_default_na=False)
    names = set(board["variant"])
    assert "'=cmd|' /C calc'!A0" in names and "<script>alert(1)</script>" in names
    assert {"'+1+1", "'-2", "'@SUM(A1)", "two lines"} <= names
    for name, kind in KINDS.items():
        if kind == "text":
            assert not any(str(v).startswith(("=", "+", "-", "@", "\t", "\r")) for v in board[name]), name
    # numbers are untouched: a negative Δ is still a number
    assert (pd.to_numeric(board["energy_delta_pct"], errors="coerce").dropna() < 0).any()
