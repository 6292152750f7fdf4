"""Hostile suite files against ``greenbench validate``: each exits 2 with one paragraph naming the
file and the key or the limit; never a traceback, a hang, a network attempt or code run from the
file. Text cases live in ``tests/suites_hostile/`` (first line ``# expect: line=N key=K | text``);
what cannot be a small text file (special files, megabytes, raw bytes) is made here.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from greenbench.errors import SuiteError, clean_message
from greenbench.suite import load_suite, manifest

REPO = Path(__file__).parents[2]
CORPUS = REPO / "tests" / "suites_hostile"
NETGUARD = REPO / "tests" / "e2e" / "netguard"
EXPECT = re.compile(r"#\s*expect:\s*(?:line=(\d+))?\s*(?:key=(\S+))?\s*(?:\|\s*(.+?))?\s*$")
TIMEOUT_S = 20  # a hang fails here, not at the CI's job limit

# a valid suite of 7 lines (a built-in model config: no files needed); snippets start on line 8
BASE = """\
name: demo
task: detect
dataset:
  synthetic: {classes: 2, images: 20}
baseline: base
variants:
  base: {model: yolov8n.yaml}
"""
VARIANT = "{model: yolov8n.yaml}"


def guarded_env(cwd: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """This environment, with every non-local network attempt refused and logged in ``cwd``."""
    path = os.pathsep.join([str(NETGUARD), str(REPO), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path, "GREENBENCH_NETLOG": str(cwd / "network.log")}
    return {**env, "PYTHONIOENCODING": "utf-8", **(extra or {})}


def validate(
    path: Path | bytes | str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``greenbench validate PATH`` in a fresh process that must finish within ``TIMEOUT_S``."""
    return subprocess.run(
        [sys.executable, "-m", "greenbench", "validate", path],  # type: ignore[list-item]
        cwd=cwd,
        env=guarded_env(cwd, env),
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        timeout=TIMEOUT_S,
    )


def assert_refused(rc: object, stdout: str, stderr: str, *needles: str) -> None:
    """Exit 2, nothing on stdout, one paragraph on stderr with every needle, and nothing unsafe."""
    assert "Traceback" not in stderr, stderr
    assert rc == 2, (rc, stderr)
    assert stdout == ""
    assert stderr.startswith("greenbench: error: "), stderr
    assert "\n\n" not in stderr.strip(), stderr  # one paragraph (a line per problem at most)
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e]", stderr), repr(stderr)
    assert len(stderr) < 4000, len(stderr)  # a megabyte key or value is never echoed whole
    for needle in needles:
        assert needle in stderr, (needle, stderr)


# --- the corpus on disk, validated in one process (tests/hostile/validate_many.py) ---------------


def _corpus() -> list[Path]:
    return sorted(CORPUS.glob("*.yaml"))


@pytest.fixture(scope="module")
def corpus_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, object]]:
    cwd = tmp_path_factory.mktemp("corpus")
    command = [sys.executable, "-m", "tests.hostile.validate_many", *map(str, _corpus())]
    out = subprocess.run(
        command, cwd=cwd, env=guarded_env(cwd), capture_output=True, text=True, timeout=6 * TIMEOUT_S
    )
    assert out.returncode == 0, out.stderr
    assert not (cwd / "network.log").exists(), (cwd / "network.log").read_text()
    assert list(cwd.iterdir()) == [], "validating wrote or ran something"  # e.g. 'touch pwned'
    return {row["path"]: row for row in map(json.loads, out.stdout.splitlines())}


def test_corpus_covers_the_classes() -> None:
    names = {p.stem.split("_")[0] for p in _corpus()}
    assert len(_corpus()) >= 60
    assert {"tag", "alias", "key", "name", "nan", "inf", "absurd", "int", "bool", "path", "top"} <= names


