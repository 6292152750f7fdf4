"""YAML manifests with line numbers, and ``file:line: key: expected ...`` error reports.

``read_manifest`` composes the YAML once and keeps, next to the data, the 1-based line of every
mapping key and sequence item. ``Report`` turns problems (a key path and a message, from
pydantic or from checks of the caller) into one ``SuiteError`` without a traceback.

A manifest is untrusted input, so reading it is bounded: only a regular file of at most
``MAX_BYTES`` is opened (a FIFO or ``/dev/zero`` could block or never end), nesting stops at
``MAX_DEPTH`` (PyYAML composes recursively), the data may expand to at most ``MAX_NODES`` values
through aliases and merges (a "billion laughs" file is a few hundred bytes), integers stay within
``MAX_INT``, every key is a string and every tag plain data (no Python objects). Each limit is an
error that names the file, the line, the key and the limit.
"""

from __future__ import annotations

import codecs
import datetime
import math
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from greenbench.errors import SuiteError, SuiteProblem, clean_message
from greenbench.suite.problems import Loc, Problem, dotted, one_line, short, show

MAX_SHOWN = 5  # problems listed in one error; the rest are counted
MAX_ROW = 700  # characters of one problem line (a key or value can be a megabyte)
MAX_BYTES = 1_000_000  # a suite file larger than this is refused before it is parsed
MAX_DEPTH = 64  # nesting levels, counted through aliases; a suite needs about six
MAX_NODES = 20_000  # YAML values once aliases and merges are expanded; a suite has a few hundred
MAX_INT = 2**63 - 1  # larger integers are refused (Python's int() of 4,300+ digits even raises)
_MERGE_TAG = "tag:yaml.org,2002:merge"
_NULL_TAG = "tag:yaml.org,2002:null"


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
        # printable and bounded: a key or value from the file may hold escapes or a megabyte
        text = [
            short(
                clean_message(f"{self.shown}:{line}: {key + ': ' if key else ''}{msg}", one_line=True),
                MAX_ROW,
            )
            for line, key, msg in rows[:MAX_SHOWN]
        ]
        more = len(rows) - MAX_SHOWN
        tail = [f"(and {more} more problem{'s' if more > 1 else ''})"] if more > 0 else []
        every = tuple(
            SuiteProblem(
                self.shown, line, clean_message(key, one_line=True), clean_message(msg, one_line=True)
            )
            for line, key, msg in rows
        )
        return SuiteError("\n".join(text + tail), every)


def read_manifest(path: str | Path) -> tuple[bytes, Any, Report, list[Problem]]:
    """The file's bytes, its YAML data, its ``Report`` and any duplicate-key or non-finite problems.

    A file that is missing, not a regular file, unreadable, over ``MAX_BYTES``, not UTF-8, empty,
    syntactically broken, deeper than ``MAX_DEPTH``, larger than ``MAX_NODES`` once its aliases are
    expanded, or that holds a key that is not a string, an integer beyond ``MAX_INT`` or a tag
    other than plain data raises ``SuiteError`` (exit 2) at once.
    """
    shown = str(path)
    raw = _read_bounded(Path(path), shown)
    text = _decode(raw, shown)
    lines: dict[Loc, int] = {}
    report = Report(shown, lines)
    try:
        node = yaml.compose(text, Loader=_Loader)
        if node is None or (node.tag == _NULL_TAG and node.value == ""):
            raise _error(shown, 1, _EMPTY)
        walk = _Walk(lines)
        walk.visit(node, (), 1, True)
        if walk.fatal:
            raise report.error(walk.fatal + walk.problems)
        data = walk.constructor.construct_document(node)
    except _Stop as stop:
        raise _error(
            shown, stop.line, f"{dotted(stop.loc) + ': ' if stop.loc else ''}{stop.message}"
        ) from None
    except yaml.reader.ReaderError as exc:  # a control character in the text (no mark)
        line = text[: exc.position].count("\n") + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        char = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or "?")
        raise _error(
            shown,
            line,
            f"the control character U+{char:04X} (column {column}) is not allowed in YAML; "
            'remove it (write it as an escape such as "\\t" inside double quotes if you need it).',
        ) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        what = one_line(exc.problem or exc.context or "cannot parse")
        if exc.context and exc.problem and exc.context_mark:
            what += f" ({exc.context} that starts on line {exc.context_mark.line + 1})"
        if isinstance(exc, yaml.constructor.ConstructorError):
            raise _error(shown, line, f"unsupported YAML: {what}; {_PLAIN}.") from None
        raise _error(
            shown, line, f"YAML syntax error: {what}. Check indentation, colons and quotes."
        ) from None
    except yaml.YAMLError as exc:  # anything else PyYAML raises without a mark
        raise _error(shown, 1, f"not valid YAML: {one_line(str(exc))}.") from None
    return raw, data, report, walk.problems


