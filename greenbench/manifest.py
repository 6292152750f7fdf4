"""YAML manifests with line numbers, and ``file:line: key: expected ...`` error reports.

``read_manifest`` composes the YAML once and keeps, next to the data, the 1-based line of every
mapping key and sequence item. ``Report`` turns problems (a key path and a message, from
pydantic or from checks of the caller) into one ``SuiteError`` without a traceback.
"""

from __future__ import annotations

import difflib
import json
import re
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel
from pydantic_core import PydanticCustomError

from greenbench.errors import SuiteError

Loc = tuple[str | int, ...]  # a key path into the document, e.g. ("variants", "a", "stages", 0)
MAX_SHOWN = 5  # problems listed in one error; the rest are counted
_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a manifest, at a key path (``line`` overrides the path's line)."""

    loc: Loc
    message: str
    line: int | None = None


def fail(reason: str) -> PydanticCustomError:
    """A pydantic validation error whose message is ``reason`` verbatim (no "Value error,")."""
    return PydanticCustomError("greenbench", "{reason}", {"reason": reason})


@dataclass(frozen=True)
class Report:
    """Where each key of one manifest file is, and how to report problems in it."""

    shown: str  # the file as the user named it
    lines: dict[Loc, int]

    def line_of(self, loc: Loc) -> int:
        """The line of ``loc``, or of its nearest known parent (e.g. for a missing key)."""
        for end in range(len(loc), 0, -1):
            if loc[:end] in self.lines:
                return self.lines[loc[:end]]
        return 1

    def error(self, problems: list[Problem]) -> SuiteError:
        """One ``SuiteError``: a line per problem, sorted by line, at most ``MAX_SHOWN``."""
        unique = dict.fromkeys((p.line or self.line_of(p.loc), dotted(p.loc), p.message) for p in problems)
        rows = sorted(unique, key=lambda row: row[0])  # stable: same line keeps check order
        text = [f"{self.shown}:{line}: {key + ': ' if key else ''}{msg}" for line, key, msg in rows]
        more = len(text) - MAX_SHOWN
        tail = [f"(and {more} more problem{'s' if more > 1 else ''})"] if more > 0 else []
        return SuiteError("\n".join(text[:MAX_SHOWN] + tail))


def read_manifest(path: str | Path) -> tuple[bytes, Any, Report, list[Problem]]:
    """The file's bytes, its YAML data, its ``Report`` and any duplicate-key problems.

    A missing, unreadable, empty or syntactically broken file raises ``SuiteError``.
    """
    shown = str(path)
    try:
        raw = Path(path).read_bytes()
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise SuiteError(
            f"{shown}: no such file; expected a YAML manifest. Check the path "
            f"(relative paths start at {Path.cwd()})."
        ) from None
    except UnicodeDecodeError as exc:
        raise SuiteError(f"{shown}: not UTF-8 text ({exc.reason}); save it as UTF-8.") from None
    except OSError as exc:
        raise SuiteError(f"{shown}: cannot read it ({exc.strerror}); expected a file.") from None
    lines: dict[Loc, int] = {}
    problems: list[Problem] = []
    constructor = yaml.constructor.SafeConstructor()
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is None:
            raise SuiteError(f"{shown}:1: the file is empty; expected a YAML mapping.")
        _index(node, (), lines, problems, constructor, set())
        data = constructor.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        what = one_line(exc.problem or exc.context or "cannot parse")
        if exc.context and exc.problem and exc.context_mark:
            what += f" ({exc.context} that starts on line {exc.context_mark.line + 1})"
        if isinstance(exc, yaml.constructor.ConstructorError):
            raise SuiteError(f"{shown}:{line}: unsupported YAML: {what}.") from None
        raise SuiteError(
            f"{shown}:{line}: YAML syntax error: {what}. Check indentation, colons and quotes."
        ) from None
    except yaml.YAMLError as exc:  # e.g. a control character (ReaderError, no mark)
        line = text[: getattr(exc, "position", 0)].count("\n") + 1
        raise SuiteError(f"{shown}:{line}: not valid YAML: {one_line(str(exc))}.") from None
    return raw, data, Report(shown, lines), problems


def _index(
    node: yaml.Node,
    loc: Loc,
    lines: dict[Loc, int],
    problems: list[Problem],
    constructor: yaml.constructor.SafeConstructor,
    active: set[int],
) -> None:
    """Record the line of every mapping key and sequence item below ``node``."""
    if id(node) in active:  # a recursive alias
        return
    active.add(id(node))
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                continue  # merged keys fall back to the mapping's line
            key = constructor.construct_object(key_node)
            line = key_node.start_mark.line + 1
            sub: Loc = (*loc, key)
            if sub in lines:  # PyYAML would silently keep the last one
                message = f"duplicate key; it is already set on line {lines[sub]}. Keep one of them."
                problems.append(Problem(sub, message, line))
                for known in [k for k in lines if k[: len(sub)] == sub]:
                    del lines[known]  # the first value's lines no longer apply
            lines[sub] = line
            _index(value_node, sub, lines, problems, constructor, active)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[(*loc, i)] = item.start_mark.line + 1
            _index(item, (*loc, i), lines, problems, constructor, active)
    active.discard(id(node))


def from_pydantic(err: Any, root: type[BaseModel], prefix: Loc = (), hidden: tuple[str, ...] = ()) -> Problem:
    """A pydantic error (one of ``ValidationError.errors()``) as a problem phrased as expected.

    ``root`` is the model validated at ``prefix``; ``hidden`` are its fields that the manifest
    may not set (they are left out of "expected one of" lists).
    """
    loc: Loc = (*prefix, *err["loc"])
    kind, message = err["type"], err["msg"]
    if loc and loc[-1] == "[key]":  # an invalid dict key: report it at the key itself
        loc = loc[:-1]
    if kind == "extra_forbidden":
        allowed = allowed_keys(root, loc[len(prefix) : -1], hidden)
        return Problem(loc, unknown_key(loc[-1], allowed))
    if kind == "missing":
        return Problem(loc, f"required key {loc[-1]!r} is missing; add it.")
    if kind == "greenbench":
        return Problem(loc, f"{message}.")
    message = message.replace("Input should be", "expected").replace("Value error, ", "")
    return Problem(loc, f"{message}, got {show(err.get('input'))}.")


def allowed_keys(root: type[BaseModel], loc: Loc, hidden: tuple[str, ...] = ()) -> list[str]:
    """The keys the model found at ``loc`` below ``root`` accepts (empty if not a model)."""
    model: Any = root
    for part in loc:
        model = _strip_optional(model)
        if isinstance(model, type) and issubclass(model, BaseModel):
            fields = {f.alias or n: f for n, f in model.model_fields.items()}
            model = fields[part].annotation if part in fields else None
        elif get_origin(model) in (dict, list):
            model = get_args(model)[-1]
        else:
            return []
    model = _strip_optional(model)
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return []
    keys = [f.alias or n for n, f in model.model_fields.items()]
    return [k for k in keys if not (model is root and k in hidden)]


def _strip_optional(annotation: Any) -> Any:
    if get_origin(annotation) not in (Union, types.UnionType):
        return annotation
    args = [a for a in get_args(annotation) if a is not type(None)]
    return args[0] if len(args) == 1 else annotation


def unknown_key(key: Any, allowed: list[str]) -> str:
    """ "unknown key 'x' (did you mean 'y'?); expected one of: ..." """
    expected = f"expected one of: {', '.join(allowed)}." if allowed else "remove it."
    return f"unknown key {key!r}{suggest(str(key), allowed)}; {expected}"


def suggest(word: str, choices: Any) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices``, or an empty string."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def dotted(loc: Loc) -> str:
    """``("variants", "a.b", "stages", 0)`` -> ``variants["a.b"].stages[0]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z0-9_-]+", str(part)):
            out += f".{part}" if out else str(part)
        else:
            out += f"[{json.dumps(str(part))}]"
    return out


def show(value: Any, limit: int = 60) -> str:
    """``repr(value)``, shortened to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def one_line(text: str) -> str:
    """``text`` with its whitespace runs collapsed and no final full stop."""
    return " ".join(text.split()).rstrip(".")
