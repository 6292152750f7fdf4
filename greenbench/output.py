"""Writing what a verb produces: to a file, or to standard output for ``-o -``; JSON made safe.

Shared by the verbs that write a file or print machine-readable output (export, leaderboard,
validate, runs, and any verb with ``--json``). A file is written beside its target and renamed
over it, so a failed write leaves no half file; a folder, a missing folder, the results store
itself or an unwritable place is a ``GreenbenchError`` that names the path, never a traceback.
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from greenbench.errors import GreenbenchError

STDOUT = "-"  # ``-o -``: standard output
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def json_safe(value: Any) -> Any:
    """``value`` with every lone surrogate replaced by U+FFFD (no UTF-8 encoder takes one) and every
    NaN or infinity by None (not JSON), in nested dicts, lists and tuples."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {json_safe(str(k)): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def json_text(value: Any) -> str:
    """``value`` as indented JSON (UTF-8 text, non-ASCII kept) ending in a newline."""
    return json.dumps(json_safe(value), indent=2, ensure_ascii=False) + "\n"


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_target(target: str, protected: Iterable[Path] = (), *, folder_made: bool = False) -> Path:
    """The file ``target`` names, checked before anything is computed: not one of ``protected``
    (e.g. the results store), not a folder or device, in an existing folder (unless the writer
    makes it: ``folder_made``)."""
    path = Path(target)
    if any(_same_file(path, p) for p in protected):
        raise GreenbenchError(
            f"the output file {target} is the results store itself; pass -o with another file name."
        )
    if path.exists() and not path.is_file():
        raise GreenbenchError(
            f"the output {target} exists and is not a regular file (a folder, device or pipe); pass -o "
            f"with the path of a file to write."
        )
    if not folder_made and not path.parent.is_dir():
        raise GreenbenchError(
            f"cannot write {target}: the folder {path.parent} does not exist; create it or pass -o with "
            f"a file in an existing folder."
        )
    return path


def write_output(target: str, text: str, store_path: Path | None = None, *, encoding: str = "utf-8") -> str:
    """Write ``text`` (newlines as given) to ``target``, or to standard output for ``-``; return
    where it went ("standard output" or the path). An existing file is replaced whole."""
    if target == STDOUT:
        sys.stdout.write(text)
        sys.stdout.flush()
        return "standard output"
    path = check_target(target, [store_path] if store_path is not None else [])
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        with tmp.open("x", encoding=encoding, newline="") as f:  # "x": never follows a planted file
            f.write(text)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise GreenbenchError(
            f"cannot write {target} ({e.strerror or e}); check that {path.parent} is writable by you "
            f"and has free space, or pass -o with another file."
        ) from None
    return str(path)


def write_json(target: str, value: Any, store_path: Path | None = None) -> str:
    """``value`` as JSON (``json_text``) to ``target`` (``-``: standard output); where it went."""
    return write_output(target, json_text(value), store_path)
