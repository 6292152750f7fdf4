"""Read a user's YOLO ``data.yaml``: bounded, no URL anywhere in it, class names and channels
checked, split folders and image lists resolved as ultralytics resolves them (``split_paths``).
Part of the dataset check (``dataset_ref.check_dataset``)."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from greenbench.errors import GreenbenchError
from greenbench.offline import is_url

#: the splits of a dataset greenbench writes, each an ``images/<split>`` folder
SPLITS: tuple[str, ...] = ("train", "val", "test")

MAX_YAML_BYTES = 10_000_000  # a data.yaml is a few hundred bytes; more is not a data.yaml
SPLITS = ("train", "val", "test")
SYSTEM_FOLDERS = (Path("/proc"), Path("/sys"), Path("/dev"))


def dataset_error(path: Path, what: str) -> GreenbenchError:
    return GreenbenchError(f"dataset {path}: {what}")


def expand_user(value: str) -> Path:
    try:
        return Path(value).expanduser()
    except RuntimeError:
        return Path(value)


def stat_of(path: str | Path) -> os.stat_result | None:
    try:
        return os.stat(path)
    except (OSError, ValueError):
        return None


def load_data_yaml(path: Path) -> dict[str, Any]:
    st = stat_of(path)
    if st is None or not stat.S_ISREG(st.st_mode):
        raise dataset_error(path, "not a regular file; expected a YOLO data.yaml.")
    if st.st_size > MAX_YAML_BYTES:
        raise dataset_error(path, f"{st.st_size} bytes, too large for a YOLO data.yaml; check the file.")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError, RecursionError) as e:
        reason = " ".join(str(e).split()) or type(e).__name__
        raise GreenbenchError(f"dataset {path} cannot be read as YAML: {reason}") from None
    if not isinstance(data, dict):
        raise GreenbenchError(f"dataset {path} is not a YOLO data.yaml (a mapping with train/val keys).")
    return data


def _key_name(loc: tuple[Any, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else str(p)) for i, p in enumerate(loc))


def _urls(value: Any, loc: tuple[Any, ...], seen: set[int]) -> Iterator[tuple[str, str]]:
    """(key, value) of every URL below ``value``; shared YAML aliases are visited once."""
    stack = [(value, loc)]  # not recursive: a deeply nested value is no RecursionError
    while stack:
        value, loc = stack.pop()
        if isinstance(value, str):
            if is_url(value):
                yield _key_name(loc), value
        elif isinstance(value, (dict, list)) and id(value) not in seen:
            seen.add(id(value))
            items = value.items() if isinstance(value, dict) else enumerate(value)
            stack += [(item, (*loc, key)) for key, item in reversed(list(items))]


def _check_urls(path: Path, data: dict[str, Any]) -> None:
    seen: set[int] = set()
    for key, value in data.items():
        if key == "download":  # ignored (dropped from the staged copy), so it may be anything
            continue
        for where, url in _urls(value, (key,), seen):
            raise dataset_error(
                path,
                f"'{where}' is a URL ({url}). greenbench never downloads data: fetch it yourself and "
                f"write the local path there.",
            )


def class_names(path: Path, data: dict[str, Any]) -> dict[int, str]:
    """``names`` as ``{id: name}``, checked: strings, ids 0..n-1, and ``nc`` (if given) agrees."""
    names = data.get("names")
    example = "e.g. 'names: [cat, dog]' or 'names: {0: cat, 1: dog}'"
    if names is None:
        raise dataset_error(path, f"no 'names:' key; list the class names, {example}.")
    if isinstance(names, list):
        items = list(enumerate(names))
    elif isinstance(names, dict):
        items = []
        for key, name in names.items():
            if isinstance(key, str) and key.isdigit():
                key = int(key)
            if isinstance(key, bool) or not isinstance(key, int):
                raise dataset_error(
                    path, f"'names' has the key {key!r}; expected class ids 0, 1, 2, ... ({example})."
                )
            items.append((key, name))
        if sorted(k for k, _ in items) != list(range(len(items))):
            raise dataset_error(
                path, f"the ids in 'names' are {sorted(k for k, _ in items)}; expected 0..{len(items) - 1}."
            )
    else:
        raise dataset_error(path, f"'names' is {names!r}, neither a list nor a mapping; {example}.")
    if not items:
        raise dataset_error(path, f"'names' is empty; list the class names, {example}.")
    for key, name in items:
        if not isinstance(name, str) or not name.strip():
            raise dataset_error(
                path, f"'names' entry {key} is {name!r}, not a text name; quote it (e.g. '\"{name}\"')."
            )
    nc = data.get("nc")
    if "nc" in data and (isinstance(nc, bool) or not isinstance(nc, int) or nc != len(items)):
        raise dataset_error(
            path, f"'nc: {nc}' disagrees with 'names', which lists {len(items)} classes; fix or drop 'nc'."
        )
    return dict(sorted(items))


def channels(path: Path, data: dict[str, Any]) -> int | None:
    value = data.get("channels")
    if value is not None and (isinstance(value, bool) or value not in (1, 3)):
        raise dataset_error(path, f"'channels: {value!r}'; expected 1 (grey) or 3 (colour).")
    return value


def _root(path: Path, data: dict[str, Any]) -> Path:
    root = data.get("path")
    if not root:
        return path.parent
    if not isinstance(root, str):
        raise dataset_error(path, f"'path: {root!r}' is not a folder path.")
    root_path = expand_user(root)
    if root_path.is_absolute():
        return root_path
    for base in (path.parent, Path.cwd()):
        if stat_of(base / root_path) is not None:
            return (base / root_path).resolve()
    return path.parent / root_path


def split_paths(path: Path) -> tuple[dict[str, list[Path]], str]:
    """The existing folders/lists of each split and the split to evaluate on (``test`` or ``val``).

    Also checks the data.yaml's keys: no URL anywhere, ``names``/``nc``/``channels`` sound.
    """
    return read_splits(path, load_data_yaml(path))


def read_splits(path: Path, data: dict[str, Any]) -> tuple[dict[str, list[Path]], str]:
    _check_urls(path, data)
    class_names(path, data)
    channels(path, data)
    root = _root(path, data)
    splits: dict[str, list[Path]] = {}
    for split in SPLITS:
        value = data.get(split)
        if value is None:
            if split == "test":
                continue
            raise GreenbenchError(
                f"dataset {path} has no '{split}:' key; a YOLO data.yaml needs train and val."
            )
        entries = value if isinstance(value, list) else [value]
        if not entries or not all(isinstance(e, str) and e.strip() for e in entries):
            raise dataset_error(
                path, f"'{split}: {value!r}'; expected a folder, a .txt image list, or a list of them."
            )
        paths = [p if p.is_absolute() else root / p for p in (expand_user(e) for e in entries)]
        missing = [p for p in paths if stat_of(p) is None]
        if missing:
            hint = (
                " Its 'download:' key is ignored: greenbench never downloads data. Fetch the dataset "
                "yourself and point 'path:' at it."
                if "download" in data
                else ""
            )
            raise GreenbenchError(f"dataset {path}: the '{split}' images at {missing[0]} do not exist.{hint}")
        for p in paths:
            real = p.resolve()
            if real == Path(real.anchor) or any(real == s or s in real.parents for s in SYSTEM_FOLDERS):
                raise dataset_error(
                    path,
                    f"the '{split}' split is {real}, the filesystem root or a system folder; point it "
                    f"at a folder of images or a .txt image list.",
                )
        splits[split] = paths
    return splits, ("test" if "test" in splits else "val")


def label_path(image: str) -> str:
    """Where ultralytics looks for the label of ``image``: the last ``/images/`` of the path
    replaced by ``/labels/`` and the suffix by ``.txt`` (``img2label_paths``)."""
    sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    return sb.join(image.rsplit(sa, 1)).rsplit(".", 1)[0] + ".txt"


def suffix_of(name: str) -> str:
    return name.rpartition(".")[2].lower() if "." in name else ""


def write_data_yaml(out: Path, root: Path, names: Sequence[str], comments: Sequence[str]) -> Path:
    """Write ``out/data.yaml``: ``comments`` (one ``#`` line each), ``path`` = ``root`` (absolute),
    the standard ``images/<split>`` folders and ``names`` by index; return the file. Strings are
    JSON-quoted, a valid YAML double-quoted scalar: safe for spaces, colons and backslashes."""
    lines = [
        *(f"# {c}" for c in comments),
        f"path: {json.dumps(str(root.resolve()))}",
        *(f"{split}: images/{split}" for split in SPLITS),
        f"nc: {len(names)}",
        "names:",
        *(f"  {i}: {json.dumps(name)}" for i, name in enumerate(names)),
    ]
    target = out / "data.yaml"
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return target
