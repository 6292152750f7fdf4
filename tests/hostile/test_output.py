"""Hostile strings in what greenbench prints: tables in every format, notes, and signals.

Every string a record holds (variant name, error, stage name and parameters, energy method and
source) is untrusted: it must not end a Markdown cell or row, start markup or HTML, end a LaTeX
table or run a LaTeX command, break CSV, or put control characters on a terminal.
"""

from __future__ import annotations

import csv
import io
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from greenbench.commands.run import printable
from greenbench.report.tables import build_table, latex_escape, md_escape, render
from greenbench.store import RunRecord, metric
from tests.hostile.hostile_tools import gb, store_of, table_record

HOSTILE = [
    "<script>alert(1)</script><img src=x onerror=alert(2)>",
    "a|b||c\\|d\\",
    "line1\nline2\r\nline3\n\n- a fake note",
    "_emph_ and *bold* and __init__ and `code` and ~~strike~~ and ***",
    "[click](javascript:alert(1)) ![img](http://x/y.png) <http://evil>",
    "\x1b[31mred\x1b[0m\x1b]0;title\x07\x00\x08\x7f\x9b",
    "\u202eevil\u2066x\u2069 \u2028next\u2029para\u200f",
    "\\end{tabular}\\input{/etc/passwd}\\write18{rm} $x^2$ 50% #1 & {a} ~ --- a--b",
    "\"quoted\", with, commas's; and 'single'",
    "=cmd|' /C calc'!A0",
    "\ud800 lone surrogate \udfff",
    "x" * 3000,
]
IDS = ["html", "pipes", "newlines", "emphasis", "links", "ansi", "bidi", "latex", "quotes", "formula",
       "surrogate", "long"]  # fmt: skip
# what no output may hold: C0/C1 controls but newline, DEL, line separators, bidi controls
CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def hostile_records(text: str) -> list[RunRecord]:
    """A normal baseline; an ok variant named ``text`` with ``text`` as energy method and source
    and as stage name and parameters; a failed variant whose error is ``text``."""
    base = table_record(
        "a", metrics={"energy_per_image_j": metric(0.02, "J", method="measured", source="rapl")}
    )
    ok = table_record(
        text,
        parent=text,
        metrics={
            "energy_per_image_j": metric(0.01, "J", method=text, source=text),
            "latency_ms": metric(1.0, "ms", ci_low=0.9, ci_high=1.1, noisy=True),
        },
        stages=[
            {"name": text, "params": {text: text, "epochs": 1}, "duration_s": 1.0, "energy_j": 2.0,
             "energy_net_j": 1.0, "method": text, "cached": False}
        ],
        deltas={"latency_ms": {"delta_pct": 5.0, "baseline_key": "h-a", "rounds_disagree": True}},
    )  # fmt: skip
    failed = table_record(text + "!", status="failed", error=text, metrics={})
    return [base, ok, failed]


def unescaped(md_line: str) -> str:
    """A Markdown line without its backslash escapes (``\\x`` pairs) and entities."""
    return re.sub(r"&(lt|gt);", "", re.sub(r"\\.", "", md_line))


def cells(md_line: str) -> int:
    return unescaped(md_line).count("|")


@pytest.mark.parametrize("text", HOSTILE, ids=IDS)
def test_markdown_keeps_every_row_and_cell_and_starts_no_markup(text: str) -> None:
    md = render(build_table(hostile_records(text), "a", "s"), "md")
    md.encode("utf-8")  # printable: no lone surrogate left
    blocks = md.split("\n\n")
    table, stages, notes = blocks[0].splitlines(), blocks[2].splitlines(), blocks[-1].splitlines()
    assert len(table) == 2 + 3 and len({cells(line) for line in table}) == 1  # no cell or row added
    assert len(stages) == 2 + 1 and len({cells(line) for line in stages}) == 1
    assert notes and all(line.startswith("- ") for line in notes)
    assert len(md.split("\n\n")) == 4  # no blank line smuggled in: table, heading, stages, notes
    assert not CONTROL.search(md)
    assert "<" not in md and ">" not in md and "](" not in md
    for line in md.splitlines():
        bare = unescaped(line)
        assert not re.search(r"[*`~]", bare), line
        # a "_" left unescaped sits inside a word, where it never starts emphasis
        assert all(m.start() > 0 and bare[m.start() - 1].isalnum() for m in re.finditer(r"_+", bare)), line