_EMPTY = (
    "the file is empty (only blank lines or comments); expected a YAML mapping with the keys name, "
    "task, dataset, baseline and variants."
)
_PLAIN = "a suite is plain data (mappings, lists, text, numbers, booleans)"
_NODES = "the limit is there because a suite needs a few hundred at most."


def _error(shown: str, line: int | None, message: str) -> SuiteError:
    """A ``SuiteError`` ``FILE:LINE: message`` (``FILE: message`` without a line), printable."""
    where = f"{shown}:{line}" if line else shown
    problem = SuiteProblem(shown, line, "", short(clean_message(message, one_line=True), 2 * MAX_ROW))
    return SuiteError(short(clean_message(f"{where}: {message}", one_line=True), 2 * MAX_ROW), (problem,))


def _read_bounded(path: Path, shown: str) -> bytes:
    """At most ``MAX_BYTES`` of a regular file; anything else (a FIFO, a device, a folder) is refused

    before it is opened, so that nothing can make validation wait or read forever.
    """
    try:
        info = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise _error(
            shown,
            None,
            f"no such file; expected a YAML suite file. Check the path (relative paths start at "
            f"{Path.cwd()}).",
        ) from None
    except PermissionError:
        raise _error(
            shown,
            None,
            "permission denied on a folder of its path; make the folders readable and "
            "searchable (chmod u+rx) or copy the suite somewhere you can read.",
        ) from None
    except (OSError, ValueError) as exc:  # a loop of symlinks, a name too long, a NUL in the path
        raise _error(shown, None, f"cannot look at it ({_reason(exc)}); check the path.") from None
    _check_kind(info, shown)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except PermissionError:
        raise _error(
            shown,
            None,
            "permission denied; make the file readable (chmod u+r) or copy it somewhere you can read.",
        ) from None
    except OSError as exc:
        raise _error(
            shown, None, f"cannot open it ({_reason(exc)}); expected a readable YAML file."
        ) from None
    try:
        _check_kind(os.fstat(fd), shown)  # it may have been swapped since the stat
        chunks, size = [], 0
        while size <= MAX_BYTES and (chunk := os.read(fd, MAX_BYTES + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise _error(
            shown, None, f"cannot read it ({_reason(exc)}); expected a readable YAML file."
        ) from None
    finally:
        os.close(fd)
    raw = b"".join(chunks)
    if len(raw) > MAX_BYTES:  # it grew after the stat, or the size was not known
        _check_kind(info, shown, size=len(raw))
    return raw


def _check_kind(info: os.stat_result, shown: str, size: int | None = None) -> None:
    """Refuse anything but a regular file of at most ``MAX_BYTES``."""
    mode = info.st_mode
    if stat.S_ISDIR(mode):
        raise _error(
            shown, None, "is a folder; expected a YAML suite file. Give the path of a .yaml file in it."
        )
    if not stat.S_ISREG(mode):
        kinds = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
                 (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))  # fmt: skip
        kind = next((name for test, name in kinds if test(mode)), "not a regular file")
        raise _error(
            shown,
            None,
            f"is {kind}, not a regular file; greenbench reads a suite only from a regular "
            "file (a pipe or device could make it wait or read forever). Save the suite to a file.",
        )
    size = info.st_size if size is None else size
    if size > MAX_BYTES:
        raise _error(
            shown,
            None,
            f"is {size:,} bytes; a suite may be at most {MAX_BYTES:,} bytes (1 MB). "
            "A suite is a short manifest: check that this is the right file.",
        )


def _reason(exc: BaseException) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)


def _decode(raw: bytes, shown: str) -> str:
    """UTF-8 text without a byte-order mark; other encodings are refused with the offending byte."""
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise _error(shown, 1, "the file is UTF-16 text; save it as UTF-8.")
    body = raw[len(codecs.BOM_UTF8) :] if raw.startswith(codecs.BOM_UTF8) else raw
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = body[: exc.start].count(b"\n") + 1
        column = exc.start - (body.rfind(b"\n", 0, exc.start) + 1) + 1
        raise _error(
            shown,
            line,
            f"not UTF-8 text: byte 0x{body[exc.start]:02x} at column {column} ({exc.reason}); "
            "save the file as UTF-8.",
        ) from None


