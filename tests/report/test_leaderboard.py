"""``greenbench leaderboard``: a deterministic, spreadsheet-safe CSV that plain pandas loads,
its rank rule and groups in a metadata file beside it, or both as JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from greenbench.report.columns import COLUMNS, KINDS
from greenbench.report.frame import load_results
from greenbench.report.leaderboard import ENCODING, csv_text, meta_path, safe_cell
from greenbench.report.ranking import CPU_TIME_CAVEAT, RANK_RULES
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
    assert RANK_RULES["pareto"] in done.stderr and "3 row(s) in 1 rank group(s)" in done.stderr
    assert CPU_TIME_CAVEAT in done.stderr  # every energy figure is estimated
    board = pd.read_csv(out)
    assert list(board.columns) == [name for name, _ in COLUMNS]
    assert list(board["variant"]) == ["pruned", "base", "bad"]
    assert list(board["rank"]) == [1, 2, 3] and list(board["pareto_optimal"]) == [True, True, False]
    for name, kind in KINDS.items():  # numbers read back as numbers, flags as bool
        if kind == "float" and board[name].notna().any():
            assert pd.api.types.is_numeric_dtype(board[name]), name
        if kind == "bool":
            assert board[name].dtype == "bool", name
    # the rule and the groups once, in the metadata file, not on every row
    meta = json.loads(meta_path(out).read_text(encoding="utf-8"))
    assert meta["rank_rule"] == RANK_RULES["pareto"] and meta["rank_by"] == "pareto"
    assert [(g["rank_group"], g["rows"], g["note"]) for g in meta["rank_groups"]] == [
        (board["rank_group"].iloc[0], 3, CPU_TIME_CAVEAT)
    ]
    assert [c["name"] for c in meta["columns"]] == list(board.columns)
    assert not any(len(str(v)) > 200 for v in board.to_numpy().ravel())
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
    assert outs[0].read_bytes() == outs[1].read_bytes() == first.encode(ENCODING)
    assert meta_path(outs[0]).read_bytes() == meta_path(outs[1]).read_bytes()
    board = pd.read_csv(outs[0])
    assert sorted(board["device_id"].unique()) == ["dev", "dev2"]
    # ranks are per device: a rank 1 on each, pareto flags consistent with the ranks
    assert sorted(board.loc[board["rank"] == 1, "device_id"]) == ["dev", "dev2"]
    assert board.loc[board["rank"] == 1, "pareto_optimal"].all()


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


def test_utf8_with_byte_order_mark_and_bools_without_gaps(tmp_path: Path) -> None:
    # a baseline (no Δ: its paired/significant flags have nothing to say) and a variant without
    # a latency figure: every bool cell is still True or False
    db = store(tmp_path / "a.db", {"base": (0.5, 0.05, 10.0)})
    with Store(db) as s:
        s.add(make_measured_record("nolat", latency_ms=None, energy_j=0.04))
    out = tmp_path / "b.csv"
    assert run_cli("leaderboard", "--store", str(db), "-o", str(out)).returncode == 0
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and ENCODING == "utf-8-sig"
    text = raw.decode(ENCODING)
    assert "cpu · Test CPU" in text and text.startswith("suite,")  # the mark is not in the header
    board = pd.read_csv(out)
    assert board.columns[0] == "suite"
    bools = [name for name, kind in KINDS.items() if kind == "bool"]
    assert dict(board[bools].dtypes) == dict.fromkeys(bools, "bool")
    assert set(board[bools].to_numpy().ravel()) == {True, False}


def test_json_prints_rows_and_metadata_and_writes_no_csv(tmp_path: Path) -> None:
    db = store(tmp_path / "a.db", KNOWN)
    out = tmp_path / "never.csv"
    done = run_cli("leaderboard", "--store", str(db), "--json", "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert not out.exists() and not meta_path(out).exists()
    doc = json.loads(done.stdout)
    assert doc["metadata"]["rank_rule"] == RANK_RULES["pareto"]
    rows = doc["rows"]
    assert [r["variant"] for r in rows] == ["pruned", "base", "bad"]
    assert list(rows[0]) == [name for name, _ in COLUMNS]
    base = rows[1]
    assert base["is_baseline"] is True and base["paired"] is False and base["latency_delta_pct"] is None
    assert isinstance(base["rank"], int) and isinstance(base["energy_j_per_image"], float)
