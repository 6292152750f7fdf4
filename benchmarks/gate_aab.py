"""A/A and A/B′ runs of ``greenbench gate`` on this machine (prints figures, asserts nothing).

The model: a 20-layer ONNX conv stack (``greenbench.measure.workload``). B′ is the same model
with one, two or four more identical layers: +4.95 %, +9.9 % and +19.8 % of its work, set by
the graph rather than by a calibration on a noisy host. Checked here in one process: CPU time
per call grew ×1.045, ×1.094 and ×1.193; wall time per call also moves with the other tenants
of a shared host. (A busy-wait wrapper would need a runtime of its own inside the worker, and
a side branch sized by timing it would inherit the noise it is meant to test.)

Every gate run is a full gate as the CLI runs it: ``--rounds`` fresh processes timing both
models interleaved, more rounds while inconclusive, up to ``--max-rounds``. The scenarios take
turns (A/A, +5 %, +10 %, +20 %, A/A, …), so a slow spell of the host is shared between them
rather than landing on one.

The gate is asked to flag changes above ``--fail`` (default 2 % on both metrics): a +5 %
injection against a 5 % threshold would sit exactly on the edge, where "inconclusive" is the
right answer. Targets from the issue: 0/K false alarms on A/A, K/K detections of +5 %, each
gate run ≤ 2 minutes.

    python benchmarks/gate_aab.py [--runs 20] [--rounds 3] [--blocks 10] [--max-rounds 8]
                                  [--block-s 0.2] [--layers 20] [--imgsz 64] [--fail latency:2%]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from greenbench.executors.local import LocalExecutor
from greenbench.gate import GateConfig, rules
from greenbench.gate_session import GateResult, GateSession, GateSettings, Side
from greenbench.measure.device import fingerprint
from greenbench.measure.energy.composite import skipped_idle
from greenbench.measure.workload import conv_stack, extra_work
from greenbench.runtimes.base import Artifact

EXTRA_LAYERS = {"+5 %": 1, "+10 %": 2, "+20 %": 4}


def _side(path: Path) -> Side:
    return Side(path.name, Artifact("onnx", str(path)), "onnxruntime")


def _delta(result: GateResult, metric: str) -> str:
    m = next(m for m in result.verdict.metrics if m.metric == metric)
    if m.ratio is None or m.ci_low is None or m.ci_high is None:
        return "—"
    return f"{(m.ratio - 1) * 100:+5.1f} % [{(m.ci_low - 1) * 100:+.1f}, {(m.ci_high - 1) * 100:+.1f}]"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=20, help="gate runs per scenario (default 20)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--blocks", type=int, default=10)
    p.add_argument("--max-rounds", type=int, default=8)
    p.add_argument("--block-s", type=float, default=0.2)
    p.add_argument("--layers", type=int, default=20, help="layers of the base conv stack")
    p.add_argument("--imgsz", type=int, default=64)
    p.add_argument(
        "--fail", action="append", default=None, help="thresholds (default latency:2%%, energy:2%%)"
    )
    a = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gb-gate-aab-"))
    base = conv_stack(work / "base.onnx", a.layers, a.imgsz)
    slowed = {
        name: conv_stack(work / f"slow{extra}.onnx", a.layers + extra, a.imgsz)
        for name, extra in EXTRA_LAYERS.items()
    }
    for name, extra in EXTRA_LAYERS.items():
        print(f"B′ {name}: {a.layers + extra} layers, work ×{extra_work(a.layers, extra):.4f} of the base")
    settings = GateSettings(
        imgsz=a.imgsz, rounds=a.rounds, blocks=a.blocks, max_rounds=a.max_rounds, block_s=a.block_s, warmup=5
    )
    metric_rules = rules(a.fail or ["latency:2%", "energy:2%"])
    executor = LocalExecutor(
        work / "logs", fingerprint("cpu", threads=1), lambda: skipped_idle("benchmark"), cwd=work
    )
    session = GateSession(executor, settings, work, progress=lambda _msg: None)
    scenarios = {"A/A": base, **slowed}
    results: dict[str, list[GateResult]] = {name: [] for name in scenarios}
    started = time.monotonic()
    for i in range(a.runs):
        for name, candidate in scenarios.items():
            result = session.gate(_side(base), _side(candidate), metric_rules, GateConfig())
            results[name].append(result)
            print(
                f"run {i + 1:2d} {name:6s} {result.verdict.outcome:12s} rounds {result.rounds:2d}  "
                f"latency Δ {_delta(result, 'latency_ms')}  energy Δ {_delta(result, 'energy_per_image_j')}  "
                f"{result.wall_s:5.1f} s",
                flush=True,
            )
    print()
    total_s = time.monotonic() - started
    print(f"{a.runs} runs per scenario, {total_s:.0f} s in all; settings {settings.to_dict()}")
    print(f"thresholds: {', '.join(f'{r.metric} +{r.check.threshold:g} %' for r in metric_rules if r.check)}")
    heads = ("regressed", "inconcl.", "pass", "wall median", "wall max")
    print(f"{'scenario':8s} {heads[0]:>9s} {heads[1]:>9s} {heads[2]:>5s} {heads[3]:>12s} {heads[4]:>9s}")
    detected_all = []
    for name, runs in results.items():
        outcomes = [r.verdict.outcome for r in runs]
        walls = [r.wall_s for r in runs]
        print(
            f"{name:8s} {outcomes.count('regressed'):>6d}/{a.runs:<2d} {outcomes.count('inconclusive'):>6d}/"
            f"{a.runs:<2d} {outcomes.count('pass'):>2d}/{a.runs:<2d} {statistics.median(walls):>10.1f} s "
            f"{max(walls):>7.1f} s"
        )
        if name != "A/A" and outcomes.count("regressed") == a.runs:
            detected_all.append(name)
    false_alarms = [r.verdict.outcome for r in results["A/A"]].count("regressed")
    print(f"false alarms (A/A regressed): {false_alarms}/{a.runs}")
    smallest = detected_all[0] if detected_all else "none of " + ", ".join(EXTRA_LAYERS)
    print(f"smallest slowdown detected {a.runs}/{a.runs}: {smallest}")
    print(f"logs: {work / 'logs'}")


if __name__ == "__main__":
    main()
