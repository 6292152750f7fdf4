"""The suite schema: pydantic models of a suite manifest, and the variant DAG.

A suite is data only: dataset, training defaults, measurement settings and named variants.
Reading one (YAML with ``file:line`` errors, overrides, the checks that span keys or touch the
disk) is ``greenbench.suite.reader.load_suite``.
"""

from __future__ import annotations

import heapq
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

from greenbench.suite.identity import config_key, file_sha256
from greenbench.suite.problems import fail, show

NAME_PATTERN = r"^[A-Za-z0-9_.-]+$"
MAX_NAME = 100  # characters of a suite, variant or stage name
MAX_PATH = 4096  # characters of a file path (Linux PATH_MAX)
MAX_TEXT = 10_000  # characters of a description
MAX_INPUT_BYTES = 4 * 2**30  # one latency input batch (float32); more is a typo, not a benchmark
MAX_SYNTHETIC_BYTES = 8 * 2**30  # raw pixels of a synthetic dataset
MAX_SYNTHETIC_CLASSES = 96  # datasets.MAX_CLASSES (8 shapes × 12 hue bands); not imported: numpy, PIL
MAX_ARGS = 200  # training arguments in defaults or one stage (the detection task's framework has about 120)
MAX_VARIANTS = 256  # variants of one suite (the cycle check is quadratic in a 'from' chain)
LOADER_FIELDS = ("path", "source_hash")  # Suite fields set by load_suite, never by the YAML
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_TEXT = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # newlines and tabs are fine in a text


def _check_name(value: str) -> str:
    if len(value) > MAX_NAME:
        raise fail(f"a name of {len(value)} characters {show(value)}; the limit is {MAX_NAME}: shorten it")
    if value in (".", ".."):
        raise fail(f"{value!r} is not a name (it means a folder); use letters, digits, '_', '.' and '-'")
    if not re.fullmatch(NAME_PATTERN, value):
        raise fail(f"invalid name {show(value)}; use only letters, digits, '_', '.' and '-'")
    return value


def _check_path(value: str) -> str:
    if len(value) > MAX_PATH:
        raise fail(f"a path of {len(value)} characters {show(value)}; the limit is {MAX_PATH}")
    if _CONTROL.search(value):
        raise fail(f"the path {show(value)} holds a control character (such as NUL or a newline); remove it")
    if value.startswith("~"):
        try:
            Path(value).expanduser()
        except RuntimeError:  # '~someone/x' for a user this machine does not know
            user = value[1:].split("/", 1)[0]
            raise fail(
                f"the path {show(value)} starts with '~{user}', a user unknown here; give the full path"
            ) from None
    return value


def _check_text(value: str) -> str:
    if len(value) > MAX_TEXT:
        raise fail(f"a text of {len(value)} characters; the limit is {MAX_TEXT}: shorten it")
    if _CONTROL_TEXT.search(value):
        raise fail(f"the text {show(value)} holds a control character (such as a terminal escape); remove it")
    return value


def _check_word(value: str) -> str:
    if len(value) > MAX_NAME or _CONTROL.search(value):
        raise fail(f"expected a short name without control characters, got {show(value)}")
    return value


Name = Annotated[str, AfterValidator(_check_name)]
FilePath = Annotated[str, AfterValidator(_check_path)]
Text = Annotated[str, AfterValidator(_check_text)]
Word = Annotated[str, AfterValidator(_check_word)]  # a reference to a name, checked elsewhere


class _Manifest(BaseModel):
    # strict: YAML 'true' is not the number 1, '3' is not a number, 12 is not a string
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class SyntheticData(_Manifest):
    """A generated dataset the task makes (detection: coloured shapes), split by the task."""

    classes: int = Field(default=3, ge=1, le=MAX_SYNTHETIC_CLASSES)
    images: int = Field(default=60, ge=10, le=100_000, description="total images before the split")
    imgsz: int = Field(default=128, ge=32, le=1024, description="image side, pixels")
    seed: int = Field(0, ge=0, le=2**32 - 1)
    names: list[Word] | None = Field(
        default=None,
        max_length=MAX_SYNTHETIC_CLASSES,
        description="class names written to data.yaml, one per class",
    )

    @model_validator(mode="after")
    def _bounded(self) -> SyntheticData:
        names = self.names
        if names is not None and not len(names) == len(set(names)) == self.classes:
            raise fail(f"'names' must list {self.classes} distinct class names (one per class)")
        size = self.images * self.imgsz**2 * 3
        if size > MAX_SYNTHETIC_BYTES:
            raise fail(
                f"{self.images} images of {self.imgsz}² px are {size / 2**30:.0f} GiB of pixels; the limit "
                f"is {MAX_SYNTHETIC_BYTES // 2**30} GiB: lower images or imgsz"
            )
        return self


