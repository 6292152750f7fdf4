"""The leaderboard CSV: ``load_results`` written with pandas, safe to open in a spreadsheet.

- Columns: ``greenbench.report.frame.COLUMNS``, in that order, a unit in every numeric name.
- Deterministic: the same stores give a byte-identical file. Rows are sorted (suite, rank,
  variant, runtime, device id), floats are written with ``FLOAT_FORMAT`` (6 significant digits),
  line ends are ``\\n``, and nothing in it depends on when or where it was written.
- Loads with plain ``pandas.read_csv``: no comment lines; the rank rule is the ``rank_rule``
  column (and printed on stderr by the command).
- CSV formula injection is neutralised: a text cell (suite, variant, runtime, device, sources,
  …: strings that come from suites and records) that starts with ``=``, ``+``, ``-``, ``@``, a
  tab or a carriage return gets a leading apostrophe (``'=cmd|…`` shows as text in Excel,
  LibreOffice and Google Sheets, never as a formula). Control characters (newlines, ESC, bidi
  overrides) in text cells are folded to spaces, so every record is one line. Quoting is the csv
  module's, through pandas. Numbers are never altered (a negative Δ stays ``-5.2``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from greenbench.errors import TERMINAL_UNSAFE, GreenbenchError
from greenbench.report.frame import KINDS

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_OUTPUT = Path("results/leaderboard.csv")
FLOAT_FORMAT = "%.6g"

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_CONTROL = re.compile(TERMINAL_UNSAFE.pattern + "+")


def safe_cell(text: str) -> str:
    """``text`` as a CSV cell that no spreadsheet runs as a formula, on one line."""
    folded = _CONTROL.sub(" ", text)
    if text.startswith(_FORMULA_START) or folded.lstrip().startswith(_FORMULA_START):
        return "'" + folded
    return folded


def csv_text(frame: pd.DataFrame) -> str:
    """The frame as leaderboard CSV text (text cells made safe, fixed float format)."""
    out = frame.copy()
    for name, kind in KINDS.items():
        if kind == "text" and name in out.columns:
            out[name] = out[name].map(lambda v: safe_cell(v) if isinstance(v, str) else v)
    text: str = out.to_csv(index=False, float_format=FLOAT_FORMAT, lineterminator="\n")
    return text


def write_leaderboard(frame: pd.DataFrame, path: Path = DEFAULT_OUTPUT) -> Path:
    """Write the frame's CSV to ``path`` (folders created; replaced atomically); return it."""
    data = csv_text(frame).encode("utf-8")
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as e:
        if tmp.parent.is_dir():
            tmp.unlink(missing_ok=True)
        raise GreenbenchError(
            f"cannot write the leaderboard to {path} ({e.strerror or e}); check that the folder is "
            f"writable, or pass -o with another file."
        ) from None
    return path


def columns_markdown() -> str:
    """``COLUMNS`` as a Markdown table (column, kind, unit and meaning), for the README."""
    from tabulate import tabulate

    from greenbench.report.frame import COLUMNS

    rows = [[f"`{name}`", KINDS[name], what] for name, what in COLUMNS]
    return str(tabulate(rows, headers=["column", "type", "unit and meaning"], tablefmt="pipe"))
