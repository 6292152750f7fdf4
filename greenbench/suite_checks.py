"""Suite checks that span keys or touch the disk, run by ``load_suite`` after the schema passed.

Each check returns ``Problem``s (a key path and what was expected); ``load_suite`` turns them
into one ``SuiteError`` with file and line. Resolved paths are stored back absolute.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from greenbench.adapters.ultra_args import builtin_model_cfg, builtin_model_names
from greenbench.errors import GreenbenchError
from greenbench.manifest import Loc, Problem, from_pydantic, one_line, suggest
from greenbench.pipeline import get_stage, stage_names

if TYPE_CHECKING:
    from greenbench.suite import CarbonSettings, Suite, VariantSpec


def check(suite: Suite, base: Path) -> list[Problem]:
    """Checks that span keys or touch the disk; resolved paths are stored back absolute."""
    graph_problems = _check_graph(suite)
    problems = list(graph_problems)
    for name, spec in suite.variants.items():
        loc: Loc = ("variants", name)
        if spec.model is not None:
            spec.model, problem = _resolve_model(spec.model, base, (*loc, "model"))
            problems += [problem] if problem else []
        if spec.weights is not None:
            spec.weights, problem = _resolve_file(spec.weights, base, (*loc, "weights"), "weights")
            problems += [problem] if problem else []
        problems += _check_stages(spec, loc)
    if suite.dataset.path is not None:
        where = ("dataset", "path")
        suite.dataset.path, problem = _resolve_file(suite.dataset.path, base, where, "dataset")
        problems += [problem] if problem else []
        if problem is None:
            problems += _check_data_yaml(Path(suite.dataset.path), where)
    if not graph_problems:  # lineages are walkable only in a sound graph
        problems += _check_onnx_lineages(suite)
    problems += _check_defaults(suite)
    problems += _check_carbon(suite.measure.carbon)
    return problems


def _check_data_yaml(path: Path, loc: Loc) -> list[Problem]:
    """The data.yaml's splits exist (run would stop there anyway, after the idle baseline)."""
    from greenbench.dataset_ref import split_paths

    try:
        split_paths(path)
    except GreenbenchError as e:
        return [Problem(loc, str(e))]
    return []


def _check_carbon(carbon: CarbonSettings) -> list[Problem]:
    """The grid intensity can be looked up offline for the country/region given."""
    from greenbench.measure.carbon import grid_intensity

    if carbon.intensity_g_per_kwh is not None:
        return []
    try:
        grid_intensity(carbon.country, carbon.region)
    except GreenbenchError as e:
        key = "region" if carbon.region is not None else "country"
        return [Problem(("measure", "carbon", key), str(e))]
    return []


_BOTH = "sets both 'model' and 'from'; expected one (a root has 'model', a child 'from')."
_NEITHER = "sets neither 'model' nor 'from'; expected one, e.g. 'model: yolov8n.yaml' or 'from: base'."
_PICKLE = (
    "{value!r} is an ultralytics checkpoint, a Python pickle: loading it runs code from the file. "
    "If you trust it, add 'allow_pickle: true' to this variant; otherwise start from a model config "
    "(.yaml)."
)
_WEIGHTS_WITHOUT_MODEL = "'weights' needs 'model'; a 'from' variant starts from its parent's result."


def _check_graph(suite: Suite) -> list[Problem]:
    """model/from/weights exclusivity, known parents, no cycles, a known baseline."""
    variants = suite.variants
    known = f"expected one of: {', '.join(variants)}. Fix the name or add the variant."
    problems = []
    for name, spec in variants.items():
        loc: Loc = ("variants", name)
        if spec.model is not None and spec.from_ is not None:
            problems.append(Problem(loc, _BOTH))
        elif spec.model is None and spec.from_ is None:
            problems.append(Problem(loc, _NEITHER))
        if spec.weights is not None and spec.model is None:
            problems.append(Problem((*loc, "weights"), _WEIGHTS_WITHOUT_MODEL))
        for key in ("model", "weights"):
            value = getattr(spec, key)
            # case-insensitive: 'model.PT' is as much a pickle as 'model.pt'
            pickled = value is not None and Path(value).suffix.lower() in (".pt", ".pth")
            if pickled and not spec.allow_pickle:
                problems.append(Problem((*loc, key), _PICKLE.format(value=value)))
        if spec.from_ is not None and spec.from_ not in variants:
            message = f"unknown variant {spec.from_!r}{suggest(spec.from_, variants)}; {known}"
            problems.append(Problem((*loc, "from"), message))
    problems += _cycles(variants)
    if suite.baseline not in variants:
        message = f"unknown variant {suite.baseline!r}{suggest(suite.baseline, variants)}; {known}"
        problems.append(Problem(("baseline",), message))
    return problems


