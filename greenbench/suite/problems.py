"""What is wrong with a manifest, in the user's words: a ``Problem`` (a key path and a message),
pydantic's errors phrased as problems (``from_pydantic``), and the helpers that quote what the
user wrote (``show``, ``suggest``, ``dotted``). ``manifest.Report`` places them at file and line.
"""

from __future__ import annotations

import difflib
import json
import re
import types
from dataclasses import dataclass
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import PydanticCustomError

Loc = tuple[str | int, ...]  # a key path into the document, e.g. ("variants", "a", "stages", 0)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a manifest, at a key path (``line`` overrides the path's line)."""

    loc: Loc
    message: str
    line: int | None = None


def fail(reason: str) -> PydanticCustomError:
    """A pydantic validation error whose message is ``reason`` verbatim (no "Value error,")."""
    return PydanticCustomError("greenbench", "{reason}", {"reason": reason})


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
    if kind == "too_long":  # pydantic would repeat the whole list
        limit, actual = err["ctx"]["max_length"], err["ctx"].get("actual_length")
        return Problem(
            loc, f"expected at most {limit} entries, got {actual if actual is not None else 'more'}."
        )
    value = err.get("input")
    if kind in _EXPECTED:
        return Problem(loc, f"expected {_EXPECTED[kind]}, got {show(value)}{_type_hint(kind, value)}.")
    message = message.replace("Input should be", "expected").replace("Value error, ", "")
    return Problem(loc, f"{message}, got {show(value)}.")


_NO_DOT = r"[-+]?[0-9]+[eE][-+]?[0-9]+"  # 1e-3: a float in YAML 1.2 and JSON, text in YAML 1.1


def _with_dot(text: str) -> str:
    mantissa, _, exponent = text.lower().partition("e")
    sign = "" if exponent[:1] in "+-" else "+"
    return f"{mantissa}.0e{sign}{exponent}"


_EXPECTED = {
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
    "string_type": "text (a string)",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
}


def _type_hint(kind: str, value: Any) -> str:
    """Why a YAML value has the wrong type, for the mistakes YAML invites."""
    if kind == "string_type" and (isinstance(value, bool) or value is None):
        return (
            " (YAML 1.1 reads unquoted yes/no/on/off/true/false as a boolean and ~/null as null; "
            "quote the text)"
        )
    if kind == "string_type" and isinstance(value, (int, float)):
        return " (a number; quote it to make it text)"
    if kind in ("int_type", "float_type") and isinstance(value, bool):
        return " (a boolean; write the number itself)"
    if kind in ("int_type", "float_type") and isinstance(value, str) and re.fullmatch(_NO_DOT, value):
        return f" (YAML 1.1 reads {value} as text: a float needs a dot, e.g. {_with_dot(value)})"
    if kind in ("int_type", "float_type", "bool_type") and isinstance(value, str):
        return " (text; write it without quotes)"
    return ""


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
    return f"unknown key {show(key)}{suggest(str(key), allowed)}; {expected}"


def suggest(word: str, choices: Any) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices``, or an empty string."""
    if len(str(word)) > 100:  # no name is that long; spare difflib a megabyte-long word
        return ""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def dotted(loc: Loc) -> str:
    """``("variants", "a.b", "stages", 0)`` -> ``variants["a.b"].stages[0]`` (long keys shortened)."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z0-9_-]{1,60}", str(part)):
            out += f".{part}" if out else str(part)
        else:  # shown as written (emoji too), unless something in it would not print as itself
            text = short(str(part))
            out += f"[{json.dumps(text, ensure_ascii=not text.isprintable())}]"
    return out if len(out) <= 160 else f"{out[:90]}…{out[-60:]}"  # e.g. [0][0]… 64 levels deep


def short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def show(value: Any, limit: int = 60) -> str:
    """``repr(value)``, shortened to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def one_line(text: str) -> str:
    """``text`` with its whitespace runs collapsed and no final full stop."""
    return " ".join(text.split()).rstrip(".")
