"""Quickstart ratios: each variant against the torch-eager baseline (prints figures, asserts nothing).

For every variant of a suite (default: the quickstart) on this machine, from its newest stored
record: latency and energy per image as the paired ratio to the baseline (time-adjacent blocks
in the same processes, with the 95 % CI), the speed-up and energy saving that ratio means, and
the mAP50 change in points. Also the CPU's instruction set, which decides what int8 can gain.

Target (issue 7): the best variant ≥ 5× faster and ≥ 4× less energy per image, at ≤ 1 point
mAP50 loss.

    greenbench run suites/quickstart.yaml                 # measure first (or pass --run)
    python benchmarks/quickstart_ratios.py [--suite S.yaml] [--store results/greenbench.db] [--run]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any

from greenbench.commands.table import current_records, default_device_id, read_suite_ref
from greenbench.store import RunRecord, Store


def _ratio(record: RunRecord, metric: str) -> tuple[float, float, float] | None:
    """(ratio, ci_low, ci_high) of ``metric`` to the baseline, from the stored paired Δ."""
    d: dict[str, Any] = record.deltas.get(metric) or {}
    pct, lo, hi = d.get("delta_pct"), d.get("delta_ci_low_pct"), d.get("delta_ci_high_pct")
    if not isinstance(pct, int | float):
        return None
    lo = pct if not isinstance(lo, int | float) else lo
    hi = pct if not isinstance(hi, int | float) else hi
    return 1 + pct / 100, 1 + lo / 100, 1 + hi / 100


def _cell(r: tuple[float, float, float] | None) -> str:
    if r is None:
        return "—"
    ratio, lo, hi = r
    return f"{ratio:.3f} [{lo:.3f}, {hi:.3f}] = {1 / ratio:.2f}×"


def main() -> int:
    """Print the table; 1 if the store has no records of the suite."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--suite", default="suites/quickstart.yaml")
    p.add_argument("--store", default="results/greenbench.db")
    p.add_argument("--run", action="store_true", help="run the suite first (greenbench run)")
    args = p.parse_args()
    if args.run:
        subprocess.run(["greenbench", "run", args.suite, "--store", args.store], check=False)
    ref = read_suite_ref(Path(args.suite))
    with Store(Path(args.store), readonly=True) as store:
        device_id = default_device_id(ref, store)
        records, _ = current_records(store, ref, device_id)
    ok = [r for r in records if r.status == "ok"]
    base = next((r for r in ok if r.variant == ref.baseline), None)
    if base is None:
        print(f"no ok record of the baseline {ref.baseline!r} in {args.store}; run the suite first")
        return 1
    isa = base.device.get("isa") or []
    print(f"device {device_id}: {base.device.get('cpu_model')}; ISA {' '.join(isa) or 'not recorded'}")
    print(f"baseline {base.variant} ({base.runtime or 'torch'}); ratios = variant / baseline, paired")
    print(f"{'variant':24} {'runtime':28} {'latency ratio [CI] = speed-up':36} ", end="")
    print(f"{'energy/img ratio [CI]':36} ΔmAP50")
    base_map = base.value("map50")
    best: tuple[float, str] | None = None
    for r in ok:
        if r is base:
            continue
        lat, energy = _ratio(r, "latency_ms"), _ratio(r, "energy_per_image_j")
        m = r.value("map50")
        dmap = "—" if m is None or base_map is None else f"{(m - base_map) * 100:+.1f} pt"
        print(f"{r.variant:24} {(r.runtime or 'torch')[:28]:28} {_cell(lat):36} {_cell(energy):36} {dmap}")
        if lat is not None and (best is None or 1 / lat[0] > best[0]):
            best = (1 / lat[0], r.variant)
    if best is not None:
        print(f"fastest: {best[1]} at {best[0]:.2f}× the baseline's speed (target ≥ 5×)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