@pytest.mark.parametrize("text", HOSTILE, ids=IDS)
def test_latex_escapes_every_string_and_keeps_one_table(text: str) -> None:
    tex = render(build_table(hostile_records(text), "a", "s"), "latex")
    tex.encode("utf-8")
    assert tex.count("\\begin{tabular}") == 1 and tex.count("\\end{tabular}") == 1
    body, notes = tex.split("\\end{tabular}")
    assert notes.strip() and all(line.startswith("% ") for line in notes.strip().splitlines())
    assert "--" not in tex and not CONTROL.search(tex)
    assert "\\input" not in tex and "\\write" not in tex
    rows = [line for line in body.splitlines() if line.endswith("\\\\")]
    columns = {len(re.findall(r"(?<!\\)&", line)) for line in rows}
    assert len(rows) == 1 + 3 and len(columns) == 1  # every row has the header's cells


# every escape latex_escape may write: text macros, math symbols, accents, braced brackets
LATEX_KNOWN = (
    r"\\([a-zA-Z]+|\^)\{\}"
    r"|\\ensuremath\{(\\[a-zA-Z]+|[<>-]|\^\\?[a-z0-9]+)\}|\\[_%&#${}]|-\{\}|\{[\[\]]\}"
)
ACCENT = re.compile(r"\\['`^~\"=.uvHrck]\{([a-zA-Z])\}")  # é as \'{e}; accents nest: \={\"{u}}


def bare_latex(tex: str) -> str:
    """``tex`` without the escapes latex_escape writes: what is left must be plain text."""
    while ACCENT.search(tex):
        tex = ACCENT.sub(r"\1", tex)
    return re.sub(LATEX_KNOWN, "", tex)


@pytest.mark.parametrize("text", HOSTILE, ids=IDS)
def test_latex_escape_leaves_no_special_character_bare(text: str) -> None:
    out = latex_escape(text)
    assert not re.search(r"[\\{}_%&#$^~<>|\[\]]", bare_latex(out)), out
    assert "--" not in out and "\n" not in out
    assert out.isascii()  # pdflatex reads bytes: a raw non-ASCII character is an error there


def test_latex_escape_writes_every_symbol_as_a_macro() -> None:
    """The symbols greenbench's own tables and notes print (λ in a header, × and · in notes, ±,
    Δ, −, τ, —) and the characters special to LaTeX, each as the macro that prints it."""
    cases = {
        "sparsity_λ": "sparsity\\_\\ensuremath{\\lambda}",
        "2 × GMACs · 3 ± 1": "2 \\ensuremath{\\times} GMACs \\ensuremath{\\cdot} 3 \\ensuremath{\\pm} 1",
        "Δ −5 % τ": "\\ensuremath{\\Delta} \\ensuremath{-}5 \\% \\ensuremath{\\tau}",
        "a_b & c # d — e": "a\\_b \\& c \\# d \\textemdash{} e",
        "[x] 1e-4 -- 10 °C": "{[}x{]} 1e-4 -{}- 10 \\ensuremath{^\\circ}C",
        "Café naïve": "Caf\\'{e} na\\\"{i}ve",
        "模型": "{[}U+6A21{]}{[}U+578B{]}",
    }
    for text, tex in cases.items():
        assert latex_escape(text) == tex, text
    every = "".join(map(chr, range(0x20, 0x3000)))  # ASCII, Latin, Greek, symbols, CJK punctuation
    out = latex_escape(every)
    assert out.isascii() and not re.search(r"[\\{}_%&#$^~<>|\[\]]", bare_latex(out))


@pytest.mark.parametrize("text", HOSTILE, ids=IDS)
def test_csv_stays_well_formed_and_keeps_the_text(text: str) -> None:
    out = render(build_table(hostile_records(text), "a", "s"), "csv")
    rows = list(csv.reader(io.StringIO(out)))
    assert len(rows) == 1 + 3 and {len(r) for r in rows} == {len(rows[0])}
    head = rows[0]
    folded = re.sub(CONTROL.pattern.replace("\\x09", "\\x0a") + "+", " ", text)
    assert rows[2][head.index("variant")] == folded and rows[3][head.index("error")] == folded
    assert not CONTROL.search(out.replace("\n", ""))


