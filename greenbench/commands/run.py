"""``greenbench run SUITE``: run a suite, store a record per variant, print the table."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from greenbench.commands.table import SuiteRef, add_store_options, table_text

HELP = "run a suite (resumes: variants stored ok are skipped)"

EXIT_OK, EXIT_FAILED = 0, 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The suite file, store and table format, work folder, ``--force``, ``--no-idle``."""
    parser.add_argument("suite")
    add_store_options(parser)
    parser.add_argument("--workdir", help="artifacts, logs, datasets (default: work/ beside the store)")
    parser.add_argument("--force", action="store_true", help="redo variants already stored ok")
    parser.add_argument("--no-idle", action="store_true", help="skip the idle-power baseline (recorded)")


def _workdir(args: argparse.Namespace) -> Path:
    return Path(args.workdir) if args.workdir else Path(args.store).parent / "work"


def run(args: argparse.Namespace) -> int:
    """Run the suite with progress on stderr, then print its table from the store; exit 1 if
    any variant failed."""
    from rich.console import Console
    from rich.markup import escape

    from greenbench.runner import Runner, RunOptions
    from greenbench.store import Store
    from greenbench.suite import load_suite

    suite = load_suite(Path(args.suite))
    console = Console(stderr=True, soft_wrap=True)
    started = time.monotonic()
    with Store(Path(args.store)) as store, console.status("starting…") as status:

        def progress(msg: str) -> None:
            elapsed = time.monotonic() - started
            if msg.endswith((": ok", "skipped")) or ": FAILED" in msg or msg.startswith("idle"):
                console.print(f"[{elapsed:6.1f} s] {msg}", highlight=False, markup=False)
            status.update(escape(f"{suite.name} · {msg} · {elapsed:.0f} s"))

        options = RunOptions(
            workdir=_workdir(args),
            force=args.force,
            skip_idle=True if args.no_idle else None,
            progress=progress,
        )
        runner = Runner(suite, store, options)
        console.print(
            f"suite '{suite.name}' on {runner.device['cpu_model']} "
            f"({runner.device['device_id']}), store {args.store}",
            highlight=False,
        )
        outcome = runner.run()
        status.stop()
        where = f"; logs in {runner.logdir}" if runner.logdir.exists() else "; nothing to run"
        console.print(f"done in {time.monotonic() - started:.1f} s{where}", highlight=False)
        print(table_text(store, SuiteRef.of(suite), outcome.device_id, args.format))
    if outcome.failed:
        console.print(f"failed variants: {', '.join(outcome.failed)}", highlight=False)
        return EXIT_FAILED
    return EXIT_OK
