"""``greenbench validate --json``: a machine-readable verdict, and image sizes no device holds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from greenbench.cli import main
from tests.clitools import run_cli

SUITES = Path(__file__).parents[1] / "suites"
BROKEN = Path(__file__).parent / "suites_broken"


def test_json_of_a_valid_suite(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--json", str(SUITES / "quickstart.yaml")]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["valid"] is True and doc["name"] == "quickstart"
    assert doc["baseline"] in doc["variants"] and sorted(doc["order"]) == sorted(doc["variants"])


def test_json_of_an_invalid_suite_lists_each_problem_at_its_line(tmp_path: Path) -> None:
    text = (SUITES / "quickstart.yaml").read_text()
    lines = text.splitlines()
    at = next(
        i for i, line in enumerate(lines) if line.strip().startswith("imgsz:") and line.startswith("  ")
    )
    lines[at] = "  imgsz: 1048576"
    lines.insert(at + 1, "  bogus_arg: 1")
    suite = tmp_path / "big.yaml"
    suite.write_text("\n".join(lines) + "\n")
    (tmp_path / "models").symlink_to(SUITES.parent / "models")  # the suite's model files, as beside it
    done = run_cli("validate", "--json", str(suite), cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    doc = json.loads(done.stdout)
    assert doc["valid"] is False and doc["suite"] == str(suite)
    by_key = {p["key"]: p for p in doc["problems"]}
    assert by_key["defaults.imgsz"]["line"] == at + 1 and by_key["defaults.imgsz"]["file"] == str(suite)
    assert "8 to 8192" in by_key["defaults.imgsz"]["message"]
    assert by_key["defaults.bogus_arg"]["line"] == at + 2
    text_out = run_cli("validate", str(suite), cwd=tmp_path)  # without --json: the same, as text
    assert (
        text_out.returncode == 2
        and f"big.yaml:{at + 1}: defaults.imgsz: image side 1048576" in text_out.stderr
    )


def test_json_of_an_unreadable_suite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    assert main(["validate", "--json", str(bad)]) == 2
    (problem,) = json.loads(capsys.readouterr().out)["problems"]
    assert problem["file"] == str(bad) and "YAML syntax error" in problem["message"]
    assert main(["validate", str(bad)]) == 2
    assert f"bad.yaml:{problem['line']}: {problem['message']}" in capsys.readouterr().err  # as the text says


def test_json_of_options_that_cannot_apply(capsys: pytest.CaptureFixture[str]) -> None:
    suite = str(SUITES / "quickstart.yaml")
    assert main(["validate", "--json", suite, "--smoke", "--data", "d.yaml"]) == 2
    (problem,) = json.loads(capsys.readouterr().out)["problems"]
    assert problem["file"] == suite and problem["line"] is None and "--smoke" in problem["message"]


def test_an_image_side_in_a_stage_is_bounded_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text(
        "name: s\ntask: detect\ndataset: {synthetic: {classes: 2, images: 10, imgsz: 64}}\n"
        "defaults: {imgsz: 64}\nbaseline: a\nvariants:\n"
        "  a: {model: yolov5n.yaml, stages: [train]}\n"
        "  b:\n    from: a\n    stages:\n      - train: {imgsz: 100000}\n"
    )
    assert main(["validate", "--json", str(suite)]) == 2
    problems = json.loads(capsys.readouterr().out)["problems"]
    (problem,) = [p for p in problems if "8 to 8192" in p["message"]]
    assert (problem["key"], problem["line"]) == ("variants.b.stages[0].train.imgsz", 11)
    assert "120.0 GB" in problem["message"]  # 3 x 4 bytes x 100000² px
