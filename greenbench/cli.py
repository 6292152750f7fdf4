"""The ``greenbench`` command: run, validate, table, data synth, env, measure.

Every user error (``GreenbenchError``) prints one paragraph and exits with its code; only a
bug in greenbench shows a traceback.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from greenbench.errors import GreenbenchError
from greenbench.store import DEFAULT_STORE

if TYPE_CHECKING:
    from greenbench.store import RunRecord, Store
    from greenbench.suite import Suite

EXIT_OK, EXIT_FAILED = 0, 1  # an invalid suite exits 2 (SuiteError.exit_code)


def _workdir(args: argparse.Namespace) -> Path:
    return Path(args.workdir) if args.workdir else Path(args.store).parent / "work"


def cmd_validate(args: argparse.Namespace) -> int:
    """Check a suite without running it."""
    from greenbench.suite import load_suite

    suite = load_suite(Path(args.suite))
    print(
        f"{args.suite}: valid — suite '{suite.name}', {len(suite.variants)} variants, "
        f"order: {' → '.join(suite.order())}, baseline '{suite.baseline}'"
    )
    return EXIT_OK


def _current_records(suite: Suite, store: Store, device_id: str) -> list[RunRecord]:
    """Per variant of the suite as it is now: the newest ok record, else the newest failure."""
    from greenbench.runner import dataset_key, variant_key

    data_key = dataset_key(suite)
    rows = []
    for name in suite.order():
        vh = variant_key(suite, name, data_key)
        rec = store.latest(suite.name, vh, device_id) or store.latest(suite.name, vh, device_id, None)
        if rec is not None:
            rows.append(rec)
    return rows


def _print_table(suite: Suite, store: Store, device_id: str, fmt: str) -> int:
    from greenbench.report.tables import build_table, render

    records = _current_records(suite, store, device_id)
    if not records:
        raise GreenbenchError(
            f"the store {store.path} holds no record of suite '{suite.name}' on device "
            f"{device_id} for the suite as it is now; run 'greenbench run {suite.path}' first."
        )
    print(render(build_table(records, suite.baseline, suite.name), fmt))
    return EXIT_OK


def cmd_table(args: argparse.Namespace) -> int:
    """Print the comparison table of a suite from the store."""
    from greenbench.measure.device import fingerprint
    from greenbench.store import Store
    from greenbench.suite import load_suite

    suite = load_suite(Path(args.suite))
    if not Path(args.store).exists():
        raise GreenbenchError(f"no results store at {args.store}; run the suite first or pass --store.")
    device_id = args.device or fingerprint(suite.measure.device)["device_id"]
    with Store(Path(args.store), readonly=True) as store:  # table only reads
        return _print_table(suite, store, device_id, args.format)


def cmd_run(args: argparse.Namespace) -> int:
    """Run a suite, store a record per variant, print the table."""
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
        _print_table(suite, store, outcome.device_id, args.format)
    if outcome.failed:
        console.print(f"failed variants: {', '.join(outcome.failed)}", highlight=False)
        return EXIT_FAILED
    return EXIT_OK


def cmd_data_synth(args: argparse.Namespace) -> int:
    """Write a synthetic detection dataset."""
    from greenbench.datasets import SynthSpec, synth_detection

    try:
        spec = SynthSpec(classes=args.classes, images=args.images, imgsz=args.imgsz, seed=args.seed)
        data_yaml = synth_detection(Path(args.out), spec)
    except ValueError as e:
        raise GreenbenchError(f"data synth: {e}") from None
    print(f"wrote {data_yaml}")
    return EXIT_OK


def cmd_env(args: argparse.Namespace) -> int:
    """Device fingerprint and meter availability."""
    from greenbench.commands.meter_verbs import dumps, env_report, render_env

    report = env_report()
    print(dumps(report) if args.json else render_env(report), end="" if args.json else "\n")
    return EXIT_OK


def cmd_measure(args: argparse.Namespace) -> int:
    """Run a command under greenbench's meters; return its exit code (128 + N if killed by signal N).

    Options are checked (exit 2) before the command starts.
    """
    from greenbench.commands.meter_verbs import (
        MeasureOptions,
        dumps,
        measure_command,
        render_measure,
        write_report,
    )

    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    opt = MeasureOptions(
        meters=tuple(name.strip() for name in args.meters.split(",")),
        idle_s=args.idle_s,
        country=args.country,
        pue=args.pue,
        intensity_g_per_kwh=args.intensity,
        output=args.output,
    )
    code, report = measure_command(cmd, opt)
    write_report(dumps(report) if args.json else render_measure(report), args.output, code)
    return code


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every verb."""
    p = argparse.ArgumentParser(prog="greenbench", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="verb", required=True, metavar="VERB")

    def store_opts(sp: argparse.ArgumentParser) -> None:
        sp.add_argument(
            "--store", default=str(DEFAULT_STORE), help="SQLite results file (default %(default)s)"
        )
        sp.add_argument("--format", choices=("md", "csv", "latex"), default="md", help="table format")

    r = sub.add_parser("run", help="run a suite (resumes: variants stored ok are skipped)")
    r.add_argument("suite")
    store_opts(r)
    r.add_argument("--workdir", help="artifacts, logs, datasets (default: work/ beside the store)")
    r.add_argument("--force", action="store_true", help="redo variants already stored ok")
    r.add_argument("--no-idle", action="store_true", help="skip the idle-power baseline (recorded)")
    r.set_defaults(func=cmd_run)

    v = sub.add_parser("validate", help="check a suite without running it (exit 0 valid, 2 invalid)")
    v.add_argument("suite")
    v.set_defaults(func=cmd_validate)

    t = sub.add_parser("table", help="print the comparison table of a suite from the store")
    t.add_argument("suite")
    store_opts(t)
    t.add_argument("--device", help="device id (default: this machine)")
    t.set_defaults(func=cmd_table)

    d = sub.add_parser("data", help="datasets")
    dsub = d.add_subparsers(dest="data_verb", required=True, metavar="ACTION")
    s = dsub.add_parser("synth", help="write a synthetic YOLO detection dataset")
    s.add_argument("--out", required=True)
    s.add_argument("--classes", type=int, default=3)
    s.add_argument("--images", type=int, default=60)
    s.add_argument("--imgsz", type=int, default=128)
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=cmd_data_synth)

    e = sub.add_parser("env", help="device fingerprint and, per energy meter, available or why not")
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=cmd_env)

    m = sub.add_parser(
        "measure",
        help="run a command under greenbench's meters (like perf stat); returns its exit code",
        description="Report goes to stderr (or --output FILE); the command keeps stdout.",
    )
    m.add_argument("--json", action="store_true", help="report as JSON")
    m.add_argument("-o", "--output", help="write the report to FILE instead of stderr")
    m.add_argument("--meters", default="auto", help="comma list of auto,rapl,nvml,estimate (default auto)")
    m.add_argument(
        "--idle-s", type=float, default=2.0, help="idle baseline seconds before the command; 0 skips"
    )
    m.add_argument("--country", default="DEU", help="ISO 3166 alpha-3 code for grid intensity")
    m.add_argument("--intensity", type=float, help="grid intensity gCO2/kWh (overrides --country)")
    m.add_argument("--pue", type=float, default=1.0, help="data-centre PUE, >= 1 (default 1.0)")
    m.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD ARGS…")
    m.set_defaults(func=cmd_measure)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``greenbench`` console script."""
    args = build_parser().parse_args(argv)
    # SIGTERM (a CI cancel, `kill`) unwinds like Ctrl-C: workers stopped, stored records kept
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return int(args.func(args))
    except GreenbenchError as e:
        print(f"greenbench: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("greenbench: interrupted; records stored so far are kept.", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `greenbench table … | head`: the reader left, nothing is wrong
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return EXIT_OK


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