@pytest.mark.parametrize("path", _corpus(), ids=lambda p: p.stem)
def test_hostile_file_is_refused(path: Path, corpus_results: dict[str, dict[str, object]]) -> None:
    expect = EXPECT.match(path.read_text(encoding="utf-8").splitlines()[0])
    assert expect, f"{path.name} needs a first line '# expect: line=N key=K | text'"
    line, key, text = expect.groups()
    needles = [path.name]
    needles += [f"{path.name}:{line}:"] if line else []
    needles += [f": {key}: "] if key else []
    needles += [text] if text else []
    row = corpus_results[str(path)]
    assert_refused(row["rc"], str(row["stdout"]), str(row["stderr"]), *needles)


# --- files that cannot be small text on disk: one process each ------------------------------------


def _text(text: str, name: str = "suite.yaml") -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        (folder / name).write_text(text, encoding="utf-8")
        return folder / name

    return make


def _bytes(data: bytes, name: str = "suite.yaml") -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        (folder / name).write_bytes(data)
        return folder / name

    return make


def _fifo(folder: Path) -> Path:
    os.mkfifo(folder / "suite.yaml")  # nobody ever writes: reading it would block forever
    return folder / "suite.yaml"


def _fifo_behind_link(folder: Path) -> Path:
    os.mkfifo(folder / "pipe")
    (folder / "suite.yaml").symlink_to(folder / "pipe")
    return folder / "suite.yaml"


def _link(target: str) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        (folder / "suite.yaml").symlink_to(target)
        return folder / "suite.yaml"

    return make


def _link_loop(folder: Path) -> Path:
    (folder / "suite.yaml").symlink_to(folder / "other.yaml")
    (folder / "other.yaml").symlink_to(folder / "suite.yaml")
    return folder / "suite.yaml"


def _folder(folder: Path) -> Path:
    (folder / "suite.yaml").mkdir()
    return folder / "suite.yaml"


def _under_a_file(folder: Path) -> Path:
    (folder / "suite.yaml").write_text(BASE)
    return folder / "suite.yaml" / "inner.yaml"


def _sparse(folder: Path) -> Path:
    with open(folder / "suite.yaml", "wb") as f:
        f.truncate(10**10)  # 10 GB that take no disk: refused by size, never read
    return folder / "suite.yaml"


def _deep_block(levels: int) -> str:
    return BASE + "defaults:\n" + "".join(" " * (i + 2) + "a:\n" for i in range(levels))