class DatasetSpec(_Manifest):
    """Exactly one of ``path`` (the task's dataset file, e.g. a YOLO data.yaml for detection;
    stored absolute) or ``synthetic``.

    ``names``: the class names the data must have, in order. Data with other names is an
    error (a model trained on the wrong dataset is not a result), and ``greenbench run --smoke``
    generates its synthetic stand-in with these names.
    """

    path: FilePath | None = None
    synthetic: SyntheticData | None = None
    names: list[Word] | None = Field(default=None, min_length=1, max_length=1000)

    @model_validator(mode="after")
    def _exactly_one(self) -> DatasetSpec:
        if (self.path is None) == (self.synthetic is None):
            raise fail(
                "expected exactly one of 'path' (the dataset file of the suite's task) or 'synthetic' "
                "(e.g. 'synthetic: {classes: 3, images: 60}')"
            )
        if self.names is not None and len(set(self.names)) != len(self.names):
            raise fail("'names' lists a class name twice; each class needs its own name")
        synth = self.synthetic
        if self.names is not None and synth is not None and len(self.names) != synth.classes:
            raise fail(f"'names' lists {len(self.names)} classes but 'synthetic.classes' is {synth.classes}")
        return self


class LatencySettings(_Manifest):
    """What one timed call is: ``batch`` images of ``imgsz``² on ``threads`` intra-op threads,
    after ``warmup`` untimed calls per model and process. How long and how often: ``protocol``."""

    warmup: int = Field(default=5, ge=0, le=10_000)
    batch: int = Field(default=1, ge=1, le=1024)
    imgsz: int | None = Field(default=None, ge=32, le=4096, description="None = the training imgsz")
    threads: int = Field(default=1, ge=1, le=1024)
    ort_spinning: bool = Field(
        default=False,
        description="onnxruntime intra-op threads spin while waiting: faster, but burns energy",
    )
    scope: Literal["model", "total", "both"] = Field(
        default="model",
        description="model: one forward pass on a ready tensor; total: per image from its file, "
        "decode, preprocessing, the model and postprocessing (top-k, NMS), as an application sees it; "
        "both: latency_ms as model and latency_total_ms as total, interleaved in the same rounds",
    )

    @field_validator("imgsz")
    @classmethod
    def _stride_multiple(cls, value: int | None) -> int | None:
        if value is not None and value % 32:
            raise fail(f"expected a multiple of 32 (the models' largest stride), got {value}")
        return value

    @model_validator(mode="after")
    def _bounded(self) -> LatencySettings:
        if self.scope != "model" and self.batch != 1:
            raise fail(
                f"scope '{self.scope}' times one image at a time from its file: batch must be 1, got "
                f"{self.batch}"
            )
        size = self.batch * 3 * (self.imgsz or 0) ** 2 * 4
        if size > MAX_INPUT_BYTES:
            raise fail(
                f"a batch of {self.batch} images of {self.imgsz}² px is {size / 2**30:.0f} GiB as float32; "
                f"the limit is {MAX_INPUT_BYTES // 2**30} GiB: lower batch or imgsz"
            )
        return self


class ProtocolSettings(_Manifest):
    """The interleaved measurement: every measured variant is timed in alternating blocks with
    the baseline, in ``rounds`` fresh processes of ``blocks`` blocks per model; a block lasts at
    least ``measure.energy.min_window_s`` and ``min_calls`` calls. The order of the models in
    each cycle follows one Williams design over all ``rounds × blocks`` cycles; ``blocks`` is
    padded up so that they make whole periods of it (the number of models, twice it for an
    odd number: 5 rounds × 8 blocks balances 2, 4, 5 and 8 models as they are; 3 models get
    12 blocks). Every interval is made from one figure per round, so ``rounds`` is the sample
    size of every CI: under 2 there is none. ``group: all`` measures every variant of a run in
    the same processes; ``pairs``: each variant with the baseline in ``rounds`` processes of
    their own (tighter pairs for large suites, at twice the baseline's time)."""

    rounds: int = Field(default=5, ge=1, le=100)
    blocks: int = Field(default=8, ge=2, le=1000)
    min_calls: int = Field(default=3, ge=1, le=10_000)
    group: Literal["all", "pairs"] = "all"


