"""Suite checks on what each stage reads and makes, and on the runtime that measures each variant.

A model file is of one kind (``runtimes.base.ArtifactKind``: a torch checkpoint or an ONNX model).
A stage class may declare ``accepts`` (the kinds it reads; default torch) and ``produces`` (the
kind it writes; default torch): ``export`` turns torch into ONNX, ``quantize`` reads and writes
ONNX. Walking each lineage from its root model tells, before anything runs, which stage would
get the wrong kind, and which kind of file each variant ends with, so that the variant's
``runtime`` can be checked against it. The runtime's options are checked by the runtime class
(``check_options``, which imports no runtime library) and stored back with defaults filled in.
A fixed-shape ``export`` must match the sizes the suite measures and evaluates at, and every
``imgsz`` (in ``defaults`` or a stage's params) must be a side a device can hold.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from greenbench.errors import GreenbenchError
from greenbench.pipeline import get_stage, registered
from greenbench.pipeline.export import DEFAULT_IMGSZ, MAX_IMGSZ, MIN_IMGSZ
from greenbench.suite.problems import Loc, Problem, one_line
from greenbench.suite.schema import Suite

_WHAT = {"torch": "a torch checkpoint", "onnx": "an ONNX model"}


def check_runtimes(suite: Suite, kinds: dict[str, str] | None) -> list[Problem]:
    """Each variant's ``runtime``: a registered name, options its class accepts (stored back
    cleaned) and, where ``kinds`` is known, a runtime that reads the variant's kind of file."""
    from greenbench.runtimes import runtime_class

    problems = []
    for name, spec in suite.variants.items():
        if spec.runtime is None:
            continue
        loc: Loc = ("variants", name, "runtime")
        try:
            cls = runtime_class(spec.runtime.name)
        except GreenbenchError as e:
            problems.append(Problem(loc, f"{e}"))
            continue
        try:
            spec.runtime.options = cls.check_options(spec.runtime.options)
        except ValueError as e:
            message = one_line(str(e))
            named = [k for k in re.findall(r"'([^']+)'", message) if k in spec.runtime.options]
            problems.append(Problem((*loc, named[0]) if named else loc, f"{message}."))
        kind = (kinds or {}).get(name)
        if kind is not None and kind not in cls.kinds:
            problems.append(Problem(loc, _wrong_runtime(spec.runtime.name, cls.kinds, kind)))
    return problems


def _wrong_runtime(runtime: str, reads: tuple[str, ...], kind: str) -> str:
    fix = (
        "add '- export' at the end of its stages (e.g. 'stages: [export]'), or use runtime 'torch'"
        if kind == "torch"
        else "use runtime 'onnxruntime' or 'openvino', or measure a variant made before its 'export'"
    )
    files = " and ".join(reads)
    return f"runtime {runtime!r} reads {files} files, but this variant ends with {_WHAT[kind]}; {fix}."


def check_lineage_kinds(suite: Suite) -> tuple[dict[str, str], list[Problem]]:
    """The kind of file each variant ends with, and a problem for each stage given a kind it
    does not read (reported at the variant that lists the stage). Needs a sound graph."""
    kinds: dict[str, str] = {}
    problems = []
    known = registered(suite.task)
    for name in suite.order():
        spec = suite.variants[name]
        if spec.from_ is not None:
            kind, source = kinds[spec.from_], f"the result of variant {spec.from_!r}"
        else:
            model = spec.model or ""
            kind = "onnx" if Path(model).suffix.lower() == ".onnx" else "torch"
            source = f"the model {Path(model).name!r}"
        for i, stage in enumerate(spec.stages):
            if stage.name not in known:
                continue  # reported by the stage checks
            cls = get_stage(stage.name, suite.task)
            accepts: tuple[str, ...] = getattr(cls, "accepts", ("torch",))
            if kind not in accepts:
                problems.append(
                    Problem(("variants", name, "stages", i), _wrong_input(stage.name, kind, source))
                )
            kind, source = getattr(cls, "produces", "torch"), f"stage {stage.name!r}"
        kinds[name] = kind
    return kinds, problems


