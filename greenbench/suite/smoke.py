"""Run-time changes to a suite: ``--data``, ``--weights`` and ``--smoke``.

They rewrite the manifest's data before it is validated, so a changed suite goes through every
check a written one does, and its variant keys change with it: a smoke record never resumes, or
is mistaken for, a real one.

``--smoke`` keeps the suite's DAG and runs every stage of it, on a small synthetic dataset with
the suite's class names, one epoch per training stage, a tiny image size and a short interleaved
protocol: a 50-hour suite is checked in minutes. Pretrained weights that are not on disk are
dropped (the variant trains from scratch) and each such change is listed in ``notes``, which the
records keep (``RunRecord.smoke``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from greenbench.errors import SuiteError

#: the smoke run's sizes; every figure of a smoke run is only a check that the DAG runs
SMOKE_IMAGES = 40  # synthetic images, split 8:1:1
SMOKE_IMGSZ = 64  # px, training, evaluation and latency
SMOKE_EPOCHS = 1
SMOKE_BATCH = 8
SMOKE_CALIBRATION_IMAGES = 8
SMOKE_PROTOCOL = {"rounds": 2, "blocks": 2, "min_calls": 2}
SMOKE_ENERGY = {"idle_s": 0.5, "min_window_s": 0.05}
SMOKE_CLASSES = 3  # when the suite names no classes
SMOKE_MAX_CLASSES = 96  # the suite schema's limit on synthetic classes
#: stage parameters a smoke run caps (name -> cap)
_CAPPED = {"epochs": SMOKE_EPOCHS, "batch": SMOKE_BATCH, "calibration_images": SMOKE_CALIBRATION_IMAGES}


@dataclass(frozen=True)
class Overrides:
    """What the command line changes. data: a data.yaml replacing ``dataset.path``; weights:
    pretrained weights replacing every variant's ``weights``; smoke: the smoke run."""

    data: Path | None = None
    weights: Path | None = None
    smoke: bool = False


@dataclass
class Applied:
    """The rewritten manifest data and, for a smoke run, what it changed (kept in records)."""

    data: Any
    smoke: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)


def apply_overrides(data: Any, overrides: Overrides, base: Path) -> Applied:
    """``data`` (the parsed manifest) with ``overrides`` applied; ``base``: the suite's folder.

    Shapes that are not what the schema expects are left alone: validation reports them."""
    if not isinstance(data, dict) or overrides == Overrides():
        return Applied(data)
    data = copy.deepcopy(data)
    variants = data.get("variants") if isinstance(data.get("variants"), dict) else {}
    if overrides.data is not None:
        if not overrides.data.expanduser().is_file():
            raise SuiteError(
                f"--data {overrides.data}: no such file; pass the dataset file of the suite's task."
            )
        names = _names(data)
        data["dataset"] = {"path": str(overrides.data.expanduser().resolve())}
        if names is not None:
            data["dataset"]["names"] = names
    if overrides.weights is not None:
        weights = str(overrides.weights.expanduser().resolve())
        for spec in variants.values():
            if isinstance(spec, dict) and "weights" in spec:
                spec["weights"] = weights
    if not overrides.smoke:
        return Applied(data)
    notes = _smoke(data, variants, base)
    settings = {
        "images": SMOKE_IMAGES,
        "imgsz": SMOKE_IMGSZ,
        "epochs": SMOKE_EPOCHS,
        "protocol": SMOKE_PROTOCOL,
        "energy": SMOKE_ENERGY,
    }
    return Applied(data, {"settings": settings, "notes": notes}, notes)


def _names(data: dict[str, Any]) -> list[Any] | None:
    dataset = data.get("dataset")
    names = dataset.get("names") if isinstance(dataset, dict) else None
    return names if isinstance(names, list) else None