def _cycles(variants: dict[str, VariantSpec]) -> list[Problem]:
    """One problem per ``from`` cycle, named like ``a -> b -> a``."""
    index = {name: i for i, name in enumerate(variants)}
    seen: set[frozenset[str]] = set()
    problems = []
    for start in variants:
        chain = [start]
        while (parent := variants[chain[-1]].from_) in variants:
            assert parent is not None  # for mypy: None is never a variant name
            if parent in chain:
                cycle = chain[chain.index(parent) :]
                if frozenset(cycle) not in seen:
                    seen.add(frozenset(cycle))
                    first = min(range(len(cycle)), key=lambda i: index[cycle[i]])
                    ring = cycle[first:] + cycle[:first]
                    path = " -> ".join([*ring, ring[0]])
                    message = f"the 'from' links form a cycle: {path}; start one from a 'model'."
                    problems.append(Problem(("variants", ring[0], "from"), message))
                break
            chain.append(parent)
    return problems


def _find_local(value: str, base: Path) -> Path | None:
    """``value`` as a file: absolute, or relative to the suite folder, then the folder above."""
    path = Path(value).expanduser()
    candidates = [path] if path.is_absolute() else [base / path, base.parent / path]
    return next((c.resolve() for c in candidates if c.is_file()), None)


def _resolve_file(value: str, base: Path, loc: Loc, what: str) -> tuple[str, Problem | None]:
    """A weights file or data.yaml that must exist; returns its absolute path or a problem."""
    found = _find_local(value, base)
    if found is not None:
        return str(found), None
    target = Path(value).expanduser()
    target = target if target.is_absolute() else base / target
    if what == "dataset":
        fix = "expected a YOLO data.yaml relative to the suite's folder, or 'synthetic: {}'."
    else:
        fix = "greenbench never downloads weights. Put the file at that path."
    return value, Problem(loc, f"{what} file {value!r} not found (looked for {target}); {fix}")


def _resolve_model(value: str, base: Path, loc: Loc) -> tuple[str, Problem | None]:
    """A local .yaml/.pt (made absolute) or an ultralytics built-in config name (kept as is)."""
    suffix = Path(value).suffix.lower()
    if suffix in (".pt", ".pth"):
        return _resolve_file(value, base, loc, "weights")
    if suffix == ".onnx":
        return _resolve_file(value, base, loc, "ONNX model")
    if suffix not in (".yaml", ".yml"):
        message = (
            f"expected a model config (.yaml/.yml), weights (.pt) or an ONNX model (.onnx), got {value!r}."
        )
        return value, Problem(loc, message)
    found = _find_local(value, base)
    if found is not None:
        return str(found), None
    bare = "/" not in value and "\\" not in value
    if bare and builtin_model_cfg(value) is not None:
        return value, None
    message = f"model config {value!r} not found: no file {base / value} or {base.parent / value}"
    if bare:
        hint = suggest(value, builtin_model_names())
        message += f", and not an ultralytics built-in config like yolov8n.yaml{hint}"
    return value, Problem(loc, message + ". Fix the name or create the file.")


def _check_stages(spec: VariantSpec, loc: Loc) -> list[Problem]:
    """Stage names are registered; each stage's own validator cleans its params."""
    known = stage_names()
    problems = []
    for i, stage in enumerate(spec.stages):
        where: Loc = (*loc, "stages", i)
        if stage.name not in known:
            hint = suggest(stage.name, known)
            message = f"unknown stage {stage.name!r}{hint}; expected one of: {', '.join(known)}."
            problems.append(Problem(where, message))
            continue
        try:
            stage.params = get_stage(stage.name).validate_params(dict(stage.params))
        except ValidationError as exc:  # a stage may validate with pydantic (a ValueError too)
            prefix: Loc = (*where, stage.name)
            problems += [from_pydantic(err, BaseModel, prefix) for err in exc.errors()]
        except ValueError as exc:
            message = one_line(str(exc))
            named = [key for key in re.findall(r"'([^']+)'", message) if key in stage.params]
            param_loc = (*where, stage.name, named[0]) if named else where
            problems.append(Problem(param_loc, f"{message}."))
    return problems


def _check_onnx_lineages(suite: Suite) -> list[Problem]:
    """An ``.onnx`` model is measured as it is: no registered stage takes ONNX input yet."""
    problems = []
    for name in suite.variants:
        model = suite.root_model(name).model
        if model is None or Path(model).suffix.lower() != ".onnx" or not suite.variants[name].stages:
            continue
        problems.append(
            Problem(
                ("variants", name, "stages"),
                f"the variant starts from the ONNX model {Path(model).name!r}, and no stage takes "
                f"an ONNX model as input; remove the stages (an ONNX model is measured as it is), "
                f"or start from a .pt checkpoint or a model config.",
            )
        )
    return problems


def _check_defaults(suite: Suite) -> list[Problem]:
    """Training defaults must be arguments the task's adapter accepts."""
    from greenbench.adapters import adapter_class

    found = adapter_class(suite.task).check_train_args(suite.defaults)
    return [Problem(("defaults", key), f"{message}.") for key, message in found]


def kind_of(value: Any) -> str:
    names = {list: "list", str: "string", int: "number", float: "number", bool: "boolean"}
    return names.get(type(value), type(value).__name__)