def _wrong_input(stage: str, kind: str, source: str) -> str:
    if kind == "torch":
        return (
            f"stage {stage!r} needs an ONNX model, but its input is {_WHAT[kind]} ({source}); "
            f"add '- export' before '- {stage}' (e.g. 'stages: [export, {stage}]')."
        )
    return (
        f"stage {stage!r} takes a torch checkpoint, but its input is {_WHAT[kind]} ({source}); "
        f"an ONNX model is measured as it is: run '{stage}' before 'export', or start from a .pt "
        f"checkpoint or a model config."
    )


def check_export_shapes(suite: Suite) -> list[Problem]:
    """A fixed-shape ``export`` (the default) is made at ``defaults.imgsz`` with batch 1; the
    suite's latency image size and batch must be the same, or the export must be dynamic."""
    evaluated = _int(suite.defaults.get("imgsz"), DEFAULT_IMGSZ)
    latency = suite.measure.latency
    timed = latency.imgsz or evaluated
    problems = []
    for name, spec in suite.variants.items():
        for i, stage in enumerate(spec.stages):
            if stage.name != "export" or stage.params.get("dynamic"):
                continue
            where: Loc = ("variants", name, "stages", i, "export")
            if timed != evaluated:
                problems.append(
                    Problem(
                        where,
                        f"exports a fixed 1x3x{evaluated}x{evaluated} input (defaults.imgsz, where accuracy "
                        f"is evaluated), but measure.latency.imgsz is {timed}; one fixed-shape model cannot "
                        "run at both sizes. Use 'export: {dynamic: true}', or set measure.latency.imgsz to "
                        f"{evaluated}.",
                    )
                )
            if latency.batch != 1:
                problems.append(
                    Problem(
                        where,
                        f"exports a fixed batch of 1, but measure.latency.batch is {latency.batch}; use "
                        "'export: {dynamic: true}', or measure with batch 1.",
                    )
                )
    return problems


def check_image_sizes(suite: Suite) -> list[Problem]:
    """``imgsz`` in ``defaults`` and in every stage's params: each side (an integer, or a list of
    them) from ``MIN_IMGSZ`` to ``MAX_IMGSZ`` px. Other types are the task's to refuse."""
    places: list[tuple[Loc, Any]] = [(("defaults", "imgsz"), suite.defaults.get("imgsz"))]
    for name, spec in suite.variants.items():
        for i, stage in enumerate(spec.stages):
            places.append((("variants", name, "stages", i, stage.name, "imgsz"), stage.params.get("imgsz")))
    problems = []
    for loc, value in places:
        sides = value if isinstance(value, list) else [value]
        wrong = [v for v in sides if isinstance(v, int) and not isinstance(v, bool)]
        wrong = [v for v in wrong if not MIN_IMGSZ <= v <= MAX_IMGSZ]
        if wrong:
            side = wrong[0]
            gb = 3 * 4 * side**2 / 1e9  # one 3-channel float32 image
            why = (
                f"one image of {side}² px is {gb:,.1f} GB as float32, more than a device holds"
                if side > MAX_IMGSZ
                else "too small to hold a feature"
            )
            problems.append(
                Problem(
                    loc,
                    f"image side {side} px is out of range ({why}); use a side from {MIN_IMGSZ} to "
                    f"{MAX_IMGSZ} px.",
                )
            )
    return problems


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def check_artifacts(suite: Suite, graph_ok: bool) -> list[Problem]:
    """Every check of this module; the lineage walk only in a sound graph (``graph_ok``)."""
    kinds, problems = check_lineage_kinds(suite) if graph_ok else (None, [])
    return problems + check_image_sizes(suite) + check_export_shapes(suite) + check_runtimes(suite, kinds)
