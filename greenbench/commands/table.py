"""``greenbench table SUITE``: the comparison table of a suite, from the store alone.

SUITE is a suite file or the bare name of a suite in the store. Of a suite file only ``name``,
``baseline``, the variant order and ``table:`` groups, ``tables``, ``task`` and ``measure.device``
are read (``read_manifest``, not ``load_suite``): the table needs neither the dataset nor the
model files, so it still works after the dataset folder was moved away. Rows: per variant name
of the suite on the device, the newest ``ok`` record, else the newest failed one.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import reprlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from greenbench.errors import TERMINAL_UNSAFE, GreenbenchError, SuiteError
from greenbench.paths import default_store, store_help
from greenbench.report.latex import latex_escape
from greenbench.report.table_data import TermView  # the renderer (rich) is imported on render
from greenbench.report.tables import (  # tabulate: imported on render
    FORMATS,
    DeltaAgainst,
    build_table,
    md_escape,
    render,
)

if TYPE_CHECKING:
    from greenbench.report.tables import Table
    from greenbench.store import RunRecord, Store
    from greenbench.suite import Suite

HELP = "print the comparison table of a suite from the store (a suite file or a stored suite name)"

_DEVICE = re.compile(r"cpu|cuda:\d+")
_CONTROL = TERMINAL_UNSAFE  # kept off a terminal


@dataclass(frozen=True)
class TableView:
    """How a table is shown: the terminal's cut (its width filled in when printed) and the
    column rows are sorted by (None: suite order)."""

    term: TermView = field(default_factory=TermView)
    sort: str | None = None


@dataclass(frozen=True)
class SuiteRef:
    """What the table needs of a suite.

    variants: variant names in file order; empty for a bare name (every stored variant, in store
    order). baseline, task: from the suite file; None for a bare name (the newest record says).
    device: the suite's ``measure.device``; None for a bare name. path: the suite file, if any.
    smoke: show the records of ``greenbench run --smoke`` instead of real ones (never both).
    tables: the variants' ``table:`` groups, (table name, variant names) in file order; empty:
    one table. The baseline is the first row of every table.
    parent_tables: the groups whose Δ is against each row's parent (the suite's
    ``tables: {NAME: {delta: parent}}``); the others' is against the baseline.
    """

    name: str
    variants: tuple[str, ...] = ()
    baseline: str | None = None
    task: str | None = None
    device: str | None = None
    path: Path | None = None
    smoke: bool = False
    tables: tuple[tuple[str, tuple[str, ...]], ...] = ()
    parent_tables: tuple[str, ...] = ()

    @classmethod
    def of(cls, suite: Suite) -> SuiteRef:
        """The reference of a loaded suite."""
        return cls(
            suite.name,
            tuple(suite.variants),
            suite.baseline,
            suite.task,
            suite.measure.device,
            suite.path,
            suite.smoke is not None,
            _groups({name: spec.table for name, spec in suite.variants.items()}),
            tuple(name for name, spec in suite.tables.items() if spec.delta == "parent"),
        )


class TableUsageError(GreenbenchError):
    """A bad table option (``--columns``, ``--sort``): a usage error, exit code 2."""

    exit_code = 2


def add_store_options(parser: argparse.ArgumentParser) -> None:
    """``--store``, ``--format`` and the terminal table's options, shared by the verbs that print
    a table."""
    parser.add_argument("--store", default=str(default_store()), help=store_help())
    parser.add_argument(
        "--format",
        choices=("term", *FORMATS),
        default="term",
        help="term (default): a table that fits the terminal, one number per cell; md, csv, latex, "
        "json: every column with its intervals and every note",
    )
    parser.add_argument("--ci", action="store_true", help="term: show the 95 %% intervals")
    parser.add_argument("--wide", action="store_true", help="term: every column, however wide")
    parser.add_argument(
        "--columns",
        metavar="A,B,…",
        help="term: only these metrics (names or headers, e.g. latency_ms,energy_per_image_j)",
    )
    parser.add_argument(
        "--sort", metavar="COL", help="rows best first by this metric (or 'variant'), in every format"
    )


def term_view(args: argparse.Namespace) -> TableView:
    """What ``--format term``, ``--ci``, ``--wide``, ``--columns`` and ``--sort`` ask for."""
    columns = tuple(c for c in (args.columns or "").split(",") if c.strip())
    return TableView(TermView(ci=args.ci, wide=args.wide, columns=columns), args.sort)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The suite (file or stored name), store, format and device."""
    parser.add_argument("suite", help="a suite file, or the name of a suite in the store")
    add_store_options(parser)
    parser.add_argument(
        "--json", dest="format", action="store_const", const="json", help="the same as --format json"
    )
    parser.add_argument("--device", help="device id (default: this machine)")
    parser.add_argument("--smoke", action="store_true", help="the records of 'greenbench run --smoke'")
    parser.add_argument(
        "--paper",
        metavar="CSV",
        help="instead, the suite's rows beside a paper's reference figures (a CSV shipped beside the suite), "
        "each side as ratios to its own baseline: params, GFLOPs, size, CPU time, headline accuracy",
    )


