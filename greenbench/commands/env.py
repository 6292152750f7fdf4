"""``greenbench env``: the device fingerprint and, per energy meter, available or why not."""

from __future__ import annotations

import argparse

HELP = "device fingerprint and, per energy meter, available or why not; --peak: measure peak GFLOP/s"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--json``; ``--peak`` and its settings (``greenbench.commands.env_peak``)."""
    from greenbench.commands.env_peak import add_peak_arguments

    parser.add_argument("--json", action="store_true")
    add_peak_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Print the report as text or JSON; with ``--peak``, measure and store the peak instead."""
    from greenbench.commands.meter_verbs import dumps, env_report, render_env

    if args.peak:
        from greenbench.commands.env_peak import run_peak

        return run_peak(args)

    report = env_report()
    print(dumps(report) if args.json else render_env(report), end="" if args.json else "\n")
    return 0