def test_markdown_escape_keeps_plain_text_and_words_with_underscores() -> None:
    assert md_escape("latency_ms E/img_net_mJ [9.00, 11.00] (+5.0 %)") == (
        "latency_ms E/img_net_mJ [9.00, 11.00] (+5.0 %)"
    )
    assert md_escape("_a_ a_ _a a__b") == "\\_a\\_ a\\_ \\_a a__b"
    assert md_escape("a\\|b") == "a\\\\\\|b"  # the backslash first: "\|" cannot unescape a pipe


def test_hostile_records_through_the_cli_in_every_format(tmp_path: Path) -> None:
    records = [r for text in HOSTILE[:9] for r in hostile_records(text)[1:]]
    path = store_of(tmp_path / "gb.db", hostile_records("x")[0], *records)
    for fmt in ("term", "md", "csv", "latex", "json"):
        out = gb("table", "s", "--store", str(path), "--device", "dev", "--format", fmt, cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        assert not CONTROL.search(out.stdout.replace("\n", ""))
        # CSV and JSON are data (quoted by their modules), the terminal prints text: no markup there
        assert "<script" not in out.stdout or fmt in ("csv", "json", "term")


def test_progress_lines_cannot_drive_the_terminal() -> None:
    assert printable("v\x1b[2J\x1b]0;t\x07\u202e\u2028\ud800: ok") == "v?[2J?]0;t????: ok"


# --- greenbench measure: a signal is forwarded to the measured command ------------------------

CHILD = textwrap.dedent(
    """
    import signal, sys, time
    def got(signum, frame):
        open(sys.argv[1], "w").write(str(signum))
        sys.exit(3)
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, got)
    print("ready", flush=True)
    time.sleep(60)
    """
)
ENV = {"GREENBENCH_POWERCAP_ROOT": "/nonexistent/powercap"}  # the estimate meter: no hardware needed


def measure(tmp_path: Path, *cmd: str, idle_s: str = "0") -> subprocess.Popen[str]:
    """``greenbench measure --idle-s IDLE_S -- CMD`` in the background, output piped."""
    full = {**__import__("os").environ, **ENV}
    return subprocess.Popen(
        [sys.executable, "-m", "greenbench", "measure", "--idle-s", idle_s, "--", *cmd],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=full,
    )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=lambda s: s.name)
def test_measure_forwards_a_signal_and_exits_128_plus_n(tmp_path: Path, sig: signal.Signals) -> None:
    marker = tmp_path / "got"
    proc = measure(tmp_path, sys.executable, "-c", CHILD, str(marker))
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + sig
    assert marker.read_text() == str(int(sig))  # the command itself received it
    assert f"received {sig.name} while the command ran and forwarded it" in err
    assert "ended with exit code 3" in err and "Traceback" not in err


def test_measure_of_a_command_that_does_not_catch_sigterm(tmp_path: Path) -> None:
    started = time.monotonic()
    script = "import time; print('ready', flush=True); time.sleep(30)"
    proc = measure(tmp_path, sys.executable, "-c", script)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143 and time.monotonic() - started < 25  # did not wait out the sleep
    assert "killed by SIGTERM" in err and "greenbench exits with 143 (128 + 15)" in err


def _catches(pid: int, sig: signal.Signals) -> bool:
    """Whether process ``pid`` has a handler for ``sig`` (Linux: SigCgt in /proc/PID/status)."""
    status = Path(f"/proc/{pid}/status").read_text()
    mask = int(re.search(r"SigCgt:\s*([0-9a-f]+)", status).group(1), 16)  # type: ignore[union-attr]
    return bool(mask >> (sig - 1) & 1)


def test_measure_interrupted_during_the_idle_baseline_does_not_start_the_command(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    proc = measure(tmp_path, sys.executable, "-c", f"open({str(marker)!r}, 'w')", idle_s="5")
    try:
        deadline = time.monotonic() + 30
        while not _catches(proc.pid, signal.SIGHUP):  # the forwarder is in place: idle has begun
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGHUP)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 129 and not marker.exists()
    assert err.startswith("greenbench: error: received SIGHUP during the idle baseline")
    assert "\n" not in err.strip() and "Traceback" not in err
