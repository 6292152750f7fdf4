"""What a person expects of any command line: ``--version``, help on no arguments, "did you mean"
for a mistyped verb, a verb's own usage on a bad flag, help without reStructuredText markup that
documents the environment, and the hint a run ends with."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

import greenbench
from greenbench.cli import VERBS, build_parser, main, verb_name
from greenbench.paths import STORE_ENV, WORKDIR_ENV
from tests.clitools import run_cli

REPO = Path(__file__).parents[1]


def test_version_and_help_on_no_arguments(tmp_path: Path) -> None:
    version = run_cli("--version", cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.strip() == f"greenbench {greenbench.__version__}"
    bare = run_cli(cwd=tmp_path)
    assert bare.returncode == 0 and "error" not in bare.stderr
    for name in ("run", "runs", "clean", "validate", STORE_ENV, WORKDIR_ENV):
        assert name in bare.stdout


def test_a_mistyped_verb_gets_a_suggestion(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["leaderbord"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "did you mean 'leaderboard'?" in err
    with pytest.raises(SystemExit):
        main(["zzzz"])
    err = capsys.readouterr().err
    assert "unknown verb 'zzzz'" in err and "did you mean" not in err and "runs" in err


def test_a_bad_flag_after_a_verb_prints_that_verbs_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["table", "suite.yaml", "--colour"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert err.startswith("usage: greenbench table") and "unrecognized arguments: --colour" in err
    with pytest.raises(SystemExit):
        main(["data", "synth", "--out", "d", "--colour"])  # a verb's action: the action's usage
    assert capsys.readouterr().err.startswith("usage: greenbench data synth")


def _verb_parsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def test_help_texts_show_no_restructuredtext_markup() -> None:
    parser = build_parser()
    verbs = _verb_parsers(parser)
    assert len(verbs) == len(VERBS)
    for text in [parser.format_help(), *(p.format_help() for p in verbs.values())]:
        assert "``" not in text, text
    for name in ("table", "leaderboard", "export", "runs", "clean"):  # the environment is documented
        assert STORE_ENV in verbs[name].format_help(), name
    for name in ("run", "gate", "clean"):
        assert WORKDIR_ENV in verbs[name].format_help().replace("\n", " "), name


def test_every_verb_is_named_by_its_module() -> None:
    assert [verb_name(v) for v in VERBS][:2] == ["run", "validate"]
    assert {"runs", "clean"} <= {verb_name(v) for v in VERBS}


def test_a_run_ends_with_the_commands_that_show_its_results() -> None:
    from greenbench.commands.run import next_hint
    from greenbench.suite import load_suite

    suite = load_suite(REPO / "suites" / "quickstart.yaml")
    hint = next_hint("suites/quickstart.yaml", suite, Path("my results/gb.db"))
    assert hint.startswith("next: greenbench table suites/quickstart.yaml --store 'my results/gb.db'")
    assert "greenbench report --store 'my results/gb.db' --suite quickstart" in hint
    assert hint.endswith("greenbench leaderboard --store 'my results/gb.db'")