class EnergySettings(_Manifest):
    """Energy meters and windows; ``watts_per_core`` feeds the ``estimate`` meter (W)."""

    meters: list[Literal["auto", "rapl", "nvml", "estimate"]] = Field(
        default=["auto"], min_length=1, max_length=4
    )
    idle_s: float = Field(default=3.0, ge=0, le=3600)
    skip_idle: bool = False
    min_window_s: float = Field(
        default=0.5, gt=0, le=600, description="shortest energy window = shortest block, seconds"
    )
    watts_per_core: float = Field(default=4.0, gt=0, le=1000)
    gpus: list[Annotated[int, Field(ge=0, le=63)]] | None = Field(default=None, max_length=64)
    codecarbon: bool = False


class CarbonSettings(_Manifest):
    """Grid carbon intensity (gCO2/kWh) by country/region, or given directly; times PUE."""

    country: str = "DEU"
    region: Word | None = None
    intensity_g_per_kwh: float | None = Field(default=None, gt=0, le=2000)
    pue: float = Field(default=1.0, ge=1.0, le=3.0)

    @field_validator("country")
    @classmethod
    def _alpha3(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Z]{3}", value):
            hint = f" (did you mean {value.upper()!r}?)" if re.fullmatch(r"[a-z]{3}", value) else ""
            raise fail(
                f"expected an ISO 3166-1 alpha-3 country code (three upper-case letters such as "
                f"DEU, FRA, USA), got {show(value)}{hint}"
            )
        return value


class MeasureSettings(_Manifest):
    """Where and how each variant is measured."""

    device: str = "cpu"
    latency: LatencySettings = Field(default_factory=LatencySettings)
    protocol: ProtocolSettings = Field(default_factory=ProtocolSettings)
    energy: EnergySettings = Field(default_factory=EnergySettings)
    carbon: CarbonSettings = Field(default_factory=CarbonSettings)

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if not re.fullmatch(r"cpu|cuda:(?:[0-9]|[1-5][0-9]|6[0-3])", value):
            raise fail(f"expected 'cpu' or 'cuda:N' with N from 0 to 63 (e.g. 'cuda:0'), got {show(value)}")
        return value


class StageSpec(_Manifest):
    """One pipeline step; YAML ``- train`` or ``- train: {epochs: 5}`` becomes name + params."""

    name: Word
    params: dict[str, Any] = Field(default_factory=dict, max_length=MAX_ARGS)
    #: param -> the variant it names, for a stage that reads another variant's model (its
    #: ``Stage.variant_params``, e.g. a teacher); set by the checks when they clean the params
    _reads: dict[str, str] = PrivateAttr(default_factory=dict)

    @property
    def reads(self) -> dict[str, str]:
        """The variants this stage reads, by the param that names them."""
        return self._reads

    def reading(self, reads: dict[str, str]) -> None:
        """Record the variants this stage reads (the checks, from the stage's ``variant_params``)."""
        self._reads = dict(reads)

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


class RuntimeSpec(_Manifest):
    """The runtime that measures a variant and its options: YAML ``runtime: openvino`` or
    ``runtime: {name: openvino, precision: bf16, streams: 1}`` becomes name + options. The name
    and options are checked by ``greenbench.suite.artifact_checks`` (each runtime's ``check_options``);
    the checked options, defaults filled in, are stored back."""

    name: Word
    options: dict[str, Any] = Field(default_factory=dict, max_length=20)

    @model_validator(mode="before")
    @classmethod
    def _normalise(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"name": data}
        if isinstance(data, dict) and isinstance(data.get("name"), str):
            return {"name": data["name"], "options": {k: v for k, v in data.items() if k != "name"}}
        raise fail(
            "expected a runtime name ('runtime: openvino') or a mapping with 'name' and its options "
            f"('runtime: {{name: openvino, precision: bf16}}'), got {show(data)}"
        )


class VariantSpec(_Manifest):
    """A model variant: a root (``model``, optional ``weights``) or ``from`` another variant.
    ``runtime``: what measures it (None: the default for its model file's kind; not inherited)."""

    model: FilePath | None = None
    weights: FilePath | None = None
    from_: Word | None = Field(default=None, alias="from")
    stages: list[StageSpec] = Field(default_factory=list, max_length=100)
    description: Text | None = None
    table: Name | None = Field(
        default=None, description="the comparison table this variant is shown in (e.g. pruning, backbones)"
    )
    allow_pickle: bool = Field(
        default=False,
        description="load a .pt from outside greenbench: torch checkpoints are pickles, "
        "and unpickling runs code from the file, so it needs this explicit opt-in",
    )
    runtime: RuntimeSpec | None = None


class TableSpec(_Manifest):
    """How one ``table:`` group is shown: ``delta: parent`` sets each derived row against the
    variant it was made from (a compression step against its input), not the suite's baseline."""

    delta: Literal["baseline", "parent"] = Field(
        default="baseline", description="what each row's Δ is against: the baseline, or its parent ('from:')"
    )