def _smoke(data: dict[str, Any], variants: dict[str, Any], base: Path) -> list[str]:
    """Rewrite ``data`` in place for a smoke run; return what it changed, one note per change."""
    names = _names(data)
    dataset = data.get("dataset") if isinstance(data.get("dataset"), dict) else {}
    synthetic = dataset.get("synthetic") if isinstance(dataset, dict) else None
    classes = len(names) if names else None
    if classes is None and isinstance(synthetic, dict) and isinstance(synthetic.get("classes"), int):
        classes = synthetic["classes"]
    if classes is not None and classes > SMOKE_MAX_CLASSES:
        raise SuiteError(
            f"--smoke: the suite names {classes} classes, but greenbench's synthetic data can draw at "
            f"most {SMOKE_MAX_CLASSES} distinguishable classes (8 shapes × 12 hue bands); check the "
            "DAG with a smaller copy of the suite's class list."
        )
    notes = [f"synthetic dataset: {SMOKE_IMAGES} images of {SMOKE_IMGSZ} px"]
    if classes is None:
        classes = SMOKE_CLASSES
        notes.append(f"the suite names no classes: {SMOKE_CLASSES} shape classes")
    new_dataset: dict[str, Any] = {
        "synthetic": {"classes": classes, "images": SMOKE_IMAGES, "imgsz": SMOKE_IMGSZ, "seed": 0}
    }
    if names:
        new_dataset["names"] = names
    data["dataset"] = new_dataset

    defaults = data.get("defaults")
    defaults = defaults if isinstance(defaults, dict) else {}
    data["defaults"] = {
        **defaults,
        "imgsz": SMOKE_IMGSZ,
        "workers": 0,
        **_capped(defaults, always=True),
        **_nested(defaults),
    }
    for name, spec in variants.items():
        if not isinstance(spec, dict):
            continue
        notes += _drop_missing_weights(str(name), spec, base)
        for stage in spec.get("stages") or []:
            if isinstance(stage, dict) and len(stage) == 1:
                ((stage_name, params),) = stage.items()
                if isinstance(params, dict):
                    stage[stage_name] = {**params, **_capped(params), **_imgsz(params), **_nested(params)}

    measure = data.get("measure")
    if isinstance(measure, dict):
        latency = measure.get("latency")
        if isinstance(latency, dict):
            measure["latency"] = {
                **latency,
                "imgsz": SMOKE_IMGSZ,
                "warmup": min(_int(latency, "warmup", 2), 2),
            }
        measure["protocol"] = {**_dict(measure.get("protocol")), **SMOKE_PROTOCOL}
        measure["energy"] = {**_dict(measure.get("energy")), **SMOKE_ENERGY}
    else:
        data["measure"] = {"protocol": dict(SMOKE_PROTOCOL), "energy": dict(SMOKE_ENERGY)}
    return notes


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _int(d: dict[str, Any], key: str, default: int) -> int:
    value = d.get(key, default)
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _capped(params: dict[str, Any], always: bool = False) -> dict[str, Any]:
    """The capped values of ``params`` (``always``: every capped key, present or not)."""
    out = {}
    for key, cap in _CAPPED.items():
        if key == "calibration_images" and always:
            continue
        value = params.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            out[key] = min(value, cap) if value > 0 else cap
        elif always or key in params:
            out[key] = cap
    return out


def _nested(params: dict[str, Any]) -> dict[str, Any]:
    """Lists of mappings in ``params`` (a curriculum's steps, each with its ``epochs``) with
    their capped values capped too."""
    return {
        key: [{**v, **_capped(v)} if isinstance(v, dict) else v for v in value]
        for key, value in params.items()
        if isinstance(value, list) and any(isinstance(v, dict) for v in value)
    }


def _imgsz(params: dict[str, Any]) -> dict[str, Any]:
    return {"imgsz": SMOKE_IMGSZ} if "imgsz" in params else {}


def _drop_missing_weights(name: str, spec: dict[str, Any], base: Path) -> list[str]:
    """Drop ``weights`` that are not on disk (the variant then trains from scratch)."""
    weights = spec.get("weights")
    if not isinstance(weights, str):
        return []
    from greenbench.suite.checks import find_local  # the checks' own lookup, torch's cache included

    if find_local(weights, base, hub=True) is not None:
        return []
    del spec["weights"]
    return [f"variant {name}: pretrained weights {weights} not found; trained from scratch"]
