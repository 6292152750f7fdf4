"""The run record: what one variant's run stores, its schema version and shape checks (no I/O).

One row per variant per run, the full record kept as JSON beside the indexed identity columns.
Records are only ever added: ``--force`` adds newer ones, nothing stored is overwritten.

Schema history (bump ``SCHEMA_VERSION`` and describe the change here):
  1 — first version: identity, status/error, stages, metrics {value, unit, …}, measurement,
      device, versions, timestamps.
      Later, same version: the file carries ``PRAGMA application_id`` ``APPLICATION_ID`` ("GrnB");
      unmarked version-1 stores are recognised by their tables and marked on a writable open.
  2 — interleaved measurement: ``task``, ``baseline`` and ``runtime`` on every record;
      ``deltas`` (metric -> Δ against the baseline from time-adjacent block pairs, with its CI);
      latency and energy-per-image metrics are medians of blocks over rounds of fresh processes
      with a CI over rounds (a hierarchical bootstrap before round-level t-intervals; each
      record's ``ci_method`` says which); ``measurement.blocks`` keeps every block. Version-1
      records stay readable (``_from_v1``): their latency is one process' samples, unpaired.
      A store is marked version 2 on its first writable open; its rows keep their own version.
      Later, same version: a ``device_peaks`` table (device id → measured peak GFLOP/s, JSON,
      rows only added; the newest counts), created on a writable open; a store without it reads
      as one with no peaks.
"""

from __future__ import annotations

import re
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any, Literal

from greenbench.errors import GreenbenchError

SCHEMA_VERSION = 2
Status = Literal["ok", "failed"]


class BadRecord(GreenbenchError):
    """One stored record cannot be read (not JSON, wrong shape, unknown schema version)."""


def metric(value: float | int | None, unit: str, **extra: Any) -> dict[str, Any]:
    """A stored metric: value and unit kept apart (rendered together only at the edge)."""
    return {"value": value, "unit": unit, **extra}


@dataclass
class RunRecord:
    """Everything known about one variant measured in one run.

    variant_hash: the variant key (``greenbench.suite.identity.variant_key``): what resume looks up.
    metrics: name → ``{"value", "unit", ...}``; energy metrics also carry ``method``
        (``measured``/``estimated``) and ``source``; latency and energy per image carry
        ``ci_low``/``ci_high`` (None under 2 rounds) and ``ci_method`` (how they were made:
        a t-interval over rounds now, a hierarchical bootstrap in older records).
    deltas: metric name → Δ against ``baseline`` from interleaved block pairs measured in the
        same processes: ``delta_pct``, ``delta_ci_low_pct``, ``delta_ci_high_pct``,
        ``significant``, ``pairs``, ``rounds``, ``spread_pct`` (τ, between processes),
        ``per_round`` (older records: ``p_value``, ``rounds_disagree``),
        ``baseline_key`` (the baseline's variant key), ``run_id``. Empty for the baseline.
    stages: per stage: name, params, cached, checkpoint, energy window (gross/net J).
    measurement: raw latency samples, energy windows, idle baseline, meter choices, settings.
    smoke: for a ``greenbench run --smoke`` record, what the smoke run changed (settings, notes
        such as pretrained weights replaced by training from scratch); None for a real result.
        Tables, leaderboards and exports keep smoke records apart from real ones.
    """

    run_id: str
    suite: str
    suite_hash: str
    variant: str
    variant_hash: str
    parent: str | None
    status: Status
    device_id: str
    started_at: str
    finished_at: str
    error: str | None = None
    task: str = "detect"
    baseline: str | None = None
    runtime: str | None = None
    stages: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    deltas: dict[str, dict[str, Any]] = field(default_factory=dict)
    measurement: dict[str, Any] = field(default_factory=dict)
    device: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    smoke: dict[str, Any] | None = None
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunRecord:
        """Inverse of ``to_dict``, one read path per schema version (as pyperf's ``_json_load``)."""
        if not isinstance(d, dict):
            raise BadRecord(f"a stored record is a JSON {type(d).__name__}, not an object")
        version = d.get("schema_version", 1)
        if not isinstance(version, int) or isinstance(version, bool):
            raise BadRecord(f"a stored record has schema_version {_short(version)}, not a whole number")
        if version == 1:
            return cls._from_v1(d)
        if version != SCHEMA_VERSION:
            raise BadRecord(
                f"a stored record of {_short(d.get('variant'))} has schema version {version}, which "
                f"this greenbench ({SCHEMA_VERSION}) cannot read; upgrade greenbench."
            )
        check_shape(d)
        return cls(**d)

    @classmethod
    def _from_v1(cls, d: dict[str, Any]) -> RunRecord:
        """A version-1 record: no task, baseline, runtime or deltas; latency from one process."""
        d = dict(d)
        metrics = d.get("metrics", {})
        lat = metrics.get("latency_ms") if isinstance(metrics, dict) else None
        if isinstance(lat, dict):
            d["metrics"] = {
                **d["metrics"],
                "latency_ms": {**lat, "ci_method": "bootstrap of one process' samples (schema 1)"},
            }
        d = {**d, "task": "detect", "runtime": "torch", "schema_version": 1}
        check_shape(d)
        return cls(**d)

    def value(self, name: str) -> float | None:
        """The value of metric ``name`` or None."""
        m = self.metrics.get(name)
        return None if m is None else m.get("value")


