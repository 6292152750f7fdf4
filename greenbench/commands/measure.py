"""``greenbench measure -- CMD``: run a command under greenbench's meters, like ``perf stat``."""

from __future__ import annotations

import argparse
import sys

HELP = "run a command under greenbench's meters (like perf stat); returns its exit code"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Meters, idle baseline, grid intensity, PUE, report format and destination, the command."""
    parser.description = "Report goes to stderr (or --output FILE); the command keeps stdout."
    parser.add_argument("--json", action="store_true", help="report as JSON")
    parser.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="write the report to FILE instead of stderr ('-': standard output, after the command's own)",
    )
    parser.add_argument(
        "--meters", default="auto", help="comma list of auto,rapl,nvml,estimate (default auto)"
    )
    parser.add_argument(
        "--idle-s", type=float, default=2.0, help="idle baseline seconds before the command; 0 skips"
    )
    parser.add_argument("--country", default="DEU", help="ISO 3166 alpha-3 code for grid intensity")
    parser.add_argument("--intensity", type=float, help="grid intensity gCO2/kWh (overrides --country)")
    parser.add_argument("--pue", type=float, default=1.0, help="data-centre PUE, >= 1 (default 1.0)")
    parser.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD ARGS…")


def run(args: argparse.Namespace) -> int:
    """Run the command; return its exit code (128 + N if killed by signal N, or if greenbench
    received signal N, forwarded it to the command, and says so on stderr).

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
    if report["interrupted_by"]:  # said on stderr even when the report went to a file
        print(
            f"greenbench: received {report['interrupted_by']} while the command ran and forwarded it "
            f"to the command, which ended with exit code {report['command_exit_code']}; greenbench "
            f"exits with {code} (128 + {code - 128}).",
            file=sys.stderr,
        )
    return code