GENERATED: dict[str, tuple[Callable[[Path], Path], tuple[str, ...]]] = {
    "fifo": (_fifo, ("suite.yaml", "a named pipe (FIFO)", "regular file")),
    "fifo_behind_link": (_fifo_behind_link, ("suite.yaml", "a named pipe (FIFO)")),
    "dev_zero": (lambda d: Path("/dev/zero"), ("/dev/zero", "a character device")),
    "link_to_dev_zero": (_link("/dev/zero"), ("suite.yaml", "a character device")),
    "link_loop": (_link_loop, ("suite.yaml", "cannot look at it", "symbolic links")),
    "link_dangling": (_link("/nonexistent/greenbench.yaml"), ("suite.yaml", "no such file")),
    "folder": (_folder, ("suite.yaml", "is a folder")),
    "missing": (lambda d: d / "nope.yaml", ("nope.yaml", "no such file")),
    "under_a_file": (_under_a_file, ("inner.yaml", "no such file")),
    "over_1mb": (_text("x: " + "a" * 1_100_000 + "\n"), ("suite.yaml", "1,100,004 bytes", "1,000,000 bytes")),
    "sparse_10gb": (_sparse, ("suite.yaml", "10,000,000,000 bytes", "1,000,000 bytes")),
    "empty_0_bytes": (_text(""), ("suite.yaml:1:", "the file is empty")),
    "whitespace_only": (_text("\n  \n\n"), ("suite.yaml:1:", "the file is empty")),
    "latin1_byte": (
        _bytes(BASE.encode() + b"description: caf\xe9\n"),
        ("suite.yaml:8:", "not UTF-8", "0xe9"),
    ),
    "utf16": (_bytes(BASE.encode("utf-16")), ("suite.yaml:1:", "UTF-16", "save it as UTF-8")),
    "binary_garbage": (_bytes(bytes(range(256)) * 4), ("suite.yaml:2:", "not UTF-8", "0x80")),
    "raw_nul": (_bytes(BASE.encode() + b"x: a\x00b\n"), ("suite.yaml:8:", "U+0000")),
    "raw_escape": (_bytes(BASE.encode() + b"x: \x1b[2J\x1b]0;pwned\x07\n"), ("suite.yaml:8:", "U+001B")),
    "bom_then_error": (_bytes(b"\xef\xbb\xbf" + BASE.encode() + b"bogus: 1\n"), ("suite.yaml:8: bogus:",)),
    "deep_flow_lists": (_text("x: " + "[" * 10_000 + "]" * 10_000 + "\n"), ("suite.yaml:1:", "64 levels")),
    "deep_flow_maps": (_text("x: " + "{a: " * 10_000 + "1" + "}" * 10_000 + "\n"), ("suite.yaml:1:", "64")),
    "deep_block_maps": (_text(_deep_block(1000)), ("suite.yaml:", "64 levels")),
    "unclosed_flow_10k": (_text("x: " + "[" * 10_000 + "\n"), ("suite.yaml:1:", "64 levels")),
    "many_values": (_text("x: [" + "0," * 300_000 + "0]\n" + BASE), ("suite.yaml:1:", "20,000")),
    "many_keys": (_text(BASE + "".join(f"k{i}: 1\n" for i in range(60_000))), ("suite.yaml:", "20,000")),
    "many_duplicates": (_text(BASE + "x: [1]\n" * 5000), ("suite.yaml:9: x: duplicate key", "more problems")),
    "many_variants": (
        _text(BASE + "".join(f"  v{i}: {VARIANT}\n" for i in range(300))),
        ("suite.yaml:6: variants:", "at most 256"),
    ),
    "many_stages": (
        _text(BASE + "  s: {from: base, stages: [" + "train, " * 300 + "train]}\n"),
        ("suite.yaml:8: variants.s.stages:", "at most 100"),
    ),
    "megabyte_key": (_text(BASE + "? " + "k" * 900_000 + "\n: 1\n"), ("suite.yaml:8:", "unknown key")),
    "megabyte_value": (
        _text(BASE + "measure: {carbon: {country: " + "A" * 900_000 + "}}\n"),
        ("suite.yaml:8: measure.carbon.country:", "alpha-3"),
    ),
    "escape_in_file_name": (
        _text("- a\n", "evil\x1b]0;pwned\x07\x1b[31m\n.yaml"),
        ("evil", "the top level is a list"),
    ),
    "undecodable_file_name": (
        _bytes(b"- a\n", os.fsdecode(b"\xff\xfe.yaml")),
        ("\ufffd", "the top level is a list"),
    ),
}


@pytest.mark.parametrize("case", GENERATED, ids=str)
def test_generated_hostile_file_is_refused(case: str, tmp_path: Path) -> None:
    make, needles = GENERATED[case]
    path = make(tmp_path)
    out = validate(path, tmp_path)
    assert_refused(out.returncode, out.stdout, out.stderr, *needles)
    assert not (tmp_path / "network.log").exists()


def test_key_is_shown_as_written_and_printing_never_crashes(tmp_path: Path) -> None:
    path = _text(BASE + f'  "café-😀": {VARIANT}\n')(tmp_path)
    out = validate(path, tmp_path)
    assert_refused(out.returncode, out.stdout, out.stderr, 'suite.yaml:8: variants["café-😀"]: invalid name')
    for encoding in ("ascii", "latin-1"):  # a terminal that cannot show the emoji
        out = validate(path, tmp_path, {"PYTHONIOENCODING": encoding})
        assert_refused(out.returncode, out.stdout, out.stderr, "suite.yaml:8:", "\\U0001f600")