def _short(value: object) -> str:
    """A stored value quoted for a message: one line, at most 60 characters."""
    text = repr(value)
    text = re.sub(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]", "?", text)
    return text if len(text) <= 60 else text[:57] + "..."


_TEXT = {"run_id", "suite", "suite_hash", "variant", "variant_hash", "device_id", "started_at", "finished_at"}
_TEXT |= {"task"}
_TEXT_OR_NONE = {"parent", "error", "baseline", "runtime"}
_MAPS = {"metrics", "deltas", "measurement", "device", "versions"}
_NAMES = {f.name for f in fields(RunRecord)}
_REQUIRED = {f.name for f in fields(RunRecord) if f.default is MISSING and f.default_factory is MISSING}


def check_shape(d: dict[str, Any]) -> None:
    """Raise ``BadRecord`` unless ``d`` has the fields of a ``RunRecord`` with the types the
    store, the resume and the tables rely on (stored JSON is not trusted)."""
    name = _short(d.get("variant"))

    def bad(problem: str) -> BadRecord:
        return BadRecord(f"the stored record of {name} {problem}")

    if unknown := sorted(str(k) for k in set(d) - _NAMES):
        raise bad(f"has unknown field(s) {_short(', '.join(unknown))}")
    if missing := sorted(_REQUIRED - set(d)):
        raise bad(f"lacks the field(s) {', '.join(missing)}")
    for key in sorted(d):
        value = d[key]
        if key in _TEXT and not isinstance(value, str):
            raise bad(f"has {key} {_short(value)}, not a string")
        if key in _TEXT_OR_NONE and value is not None and not isinstance(value, str):
            raise bad(f"has {key} {_short(value)}, not a string or null")
        if key in _MAPS and not isinstance(value, dict):
            raise bad(f"has {key} of type {type(value).__name__}, not an object")
    if d.get("smoke") is not None and not isinstance(d["smoke"], dict):
        raise bad(f"has smoke {_short(d['smoke'])}, not an object or null")
    if d["status"] not in ("ok", "failed"):
        raise bad(f"has status {_short(d['status'])}, not 'ok' or 'failed'")
    if not all(isinstance(m, dict) for m in d.get("metrics", {}).values()):
        raise bad("has a metric that is not an object of value and unit")
    stages = d.get("stages", [])
    if not isinstance(stages, list) or not all(isinstance(st, dict) for st in stages):
        raise bad("has stages that are not a list of objects")
