"""``greenbench data synth``: write a task's synthetic dataset (the one ``dataset.synthetic`` and
``--smoke`` use)."""

from __future__ import annotations

import argparse
from pathlib import Path

from greenbench.errors import GreenbenchError

HELP = "datasets"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``synth`` action and its options."""
    actions = parser.add_subparsers(dest="data_verb", required=True, metavar="ACTION")
    s = actions.add_parser("synth", help="write a task's synthetic dataset (the one --smoke uses)")
    s.add_argument("--out", required=True)
    s.add_argument(
        "--task", default="detect", help="the task whose dataset format to write (default: detect)"
    )
    s.add_argument("--classes", type=int, default=3)
    s.add_argument("--images", type=int, default=60)
    s.add_argument("--imgsz", type=int, default=128)
    s.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    """Run the chosen action (only ``synth`` so far)."""
    return synth(args)


def synth(args: argparse.Namespace) -> int:
    """Write the task's synthetic dataset under ``--out``; print the file to point a suite at."""
    from greenbench.tasks import task_class
    from greenbench.tasks.base import Synthetic

    task = task_class(args.task)
    try:
        spec = Synthetic(classes=args.classes, images=args.images, imgsz=args.imgsz, seed=args.seed)
        data_file = task.write_synthetic(Path(args.out), spec)
    except ValueError as e:
        raise GreenbenchError(f"data synth: {e}") from None
    print(f"wrote {data_file}")
    return 0
