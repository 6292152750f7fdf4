"""What made each row: the stage parameters and the runtime a comparison table shows.

A study's table reads "sparsity 5e-4, prune ratio 30 %" beside the figures. Those columns come
from the stages of each record's lineage (``greenbench.pipeline.TABLE_PARAMS`` names the
parameters), and a ``runtime`` column appears as soon as one row is not run by torch eager.
Columns appear only when at least one row has a value, so a plain suite's table is unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from greenbench.pipeline import TABLE_PARAMS
from greenbench.store import RunRecord

_DEFAULT_RUNTIME = (None, "", "torch")


def _shown(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _lineage_stages(record: RunRecord) -> list[Any]:
    """Every stage from the root model on (``measurement.lineage``), else the record's own."""
    lineage = record.measurement.get("lineage")
    if not isinstance(lineage, list):
        return list(record.stages)
    return [st for step in lineage if isinstance(step, dict) for st in step.get("stages") or []]


def _stage_values(record: RunRecord) -> dict[str, str]:
    """Header -> value of the lineage's table parameters; a later stage's value wins."""
    values: dict[str, str] = {}
    for stage in _lineage_stages(record):
        params = stage.get("params") if isinstance(stage, dict) else None
        wanted = TABLE_PARAMS.get(str(stage.get("name"))) if isinstance(stage, dict) else None
        if not isinstance(params, dict) or not wanted:
            continue
        for param, header in wanted.items():
            if param in params:
                values[header] = _shown(params[param])
    return values


def recipe_columns(records: Sequence[RunRecord]) -> tuple[list[str], list[list[str]]]:
    """Headers and, per record (same order), the cell texts of the recipe columns."""
    per_record = [_stage_values(r) for r in records]
    heads = [
        h for params in TABLE_PARAMS.values() for h in params.values() if any(h in v for v in per_record)
    ]
    rows = [[v.get(h, "") for h in heads] for v in per_record]
    if any(r.runtime not in _DEFAULT_RUNTIME for r in records):
        heads.append("runtime")
        for row, r in zip(rows, records, strict=True):
            row.append(r.runtime or "torch")
    return heads, rows
