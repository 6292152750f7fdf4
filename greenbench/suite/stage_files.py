"""Files a stage's params name, read when the suite is checked.

A stage's ``hyp`` may name a YAML file of hyperparameters (relative to the suite's folder, then
the one above). The checks read it with the suite file's own bounded, alias-safe reader and put
its data into the params, so the stage's validator checks the values and the cache key holds
them: editing the file re-runs the stage, renaming it does not.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from greenbench.errors import SuiteError
from greenbench.suite.manifest import read_manifest
from greenbench.suite.problems import Loc, Problem, one_line
from greenbench.suite.schema import VariantSpec

#: stage parameters that may name a YAML file whose data replaces the name
FILE_PARAMS = ("hyp",)


def read_stage_files(
    spec: VariantSpec, base: Path, loc: Loc, find: Callable[[str, Path], Path | None]
) -> list[Problem]:
    """Replace each file name in ``FILE_PARAMS`` of ``spec``'s stages by the file's data;
    ``find(value, base)``: the file, or None (the checks' ``find_local``)."""
    problems = []
    for i, stage in enumerate(spec.stages):
        for key in FILE_PARAMS:
            value = stage.params.get(key)
            if not isinstance(value, str):
                continue
            where: Loc = (*loc, "stages", i, stage.name, key)
            found = find(value, base)
            if found is None:
                message = (
                    f"{key} file {value!r} not found (looked in {base} and {base.parent}); put the "
                    f"YAML file there or give the values as a mapping."
                )
                problems.append(Problem(where, message))
                del stage.params[key]  # reported once: the stage's validator need not see the name
                continue
            try:
                _raw, data, _report, found_problems = read_manifest(found)
            except SuiteError as e:
                problems.append(Problem(where, f"{key} file {value!r}: {one_line(str(e))}"))
                del stage.params[key]
                continue
            if found_problems:
                problems.append(Problem(where, f"{key} file {value!r}: {found_problems[0].message}"))
                del stage.params[key]
                continue
            stage.params[key] = data
    return problems
