"""``greenbench run SUITE``: run a suite, store a record per variant, print the table.

One run at a time per work folder (``greenbench.run.lock``): a second run on the same folder stops
at once with a message naming the first. Worker output shown on the terminal has its control
characters replaced: a variant name or a log line cannot move the cursor or recolour the screen.
"""

from __future__ import annotations

import argparse
import math
import shlex
import time
from pathlib import Path
from typing import TYPE_CHECKING

from greenbench.commands.table import SuiteRef, add_store_options, table_text, term_view
from greenbench.errors import TERMINAL_UNSAFE, GreenbenchError
from greenbench.executors.local import DEFAULT_STALL_S as DEFAULT_STALL_TIMEOUT_S
from greenbench.paths import WORKDIR_ENV, default_workdir

if TYPE_CHECKING:
    from greenbench.suite import Suite
    from greenbench.suite.smoke import Overrides

HELP = "run a suite (resumes: variants stored ok are skipped)"

EXIT_OK, EXIT_FAILED = 0, 1

# C0/C1 controls (ESC starts terminal escape sequences), line/paragraph separators, bidi overrides,
# lone surrogates (from undecodable bytes: no encoder takes them)
_CONTROL = TERMINAL_UNSAFE


class RunUsageError(GreenbenchError):
    """A bad ``greenbench run`` option, found before anything runs (exit code 2)."""

    exit_code = 2


def printable(text: str) -> str:
    """``text`` safe to print on a terminal: every control character becomes ``?``."""
    return _CONTROL.sub("?", text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The suite file, store and table options, work folder, ``--force``, ``--no-idle``."""
    parser.add_argument("suite")
    add_store_options(parser)
    parser.add_argument(
        "--workdir", help=f"artifacts, logs, datasets (default: ${WORKDIR_ENV}, else work/ beside the store)"
    )
    parser.add_argument("--force", action="store_true", help="redo variants already stored ok")
    parser.add_argument("--no-idle", action="store_true", help="skip the idle-power baseline (recorded)")
    add_override_options(parser)
    add_executor_option(parser)
    parser.add_argument(
        "--stall-timeout",
        default=str(DEFAULT_STALL_TIMEOUT_S),
        metavar="S",
        help="stop a worker whose log and progress stay unchanged for S seconds and record its "
        "variant as failed (default %(default)s; 0 turns the check off)",
    )


def add_executor_option(parser: argparse.ArgumentParser) -> None:
    """``--executor NAME`` and ``--executor-option KEY=VALUE`` (shared by run and gate)."""
    parser.add_argument(
        "--executor",
        default="local",
        metavar="NAME",
        help="where jobs run: local (fresh processes on this machine, the default) or an installed "
        "executor (entry-point group greenbench.executors)",
    )
    parser.add_argument(
        "--executor-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a setting of the executor, passed to it as is (e.g. a cluster's address); repeatable",
    )
    parser.add_argument(
        "--address",
        metavar="HOST:PORT",
        help="the cluster an executor runs jobs on (--executor ray: the Ray head); the same as "
        "--executor-option address=HOST:PORT",
    )


def executor_options(values: list[str], address: str | None = None) -> dict[str, str]:
    """``--executor-option KEY=VALUE`` values (and ``--address``) as a mapping; a value without
    ``=`` is a usage error."""
    options: dict[str, str] = {"address": address} if address else {}
    for value in values:
        key, sep, setting = value.partition("=")
        if not sep or not key.strip():
            raise RunUsageError(
                f"--executor-option {value[:60]!r}: expected KEY=VALUE, "
                "e.g. --executor-option address=host:6379"
            )
        options[key.strip()] = setting
    return options


def add_override_options(parser: argparse.ArgumentParser) -> None:
    """``--data``, ``--weights`` and ``--smoke`` (shared by run and validate)."""
    parser.add_argument(
        "--data",
        metavar="PATH",
        help="the dataset in the task's format, e.g. a data.yaml or an ImageFolder (replaces dataset.path)",
    )
    parser.add_argument(
        "--weights", metavar="PT", help="pretrained weights replacing every variant's 'weights:' entry"
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="check the whole suite in minutes: every stage on a small synthetic dataset with the suite's "
        "class names, one epoch, tiny images; records are marked smoke and kept out of real tables",
    )


def overrides(args: argparse.Namespace) -> Overrides:
    """The suite changes the options ask for; ``--smoke`` with ``--data`` is a usage error."""
    from greenbench.suite.smoke import Overrides

    if args.smoke and args.data:
        raise RunUsageError(
            "--smoke generates its own synthetic dataset; drop --data (or --smoke to use that data)."
        )
    return Overrides(
        data=Path(args.data) if args.data else None,
        weights=Path(args.weights) if args.weights else None,
        smoke=args.smoke,
    )


def stall_timeout(text: str) -> float | None:
    """``--stall-timeout`` in seconds; None for 0 (off). Not a number >= 0: ``RunUsageError``."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise RunUsageError(
            f"--stall-timeout must be a number of seconds >= 0 (0 turns the check off), got "
            f"{printable(repr(text))[:60]}."
        )
    return value or None


