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


SPLIT_DESCRIPTION = """\
Build a YOLO-format dataset (images/ and labels/ per split, and a data.yaml) from three file
lists: the YOLOv5 study's exact 8:1:1 split of the THWS images ships as suites/yolo_thws_split
(the authors' own lists). The lists name images; the images and their YOLO label files
(<image stem>.txt) are looked up by file name in every subfolder of --images and --labels.
Every image of the lists must be found with its label, else nothing is written and the error
says how many are missing and which, unless --allow-missing.

example: greenbench data split --lists suites/yolo_thws_split --images ~/thws/image --out data/thws
"""


def add_split_arguments(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``greenbench data split``: its lists, sources, output and how files are placed."""
    s = actions.add_parser(
        "split",
        help="a YOLO dataset from train/val/test file lists (the YOLOv5 study's: suites/yolo_thws_split)",
        description=SPLIT_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument(
        "--lists",
        required=True,
        metavar="DIR",
        help="folder with train.txt, val.txt, test.txt (one image file name per line; a path counts "
        "by its file name) and names.txt (the class names, one per line, in class-id order)",
    )
    s.add_argument(
        "--images",
        required=True,
        metavar="SRC",
        help="folder holding the images (searched in every subfolder)",
    )
    s.add_argument(
        "--labels",
        metavar="DIR",
        help="folder holding the YOLO label files <image stem>.txt (searched in every subfolder; "
        "default: SRC, and a 'labels' folder beside SRC if there is one)",
    )
    s.add_argument(
        "--out",
        required=True,
        metavar="DST",
        help="a new or empty folder: images/{train,val,test}, labels/{train,val,test}, data.yaml",
    )
    s.add_argument(
        "--hardlink",
        action="store_true",
        help="hard-link the files instead of copying them (saves the space; a file on another file "
        "system is copied, and the summary says how many); default: copy",
    )
    s.add_argument(
        "--allow-missing",
        action="store_true",
        help="write the split without the images (or labels) that are not found, and say how many; "
        "it is then not the lists' exact split",
    )


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
    """Run the chosen action: ``synth``, or write a bundled dataset."""
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
    """Write the lists' split under ``--out``; print its data.yaml, the counts and how files got there."""
    from greenbench.tasks.detect.list_split import SplitSources, read_lists, write_split

    lists = read_lists(Path(args.lists))
    sources = SplitSources(Path(args.images), Path(args.labels) if args.labels else None)
    result = write_split(
        lists, sources, Path(args.out), hardlink=args.hardlink, allow_missing=args.allow_missing
    )
    counts = ", ".join(f"{n} {split}" for split, n in result.images.items())
    how = result.method
    if result.copied_instead:
        how += f" ({result.copied_instead} files copied instead: another file system)"
    print(f"wrote {result.data_yaml}: {counts} images with their labels, {how}")
    if result.left_out:
        shown = ", ".join(result.left_out[:5]) + (" ..." if len(result.left_out) > 5 else "")
        print(f"left out (--allow-missing): {len(result.left_out)} image(s) of the lists: {shown}")
    return 0