def test_the_base_suite_and_a_bom_are_accepted(tmp_path: Path) -> None:
    assert validate(_text(BASE)(tmp_path), tmp_path).returncode == 0
    path = _bytes(b"\xef\xbb\xbf" + BASE.encode(), "bom.yaml")(tmp_path)
    out = validate(path, tmp_path)
    assert out.returncode == 0 and "valid" in out.stdout, out.stderr


# --- in process: what a subprocess cannot show ----------------------------------------------------


def test_unreadable_file_names_file_and_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # as root chmod 000 reads fine, so the refusal is injected where the file is opened
    path = _text(BASE)(tmp_path)

    def refuse(*_args: object, **_kwargs: object) -> int:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(manifest.os, "open", refuse)
    with pytest.raises(SuiteError, match=r"suite\.yaml: permission denied; make the file readable") as e:
        load_suite(path)
    assert e.value.exit_code == 2 and e.value.__cause__ is None


def test_unreadable_file_from_the_cli(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads any file; test_unreadable_file_names_file_and_fix covers it")
    path = _text(BASE)(tmp_path)
    path.chmod(0)
    out = validate(path, tmp_path)
    assert_refused(out.returncode, out.stdout, out.stderr, "suite.yaml: permission denied")


def test_limits_leave_room_for_real_suites(tmp_path: Path) -> None:
    # 256 variants in one 'from' chain, merged from an anchor: large and deep, and still valid
    rows = ["  v0: &chain {from: base, stages: [train], description: a long chain}"]
    rows += [f"  v{i}: {{<<: *chain, from: v{i - 1}}}" for i in range(1, 255)]
    suite = load_suite(_text(BASE + "\n".join(rows) + "\n")(tmp_path))
    assert len(suite.variants) == 256 and suite.lineage("v254")[:3] == ["base", "v0", "v1"]
    assert suite.variants["v254"].stages[0].name == "train"


def test_suite_error_text_is_bounded_and_printable(tmp_path: Path) -> None:
    key = "\x1b[31m" + "k" * 5000
    path = _text(BASE + json.dumps({key: 1}) + "\n")(tmp_path)  # JSON is YAML: a flow mapping
    with pytest.raises(SuiteError) as e:
        load_suite(path)
    assert "\x1b" not in str(e.value) and len(str(e.value)) <= manifest.MAX_ROW


# --- clean_message ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("plain text, kept as is: ½ °C 😀", "plain text, kept as is: ½ °C 😀"),
        ("\x1b[1;31mred\x1b[0m", "red"),  # CSI (colour)
        ("a\x1b[2J\x1b[Hb", "ab"),  # clear screen, cursor home
        ("\x1b]0;title\x07x", "x"),  # OSC (window title) ended by BEL
        ("\x1b]8;;http://e.vil\x1b\\link\x1b]8;;\x1b\\", "link"),  # OSC hyperlink ended by ST
        ("\x9b31mc1", "c1"),  # the 8-bit CSI
        ("nul\x00 bell\x07 del\x7f", "nul bell del"),
        ("\u202eevil\u202c", "evil"),  # bidi override
        ("bad \udcff name", "bad \ufffd name"),  # a lone surrogate from an undecodable file name
        ("a\tb\r\nc\rd", "a b\nc\nd"),
    ],
)
def test_clean_message_removes_what_a_terminal_would_obey(raw: str, clean: str) -> None:
    assert clean_message(raw) == clean


def test_clean_message_one_line_folds_whitespace() -> None:
    assert clean_message("first line\n\n  second\tline \r\n", one_line=True) == "first line second line"
    assert clean_message("kept\nlines") == "kept\nlines"


def test_clean_message_bounds_the_length() -> None:
    text = "word " * 1000
    short = clean_message(text, limit=200)
    assert len(short) <= 200
    match = re.fullmatch(r"(.*)… \((\d+) more characters; see the log\)", short)
    assert match and text.startswith(match.group(1)), short
    assert len(match.group(1)) + int(match.group(2)) == len(text)  # the count is exact
    assert clean_message("x" * 200, limit=200) == "x" * 200
    assert clean_message("\x1b[31m" + "x" * 200, limit=200) == "x" * 200  # counted after cleaning
