"""``python -m tests.hostile.validate_many FILE...``: ``greenbench validate`` on each file in one
process, one JSON line per file: ``{"path", "rc", "stdout", "stderr"}``.

A fresh interpreter per file costs about 0.3 s and the hostile corpus has dozens of files; each
file still goes through ``greenbench.cli.main`` exactly as the command does. Whatever escapes
``main`` is written into ``stderr`` as a traceback (``rc`` null), never raised.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import traceback
from typing import Any

from greenbench.cli import main


def validate(path: str) -> dict[str, Any]:
    """What ``greenbench validate PATH`` returns and prints."""
    out, err = io.StringIO(), io.StringIO()
    rc: Any = None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(["validate", path])
        except SystemExit as e:  # argparse
            rc = e.code
        except BaseException:  # a bug: keep the traceback for the test to show
            traceback.print_exc()
    return {"path": path, "rc": rc, "stdout": out.getvalue(), "stderr": err.getvalue()}


if __name__ == "__main__":
    for name in sys.argv[1:]:
        print(json.dumps(validate(name)), flush=True)
