"""Suite manifests: the pydantic schema, YAML loading with ``file:line`` errors, the variant DAG.

A suite is data only: dataset, training defaults, measurement settings and named variants.
``load_suite`` validates every key and raises one ``SuiteError`` that lists up to five problems,
one line each, as ``file:line: dotted.key: what was expected``.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from greenbench.adapters.ultra_args import (
    RESERVED,
    builtin_model_cfg,
    builtin_model_names,
    train_arg_names,
)
from greenbench.errors import GreenbenchError, SuiteError
from greenbench.manifest import (
    Loc,
    Problem,
    allowed_keys,
    fail,
    from_pydantic,
    one_line,
    read_manifest,
    show,
    suggest,
    unknown_key,
)
from greenbench.pipeline import get_stage, stage_names

NAME_PATTERN = r"^[A-Za-z0-9_.-]+$"
_LOADER_FIELDS = ("path", "source_hash")  # Suite fields set by load_suite, never by the YAML


def _check_name(value: str) -> str:
    if not re.fullmatch(NAME_PATTERN, value):
        raise fail(f"invalid name {value!r}; use only letters, digits, '_', '.' and '-'")
    return value


Name = Annotated[str, AfterValidator(_check_name)]


class _Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SyntheticData(_Manifest):
    """A generated toy detection dataset (coloured shapes), split 8:1:1 into train/val/test."""

    classes: int = Field(default=3, ge=1, le=20)
    images: int = Field(default=60, ge=10, description="total images before the split")
    imgsz: int = Field(default=128, ge=32, le=1024, description="image side, pixels")
    seed: int = Field(0, ge=0)


class DatasetSpec(_Manifest):
    """Exactly one of ``path`` (a YOLO data.yaml, stored absolute) or ``synthetic``."""

    path: str | None = None
    synthetic: SyntheticData | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> DatasetSpec:
        if (self.path is None) == (self.synthetic is None):
            raise fail(
                "expected exactly one of 'path' (a YOLO data.yaml) or 'synthetic' "
                "(e.g. 'synthetic: {classes: 3, images: 60}')"
            )
        return self


class LatencySettings(_Manifest):
    """Inference latency: warm-up runs, then repeats until both minimums are met (seconds)."""

    warmup: int = Field(default=5, ge=0)
    min_repeats: int = Field(default=20, ge=3)
    min_time_s: float = Field(default=1.0, gt=0)
    max_time_s: float = Field(default=60.0, gt=0, validate_default=True)
    batch: int = Field(default=1, ge=1)
    imgsz: int | None = Field(default=None, ge=1, description="None = the training imgsz")
    threads: int = Field(default=1, ge=1)

    @field_validator("max_time_s")
    @classmethod
    def _not_below_min(cls, value: float, info: ValidationInfo) -> float:
        low = info.data.get("min_time_s")
        if low is not None and value < low:
            raise fail(f"expected max_time_s >= min_time_s ({low}), got {value}")
        return value


class EnergySettings(_Manifest):
    """Energy meters and windows; ``watts_per_core`` feeds the ``estimate`` meter (W)."""

    meters: list[Literal["auto", "rapl", "nvml", "estimate"]] = Field(default=["auto"], min_length=1)
    idle_s: float = Field(default=3.0, ge=0)
    skip_idle: bool = False
    min_window_s: float = Field(default=1.0, gt=0)
    windows: int = Field(default=3, ge=1)
    watts_per_core: float = Field(default=4.0, gt=0)
    gpus: list[Annotated[int, Field(ge=0)]] | None = None
    codecarbon: bool = False


class CarbonSettings(_Manifest):
    """Grid carbon intensity (gCO2/kWh) by country/region, or given directly; times PUE."""

    country: str = "DEU"
    region: str | None = None
    intensity_g_per_kwh: float | None = Field(default=None, gt=0)
    pue: float = Field(default=1.0, ge=1.0)

    @field_validator("country")
    @classmethod
    def _alpha3(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Z]{3}", value):
            hint = f" (did you mean {value.upper()!r}?)" if re.fullmatch(r"[a-z]{3}", value) else ""
            raise fail(
                f"expected an ISO 3166-1 alpha-3 country code (three upper-case letters such as "
                f"DEU, FRA, USA), got {value!r}{hint}"
            )
        return value


class MeasureSettings(_Manifest):
    """Where and how each variant is measured."""

    device: str = "cpu"
    latency: LatencySettings = Field(default_factory=LatencySettings)
    energy: EnergySettings = Field(default_factory=EnergySettings)
    carbon: CarbonSettings = Field(default_factory=CarbonSettings)

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if not re.fullmatch(r"cpu|cuda:\d+", value):
            raise fail(f"expected 'cpu' or 'cuda:N' (e.g. 'cuda:0'), got {value!r}")
        return value


class StageSpec(_Manifest):
    """One pipeline step; YAML ``- train`` or ``- train: {epochs: 5}`` becomes name + params."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _normalise(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"name": data}
        if isinstance(data, dict) and "name" in data:
            return data
        if isinstance(data, dict) and len(data) == 1:
            ((name, params),) = data.items()
            if params is None:
                params = {}
            if not isinstance(params, dict):
                raise fail(
                    f"the parameters of stage {name!r} must be a mapping, "
                    f"e.g. '- {name}: {{epochs: 5}}', got {show(params)}"
                )
            return {"name": name, "params": params}
        raise fail(
            "expected a stage name ('- train') or a one-key mapping ('- train: {epochs: 5}'), "
            f"got {show(data)}"
        )


