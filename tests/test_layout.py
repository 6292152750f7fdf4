"""The seams hold: a task's framework stays in the task's package.

Outside ``greenbench/tasks/detect`` no module imports ultralytics, and no code (names, strings,
comments; docstrings aside) names ultralytics, YOLO or mAP: what would otherwise be a detection
detail in the core is reached through the task protocol (``greenbench.tasks.base.Task``)."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import greenbench

PACKAGE = Path(greenbench.__file__).parent
DETECT = PACKAGE / "tasks" / "detect"
NAMES = re.compile(r"(?i:ultralytics|yolo)|\bmAP|\bmap50")


def _core_modules() -> list[Path]:
    return [p for p in sorted(PACKAGE.rglob("*.py")) if DETECT not in p.parents]


def _docstring_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            first = node.body[0] if node.body else None
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                lines.update(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    return lines


def test_only_the_detection_task_imports_its_framework() -> None:
    importers = []
    for path in _core_modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            if any(n == "ultralytics" or n.startswith("ultralytics.") for n in names):
                importers.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert importers == []


def test_no_core_code_names_the_detection_framework() -> None:
    found = []
    for path in _core_modules():
        source = path.read_text(encoding="utf-8")
        docs = _docstring_lines(ast.parse(source))
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            kinds = (tokenize.COMMENT, tokenize.STRING, tokenize.NAME)
            if tok.type in kinds and tok.start[0] not in docs and NAMES.search(tok.string):
                found.append(f"{path.relative_to(PACKAGE)}:{tok.start[0]}: {tok.string[:80]}")
    assert found == []


def test_the_check_sees_what_it_looks_for() -> None:
    """The scan is not vacuous: the detection package itself is full of these names."""
    hits = sum(bool(NAMES.search(p.read_text(encoding="utf-8"))) for p in DETECT.rglob("*.py"))
    assert hits >= 5