class _Stop(Exception):
    """A problem that ends reading the file at once, at a line and key path."""

    def __init__(self, line: int, loc: Loc, message: str) -> None:
        super().__init__(message)
        self.line, self.loc, self.message = line, loc, message


class _TooBig(ValueError):
    """An integer beyond ``MAX_INT``."""


class _Loader(yaml.SafeLoader):  # type: ignore[misc]
    """PyYAML's safe loader that refuses, while composing, deep nesting and recursive aliases.

    PyYAML composes recursively: 10,000 nested ``[`` would exhaust Python's stack.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._nodes = 0
        self._open: set[str] = set()  # anchors of the nodes being composed

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        line = event.start_mark.line + 1
        if isinstance(event, yaml.AliasEvent):
            if event.anchor in self._open:
                raise _Stop(
                    line,
                    (),
                    f"the alias *{event.anchor} is used inside its own anchor "
                    f"&{event.anchor}, which makes the data endless; {_PLAIN}, without recursion.",
                )
            return super().compose_node(parent, index)
        if self._depth >= MAX_DEPTH:
            raise _Stop(
                line,
                (),
                f"nested more than {MAX_DEPTH} levels deep; the limit is {MAX_DEPTH} "
                "(a suite needs a handful). Flatten the data.",
            )
        self._nodes += 1
        if self._nodes > MAX_NODES:  # before aliases: _Walk counts them
            raise _Stop(line, (), f"the document has more than {MAX_NODES:,} YAML values; {_NODES}")
        anchor = event.anchor
        self._depth += 1
        if anchor is not None:
            self._open.add(anchor)
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1
            self._open.discard(anchor)


class _Constructor(yaml.constructor.SafeConstructor):  # type: ignore[misc]
    """PyYAML's safe constructor with integers bounded by ``MAX_INT``, and ``=`` read as text."""

    def construct_bounded_int(self, node: Any) -> int:
        """A YAML integer within ±``MAX_INT`` (checked on the text first: no huge parse)."""
        digits = str(node.value).replace("_", "").lstrip("+-")
        value = None if len(digits) > _MAX_INT_CHARS else super().construct_yaml_int(node)
        if value is None or abs(value) > MAX_INT:
            raise _TooBig(
                f"the integer {show(str(node.value), 40)} ({len(digits)} characters) is beyond the limit "
                f"of ±{MAX_INT} (a 64-bit integer); use a smaller number"
            )
        return int(value)


_Constructor.add_constructor("tag:yaml.org,2002:int", _Constructor.construct_bounded_int)
# PyYAML resolves a plain '=' and '<<' to tags it has no constructor for; as values they are text
_Constructor.add_constructor("tag:yaml.org,2002:value", _Constructor.construct_yaml_str)
_Constructor.add_constructor(_MERGE_TAG, _Constructor.construct_yaml_str)
_MAX_INT_CHARS = 70  # '0b' and 64 binary digits fit; anything longer is beyond MAX_INT anyway
_PLAIN_TAGS = {
    f"tag:yaml.org,2002:{name}"
    for name in ("str", "int", "float", "bool", "null", "timestamp", "value", "merge", "map", "seq")
}
_AS = {"int": "an integer", "float": "a number", "bool": "a boolean (true or false)", "timestamp": "a date"}
_KIND = {int: "number", float: "number", datetime.date: "date", datetime.datetime: "date and time"}