class VariantSpec(_Manifest):
    """A model variant: a root (``model``, optional ``weights``) or ``from`` another variant."""

    model: str | None = None
    weights: str | None = None
    from_: str | None = Field(default=None, alias="from")
    stages: list[StageSpec] = Field(default_factory=list)
    description: str | None = None
    allow_pickle: bool = Field(
        default=False,
        description="load a .pt from outside greenbench: ultralytics checkpoints are pickles, "
        "and unpickling runs code from the file, so it needs this explicit opt-in",
    )


class Suite(_Manifest):
    """A validated suite. ``path`` (absolute) and ``source_hash`` are set by ``load_suite``."""

    name: Name
    task: str
    dataset: DatasetSpec
    defaults: dict[str, Any] = Field(default_factory=dict)
    measure: MeasureSettings = Field(default_factory=MeasureSettings)
    baseline: str
    variants: dict[Name, VariantSpec]
    path: Path = Path()
    source_hash: str = ""
    _digests: dict[str, str] = PrivateAttr(default_factory=dict)

    @field_validator("task", mode="before")
    @classmethod
    def _task(cls, value: Any) -> str:
        if value == "detect":
            return value
        planned = "task 'classify' is planned but not yet supported"
        if value == "classify":
            raise fail(f"{planned}; expected 'detect'")
        raise fail(f"expected 'detect' ({planned}), got {show(value)}")

    @field_validator("variants")
    @classmethod
    def _not_empty(cls, value: dict[str, VariantSpec]) -> dict[str, VariantSpec]:
        if not value:
            raise fail("expected at least one variant, e.g. 'base: {model: yolov8n.yaml}'")
        return value

    def order(self) -> list[str]:
        """Variant names, parents before children, ties in file order."""
        index = {name: i for i, name in enumerate(self.variants)}
        children: dict[str, list[str]] = {name: [] for name in self.variants}
        for name, spec in self.variants.items():
            if spec.from_ is not None:
                children[spec.from_].append(name)
        ready = [(i, n) for n, i in index.items() if self.variants[n].from_ is None]
        heapq.heapify(ready)
        result: list[str] = []
        while ready:
            _, name = heapq.heappop(ready)
            result.append(name)
            for child in children[name]:
                heapq.heappush(ready, (index[child], child))
        return result

    def lineage(self, name: str) -> list[str]:
        """Names from the root variant down to ``name`` along ``from``."""
        chain = [name]
        while (parent := self.variants[chain[-1]].from_) is not None:
            chain.append(parent)
        return chain[::-1]

    def root_model(self, name: str) -> VariantSpec:
        """The ancestor of ``name`` (or ``name`` itself) that has ``model``."""
        return self.variants[self.lineage(name)[0]]

    def variant_config(self, name: str) -> dict[str, Any]:
        """Everything that determines the variant's result, as JSON-able data.

        Local files (model configs, weights, data.yaml) enter by file name and sha256 of their
        content, so editing a file changes the config and moving the checkout does not.
        """
        lineage = []
        for step in self.lineage(name):
            spec = self.variants[step]
            lineage.append(
                {
                    "model": self._file_ref(spec.model),
                    "weights": self._file_ref(spec.weights),
                    "stages": [{"name": s.name, "params": s.params} for s in spec.stages],
                }
            )
        dataset = self.dataset.model_dump(mode="json")
        dataset["path"] = self._file_ref(self.dataset.path)
        return {
            "task": self.task,
            "dataset": dataset,
            "defaults": self.defaults,
            "measure": self.measure.model_dump(mode="json"),
            "lineage": lineage,
        }

    def variant_hash(self, name: str) -> str:
        """First 16 hex digits of the sha256 of ``variant_config(name)`` as sorted JSON."""
        text = json.dumps(self.variant_config(name), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def _file_ref(self, value: str | None) -> Any:
        path = Path(value) if value else None
        if path is None or not path.is_absolute() or not path.is_file():
            return value
        key = str(path)
        if key not in self._digests:
            self._digests[key] = _sha256_file(path)
        return {"file": path.name, "sha256": self._digests[key]}


def load_suite(path: str | Path) -> Suite:
    """Read, validate and resolve a suite manifest; any problem raises one ``SuiteError``."""
    raw, data, report, problems = read_manifest(path)
    if not isinstance(data, dict):
        raise SuiteError(
            f"{report.shown}:1: the top level is a {_kind(data)}; expected a mapping with the "
            "keys name, task, dataset, baseline and variants."
        )
    allowed = allowed_keys(Suite, (), _LOADER_FIELDS)
    problems += [Problem((key,), unknown_key(key, allowed)) for key in _LOADER_FIELDS if key in data]
    file = Path(path).resolve()
    fields = {"path": file, "source_hash": hashlib.sha256(raw).hexdigest()}
    try:
        suite = Suite.model_validate({**data, **fields})
    except ValidationError as exc:
        problems += [from_pydantic(err, Suite, hidden=_LOADER_FIELDS) for err in exc.errors()]
        raise report.error(problems) from None
    problems += _check(suite, file.parent)
    if problems:
        raise report.error(problems)
    return suite


# --- semantic checks (after the schema passed) ------------------------------------------------


def _check(suite: Suite, base: Path) -> list[Problem]:
    """Checks that span keys or touch the disk; resolved paths are stored back absolute."""
    problems = _check_graph(suite)
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
    problems += _check_defaults(suite.defaults)
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
            if value is not None and value.endswith(".pt") and not spec.allow_pickle:
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
    if suffix == ".pt":
        return _resolve_file(value, base, loc, "weights")
    if suffix not in (".yaml", ".yml"):
        message = f"expected a model config (.yaml/.yml) or weights (.pt), got {value!r}."
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


#: where to set what greenbench reserves for itself
_RESERVED_HINTS = {
    "data": " (set 'dataset')",
    "model": " (set the variant's 'model')",
    "device": " (set 'measure.device')",
    "task": " (set the suite's 'task')",
    "resume": " (the runner resumes by itself)",
}


_TRAIN_ARGS = "expected an ultralytics train argument (see ultralytics/cfg/default.yaml)."


def _check_defaults(defaults: dict[str, Any]) -> list[Problem]:
    """Training defaults must be ultralytics train arguments greenbench does not set itself."""
    allowed = sorted(train_arg_names() - RESERVED)
    problems = []
    for key in defaults:
        if key in RESERVED:
            hint = _RESERVED_HINTS.get(key, "")
            message = f"greenbench sets {key!r} itself{hint}; remove it from defaults."
        elif key not in allowed:
            hint = suggest(key, allowed)
            message = f"unknown training argument {key!r}{hint}; {_TRAIN_ARGS}"
        else:
            continue
        problems.append(Problem(("defaults", key), message))
    return problems


def _kind(value: Any) -> str:
    names = {list: "list", str: "string", int: "number", float: "number", bool: "boolean"}
    return names.get(type(value), type(value).__name__)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
