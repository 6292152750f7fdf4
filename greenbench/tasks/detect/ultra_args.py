"""What ultralytics accepts, read from its package files without importing it.

Importing ultralytics is slow and probes the network, so suite validation reads the installed
package's ``cfg/default.yaml`` and ``cfg/models/**`` directly.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import re
from pathlib import Path

import yaml

from greenbench.errors import GreenbenchError

#: training arguments greenbench sets itself; a suite may not give them
RESERVED: frozenset[str] = frozenset(
    {"data", "model", "project", "name", "exist_ok", "device", "resume", "tracker", "source",
     "mode", "task", "plots", "verbose"}
)  # fmt: skip

#: training arguments refused outright, and why
REFUSED: dict[str, str] = {
    "cfg": (
        "a cfg file replaces every training argument greenbench checks: it may set model, data, "
        "project or resume, or name a pickle or a URL that no check would see. Copy the keys you "
        "need into the suite's 'defaults' or the stage's params instead"
    ),
}

#: training arguments whose string value ultralytics loads with ``torch.load`` (a pickle): the
#: weights to start from and the distillation teacher (``load_checkpoint`` on any path, any
#: suffix). ``model`` and ``resume`` load pickles too; greenbench reserves them.
PICKLE_ARGS: tuple[str, ...] = ("pretrained", "distill_model")

#: the most items a list-valued training argument may hold (ultralytics takes flat lists, e.g. 'freeze')
MAX_LIST_ITEMS = 10_000

#: model scale letters ultralytics strips from a config name (``yolov8n.yaml`` -> ``yolov8.yaml``)
_SCALED = re.compile(r"(\d+)([nslmx])(.+)?$")


@functools.lru_cache(maxsize=1)
def ultralytics_dir() -> Path:
    """The installed ultralytics package folder (found without importing the package)."""
    spec = importlib.util.find_spec("ultralytics")
    locations = spec.submodule_search_locations if spec else None
    if not locations:
        raise GreenbenchError(
            "ultralytics is not installed, and greenbench needs it to check and train detection "
            "models. Install it with 'pip install ultralytics'."
        )
    return Path(next(iter(locations)))


@functools.lru_cache(maxsize=1)
def train_arg_names() -> frozenset[str]:
    """Every argument name in ultralytics' ``cfg/default.yaml`` (``RESERVED`` ones included)."""
    cfg = ultralytics_dir() / "cfg" / "default.yaml"
    data = yaml.safe_load(cfg.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise GreenbenchError(f"{cfg} is not a mapping; reinstall ultralytics.")
    return frozenset(str(key) for key in data)


@functools.lru_cache(maxsize=1)
def _builtin_configs() -> dict[str, Path]:
    """Built-in model config file name -> path (the first one found, like ultralytics' glob)."""
    found: dict[str, Path] = {}
    for path in sorted((ultralytics_dir() / "cfg" / "models").rglob("*.y*ml")):
        found.setdefault(path.name, path)
    return found


def builtin_model_names() -> list[str]:
    """The file names of ultralytics' built-in model configs, sorted."""
    return sorted(_builtin_configs())


def builtin_model_cfg(name: str) -> Path | None:
    """The built-in config ultralytics would load for ``name`` (e.g. ``yolov8n.yaml``), or None.

    Mirrors ultralytics' own renames: ``yolov5nu.yaml`` -> ``yolov5n.yaml``, P6 names
    ``yolov5n6.yaml`` -> ``yolov5n-p6.yaml``, and the scale letter (n, s, m, l, x) dropped
    (``yolov5n.yaml`` -> ``yolov5.yaml``, ``yolo11s-seg.yaml`` -> ``yolo11-seg.yaml``).
    """
    if "/" in name or "\\" in name:
        return None
    configs = _builtin_configs()
    if ("yolov3" in name or "yolov5" in name) and "u.yaml" in name:
        name = name.replace("u.yaml", ".yaml")
    stem, dot, suffix = name.rpartition(".")
    if stem in {f"yolov{d}{x}6" for x in "nsmlx" for d in (5, 8)}:
        name = re.sub(r"(\d+)([nslmx])6(.+)?$", r"\1\2-p6\3", stem) + dot + suffix
    return configs.get(name) or configs.get(_SCALED.sub(r"\1\3", name))


_TYPE_COMMENT = re.compile(r"^(\w+):[^#]*#\s*\(([^)]*)\)")
_PY_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "str": (str,),
    "list": (list,),
    "tuple": (list, tuple),
}
OPTIMIZERS = ("SGD", "MuSGD", "Adam", "Adamax", "AdamW", "NAdam", "RAdam", "RMSprop", "auto")