class _Walk:
    """Walks the composed document as the data will be (aliases and merges expanded): records the
    line of every key and item, counts nodes and depth, and constructs every scalar, so that a
    limit or a bad value is reported at its key before anything large or endless is built."""

    def __init__(self, lines: dict[Loc, int]) -> None:
        self.lines = lines
        self.problems: list[Problem] = []  # reported with the schema's problems
        self.fatal: list[Problem] = []  # reported at once: the data cannot be built as meant
        self.constructor = _Constructor()
        self.nodes = 0
        self.duplicates = 0
        self._reported: set[int] = set()  # key nodes already reported (an alias visits them again)

    def visit(self, node: Any, loc: Loc, depth: int, record: bool) -> None:
        """Index ``node`` at ``loc`` (lines only if ``record``: merged keys keep the mapping's line)."""
        self._enter(node, loc, depth)
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if key_node.tag == _MERGE_TAG:  # '<<: *base': merged keys fall back to this line
                    self.visit(value_node, loc, depth + 1, False)
                    continue
                key = self._key(key_node, loc, depth)
                sub: Loc = (*loc, key)
                if record:
                    self._record(sub, key_node.start_mark.line + 1)
                self.visit(value_node, sub, depth + 1, record)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                if record:
                    self.lines[(*loc, i)] = item.start_mark.line + 1
                self.visit(item, (*loc, i), depth + 1, record)
        else:
            value = self._construct(node, loc)
            if isinstance(value, float) and not math.isfinite(value):
                # worded as pydantic's finite_number error, so that the two merge into one line
                self.problems.append(Problem(loc, f"expected a finite number, got {show(value)}."))

    def _enter(self, node: Any, loc: Loc, depth: int) -> None:
        """Count ``node`` and refuse it beyond ``MAX_NODES`` or ``MAX_DEPTH``, or with a foreign tag."""
        line = node.start_mark.line + 1
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _Stop(
                line,
                loc,
                f"the document expands to more than {MAX_NODES:,} YAML values (each use of an "
                f"alias counts its anchor's values again); {_NODES} Remove the repeated aliases.",
            )
        if depth > MAX_DEPTH:
            raise _Stop(
                line,
                loc,
                f"nested more than {MAX_DEPTH} levels deep once aliases are "
                f"expanded; the limit is {MAX_DEPTH}. Flatten the data.",
            )
        if node.tag not in _PLAIN_TAGS:
            tag = str(node.tag).replace("tag:yaml.org,2002:", "!!")
            raise _Stop(
                line,
                loc,
                f"the YAML tag {show(tag)} is not allowed: {_PLAIN}, and greenbench "
                "never builds objects from a file. Remove the tag.",
            )

    def _key(self, key_node: Any, loc: Loc, depth: int) -> str:
        """The key as a string; any other key is a fatal problem (and shown as written)."""
        if not isinstance(key_node, yaml.ScalarNode):
            self.visit(key_node, loc, depth + 1, False)  # counted like any value
            kind = "mapping" if isinstance(key_node, yaml.MappingNode) else "list"
            self._fatal(key_node, loc, f"a key is a {kind}; expected a name (text) as every key.")
            return f"<{kind}>"
        self._enter(key_node, loc, depth + 1)
        key = self._construct(key_node, loc)
        if isinstance(key, str):
            return key
        written = short(str(key_node.value))
        if isinstance(key, bool) or key is None:
            what = "null" if key is None else str(key).lower()
            why = f"YAML 1.1 reads the unquoted key '{written}' as {what}"
        else:
            why = f"YAML reads the key '{written}' as a {_KIND.get(type(key), type(key).__name__)}"
        self._fatal(key_node, loc, f"{why}, not as a name; quote the name: '\"{written}\": ...'.")
        return written

    def _record(self, sub: Loc, line: int) -> None:
        """Remember the line of key ``sub``; a second one is a duplicate (PyYAML keeps the last)."""
        if sub in self.lines:
            message = f"duplicate key; it is already set on line {self.lines[sub]}. Keep one of them."
            self.problems.append(Problem(sub, message, line))
            self.duplicates += 1
            if self.duplicates <= MAX_SHOWN:  # bounded: each clean-up scans every line
                for known in [k for k in self.lines if k[: len(sub)] == sub]:
                    del self.lines[known]  # the first value's lines no longer apply
        self.lines[sub] = line

    def _construct(self, node: Any, loc: Loc) -> Any:
        """The scalar's value; a value that cannot be built is reported at its line and key."""
        try:
            return self.constructor.construct_object(node)
        except _TooBig as exc:
            raise _Stop(node.start_mark.line + 1, loc, f"{exc}.") from None
        except (ValueError, LookupError, TypeError, ArithmeticError) as exc:  # e.g. a date 2001-13-45
            kind = str(node.tag).rpartition(":")[2]
            why = f" ({one_line(str(exc))})" if type(exc) is ValueError else ""
            raise _Stop(
                node.start_mark.line + 1,
                loc,
                f"cannot read {show(str(node.value))} as {_AS.get(kind, kind)}{why}; quote it if it is text.",
            ) from None

    def _fatal(self, key_node: Any, loc: Loc, message: str) -> None:
        if id(key_node) not in self._reported:
            self._reported.add(id(key_node))
            self.fatal.append(Problem(loc, message, key_node.start_mark.line + 1))
