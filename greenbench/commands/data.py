"""``greenbench data synth``: write a task's synthetic dataset (the one ``dataset.synthetic`` and
``--smoke`` use); ``greenbench data NAME --out DIR``: write a real dataset an installed task
bundles (its ``datasets``, e.g. ``digits``), offline; ``greenbench data split``: a YOLO dataset
from train/val/test file lists (the YOLOv5 study's own split, ``suites/yolo_thws_split``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from greenbench.errors import GreenbenchError

HELP = "datasets"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``synth`` and ``split`` actions, the bundled datasets, and their options."""
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
    add_split_arguments(actions)
    for name, (task, what) in bundled().items():
        b = actions.add_parser(name, help=f"write {what} (task {task}), offline")
        b.add_argument("--out", required=True)


def add_split_arguments(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``greenbench data split``: the detection task's split from file lists (its options are its own)."""
    from greenbench.tasks.detect import list_split

    parser = actions.add_parser(
        "split",
        help=list_split.HELP,
        description=list_split.DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    list_split.add_arguments(parser)


def bundled() -> dict[str, tuple[str, str]]:
    """Every dataset an installed task bundles: name -> (task, what it is)."""
    from greenbench.tasks import task_class, task_names

    found: dict[str, tuple[str, str]] = {}
    for task in task_names():
        try:
            datasets = task_class(task).datasets
        except GreenbenchError:  # a broken plugin: its datasets are not offered
            continue
        for name, (what, _target) in datasets.items():
            found.setdefault(name, (task, what))
    return found


def run(args: argparse.Namespace) -> int:
    """Run the chosen action: ``synth``, ``split``, or write a bundled dataset."""
    if args.data_verb == "synth":
        return synth(args)
    if args.data_verb == "split":
        return split(args)
    return write_bundled(args.data_verb, Path(args.out))


def write_bundled(name: str, out: Path) -> int:
    """Write the bundled dataset ``name`` under ``out``; print what a suite points at."""
    import importlib

    from greenbench.tasks import task_class

    task, _what = bundled()[name]
    module, _, function = task_class(task).datasets[name][1].partition(":")
    written = getattr(importlib.import_module(module), function)(out)
    print(f"wrote {written} (task {task}; point dataset.path at it)")
    return 0


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


def split(args: argparse.Namespace) -> int:
    """Write the lists' split under ``--out`` (``tasks.detect.list_split``)."""
    from greenbench.tasks.detect import list_split

    return list_split.run(args)
