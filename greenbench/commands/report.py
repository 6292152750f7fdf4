"""``greenbench report``: one self-contained HTML report per device, and a Markdown version.

Reads the stores read-only (``--store`` repeated merges them, as the leaderboard does), leaves
smoke records out, and writes per device ``<out>/<device>/report.html`` (plots inline, nothing
fetched when it opens), ``report.md`` and the plots as SVG files beside it. The folder name is
the device id made safe for any file system (``render_common.safe_name``). The roofline table
uses ``load_results``'s achieved GFLOP/s and % of peak, shown where the device has a stored peak
(``greenbench env --peak``). Without ``-o`` the reports go beside the first store, named after
it (``results/greenbench-report/``), never over the sample committed in ``results/report``; a
report is several files, so ``-o -`` is refused.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from greenbench.errors import TERMINAL_UNSAFE, GreenbenchError
from greenbench.paths import beside_store, default_store

if TYPE_CHECKING:
    from greenbench.store import RunRecord

HELP = "write a self-contained HTML report (and Markdown) per device from the store(s)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--store`` (repeatable), ``--suite``, ``--device``, ``-o``."""
    from greenbench.commands.leaderboard import add_selection_options

    add_selection_options(parser)
    parser.add_argument(
        "-o",
        "--output",
        metavar="FOLDER",
        help="folder of the reports (default: <store>-report beside the first store, e.g. "
        "results/greenbench-report; never the committed results/report). A report is several files: "
        "'-' (standard output) is refused",
    )


def _say(text: str) -> None:
    print(f"greenbench: {TERMINAL_UNSAFE.sub(' ', text)}", file=sys.stderr)


def write_reports(
    stores: list[Path], out: Path, suite: str | None = None, device: str | None = None
) -> list[Path]:
    """Write every device's report under ``out``; the written HTML and Markdown paths."""
    from greenbench.report.device_report import build_device_report
    from greenbench.report.frame import is_smoke, join_runtime, load_results, read_stores
    from greenbench.report.html import render_html
    from greenbench.report.markdown import figure_file, render_markdown
    from greenbench.report.render_common import figures, safe_name

    for path in stores:
        if not path.is_file():
            raise GreenbenchError(f"no results store at {path}; run a suite first or pass --store.")
    records, peaks, warnings = read_stores(stores)
    for note in warnings:
        _say(f"warning: {note}")
    chosen = [
        r
        for r in records
        if not is_smoke(r)
        and (suite is None or r.suite == suite)
        and (device is None or r.device_id == device)
    ]
    if not chosen:
        raise _nothing(stores, records, suite, device)
    frame = load_results(stores, suite=suite, device=device)
    achieved: dict[str, dict[tuple[str, str, str], tuple[float | None, float | None]]] = {}
    for row in frame.itertuples(index=False):
        achieved.setdefault(str(row.device_id), {})[
            (str(row.suite), str(row.variant), join_runtime(row.runtime, row.runtime_options))
        ] = (
            _float(row.achieved_gflops_per_s),
            _float(row.pct_of_peak),
        )
    written = []
    for device_id in sorted({r.device_id for r in chosen}):
        report = build_device_report(
            chosen, device_id, peaks.get(device_id), achieved.get(device_id), warnings
        )
        folder = out / safe_name(device_id)
        folder.mkdir(parents=True, exist_ok=True)
        drawn = {s.suite: figures(s) for s in report.sections}  # drawn once, written twice
        for section in report.sections:
            for fig in drawn[section.suite]:
                (folder / figure_file(section, fig)).write_text(fig.svg, encoding="utf-8")
        html, md = folder / "report.html", folder / "report.md"
        html.write_text(render_html(report, drawn), encoding="utf-8")
        md.write_text(render_markdown(report, drawn), encoding="utf-8")
        written += [html, md]
    return written


def _float(x: object) -> float | None:
    """A frame cell as a float, None for a missing value (pandas' NA/NaN)."""
    try:
        value = float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return None if value != value else value


def _nothing(
    stores: list[Path], records: Sequence[RunRecord], suite: str | None, device: str | None
) -> GreenbenchError:
    suites = sorted({r.suite for r in records})
    devices = sorted({r.device_id for r in records})
    wanted = "".join(
        f" {what} {value!r}" for what, value in (("of suite", suite), ("on device", device)) if value
    )
    return GreenbenchError(
        f"the store(s) {', '.join(map(str, stores))} hold no non-smoke record{wanted}; suites stored: "
        f"{', '.join(suites) or 'none'}; devices: {', '.join(devices) or 'none'}. Run a suite first, or "
        f"change --suite/--device."
    )


def output_folder(output: str | None, stores: list[Path]) -> Path:
    """The folder ``-o`` names (default: beside the first store), checked before anything is
    read: ``-`` or an existing file is a ``GreenbenchError``."""
    if output == "-":
        raise GreenbenchError(
            "report -o -: a report is several files (HTML, Markdown and SVG plots per device) and "
            "cannot go to standard output; pass -o with a folder."
        )
    folder = Path(output) if output else beside_store(stores[0], "report")
    if folder.exists() and not folder.is_dir():
        raise GreenbenchError(
            f"report -o {folder}: that is an existing file, and a report is a folder of files; pass -o "
            f"with a folder (it is created if missing)."
        )
    return folder


def run(args: argparse.Namespace) -> int:
    """Write the reports and print their paths, one per line; say the folder on stderr."""
    stores = [Path(s) for s in (args.store or [str(default_store())])]
    folder = output_folder(args.output, stores)
    try:
        written = write_reports(stores, folder, args.suite, args.device)
    except OSError as e:  # a folder that cannot be made, a file that cannot be replaced, a full disk
        raise GreenbenchError(
            f"cannot write the report under {folder} ({e.strerror or e}: {e.filename}); check that the "
            f"folder is writable and has free space, or pass -o with another folder."
        ) from None
    for path in written:
        print(TERMINAL_UNSAFE.sub("?", str(path)))
    _say(f"wrote {len(written)} report file(s) (and their plots) under {folder}")
    return 0
