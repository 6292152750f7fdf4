"""The gate's operating characteristic on this machine: A/A and A/B′ runs of ``greenbench gate``
at its defaults (prints figures, asserts nothing).

The model: a 40-layer ONNX conv stack (``greenbench.measure.workload``). B′ is the same model
with 1, 2, 3, 4 or 8 more identical layers: +2.5 %, +5 %, +7.5 %, +10 % and +20 % of its work, set
by the graph rather than by a calibration on a noisy host (the exact work ratio of each is
printed). Wall time per call moves with the other tenants of a shared host as well.

Every gate run is a full gate as the CLI runs it: ``--rounds`` fresh processes timing both
models interleaved, more rounds while inconclusive, up to ``--max-rounds``, at the default
threshold (5 %) and floor. The scenarios take turns (A/A, +2.5 %, +5 %, …, A/A, …), so a slow
spell of the host is shared between them rather than landing on one.

What a good gate shows: 0 A/A runs regressed, every +10 % and +20 % run regressed, and no run
at +7.5 % or more ending ``pass`` (``inconclusive`` exits 3, so it is not green either). At
+5 %, exactly the threshold, ``inconclusive`` is the right answer.

    python benchmarks/gate_aab.py [--runs 20] [--rounds 5] [--blocks 10] [--max-rounds 12]
                                  [--block-s 0.2] [--layers 40] [--imgsz 64] [--fail latency:5%]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from greenbench.executors.local import LocalExecutor
from greenbench.gate.decision import GateConfig, rules
from greenbench.gate.session import GateResult, GateSession, GateSettings, Side
from greenbench.measure.device import fingerprint
from greenbench.measure.workload import conv_stack, extra_work
from greenbench.run.jobs import IdleJob
from greenbench.runtimes.base import Artifact

EXTRA_LAYERS = (1, 2, 3, 4, 8)


def _side(path: Path) -> Side:
    return Side(path.name, Artifact("onnx", str(path)), "onnxruntime")


def _delta(result: GateResult, metric: str) -> str:
    m = next(m for m in result.verdict.metrics if m.metric == metric)
    if m.ratio is None or m.ci_low is None or m.ci_high is None:
        return "—"
    return f"{(m.ratio - 1) * 100:+5.1f} % [{(m.ci_low - 1) * 100:+.1f}, {(m.ci_high - 1) * 100:+.1f}]"


def main() -> None:
    defaults = GateSettings()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=20, help="gate runs per scenario (default 20)")
    p.add_argument("--rounds", type=int, default=defaults.rounds)
    p.add_argument("--blocks", type=int, default=defaults.blocks)
    p.add_argument("--max-rounds", type=int, default=defaults.max_rounds)
    p.add_argument("--block-s", type=float, default=defaults.block_s)
    p.add_argument("--layers", type=int, default=40, help="layers of the base conv stack")
    p.add_argument("--imgsz", type=int, default=64)
    p.add_argument("--fail", action="append", default=None, help="thresholds (default: the gate's)")
    a = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gb-gate-aab-"))
    base = conv_stack(work / "base.onnx", a.layers, a.imgsz)
    scenarios = {"A/A": base}
    for extra in EXTRA_LAYERS:
        name = f"{(extra_work(a.layers, extra) - 1) * 100:+.1f} %"
        scenarios[name] = conv_stack(work / f"slow{extra}.onnx", a.layers + extra, a.imgsz)
        print(f"B′ {name}: {a.layers + extra} layers, work ×{extra_work(a.layers, extra):.4f} of the base")
    settings = GateSettings(
        imgsz=a.imgsz, rounds=a.rounds, blocks=a.blocks, max_rounds=a.max_rounds, block_s=a.block_s, warmup=5
    )
    metric_rules = rules(a.fail or [])
    executor = LocalExecutor(
        work / "logs", fingerprint("cpu", threads=1), IdleJob.skip("benchmark"), cwd=work
    )
    session = GateSession(executor, settings, work, progress=lambda _msg: None)
    results: dict[str, list[GateResult]] = {name: [] for name in scenarios}
    started = time.monotonic()
    for i in range(a.runs):
        for name, candidate in scenarios.items():
            result = session.gate(_side(base), _side(candidate), metric_rules, GateConfig())
            results[name].append(result)
            print(
                f"run {i + 1:2d} {name:8s} {result.verdict.outcome:12s} rounds {result.rounds:2d}  "
                f"latency Δ {_delta(result, 'latency_ms')}  energy Δ {_delta(result, 'energy_per_image_j')}  "
                f"{result.wall_s:5.1f} s",
                flush=True,
            )
    print()
    total_s = time.monotonic() - started
    print(f"{a.runs} runs per scenario, {total_s:.0f} s in all; settings {settings.to_dict()}")
    gated = [f"{r.metric} +{r.check.threshold:g} %" for r in metric_rules if r.check]
    print(f"thresholds: {', '.join(gated)} (energy estimated from CPU time is not gated separately)")
    heads = ("regressed", "inconcl.", "pass", "mean rounds", "wall median", "wall max")
    print(
        f"| {'true change':11s} | {heads[0]:>9s} | {heads[1]:>8s} | {heads[2]:>5s} | {heads[3]:>11s} "
        f"| {heads[4]:>11s} | {heads[5]:>8s} |"
    )
    print(f"|{'-' * 13}|{'-' * 10}:|{'-' * 9}:|{'-' * 6}:|{'-' * 12}:|{'-' * 12}:|{'-' * 9}:|")
    for name, runs in results.items():
        outcomes = [r.verdict.outcome for r in runs]
        walls = [r.wall_s for r in runs]
        counts = [f"{outcomes.count(o):>2d}/{a.runs:<2d}" for o in ("regressed", "inconclusive", "pass")]
        rounds = statistics.mean(r.rounds for r in runs)
        print(
            f"| {name:11s} | {counts[0]:>9s} | {counts[1]:>8s} | {counts[2]:>5s} | {rounds:>11.1f} "
            f"| {statistics.median(walls):>9.1f} s | {max(walls):>6.1f} s |"
        )
    print(f"logs: {work / 'logs'}")


if __name__ == "__main__":
    main()
