"""Stage 1 of the flow, the suite: read a manifest, validate it, check it, identify it.

``reader.load_suite`` reads YAML (``manifest``: line numbers, limits), applies the run-time
overrides (``smoke``), validates the schema (``schema``: pydantic models and the variant DAG)
and runs the checks that span keys or touch the disk (``checks``, ``artifact_checks``);
``identity`` works out every key (variants, stages, data). Nothing here imports a task's
framework: what a task knows comes through ``greenbench.tasks``.
"""

from greenbench.suite.reader import load_suite
from greenbench.suite.schema import (
    MAX_SYNTHETIC_CLASSES,
    CarbonSettings,
    DatasetSpec,
    EnergySettings,
    LatencySettings,
    MeasureSettings,
    ProtocolSettings,
    RuntimeSpec,
    StageSpec,
    Suite,
    SyntheticData,
    VariantSpec,
)

__all__ = [
    "MAX_SYNTHETIC_CLASSES",
    "CarbonSettings",
    "DatasetSpec",
    "EnergySettings",
    "LatencySettings",
    "MeasureSettings",
    "ProtocolSettings",
    "RuntimeSpec",
    "StageSpec",
    "Suite",
    "SyntheticData",
    "VariantSpec",
    "load_suite",
]
