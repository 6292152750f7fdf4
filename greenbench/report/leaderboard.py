"""The leaderboard: ``load_results`` as a CSV safe to open in a spreadsheet, its rank rule and
groups in a metadata file beside it, or both as one JSON document.

- Columns: ``greenbench.report.columns.COLUMNS``, in that order, a unit in every numeric name;
  a bool column holds ``True`` or ``False`` on every row, so ``pandas.read_csv`` reads it as bool.
- Encoding: UTF-8 with a byte-order mark (device descriptions and meter names hold ``·`` and
  ``×``; without the mark spreadsheet programs read them as another code page). ``pandas.read_csv``
  and Python's ``utf-8-sig`` drop the mark.
- The rank rule, each rank group (with its note, e.g. that every energy figure of the group is
  the CPU-time model) and every column's meaning are in ``<csv>.meta.json``, not on every row;
  the CSV itself has no comment lines.
- Deterministic: the same stores give byte-identical files. Rows are sorted (suite, rank group,
  rank, variant, runtime, device id), floats are written with ``FLOAT_FORMAT`` (6 significant
  digits), line ends are ``\\n``, and nothing in them depends on when or where they were written.
- CSV formula injection is neutralised: a text cell (suite, variant, runtime, device, sources,
  …: strings that come from suites and records) that starts with ``=``, ``+``, ``-``, ``@``, a
  tab or a carriage return gets a leading apostrophe (``'=cmd|…`` shows as text in Excel,
  LibreOffice and Google Sheets, never as a formula). Control characters (newlines, ESC, bidi
  overrides) in text cells are folded to spaces, so every record is one line. Quoting is the csv
  module's, through pandas. Numbers are never altered (a negative Δ stays ``-5.2``).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from greenbench.errors import TERMINAL_UNSAFE, GreenbenchError
from greenbench.report.columns import COLUMNS, KINDS

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_OUTPUT = Path("results/leaderboard.csv")
FLOAT_FORMAT = "%.6g"
#: the CSV's encoding: UTF-8 with a byte-order mark
ENCODING = "utf-8-sig"
#: the version of the metadata file's and the JSON document's layout
META_FORMAT = 1

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


def meta_path(path: Path) -> Path:
    """The metadata file beside the CSV ``path``: ``<name>.meta.json``."""
    return path.with_name(path.name + ".meta.json")


def metadata(frame: pd.DataFrame) -> dict[str, Any]:
    """What the rows do not say: the rank rule in words, the rank groups (rows, note) and every
    column's kind and meaning; from the frame's ``attrs`` (``load_results``)."""
    return {
        "format": "greenbench leaderboard",
        "format_version": META_FORMAT,
        "csv_encoding": ENCODING,
        "rank_by": frame.attrs.get("rank_by"),
        "rank_rule": frame.attrs.get("rank_rule"),
        "rank_groups": frame.attrs.get("groups", []),
        "columns": [{"name": name, "type": KINDS[name], "meaning": what} for name, what in COLUMNS],
    }


def _plain(value: object) -> object:
    """A frame cell as JSON: pandas' NA and NaN as null, numpy scalars as Python ones."""
    import pandas as pd

    if value is None or (not isinstance(value, str) and bool(pd.isna(value))):
        return None
    item = getattr(value, "item", None)  # a numpy scalar
    return item() if callable(item) else value


def json_text(frame: pd.DataFrame) -> str:
    """The leaderboard as one JSON document: ``metadata`` and ``rows`` (a list of objects, one
    per row, with ``COLUMNS`` as keys; empty cells null)."""
    rows = [
        {name: _plain(v) for name, v in zip(frame.columns, row, strict=True)}
        for row in frame.itertuples(index=False)
    ]
    doc = {"metadata": metadata(frame), "rows": rows}
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def _write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (folders created); an OS error is a one-paragraph
    ``GreenbenchError`` naming the file."""
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


def write_leaderboard(frame: pd.DataFrame, path: Path = DEFAULT_OUTPUT) -> Path:
    """Write the frame's CSV to ``path`` and its metadata to ``meta_path(path)``; return the CSV."""
    _write(path, csv_text(frame).encode(ENCODING))
    meta = json.dumps(metadata(frame), indent=2, ensure_ascii=False) + "\n"
    _write(meta_path(path), meta.encode("utf-8"))
    return path


def columns_markdown() -> str:
    """``COLUMNS`` as a Markdown table (column, kind, unit and meaning), for the README."""
    from tabulate import tabulate

    rows = [[f"`{name}`", KINDS[name], what] for name, what in COLUMNS]
    return str(tabulate(rows, headers=["column", "type", "unit and meaning"], tablefmt="pipe"))
