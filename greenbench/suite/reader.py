"""Read a suite: YAML with ``file:line`` errors, run-time overrides, schema, cross-key checks.

``load_suite`` validates every key and raises one ``SuiteError`` that lists up to five problems,
one line each, as ``file:line: dotted.key: what was expected``. The order is the flow: the
manifest is read (``manifest``), rewritten by ``--data``/``--weights``/``--smoke``
(``smoke``), validated by the schema (``schema``), then checked across keys and on disk
(``checks``), whose findings (the checked dataset) the suite keeps for the run.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from pydantic import ValidationError

from greenbench.errors import SuiteError, clean_message
from greenbench.suite.checks import check, kind_of
from greenbench.suite.manifest import read_manifest
from greenbench.suite.problems import Problem, allowed_keys, from_pydantic, unknown_key
from greenbench.suite.schema import LOADER_FIELDS, Suite
from greenbench.suite.smoke import Overrides, apply_overrides

_DETAILED = 100  # pydantic errors phrased in full (each may run difflib for a "did you mean")


def load_suite(path: str | Path, overrides: Overrides | None = None) -> Suite:
    """Read, validate and resolve a suite manifest; any problem raises one ``SuiteError``.

    ``overrides`` (``--data``, ``--weights``, ``--smoke``) rewrite the manifest before validation
    (``greenbench.suite.smoke``), so the changed suite passes the same checks."""
    raw, data, report, problems = read_manifest(path)
    applied = apply_overrides(data, overrides or Overrides(), Path(path).resolve().parent)
    data = applied.data
    if not isinstance(data, dict):
        kind = "null" if data is None else f"a {kind_of(data)}"
        message = (
            f"{report.shown}:1: the top level is {kind}; expected a mapping with the "
            "keys name, task, dataset, baseline and variants."
        )
        raise SuiteError(clean_message(message, one_line=True))
    allowed = allowed_keys(Suite, (), LOADER_FIELDS)
    problems += [Problem((key,), unknown_key(key, allowed)) for key in LOADER_FIELDS if key in data]
    file = Path(path).resolve()
    fields = {"path": file, "source_hash": hashlib.sha256(raw).hexdigest()}
    try:
        suite = Suite.model_validate({**data, **fields})
    except ValidationError as exc:
        errors = exc.errors()
        problems += [from_pydantic(err, Suite, hidden=LOADER_FIELDS) for err in errors[:_DETAILED]]
        # beyond that, pydantic's own words: only five are shown, the rest are counted
        problems += [Problem(err["loc"], f"{err['msg']}.") for err in errors[_DETAILED:]]
        raise report.error(problems) from None
    checked = check(suite, file.parent)
    problems += checked.problems
    if problems:
        raise report.error(problems)
    suite.loaded(checked.data, applied.smoke)
    return suite