class Suite(_Manifest):
    """A validated suite. ``path`` (absolute) and ``source_hash`` are set by ``load_suite``."""

    name: Name
    task: str
    dataset: DatasetSpec
    defaults: dict[str, Any] = Field(default_factory=dict, max_length=MAX_ARGS)
    measure: MeasureSettings = Field(default_factory=MeasureSettings)
    baseline: Word
    variants: dict[Name, VariantSpec] = Field(max_length=MAX_VARIANTS)
    tables: dict[Name, TableSpec] = Field(default_factory=dict, max_length=MAX_VARIANTS)
    path: Path = Path()
    source_hash: str = ""
    _digests: dict[str, str] = PrivateAttr(default_factory=dict)
    _checked_data: Any = PrivateAttr(default=None)  # the DatasetRef load_suite checked
    _smoke: dict[str, Any] | None = PrivateAttr(default=None)  # what --smoke changed, if it ran

    @field_validator("task", mode="before")
    @classmethod
    def _task(cls, value: Any) -> str:
        from greenbench.tasks import task_names, unknown_task_message

        if isinstance(value, str) and value in task_names():
            return value
        raise fail(f"{unknown_task_message(value)}; got {show(value)}")

    @field_validator("variants")
    @classmethod
    def _not_empty(cls, value: dict[str, VariantSpec]) -> dict[str, VariantSpec]:
        if not value:
            raise fail("expected at least one variant, e.g. 'base: {model: model.yaml}'")
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

    def variants_read(self, name: str) -> list[str]:
        """Every variant ``name``'s lineage reads (a teacher), directly or through the variants
        it reads, sorted."""
        seen: set[str] = set()
        todo = [
            v for step in self.lineage(name) for st in self.variants[step].stages for v in st.reads.values()
        ]
        while todo:
            other = todo.pop()
            if other not in seen and other != name and other in self.variants:
                seen.add(other)
                todo += [v for step in self.lineage(other) for st in self.variants[step].stages
                         for v in st.reads.values()]  # fmt: skip
        return sorted(seen)

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
                    "model": self.file_ref(spec.model),
                    "weights": self.file_ref(spec.weights),
                    "stages": [{"name": s.name, "params": s.params} for s in spec.stages],
                }
            )
        dataset = self.dataset.model_dump(mode="json")
        dataset["path"] = self.file_ref(self.dataset.path)
        measure = self.measure.model_dump(mode="json")
        if measure["latency"].get("scope") == "model":  # the default: keys of older suites unchanged
            del measure["latency"]["scope"]
        config: dict[str, Any] = {
            "task": self.task,
            "dataset": dataset,
            "defaults": self.defaults,
            "measure": measure,
            "lineage": lineage,
        }
        if self._smoke is not None:  # never the key of a real result, even if the sizes match
            config["smoke"] = True
        runtime = self.variants[name].runtime
        if runtime is not None:  # the variant's own (not inherited); absent: the default, as before
            config["runtime"] = runtime.model_dump(mode="json")
        return config

    def loaded(self, checked_data: Any, smoke: dict[str, Any] | None) -> None:
        """What reading the suite found besides the manifest (``reader.load_suite``): the
        ``DatasetRef`` the checks walked, and what ``--smoke`` changed (None: a real run)."""
        self._checked_data, self._smoke = checked_data, smoke

    @property
    def smoke(self) -> dict[str, Any] | None:
        """What ``--smoke`` changed (settings and notes), or None for a real run."""
        return self._smoke

    def variant_hash(self, name: str) -> str:
        """The key of ``variant_config(name)`` (``greenbench.suite.identity.config_key``)."""
        return config_key(self.variant_config(name))

    def checked_data(self) -> Any:
        """The ``DatasetRef`` of ``dataset.path`` as ``load_suite`` checked it (None if it did
        not): checking walks every sample, so a run reuses it instead of walking again."""
        return self._checked_data

    def file_ref(self, value: str | None) -> Any:
        """A local file as ``{file, sha256}`` (digested once per suite), a local folder (a
        dataset, whose content fingerprint keys the data) as ``{folder}``; anything else as is."""
        path = Path(value) if value else None
        if path is not None and path.is_absolute() and path.is_dir():
            return {"folder": path.name}
        if path is None or not path.is_absolute() or not path.is_file():
            return value
        key = str(path)
        if key not in self._digests:
            self._digests[key] = file_sha256(path)
        return {"file": path.name, "sha256": self._digests[key]}
