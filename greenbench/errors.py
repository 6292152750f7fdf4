"""User-facing errors: one paragraph that names the file, key or resource and what to do.

The CLI prints a ``GreenbenchError`` as its message alone (no traceback) and exits with
``exit_code``. Anything else that escapes is a bug and keeps its traceback.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


class GreenbenchError(Exception):
    """An error caused by the user's input or environment, with a message that says what to do."""

    exit_code = 1


class SuiteError(GreenbenchError):
    """A suite manifest is malformed: the message names file, line, key and what was expected.

    ``problems``: the same, one ``SuiteProblem`` each (``validate --json``); empty where the error
    was not placed in a file (its message says what is wrong)."""

    exit_code = 2

    def __init__(self, message: str, problems: tuple[SuiteProblem, ...] = ()) -> None:
        super().__init__(message)
        self.problems = problems


@dataclass(frozen=True)
class SuiteProblem:
    """One problem of a suite file: ``file`` as the user named it, its 1-based ``line`` (None:
    the whole file), the dotted ``key`` ("" for none) and the ``message``."""

    file: str
    line: int | None
    key: str
    message: str


class MeterUnavailable(GreenbenchError):
    """A meter cannot read on this machine; the message is the reason, recorded with the run."""


# CSI (ESC [ ... final), OSC (ESC ] ... BEL or ESC \), other two-byte escapes, and the 8-bit CSI
_ANSI = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]?|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[ -~]?|\x9b[0-?]*[ -/]*[@-~]?"
)
# C0 and C1 controls but newline, DEL, and the bidi overrides that reorder text on screen
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
#: what must never reach a terminal or a one-line text from a file anyone can write: C0/C1
#: controls, line/paragraph separators, bidi embeddings and isolates, lone surrogates
TERMINAL_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028-\u202e\u2066-\u2069\ud800-\udfff]")
_BREAKS = str.maketrans({**dict.fromkeys("\r\v\f\x85\u2028\u2029", "\n"), "\t": " "})


def clean_message(text: str, limit: int = 1000, one_line: bool = False) -> str:
    """``text`` safe to print and store: no escape sequences or control characters, ≤ ``limit`` chars.

    A file or a tool can put terminal escapes (which recolour, move the cursor or retitle the
    terminal) or bidi overrides into a message; they are removed, tabs become spaces, and lone
    surrogates (from undecodable file names) become U+FFFD so that any encoder accepts the text.
    ``one_line`` folds every whitespace run, newlines included, into one space; otherwise newlines
    are kept (``\\r\\n``, ``\\r`` and the other line breaks become ``\\n``). A longer text is cut
    to ``limit`` characters in all, ending in "… (N more characters; see the log)".
    """
    text = text.replace("\r\n", "\n").translate(_BREAKS)
    text = _ANSI.sub("", text)
    text = _SURROGATE.sub("\ufffd", _CONTROL.sub("", text))
    if one_line:
        text = " ".join(text.split())
    if len(text) <= limit:
        return text
    # the suffix counts against the limit; its number has at most as many digits as len(text)
    room = max(0, limit - len(f"… ({len(text)} more characters; see the log)"))
    head = text[:room].rstrip()
    return f"{head}… ({len(text) - len(head)} more characters; see the log)"