def _workdir(args: argparse.Namespace) -> Path:
    return Path(args.workdir) if args.workdir else default_workdir(Path(args.store))


def run(args: argparse.Namespace) -> int:
    """Run the suite with progress on stderr, then print its table from the store; exit 1 if
    any variant failed. The work folder is locked first: a second run on it stops at once."""
    from greenbench.executors import factory
    from greenbench.run.lock import ActiveRun, WorkdirLock
    from greenbench.suite import load_suite

    # every option is read (and a bad one refused) before anything is built
    stall_s = stall_timeout(args.stall_timeout)
    args.executor_option = executor_options(args.executor_option, args.address)  # checked once, kept parsed
    changes, workdir, store = overrides(args), _workdir(args), Path(args.store)
    factory(args.executor)  # an unknown executor is a usage error before the suite is read
    suite = load_suite(Path(args.suite), changes)
    # one run per work folder and per store (two runs must never store two ok records of one
    # key), taken before the store is opened or anything heavy imported
    store_lock = WorkdirLock(
        store.parent, suite.name, name=f".{store.name}.lock", what=f"the results store {store}",
        fix="pass --store with another file",
    )  # fmt: skip
    with WorkdirLock(workdir, suite.name), store_lock, ActiveRun(suite.name, workdir):
        return _run_locked(args, suite, workdir, stall_s)


def next_hint(suite_file: str, suite: Suite, store: Path) -> str:
    """What to do after a run of ``suite_file`` (as given): the commands that show its results (a
    smoke run: its table only; reports and leaderboards leave smoke records out)."""
    where = f"--store {shlex.quote(str(store))}"
    path = shlex.quote(suite_file)
    if suite.smoke is not None:
        return printable(f"next: greenbench table {path} {where} --smoke")
    return printable(
        f"next: greenbench table {path} {where} · greenbench report {where} --suite "
        f"{shlex.quote(suite.name)} · greenbench leaderboard {where}"
    )


def _run_locked(args: argparse.Namespace, suite: Suite, workdir: Path, stall_s: float | None) -> int:
    from rich.console import Console

    from greenbench.run.progress import RunProgress
    from greenbench.run.runner import Runner, RunOptions
    from greenbench.store import Store

    console = Console(stderr=True, soft_wrap=True)
    started = time.monotonic()
    with Store(Path(args.store)) as store, RunProgress(suite, console) as progress:
        options = RunOptions(
            workdir=workdir,
            force=args.force,
            skip_idle=True if args.no_idle else None,
            progress=progress,
            executor_name=args.executor,
            executor_options=args.executor_option,
            stall_s=stall_s,
        )
        runner = Runner(suite, store, options)
        console.print(
            f"suite '{printable(suite.name)}' on {runner.device['cpu_model']} "
            f"({runner.device['device_id']}), store {printable(args.store)}",
            highlight=False,
            markup=False,
        )
        if suite.smoke is not None:
            console.print(
                "SMOKE RUN: " + "; ".join(suite.smoke["notes"]) + ". Records are marked smoke; "
                "'greenbench table --smoke' shows them, real tables never do.",
                highlight=False,
                markup=False,
            )
        outcome = runner.run()
        progress.close()
        where = f"; logs in {runner.logdir}" if runner.logdir.exists() else "; nothing to run"
        console.print(
            f"done in {time.monotonic() - started:.1f} s{printable(where)}", highlight=False, markup=False
        )
        print(table_text(store, SuiteRef.of(suite), outcome.device_id, args.format, term_view(args)))
        console.print(next_hint(args.suite, suite, Path(args.store)), highlight=False, markup=False)
    if outcome.failed:
        console.print(
            f"failed variants: {printable(', '.join(outcome.failed))}", highlight=False, markup=False
        )
        return EXIT_FAILED
    return EXIT_OK
