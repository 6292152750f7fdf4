"""Suite checks that span keys or touch the disk, run by ``load_suite`` after the schema passed.

Each check returns ``Problem``s (a key path and what was expected); ``load_suite`` turns them
into one ``SuiteError`` with file and line. Resolved paths are stored back absolute.

Two rules hold for every value of a suite, checked here before anything can act on it:

- no URL (``offline.is_url``: ``scheme:/...``, ``file://`` included): greenbench never downloads;
- nothing from outside greenbench is unpickled without the variant's ``allow_pickle: true``:
  ``model`` (.pt/.pth), ``weights`` (any suffix: a framework may load any as a checkpoint), and
  the training arguments the task names in ``pickle_args`` (detection: ``pretrained``,
  ``distill_model``) in its stage params. In ``defaults`` such an argument needs the opt-in of
  every variant whose stages use it (a stage that sets the key itself does not). The task's
  ``check_train_args`` refuses or reserves every other argument that would reach ``torch.load``.

The checks return what they found (``Checked``: problems, and the dataset they checked) and
write nothing into the suite but the resolved (absolute) paths.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from greenbench.errors import GreenbenchError
from greenbench.offline import is_url
from greenbench.pipeline import get_stage, stage_names
from greenbench.suite.artifact_checks import check_artifacts
from greenbench.suite.problems import Loc, Problem, from_pydantic, one_line, suggest
from greenbench.suite.schema import CarbonSettings, Suite, VariantSpec
from greenbench.suite.stage_files import read_stage_files
from greenbench.tasks import task_class
from greenbench.tasks.base import DatasetRef, Task


@dataclass
class Checked:
    """What the checks found: the problems, and the dataset they checked (walking it is work a
    run reuses instead of repeating)."""

    problems: list[Problem] = field(default_factory=list)
    data: DatasetRef | None = None


def check(suite: Suite, base: Path) -> Checked:
    """Checks that span keys or touch the disk; resolved paths are stored back absolute.

    A key whose value is a URL gets that problem alone: the checks that would look for it on
    disk, or call it a pickle, are skipped or their problems dropped.
    """
    task = task_class(suite.task)
    checked = Checked()
    url_problems, urls = _check_urls(suite)
    graph_problems = _check_graph(suite, task)
    problems = list(graph_problems)
    for name, spec in suite.variants.items():
        loc: Loc = ("variants", name)
        if spec.model is not None and (*loc, "model") not in urls:
            spec.model, problem = _resolve_model(task, spec.model, base, (*loc, "model"))
            problems += [problem] if problem else []
        if spec.weights is not None and (*loc, "weights") not in urls:
            spec.weights, problem = _resolve_file(
                spec.weights, base, (*loc, "weights"), "weights", _WEIGHTS_FIX, hub=True
            )
            problems += [problem] if problem else []
        problems += read_stage_files(spec, base, loc, find_local)
        problems += _check_stages(task, spec, loc)
    if suite.dataset.path is not None and ("dataset", "path") not in urls:
        where = ("dataset", "path")
        suite.dataset.path, problem = _resolve_file(
            suite.dataset.path, base, where, "dataset", _dataset_fix(task, suite), folder_ok=True
        )
        problems += [problem] if problem else []
        if problem is None:
            found, checked.data = _check_dataset(task, suite, Path(suite.dataset.path), where)
            problems += found
    if not graph_problems:
        problems += _check_variants_read(suite)
    # stage input/output kinds and runtimes (lineages are walkable only in a sound graph)
    problems += check_artifacts(suite, graph_ok=not graph_problems)
    problems += _check_defaults(task, suite)
    problems += _check_pickle_args(task, suite, base, urls)  # after _check_stages: params are cleaned
    problems += _check_carbon(suite.measure.carbon)
    checked.problems = url_problems + [p for p in problems if not any(p.loc[: len(u)] == u for u in urls)]
    return checked


_URL = (
    "{value!r} is a URL; greenbench never downloads anything (weights, data, configs). Fetch the "
    "file yourself and write its local path here."
)


def _check_urls(suite: Suite) -> tuple[list[Problem], set[Loc]]:
    """A problem per URL-valued string anywhere in the suite, and the keys holding them (a
    training argument's key for a URL inside its list value)."""
    problems: list[Problem] = []
    owners: set[Loc] = set()
    seen: set[int] = set()

    def visit(value: Any, loc: Loc, depth: int) -> None:
        stack = [(value, loc)]  # not recursive: a deeply nested value is no RecursionError
        while stack:
            value, loc = stack.pop()
            if isinstance(value, str):
                if is_url(value):
                    problems.append(Problem(loc, _URL.format(value=value)))
                    owners.add(loc[:depth])
            elif isinstance(value, (dict, list, tuple)) and id(value) not in seen:
                seen.add(id(value))  # a YAML alias is one object: visited once, however often used
                items = value.items() if isinstance(value, dict) else enumerate(value)
                stack += [(item, (*loc, key)) for key, item in reversed(list(items))]

    visit(suite.name, ("name",), 1)
    visit(suite.baseline, ("baseline",), 1)
    visit(suite.dataset.path, ("dataset", "path"), 2)
    visit(suite.defaults, ("defaults",), 2)
    visit(suite.measure.model_dump(), ("measure",), 99)
    for name, spec in suite.variants.items():
        loc: Loc = ("variants", name)
        for key in ("model", "weights", "from", "description"):
            visit(getattr(spec, "from_" if key == "from" else key), (*loc, key), 3)
        for i, stage in enumerate(spec.stages):
            visit(stage.params, (*loc, "stages", i, stage.name), 6)
    return problems, owners


def _check_dataset(
    task: type[Task], suite: Suite, path: Path, loc: Loc
) -> tuple[list[Problem], DatasetRef | None]:
    """The dataset file and every sample it names (the task's ``check_dataset``): run would
    stop there anyway, after the idle baseline. The checked ref is returned for the run."""
    try:
        ref = task.check_dataset(path)
    except GreenbenchError as e:
        return [Problem(loc, str(e))], None
    expected = suite.dataset.names
    found = ref.names
    if expected is not None and found is not None and found != list(expected):
        return [
            Problem(
                ("dataset", "names"),
                f"the suite expects the classes {', '.join(expected)[:300]} but {path} names "
                f"{', '.join(found)[:300]}; point dataset.path (or --data) at the right dataset, or "
                "correct 'names'",
            )
        ], ref
    return [], ref


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
_NEITHER = "sets neither 'model' nor 'from'; expected one, e.g. 'model: model.yaml' or 'from: base'."
_PICKLE = (
    "{value!r} is a torch checkpoint, a Python pickle: loading it runs code from the file. "
    "If you trust it, add 'allow_pickle: true' to this variant; otherwise start from a model config "
    "(.yaml)."
)
_WEIGHTS_FIX = (
    "greenbench never downloads weights. Put the file at that path, or a file torchvision "
    "names (e.g. resnet18-f37072fd.pth) in torch's checkpoint cache, $TORCH_HOME/hub/checkpoints."
)
_WEIGHTS_WITHOUT_MODEL = "'weights' needs 'model'; a 'from' variant starts from its parent's result."


def _check_graph(suite: Suite, task: type[Task]) -> list[Problem]:
    """model/from/weights exclusivity, known parents, no cycles, a known baseline; model and
    weights files the task unpickles need ``allow_pickle`` (a task that loads them with
    ``weights_only`` runs no code from them)."""
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
            # case-insensitive: 'model.PT' is as much a pickle as 'model.pt'; a framework may
            # load 'weights' as a checkpoint whatever the suffix
            suffix = Path(value).suffix.lower() if value is not None else ""
            pickled = value is not None and (key == "weights" or suffix in (".pt", ".pth"))
            pickled = pickled and not task.weights_only
            if pickled and not spec.allow_pickle:
                problems.append(Problem((*loc, key), _PICKLE.format(value=value)))
        if spec.from_ is not None and spec.from_ not in variants:
            message = f"unknown variant {spec.from_!r}{suggest(spec.from_, variants)}; {known}"
            problems.append(Problem((*loc, "from"), message))
    problems += _cycles(variants)
    if suite.baseline not in variants:
        message = f"unknown variant {suite.baseline!r}{suggest(suite.baseline, variants)}; {known}"
        problems.append(Problem(("baseline",), message))
    groups = {spec.table for spec in variants.values() if spec.table is not None}
    for table in suite.tables:
        if table not in groups:
            named = f"the variants' tables are {', '.join(sorted(groups))}" if groups else "none is"
            message = (
                f"no variant is in table {table!r}{suggest(table, groups)}; {named}. Name a table that "
                f"a variant's 'table:' key uses."
            )
            problems.append(Problem(("tables", table), message))
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


def _expand(value: str) -> Path:
    """``value`` with ``~`` expanded where a home is known (``~nobody/x`` stays as written)."""
    try:
        return Path(value).expanduser()
    except RuntimeError:
        return Path(value)


def _is_file(path: Path, folder_ok: bool = False) -> bool:
    try:
        return path.is_file() or (folder_ok and path.is_dir())
    except (OSError, ValueError):  # a name too long for the filesystem, a NUL byte
        return False


def torch_hub_checkpoints() -> Path:
    """Where torch keeps the checkpoints it downloads (``$TORCH_HOME/hub/checkpoints``, by
    ``torch.hub.get_dir``'s rule), worked out without importing torch."""
    home = os.environ.get("TORCH_HOME") or str(Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache") / "torch")
    return _expand(home) / "hub" / "checkpoints"


def find_local(value: str, base: Path, folder_ok: bool = False, hub: bool = False) -> Path | None:
    """``value`` as a file (or, ``folder_ok``, a folder): absolute, or relative to the suite
    folder, then the folder above; ``hub``: a bare file name also in torch's checkpoint cache
    (``torch_hub_checkpoints``), where torchvision keeps its pretrained weights."""
    path = _expand(value)
    candidates = [path] if path.is_absolute() else [base / path, base.parent / path]
    if hub and not path.is_absolute() and path.name == value:
        candidates.append(torch_hub_checkpoints() / value)
    return next((c.resolve() for c in candidates if _is_file(c, folder_ok)), None)


def _shown_path(path: Path) -> str:
    """``path`` relative to the working folder where it lies below it (as a user would type it)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _dataset_fix(task: type[Task], suite: Suite) -> str:
    """What to do about a missing dataset: where it goes, in which format, and the smoke run."""
    names = suite.dataset.names
    if not names:
        return (
            f"expected {task.dataset_format} relative to the suite's folder (or pass it with --data "
            f"PATH), or 'synthetic: {{}}'. To try the suite without it: greenbench run "
            f"{_shown_path(suite.path)} --smoke."
        )
    shown = ", ".join(names[:20]) + (f", … ({len(names)} in all)" if len(names) > 20 else "")
    return (
        f"put the dataset there as {task.dataset_format}, with "
        f"the {len(names)} classes in this order: {shown}; or "
        f"pass its file with --data PATH. To try the suite without it: greenbench run "
        f"{_shown_path(suite.path)} --smoke (synthetic data with these class names, tiny epochs)."
    )


def _resolve_file(
    value: str,
    base: Path,
    loc: Loc,
    what: str,
    fix: str | None = None,
    folder_ok: bool = False,
    hub: bool = False,
) -> tuple[str, Problem | None]:
    """A weights file or dataset that must exist (``folder_ok``: a dataset folder will do;
    ``hub``: see ``find_local``); returns its absolute path or a problem."""
    found = find_local(value, base, folder_ok, hub)
    if found is not None:
        return str(found), None
    target = _expand(value)
    target = target if target.is_absolute() else base / target
    if fix is None:
        fix = "greenbench never downloads weights. Put the file at that path."
    shown = value if len(value) <= 200 else value[:200] + "..."
    looked = str(target)[:300]
    if hub and not _expand(value).is_absolute() and Path(value).name == value:
        looked += f" and {str(torch_hub_checkpoints() / value)[:300]}"
    return value, Problem(loc, f"{what} file {shown!r} not found (looked for {looked}); {fix}")


def _resolve_model(task: type[Task], value: str, base: Path, loc: Loc) -> tuple[str, Problem | None]:
    """A local model file of the task (made absolute) or one of its built-in model names (kept
    as is); a local file wins over a built-in of the same name."""
    suffix = Path(value).suffix.lower()
    if suffix in (".pt", ".pth"):
        return _resolve_file(value, base, loc, "weights")
    if suffix == ".onnx":
        return _resolve_file(value, base, loc, "ONNX model")
    bare = "/" not in value and "\\" not in value
    found = find_local(value, base) if suffix in task.model_suffixes else None
    if found is not None:
        return str(found), None
    if bare and task.is_builtin_model(value):
        return value, None
    builtin = task.builtin_models()
    example = f" such as {builtin[0]}" if builtin else ""
    if suffix not in task.model_suffixes:
        message = (
            f"expected a model file of task {task.name!r} ({', '.join(task.model_suffixes)}) or one of "
            f"its built-in models{example}, got {value!r}{suggest(value, builtin) if bare else ''}."
        )
        return value, Problem(loc, message)
    message = f"model config {value!r} not found: no file {base / value} or {base.parent / value}"
    if bare:
        message += f", and not a built-in model of task {task.name!r}{example}{suggest(value, builtin)}"
    return value, Problem(loc, message + ". Fix the name or create the file.")


def _check_stages(task: type[Task], spec: VariantSpec, loc: Loc) -> list[Problem]:
    """Stage names are registered (for any task or the suite's own); each stage's own validator
    cleans its params."""
    known = stage_names(task.name)
    problems = []
    for i, stage in enumerate(spec.stages):
        where: Loc = (*loc, "stages", i)
        if stage.name not in known:
            hint = suggest(stage.name, known)
            message = f"unknown stage {stage.name!r}{hint}; expected one of: {', '.join(known)}."
            problems.append(Problem(where, message))
            continue
        try:
            cls = get_stage(stage.name, task.name)
            stage.params = cls.validate_params(dict(stage.params), task)
            stage.reading(
                {p: stage.params[p] for p in cls.variant_params if isinstance(stage.params.get(p), str)}
            )
        except ValidationError as exc:  # a stage may validate with pydantic (a ValueError too)
            prefix: Loc = (*where, stage.name)
            problems += [from_pydantic(err, BaseModel, prefix) for err in exc.errors()]
        except ValueError as exc:
            message = one_line(str(exc))
            named = [key for key in re.findall(r"'([^']+)'", message) if key in stage.params]
            param_loc = (*where, stage.name, named[0]) if named else where
            problems.append(Problem(param_loc, f"{message}."))
    return problems


def _check_variants_read(suite: Suite) -> list[Problem]:
    """A variant a stage reads (``Stage.variant_params``: a teacher) exists, has a trained model
    (a stage in its lineage), and does not read, through any chain, the variant reading it."""
    problems = []
    variants = suite.variants
    for name, spec in variants.items():
        for i, stage in enumerate(spec.stages):
            for param, other in stage.reads.items():
                where: Loc = ("variants", name, "stages", i, stage.name, param)
                if other not in variants:
                    known = ", ".join(variants)
                    problems.append(
                        Problem(
                            where,
                            f"unknown variant {other!r}{suggest(other, variants)}; expected one of: {known}.",
                        )
                    )
                elif other == name or name in suite.lineage(other) or name in suite.variants_read(other):
                    problems.append(
                        Problem(
                            where,
                            f"variant {other!r} depends on {name!r} itself; a stage cannot read a model made "
                            "from its own result.",
                        )
                    )
                elif not any(variants[v].stages for v in suite.lineage(other)):
                    problems.append(
                        Problem(
                            where,
                            f"variant {other!r} has no stage, so no trained model to read; give it a "
                            "training stage.",
                        )
                    )
    return problems


_PICKLE_ARG = (
    "{value!r} would be loaded by the task's framework with torch.load: a Python pickle, and loading "
    "it runs code from the file. {fix}"
)


def _check_pickle_args(task: type[Task], suite: Suite, base: Path, urls: set[Loc]) -> list[Problem]:
    """The task's ``pickle_args`` paths: the opt-in of every variant they reach, and a file on
    disk (stored back absolute: a framework may download a missing one)."""

    def pickle_arg(_key: str, value: object) -> bool:
        return isinstance(value, str)  # a path (``true``/``false`` toggle a default, name no file)

    problems = []
    for key in task.pickle_args:
        where: Loc = ("defaults", key)
        if pickle_arg(key, suite.defaults.get(key)) and where not in urls:
            users = [n for n, spec in suite.variants.items() if any(key not in s.params for s in spec.stages)]
            lacking = [n for n in users if not suite.variants[n].allow_pickle]
            problems += _opt_in(suite.defaults, key, where, lacking, base)
    for name, spec in suite.variants.items():
        for i, stage in enumerate(spec.stages):
            for key in task.pickle_args:
                where = ("variants", name, "stages", i, stage.name, key)
                if pickle_arg(key, stage.params.get(key)) and where not in urls:
                    lacking = [] if spec.allow_pickle else [name]
                    problems += _opt_in(stage.params, key, where, lacking, base)
    return problems


def _opt_in(args: dict[str, Any], key: str, where: Loc, lacking: list[str], base: Path) -> list[Problem]:
    """A problem if a variant in ``lacking`` would unpickle ``args[key]``; else the file, resolved."""
    if lacking:
        return [Problem(where, _PICKLE_ARG.format(value=args[key], fix=_pickle_fix(where, key, lacking)))]
    args[key], problem = _resolve_file(args[key], base, where, key)
    return [problem] if problem else []


def _pickle_fix(loc: Loc, key: str, lacking: list[str]) -> str:
    if loc[0] != "defaults":
        variant = lacking[0]
        return (
            f"If you trust it, add 'allow_pickle: true' to the variant {variant!r}; otherwise remove {key!r}."
        )
    return (
        f"In 'defaults' it reaches the training stages of {', '.join(map(repr, lacking))}, which do not set "
        f"'allow_pickle: true'. If you trust the file, add 'allow_pickle: true' to each of them (a default "
        f"needs the opt-in of every variant whose stages use it) or move {key!r} into the stage params of "
        f"the variants that allow pickles; otherwise remove it."
    )


def _check_defaults(task: type[Task], suite: Suite) -> list[Problem]:
    """Training defaults must be arguments the task accepts."""
    found = task.check_train_args(suite.defaults)
    return [Problem(("defaults", key), f"{message}.") for key, message in found]


def kind_of(value: Any) -> str:
    names = {list: "list", str: "string", int: "number", float: "number", bool: "boolean"}
    return names.get(type(value), type(value).__name__)
