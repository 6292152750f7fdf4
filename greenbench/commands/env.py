"""``greenbench env``: the device fingerprint and, per energy meter, available or why not."""

from __future__ import annotations

import argparse

HELP = "device fingerprint and, per energy meter, available or why not"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--json``."""
    parser.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    """Print the report as text or JSON."""
    from greenbench.commands.meter_verbs import dumps, env_report, render_env

    report = env_report()
    print(dumps(report) if args.json else render_env(report), end="" if args.json else "\n")
    return 0
