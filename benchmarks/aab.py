"""A/A/B check of the interleaved protocol on this machine (prints figures, asserts nothing).

Three variants: a baseline (yolov5n), its exact twin (the same architecture, built again) and
a variant with a known slowdown (yolov5s, about 3× the GFLOPs). Each repetition measures them:

- the new way: ``rounds`` fresh processes, each timing all three in rotating blocks; Δ from
  time-adjacent block pairs, one median ratio per process, with a t-interval over the
  processes (what ``greenbench run`` does);
- the old way: one fresh process per variant, one after the other, the same number of blocks
  each; Δ from the ratio of the medians, CI from a bootstrap of one process' samples.

Targets: the twin's |Δ| ≤ 2 % with a CI covering 0 every time (new way); the slow variant's Δ
agreeing within ±3 % over the repetitions.

    python benchmarks/aab.py [--reps 5] [--rounds 5] [--blocks 8] [--block-s 0.5] [--imgsz 128]
"""

from __future__ import annotations

import argparse
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np

from greenbench.executors.local import LocalExecutor
from greenbench.measure.carbon import GridIntensity
from greenbench.measure.device import fingerprint
from greenbench.measure.energy.composite import skipped_idle
from greenbench.measure.protocol import Block
from greenbench.measure.stats import bootstrap_median_ci
from greenbench.run import jobs
from greenbench.run.jobs import IdleJob
from greenbench.run.records import Context, deltas
from greenbench.run.runner import Runner, RunOptions
from greenbench.store import Store
from greenbench.suite import ProtocolSettings, load_suite

SUITE = """\
name: aab
task: detect
dataset:
  synthetic: {{classes: 2, images: 20, imgsz: 64, seed: 0}}
defaults: {{imgsz: {imgsz}}}
measure:
  latency: {{warmup: 5, threads: 1}}
  protocol: {{rounds: {rounds}, blocks: {blocks}}}
  energy: {{idle_s: 0, skip_idle: true, min_window_s: {block_s}}}
baseline: base
variants:
  base: {{model: yolov5n.yaml}}
  twin: {{model: yolov5n.yaml}}
  slow: {{model: yolov5s.yaml}}
"""

VARIANTS = ("base", "twin", "slow")


def _delta_text(d: dict[str, Any]) -> str:
    if d.get("delta_ci_low_pct") is None:
        return f"{d['delta_pct']:+6.1f} % (no CI: 1 round)"
    ns = "" if d["significant"] else " CI includes 0"
    tau = f" τ {d['spread_pct']:.1f} %" if d.get("spread_pct") is not None else ""
    return f"{d['delta_pct']:+6.1f} % [{d['delta_ci_low_pct']:+.1f}, {d['delta_ci_high_pct']:+.1f}]{ns}{tau}"


