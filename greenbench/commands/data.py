"""``greenbench data synth``: write a synthetic detection dataset."""

from __future__ import annotations

import argparse
from pathlib import Path

from greenbench.errors import GreenbenchError

HELP = "datasets"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``synth`` action and its options."""
    actions = parser.add_subparsers(dest="data_verb", required=True, metavar="ACTION")
    s = actions.add_parser("synth", help="write a synthetic YOLO detection dataset")
    s.add_argument("--out", required=True)
    s.add_argument("--classes", type=int, default=3)
    s.add_argument("--images", type=int, default=60)
    s.add_argument("--imgsz", type=int, default=128)
    s.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    """Run the chosen action (only ``synth`` so far)."""
    return synth(args)


def synth(args: argparse.Namespace) -> int:
    """Write a synthetic detection dataset under ``--out``; print its data.yaml."""
    from greenbench.datasets import SynthSpec, synth_detection

    try:
        spec = SynthSpec(classes=args.classes, images=args.images, imgsz=args.imgsz, seed=args.seed)
        data_yaml = synth_detection(Path(args.out), spec)
    except ValueError as e:
        raise GreenbenchError(f"data synth: {e}") from None
    print(f"wrote {data_yaml}")
    return 0