@functools.lru_cache(maxsize=1)
def train_arg_types() -> dict[str, tuple[tuple[type, ...], bool]]:
    """Per argument, the Python types its ``default.yaml`` comment names, and whether None is allowed.

    ultralytics documents each argument as ``key: value # (int | float) text``; that comment is
    the only machine-readable statement of what it accepts.
    """
    cfg = ultralytics_dir() / "cfg" / "default.yaml"
    found: dict[str, tuple[tuple[type, ...], bool]] = {}
    for line in cfg.read_text(encoding="utf-8").splitlines():
        m = _TYPE_COMMENT.match(line)
        if not m:
            continue
        names = re.split(r"[|,]", m.group(2))
        types = tuple(t for n in names for t in _PY_TYPES.get(n.strip().split("[")[0], ()))
        if types:
            found[m.group(1)] = (types, "optional" in m.group(2))
    return found


def _range(key: str, value: object) -> str | None:
    """The few ranges a wrong value of would only fail after training has been paid for."""
    if key == "imgsz" and (not isinstance(value, int) or value < 32 or value % 32):
        return "expected an int ≥ 32 and a multiple of 32 (the models' largest stride)"
    if key == "epochs" and isinstance(value, int) and value < 1:
        return "expected an int ≥ 1"
    if key == "batch" and not (
        (isinstance(value, int) and (value >= 1 or value == -1))
        or (isinstance(value, float) and 0 < value < 1)
    ):
        return "expected an int ≥ 1, -1 (AutoBatch) or a fraction in (0, 1) of GPU memory"
    if key in ("lr0", "lrf") and isinstance(value, (int, float)) and value <= 0:
        return "expected a number > 0"
    if key == "workers" and isinstance(value, int) and value < 0:
        return "expected an int ≥ 0"
    if key == "optimizer" and str(value).lower() not in {o.lower() for o in OPTIMIZERS}:
        return f"expected one of {', '.join(OPTIMIZERS)}"
    return None


def pickle_arg(key: str, value: object) -> bool:
    """Whether ultralytics would unpickle the file ``value`` names when training with ``key=value``
    (``pretrained: true/false`` only toggles the model's own weights; a string is a path)."""
    return key in PICKLE_ARGS and isinstance(value, str)


def _flat(value: object) -> str | None:
    """Why a list value is not a flat list of scalars of sane length (nested lists could be a
    YAML alias bomb that hashing would expand), or None."""
    if not isinstance(value, (list, tuple)):
        return None
    if len(value) > MAX_LIST_ITEMS:
        return f"expected at most {MAX_LIST_ITEMS} items, got {len(value)}"
    if not all(item is None or isinstance(item, (str, int, float, bool)) for item in value):
        return "expected a flat list of numbers or strings, got a nested list or mapping"
    return None


def check_train_value(key: str, value: object) -> str | None:
    """Why ``value`` is not acceptable for training argument ``key``, or None if it is."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"expected a finite number, got {value!r}"
    if (why := _flat(value)) is not None:
        return why
    spec = train_arg_types().get(key)
    if spec is not None:
        types, optional = spec
        bad_bool = isinstance(value, bool) and bool not in types
        if not (value is None and optional) and (bad_bool or not isinstance(value, types)):
            names = " or ".join(sorted({t.__name__ for t in types}))
            return f"expected {names}{' or null' if optional else ''}, got {type(value).__name__} {value!r}"
    return _range(key, value)


#: where to set what greenbench reserves for itself
_RESERVED_HINTS = {
    "data": " (set 'dataset')",
    "model": " (set the variant's 'model')",
    "device": " (set 'measure.device')",
    "task": " (set the suite's 'task')",
    "resume": " (the runner resumes by itself)",
}


def check_train_args(args: dict[str, object]) -> list[tuple[str, str]]:
    """(key, message) for every argument that is reserved, unknown or of the wrong type/range."""
    import difflib

    allowed = sorted(train_arg_names() - RESERVED)
    problems = []
    for key, value in args.items():
        if key in REFUSED:
            message = f"training argument {key!r} is refused: {REFUSED[key]}"
        elif key in RESERVED:
            message = f"greenbench sets {key!r} itself{_RESERVED_HINTS.get(key, '')}; remove it"
        elif key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            message = (
                f"unknown training argument {key!r}{hint}; expected an ultralytics train argument "
                f"(see ultralytics/cfg/default.yaml)"
            )
        elif (why := check_train_value(key, value)) is not None:
            message = f"training argument {key!r}: {why}"
        else:
            continue
        problems.append((key, message))
    return problems