def _old_way(block_values: dict[str, list[float]], samples: dict[str, list[float]], arm: str) -> str:
    """Ratio of medians of two separately measured processes, CI from one process' samples."""
    base, mine = np.median(samples["base"]), np.median(samples[arm])
    lo, hi = bootstrap_median_ci(samples[arm])
    delta = (mine / base - 1) * 100
    return f"{delta:+6.1f} % [{(lo / base - 1) * 100:+.1f}, {(hi / base - 1) * 100:+.1f}]"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--rounds", type=int, default=ProtocolSettings().rounds)
    p.add_argument("--blocks", type=int, default=ProtocolSettings().blocks)
    p.add_argument("--block-s", type=float, default=0.5)
    p.add_argument("--imgsz", type=int, default=128)
    a = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gb-aab-"))
    suite_file = work / "aab.yaml"
    suite_file.write_text(
        textwrap.dedent(SUITE.format(imgsz=a.imgsz, rounds=a.rounds, blocks=a.blocks, block_s=a.block_s))
    )
    suite = load_suite(suite_file)
    t0 = time.monotonic()
    with Store(work / "gb.db") as store:
        Runner(suite, store, RunOptions(workdir=work / "work", progress=print)).run()
        records = {r.variant: r for r in store.records()}
    print(f"first full run (build, evaluate, measure): {time.monotonic() - t0:.1f} s")
    arms = {
        v: jobs.ArmSpec(v, jobs.Artifact("torch", records[v].measurement["artifact"]["path"]), "torch")
        for v in VARIANTS
    }
    device = fingerprint("cpu", threads=1)
    executor = LocalExecutor(work / "logs", device, IdleJob.skip("benchmark"), cwd=work)
    ctx = Context(skipped_idle("benchmark"), GridIntensity(400.0, "-", "DEU", None), 1.0, a.imgsz)
    meter = jobs.MeterSpec(("auto",), 4.0)
    base = {"task": "detect", "workdir": str(work / "work"), "device": "cpu"}

    def round_job(r: int, members: list[str], rounds: int) -> jobs.RoundJob:
        return jobs.RoundJob(
            **base, label=f"r{r}", round=r, arms=tuple(arms[m] for m in members),
            latency=suite.measure.latency, protocol=ProtocolSettings(rounds=rounds, blocks=a.blocks),
            min_window_s=a.block_s, imgsz=a.imgsz, energy=meter,
        )  # fmt: skip

    rows = []
    for rep in range(a.reps):
        t = time.monotonic()
        blocks: list[Block] = []
        for r in range(a.rounds):
            result = executor.run(round_job(r, list(VARIANTS), a.rounds)).result
            assert isinstance(result, jobs.RoundResult)
            blocks += result.blocks
        new_s = time.monotonic() - t
        found = {v: deltas(blocks, v, "base", ctx, {}) for v in ("twin", "slow")}
        t = time.monotonic()
        samples: dict[str, list[float]] = {}
        values: dict[str, list[float]] = {}
        for v in VARIANTS:  # the old way: one process per variant, in sequence
            result = executor.run(round_job(0, [v], 1)).result
            assert isinstance(result, jobs.RoundResult)
            samples[v] = [s for b in result.blocks for s in b.samples_ms]
            values[v] = [b.latency_ms for b in result.blocks]
        old_s = time.monotonic() - t
        rows.append((rep, found, samples, values, new_s, old_s))
        f = found
        print(
            f"rep {rep + 1}: NEW twin lat {_delta_text(f['twin']['latency_ms'])}  "
            f"E/img {_delta_text(f['twin']['energy_per_image_j'])} | slow lat "
            f"{_delta_text(f['slow']['latency_ms'])}  E/img {_delta_text(f['slow']['energy_per_image_j'])} "
            f"({new_s:.0f} s)"
        )
        print(
            f"       OLD twin lat {_old_way(values, samples, 'twin')} | slow lat "
            f"{_old_way(values, samples, 'slow')} ({old_s:.0f} s)"
        )
    slow_new = [row[1]["slow"]["latency_ms"]["delta_pct"] for row in rows]
    twin_new = [row[1]["twin"]["latency_ms"] for row in rows]
    slow_old = [(np.median(row[2]["slow"]) / np.median(row[2]["base"]) - 1) * 100 for row in rows]
    twin_old = [(np.median(row[2]["twin"]) / np.median(row[2]["base"]) - 1) * 100 for row in rows]
    print()
    print(f"twin Δ latency, new: max |Δ| {max(abs(d['delta_pct']) for d in twin_new):.2f} %, CI covers 0 in "
          f"{sum(not d['significant'] for d in twin_new)}/{len(rows)} reps")  # fmt: skip
    print(f"twin Δ latency, old: max |Δ| {max(abs(d) for d in twin_old):.2f} %")
    for way, slow in (("new", slow_new), ("old", slow_old)):
        listed = ", ".join(f"{d:+.1f}" for d in slow)
        print(f"slow Δ latency, {way}: {listed} % (spread {np.ptp(slow):.1f} points)")
    new_wall, old_wall = np.mean([r[4] for r in rows]), np.mean([r[5] for r in rows])
    print(f"wall per repetition: new {new_wall:.0f} s, old {old_wall:.0f} s (3 models)")
    print(f"work folder: {work}")


if __name__ == "__main__":
    main()
