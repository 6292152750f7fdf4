"""Every hash and key in one place: variant keys (resume), stage keys (artifact cache), data keys.

A key is the first 16 hex digits of the sha256 of a value as sorted JSON. Local files enter by
name and content digest (``Suite.file_ref``), never by path or mtime, so moving a checkout keeps
its keys and editing a file changes them. Records store their variant key, so readers of the
store (tables, leaderboards) never recompute one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from greenbench.tasks.base import DatasetRef, Synthetic


class Suite(Protocol):
    """What the keys read of a suite (``greenbench.suite.Suite`` is one). A protocol, not an
    import: the suite module hashes with this module's functions, so it cannot be imported here."""

    @property
    def task(self) -> str: ...

    @property
    def defaults(self) -> Mapping[str, Any]: ...

    @property
    def measure(self) -> Any: ...

    @property
    def dataset(self) -> Any: ...

    @property
    def variants(self) -> Mapping[str, Any]: ...

    @property
    def baseline(self) -> str: ...

    def checked_data(self) -> Any: ...

    def lineage(self, name: str) -> list[str]: ...

    def root_model(self, name: str) -> Any: ...

    def file_ref(self, value: str | None) -> Any: ...

    def variant_hash(self, name: str) -> str: ...

    def variants_read(self, name: str) -> list[str]: ...


def sha(obj: Any) -> str:
    """First 16 hex digits of the sha256 of ``obj`` as sorted JSON."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def file_sha256(path: Path) -> str:
    """The sha256 of a file's content, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def config_key(config: dict[str, Any]) -> str:
    """The key of a variant's config (``Suite.variant_config``): what determines its result."""
    return sha(config)


def variant_key(suite: Suite, variant: str, data_key: str) -> str:
    """The resume key of a variant's result: its config, the data it ran on, the configs of the
    variants its stages read (a distillation's teacher) and, for a variant other than the
    baseline, the baseline's config (its Δ is paired with that baseline: editing the baseline
    re-measures every variant beside it; their trained stages stay cached)."""
    parts: list[Any] = [suite.variant_hash(variant), data_key]
    if variant != suite.baseline:
        parts.append(suite.variant_hash(suite.baseline))
    used = suite.variants_read(variant)
    if used:
        parts.append([suite.variant_hash(v) for v in used])
    return sha(parts)


#: the folder under the work folder where stage artifacts live, each in ``<stage>-<key>``
ARTIFACTS = "artifacts"


@dataclass(frozen=True)
class PlannedStage:
    """One stage of a variant's lineage with its cache key. Its artifact is addressed by
    ``address`` (the stage and its key), never by a path of the driver: whoever runs the stage
    finds its folder under its own work folder (``folder``), so an executor can keep artifacts
    on storage of its own."""

    variant: str
    index: int
    name: str
    params: dict[str, Any]
    key: str
    #: the key of the stage whose checkpoint this one starts from; None: the lineage's root
    #: ``model`` (with ``weights``)
    input: str | None = None
    model: str | None = None
    weights: str | None = None
    #: param -> the key of the final stage of the variant it names (``Stage.variant_params``)
    uses: dict[str, str] = field(default_factory=dict)

    @property
    def address(self) -> str:
        """The artifact's address: ``<stage>-<key>``."""
        return f"{self.name}-{self.key}"

    def folder(self, workdir: Path) -> Path:
        """The stage's artifact folder under ``workdir``."""
        return workdir / ARTIFACTS / self.address


def stage_plan(
    suite: Suite, variant: str, data_key: str, _reading: tuple[str, ...] = ()
) -> list[PlannedStage]:
    """Every stage from the root model to ``variant``, each with its cache key.

    A stage's key chains the key of the stage before it, so a stage is shared by every variant
    whose lineage reaches it unchanged (a parent is trained once for all its children), and any
    change upstream (model file, weights, data, defaults, an earlier stage) changes it. A stage
    that reads another variant's model (a teacher) comes after that variant's stages, and the
    key of their final stage enters its own; the variant's own last stage stays last.
    """
    if variant in _reading:  # the checks refuse such a cycle; never recurse forever
        return []
    root = suite.root_model(variant)
    assert root.model is not None  # the lineage's root names a model (the suite checks it)
    key = sha(
        {
            "task": suite.task,
            "model": suite.file_ref(root.model),
            "weights": suite.file_ref(root.weights),
            "data": data_key,
            "defaults": suite.defaults,
            "device": suite.measure.device,
            # a cached stage's energy is reused: only under the meter settings it was read with
            "energy": suite.measure.energy.model_dump(include={"meters", "watts_per_core", "gpus"}),
        }
    )
    plan: list[PlannedStage] = []
    previous: str | None = None
    for name in suite.lineage(variant):
        for i, st in enumerate(suite.variants[name].stages):
            uses: dict[str, str] = {}
            for param, other in st.reads.items():
                chain = stage_plan(suite, other, data_key, (*_reading, variant))
                planned = {p.key for p in plan}
                plan += [p for p in chain if p.key not in planned]
                uses[param] = chain[-1].key if chain else ""
            key = sha([key, st.name, st.params, sorted(uses.items())] if uses else [key, st.name, st.params])
            plan.append(
                PlannedStage(name, i, st.name, st.params, key, previous, root.model, root.weights, uses)
            )
            previous = key
    return plan


def synthetic(suite: Suite) -> Synthetic:
    """The generator spec of a ``synthetic:`` dataset (class names from it or ``dataset.names``)."""
    from greenbench.tasks.base import Synthetic

    s = suite.dataset.synthetic
    assert s is not None
    names = s.names or suite.dataset.names or ()
    return Synthetic(classes=s.classes, images=s.images, imgsz=s.imgsz, seed=s.seed, names=tuple(names))


def dataset_ref(suite: Suite) -> DatasetRef:
    """The suite's data, identified without generating anything: the task's fingerprint of the
    generator spec for ``synthetic:`` (its file is not written yet), the checked user dataset
    otherwise (its content fingerprint), reusing the walk ``load_suite`` made when it checked
    the suite."""
    from greenbench.tasks import task_class
    from greenbench.tasks.base import DatasetRef

    task = task_class(suite.task)
    if suite.dataset.synthetic is not None:
        return DatasetRef(Path(), "test", task.synthetic_fingerprint(synthetic(suite)))
    assert suite.dataset.path is not None
    checked = suite.checked_data()  # load_suite walked it already: once per run is enough
    return checked if checked is not None else task.check_dataset(Path(suite.dataset.path))


def results_key(task: str, baseline: str | None, dataset: Mapping[str, Any], settings: Any) -> str:
    """The key of what makes the records of one suite compare with each other (the leaderboard's
    ``suite_config``): the task, the baseline, the evaluated data (``dataset``: its fingerprint
    and split) and the suite's measure settings as a record states them. A suite edited only in
    its variants keeps its key (resumed records stay beside new ones); other data or settings
    give another. Latency ``scope: model``, the default, is left out, as in ``variant_config``,
    so records from before the setting existed keep theirs."""
    measure = dict(settings) if isinstance(settings, Mapping) else settings
    if isinstance(measure, dict) and isinstance(measure.get("latency"), Mapping):
        latency = dict(measure["latency"])
        if latency.get("scope") == "model":
            del latency["scope"]
        measure["latency"] = latency
    data = {k: dataset.get(k) for k in ("fingerprint", "eval_split")}
    return sha({"task": task, "baseline": baseline, "dataset": data, "measure": measure})