def _brief(value: object) -> str:
    """``repr(value)`` cut short: a YAML alias bomb must not be expanded into a message."""
    r = reprlib.Repr()
    r.maxlevel, r.maxlist, r.maxtuple, r.maxdict, r.maxset = 2, 4, 4, 4, 4
    r.maxstring = r.maxother = 80
    text = r.repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def _bad(path: Path, key: str, expected: str, got: object) -> SuiteError:
    return SuiteError(f"{path}: key '{key}': expected {expected}, got {_brief(got)}.")


def read_suite_ref(path: Path) -> SuiteRef:
    """Name, variant order, baseline, task and device of a suite file, without loading the suite."""
    from greenbench.suite.manifest import read_manifest

    # the same bounded reader as validate: no FIFO hang, no alias bomb, no deep nesting
    data = read_manifest(path)[1]
    if not isinstance(data, dict):
        raise SuiteError(
            f"{path}:1: the top level is not a mapping; expected a suite with the keys name, "
            f"baseline and variants."
        )
    name, variants, baseline = data.get("name"), data.get("variants"), data.get("baseline")
    task = data.get("task", "detect")
    measure = data.get("measure") or {}
    device = measure.get("device", "cpu") if isinstance(measure, dict) else None
    if not isinstance(name, str) or not name:
        raise _bad(path, "name", "the suite's name", name)
    if not isinstance(variants, dict) or not variants:
        raise _bad(path, "variants", "a mapping of variant names", variants)
    if baseline is not None and not isinstance(baseline, str):
        raise _bad(path, "baseline", "a variant name", baseline)
    if not isinstance(task, str):
        raise _bad(path, "task", "a task name such as 'detect'", task)
    if not isinstance(device, str) or not _DEVICE.fullmatch(device):
        raise _bad(path, "measure.device", "'cpu' or 'cuda:N'", device)
    tables = {str(k): v.get("table") if isinstance(v, dict) else None for k, v in variants.items()}
    shown = data.get("tables") or {}
    if not isinstance(shown, dict) or not all(
        isinstance(v, dict) and v.get("delta", "baseline") in ("baseline", "parent") for v in shown.values()
    ):
        raise _bad(path, "tables", "a mapping of table names to {delta: baseline | parent}", shown)
    parent_tables = tuple(str(k) for k, v in shown.items() if v.get("delta") == "parent")
    return SuiteRef(
        name, tuple(str(v) for v in variants), baseline, task, device, path, tables=_groups(tables),
        parent_tables=parent_tables,
    )  # fmt: skip


