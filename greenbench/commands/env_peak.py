"""``greenbench env --peak``: measure this device's peak GFLOP/s and store it with the device.

The figure is what the leaderboard's and report's roofline column divides by (``pct_of_peak``).
It is stored in the results store (``Store.save_device_peak``) under this machine's device id
(``greenbench.measure.device.fingerprint``), so results and peaks travel together when stores
are merged. The thread count is ``--threads``, or a suite's ``measure.latency.threads``, so the
peak is taken at the thread count its variants were timed with.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from greenbench.errors import GreenbenchError
from greenbench.paths import default_store, store_help


def add_peak_arguments(parser: argparse.ArgumentParser) -> None:
    """``--peak`` and its settings: store, threads (or a suite's), duration, matrix size."""
    group = parser.add_argument_group("peak throughput (roofline)")
    group.add_argument("--peak", action="store_true", help="measure fp32 (and int8) matmul peak and store it")
    group.add_argument("--store", default=str(default_store()), help=store_help("store to keep the peak in"))
    group.add_argument("--threads", type=int, help="threads (default: the suite's, else 1)")
    group.add_argument("--suite", help="a suite file whose measure.latency.threads to use")
    group.add_argument(
        "--peak-seconds", type=float, default=3.0, help="seconds per precision (default %(default)s)"
    )
    group.add_argument("--peak-size", type=int, default=1024, help="matrix side n (default %(default)s)")


def _suite_threads(path: str) -> int:
    from greenbench.suite.manifest import read_manifest

    data = read_manifest(Path(path))[1]
    measure = data.get("measure") if isinstance(data, dict) else None
    latency = measure.get("latency") if isinstance(measure, dict) else None
    threads = latency.get("threads", 1) if isinstance(latency, dict) else 1
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise GreenbenchError(
            f"{path}: key 'measure.latency.threads': expected a whole number ≥ 1, got {threads!r}."
        )
    return threads


def peak_threads(args: argparse.Namespace) -> int:
    """``--threads``, else the suite's latency threads, else 1; a bad value is a ``GreenbenchError``."""
    if args.threads is not None:
        if args.threads < 1:
            raise GreenbenchError(f"--threads {args.threads}: expected a whole number of threads ≥ 1.")
        return int(args.threads)
    return _suite_threads(args.suite) if args.suite else 1


def render_peak(device_id: str, peak: dict[str, Any], store: Path) -> str:
    """The stored peak as a few lines of text."""
    int8 = peak.get("int8_gops_per_s")
    lines = [
        f"device {device_id}: peak at {peak['threads']} thread(s)",
        f"  fp32 matmul: {peak['fp32_gflops_per_s']:.1f} GFLOP/s",
        f"  int8 matmul: {'—' if int8 is None else f'{int8:.1f} GOP/s'} ({peak['int8_note']})",
        f"  method: {peak['method']}",
        f"  stored in {store}",
    ]
    return "\n".join(lines)


def run_peak(args: argparse.Namespace) -> int:
    """Measure, store and print the peak."""
    from greenbench.measure.device import fingerprint
    from greenbench.measure.peak import measure_peak
    from greenbench.store import Store

    threads = peak_threads(args)
    if not args.peak_seconds > 0 or args.peak_size < 1:
        raise GreenbenchError("--peak-seconds must be positive and --peak-size at least 1.")
    device_id = str(fingerprint("cpu", threads=threads)["device_id"])
    with Store(Path(args.store)) as store:  # opened first: a bad store fails before measuring
        peak = measure_peak(threads, n=args.peak_size, duration_s=args.peak_seconds)
        store.save_device_peak(device_id, peak)
    print(
        json.dumps({"device_id": device_id, **peak}, indent=2)
        if args.json
        else render_peak(device_id, peak, Path(args.store))
    )
    return 0