def _groups(tables: dict[str, object]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """(table, variants) in file order; the variants without ``table:`` form a table ``other``
    (when some have one). No ``table:`` anywhere: one table, ``()``."""
    if not any(isinstance(t, str) for t in tables.values()):
        return ()
    groups: dict[str, list[str]] = {}
    for variant, table in tables.items():
        groups.setdefault(table if isinstance(table, str) else "other", []).append(variant)
    return tuple((t, tuple(v)) for t, v in groups.items())


def suite_ref(text: str) -> SuiteRef:
    """A suite file's reference, or a bare suite name's; a missing file is a ``SuiteError``."""
    path = Path(text)
    if path.is_file():
        return read_suite_ref(path)
    if path.suffix in (".yaml", ".yml") or "/" in text or "\\" in text or path.exists():
        raise SuiteError(
            f"{text}: no such suite file; pass the path of a suite file or the name of a suite "
            f"stored in the results store."
        )
    return SuiteRef(text)


def _this_machine(device: str) -> str:
    from greenbench.measure.device import fingerprint

    return str(fingerprint(device)["device_id"])


def default_device_id(ref: SuiteRef, store: Store) -> str:
    """This machine's device id for the suite's device. For a bare name, whose device is not
    known: the device of the newest record measured on this machine, else its CPU."""
    if ref.device is not None:
        return _this_machine(ref.device)
    records = store.records(suite=ref.name)
    stored = {r.device_id for r in records}
    devices = dict.fromkeys(str(r.device.get("device")) for r in reversed(records))
    for device in (d for d in devices if _DEVICE.fullmatch(d)):
        if (device_id := _this_machine(device)) in stored:
            return device_id
    return _this_machine("cpu")


def current_records(store: Store, ref: SuiteRef, device_id: str) -> tuple[list[RunRecord], RunRecord | None]:
    """Per variant: the newest ok record, else the newest failed one, in the suite file's order
    (store order for a bare name); and the newest record of the suite on the device."""
    newest_ok: dict[str, RunRecord] = {}
    newest: dict[str, RunRecord] = {}
    last = None
    for r in store.records(suite=ref.name, device_id=device_id):  # oldest first
        if (r.smoke is not None) != ref.smoke:  # smoke and real results never share a table
            continue
        newest[r.variant] = r  # keeps the order of first appearance
        if r.status == "ok":
            newest_ok[r.variant] = r
        last = r
    names = [n for n in ref.variants if n in newest] if ref.variants else list(newest)
    return [newest_ok.get(n) or newest[n] for n in names], last


def _none_found(store: Store, ref: SuiteRef, device_id: str) -> GreenbenchError:
    others = sorted({r.device_id for r in store.records(suite=ref.name)} - {device_id})
    if others:
        hint = f"it holds records of this suite from device(s) {', '.join(others)}: pass --device"
    elif not ref.smoke and any(r.smoke is not None for r in store.records(suite=ref.name)):
        hint = "it holds only smoke-run records of it: pass --smoke to see them"
    else:
        suites = sorted({r.suite for r in store.records()})
        hint = f"suites in the store: {', '.join(suites) or 'none'}"
        hint += f"; run 'greenbench run {ref.path}' first" if ref.path is not None else ""
    which = " of its variants" if ref.variants else ""
    if ref.smoke:
        which = " from a smoke run" + (" of its variants" if ref.variants else "")
    return GreenbenchError(
        f"the store {store.path} holds no record{which} of suite '{ref.name}' on device {device_id}; {hint}."
    )


def table_text(store: Store, ref: SuiteRef, device_id: str, fmt: str, view: TableView | None = None) -> str:
    """The suite's comparison table(s) from the store, rendered as ``fmt`` (``term``: cut to
    this terminal's width): one per ``table:`` group, each with the baseline first (CSV: one
    file with a ``table`` column; JSON: ``{"tables": [...]}``)."""
    records, newest = current_records(store, ref, device_id)
    if not records or newest is None:
        raise _none_found(store, ref, device_id)
    shown = _Shown(fmt, view or TableView())
    baseline = ref.baseline if ref.path is not None else newest.baseline
    if not ref.tables:
        text = _one_table(store, ref, records, newest, shown)
        return _json_tables([(None, text)]) if fmt == "json" else text
    if fmt == "csv":  # one file, one header: every row, with the table it belongs to
        table_of = {v: name for name, variants in ref.tables for v in variants}
        return _with_table_column(_one_table(store, ref, records, newest, shown), table_of)
    texts: list[str] = []
    named: list[tuple[str | None, str]] = []
    for name, variants in ref.tables:
        wanted = {*variants, baseline}
        group = [r for r in records if r.variant in wanted]
        group.sort(key=lambda r: r.variant != baseline)  # stable: the baseline first
        if not any(r.variant != baseline for r in group):
            continue
        # a row's parent may sit in another table: every record of the suite is a candidate
        delta: DeltaAgainst = "parent" if name in ref.parent_tables else "baseline"
        text = _one_table(store, ref, group, newest, shown, delta, records)
        named.append((name, text))
        if fmt == "latex":
            texts.append(f"% table: {latex_escape(name)}\n{text}")
        elif fmt == "term":
            texts.append(f"Table: {_CONTROL.sub(' ', name)}\n\n{text}")
        else:
            texts.append(f"### Table: {md_escape(name)}\n\n{text}")
    return _json_tables(named) if fmt == "json" else "\n\n".join(texts)


def _json_tables(named: list[tuple[str | None, str]]) -> str:
    """JSON of each table (``table``: its ``table:`` group, null for one table) in one object."""
    import json

    tables = [{"table": name, **json.loads(text)} for name, text in named]
    return json.dumps({"tables": tables}, indent=2, allow_nan=False)


@dataclass(frozen=True)
class _Shown:
    fmt: str
    view: TableView


def _with_table_column(text: str, table_of: dict[str, str]) -> str:
    """CSV ``text`` with a first column ``table``: the ``table:`` group of the row's variant."""
    import csv
    import io

    rows = list(csv.reader(io.StringIO(text)))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for i, row in enumerate(rows):
        writer.writerow(["table" if i == 0 else table_of.get(row[0], ""), *row])
    return out.getvalue()


def _one_table(
    store: Store,
    ref: SuiteRef,
    records: list[RunRecord],
    newest: RunRecord,
    shown: _Shown,
    delta: DeltaAgainst = "baseline",
    pool: Sequence[RunRecord] = (),
) -> str:
    baseline = ref.baseline if ref.path is not None else newest.baseline
    task = ref.task or newest.task
    fmt = shown.fmt
    try:
        table = build_table(records, baseline, ref.name, task, delta=delta, pool=pool)
    except ValueError as e:
        raise GreenbenchError(f"suite '{ref.name}': {e}") from None
    if ref.smoke:
        smoke_notes = dict.fromkeys(n for r in records for n in (r.smoke or {}).get("notes", []))
        table.notes[:0] = [
            "SMOKE RUN: synthetic data, one epoch per training stage, tiny images, a short protocol; "
            "these figures only show that every stage runs, they are not results.",
            *(str(n) for n in smoke_notes),
        ]
        table.alerts += table.notes[:1]
    table.notes += store.warnings  # rows skipped as unreadable: said, not silently dropped
    table.alerts += store.warnings
    if fmt == "csv":  # CSV has no notes: say them on stderr
        for note in store.warnings:
            print(f"greenbench: warning: {_CONTROL.sub(' ', note)}", file=sys.stderr)
    return _render(table, shown)


def _render(table: Table, shown: _Shown) -> str:
    """``table`` sorted as asked, rendered as ``shown.fmt``; a bad ``--sort`` or ``--columns`` is
    a usage error."""
    from greenbench.report.table_data import pick_columns, sort_table

    if shown.view.sort:
        try:
            table = sort_table(table, shown.view.sort)
        except ValueError as e:
            raise TableUsageError(f"--sort: {e} (or 'variant').") from None
    if shown.fmt != "term":
        return render(table, shown.fmt)
    try:
        pick_columns(table, shown.view.term.columns)  # checked before anything prints
    except ValueError as e:
        raise TableUsageError(f"--columns: {e}; pass them comma-separated.") from None
    from rich.console import Console

    from greenbench.report.terminal_table import render_terminal

    console = Console(highlight=False)  # stdout: its width (COLUMNS when not a terminal), its colours
    return render_terminal(table, dataclasses.replace(shown.view.term, width=console.width), console)


def paper_text(store: Store, ref: SuiteRef, device_id: str, paper_file: Path, fmt: str) -> str:
    """The suite's records on the device beside ``paper_file``'s figures (``report.reference``)."""
    from greenbench.report.reference import reference_text

    records = [
        r for r in store.records(suite=ref.name, device_id=device_id) if (r.smoke is not None) == ref.smoke
    ]
    if not records:
        raise _none_found(store, ref, device_id)
    baseline = ref.baseline if ref.path is not None else records[-1].baseline
    return reference_text(paper_file, records, ref.name, ref.variants, str(baseline), fmt)


def run(args: argparse.Namespace) -> int:
    """Print the table; read the store only (it is opened read-only)."""
    from greenbench.store import Store

    ref = dataclasses.replace(suite_ref(args.suite), smoke=args.smoke)
    if not Path(args.store).exists():
        raise GreenbenchError(f"no results store at {args.store}; run the suite first or pass --store.")
    with Store(Path(args.store), readonly=True) as store:
        device_id = args.device or default_device_id(ref, store)
        if args.paper:
            print(paper_text(store, ref, device_id, Path(args.paper), args.format))
        else:
            print(table_text(store, ref, device_id, args.format, term_view(args)))
    return 0
