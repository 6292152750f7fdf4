"""``greenbench gate REFERENCE CANDIDATE``: fail CI on a real latency or energy regression.

Both sides are measured in this job, interleaved, in fresh processes (``greenbench.gate.session``);
the decision is ``greenbench.gate.decision``'s: pass, regressed, or inconclusive after more rounds.
Exit codes: 0 pass, 1 regressed, 2 usage error (a bad flag, a missing or unloadable model file, an
unknown variant), 3 still inconclusive after ``--max-rounds`` (0 with ``--inconclusive-passes``).
``--calibrate [MODEL]`` runs A/A gates and reports the false-alarm rate with its Clopper–Pearson
interval and the spread of the A/A intervals.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from greenbench.errors import GreenbenchError
from greenbench.paths import WORKDIR_ENV, default_store, default_workdir

if TYPE_CHECKING:
    from greenbench.gate.decision import MetricRule
    from greenbench.gate.session import GateResult, GateSession, GateSettings, Side, SideSpec

HELP = "fail CI on a latency/energy regression: candidate vs reference, measured interleaved"

EXIT_PASS, EXIT_REGRESSED, EXIT_USAGE, EXIT_INCONCLUSIVE = 0, 1, 2, 3
#: conv-stack layers of the built-in calibration workload (a few ms per call at 64 px, one thread)
CALIBRATION_LAYERS = 8


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Sides, thresholds and floors, outputs, what a call is, how long to measure, calibration."""
    parser.description = (
        "A side is a model file (.onnx, or a torch .pt with --allow-pickle) or SUITE.yaml:VARIANT. "
        "Exit codes: 0 pass, 1 regressed, 2 usage error, 3 still inconclusive after --max-rounds "
        "(0 with --inconclusive-passes)."
    )
    parser.add_argument("sides", nargs="*", metavar="SIDE", help="REFERENCE CANDIDATE (--calibrate: [MODEL])")
    parser.add_argument(
        "--fail", action="append", default=[], metavar="METRIC:PCT",
        help="regression threshold, e.g. latency:5%% (default 5%% each); METRIC:off reports only",
    )  # fmt: skip
    parser.add_argument(
        "--floor", action="append", default=[], metavar="METRIC:VALUE",
        help="smallest absolute change that counts, raising the threshold where it is larger: "
        "latency:0.05ms, energy:0.2mJ (defaults)",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")
    parser.add_argument("--markdown", metavar="FILE", help="append a Markdown summary to FILE")
    group = parser.add_argument_group("what one call is (default: the suite's, else the ONNX input, 640)")
    group.add_argument("--imgsz", type=int, help="square input side, pixels")
    group.add_argument("--batch", type=int, help="images per call")
    group.add_argument("--threads", type=int, help="intra-op CPU threads (default 1)")
    group.add_argument("--device", help="cpu or cuda:N (default cpu)")
    group = parser.add_argument_group("how long to measure")
    group.add_argument("--rounds", type=int, help="fresh processes measured first (default 5)")
    group.add_argument("--blocks", type=int, help="blocks per model per round (default 10)")
    group.add_argument("--max-rounds", type=int, help="rounds at most while inconclusive (default 12)")
    group.add_argument("--block-s", type=float, help="shortest block, seconds (default 0.2)")
    group.add_argument("--warmup", type=int, help="untimed calls per model and process (default 5)")
    parser.add_argument(
        "--inconclusive-passes", action="store_true",
        help="exit 0, not 3, when still inconclusive after --max-rounds (by default it is not green)",
    )  # fmt: skip
    parser.add_argument(
        "--alpha", type=float, default=None,
        help="family-wise error of the gate's intervals (0.05: 95 %% CIs, Bonferroni over gated metrics)",
    )  # fmt: skip
    parser.add_argument("--allow-pickle", action="store_true", help="load .pt checkpoints (pickles run code)")
    parser.add_argument(
        "--task",
        default=None,
        metavar="NAME",
        help="the task that loads a side given as a model file (default: detect); a suite side is "
        "its suite's task",
    )
    from greenbench.commands.run import add_executor_option

    add_executor_option(parser)
    parser.add_argument(
        "--workdir",
        help=f"logs and suite artifacts (default: ${WORKDIR_ENV}, else work/ beside the default store, "
        f"{default_workdir(default_store())})",
    )
    parser.add_argument(
        "--calibrate", action="store_true", help="run A/A gates of MODEL (default: a built-in ONNX workload)"
    )
    parser.add_argument("--runs", type=int, default=20, help="A/A runs of --calibrate (default 20)")


def _usage(message: str) -> GreenbenchError:
    from greenbench.gate.decision import GateUsageError

    return GateUsageError(message)


def _settings(args: argparse.Namespace, specs: list[SideSpec], suites: dict[Path, Any]) -> GateSettings:
    """Defaults, then the suite's measure section (the candidate's suite first), then an ONNX
    side's fixed input shape for what is still unset, then the flags."""
    from dataclasses import replace

    from greenbench.gate.session import GateSettings, onnx_input_shape, settings_from_suite

    settings = GateSettings()
    declared: dict[str, str] = {}  # flag -> the model file whose declared input set it
    suite_sides = [s for s in reversed(specs) if s.is_suite]  # the candidate's suite wins
    if suite_sides:
        settings = settings_from_suite(suites[suite_sides[0].path.resolve()], settings)
    else:
        for spec in reversed(specs):
            if spec.path.suffix.lower() == ".onnx":
                batch, imgsz = onnx_input_shape(spec.path)
                settings = replace(settings, batch=batch or settings.batch, imgsz=imgsz or settings.imgsz)
                shape = f"{batch or 'N'}x3x{imgsz}x{imgsz}" if imgsz else f"{batch}x3xHxW"
                for flag, value in (("--batch", batch), ("--imgsz", imgsz)):
                    if value:
                        declared[flag] = f"{spec.path} declares a fixed input of {shape} (NCHW)"
                if imgsz:
                    break
    flags = {
        "imgsz": args.imgsz, "batch": args.batch, "threads": args.threads, "device": args.device,
        "rounds": args.rounds, "blocks": args.blocks, "max_rounds": args.max_rounds,
        "block_s": args.block_s, "warmup": args.warmup,
    }  # fmt: skip
    settings = replace(settings, **{k: v for k, v in flags.items() if v is not None})
    if args.max_rounds is None and settings.max_rounds < settings.rounds:
        settings = replace(settings, max_rounds=settings.rounds)
    given = {f"--{k.replace('_', '-')}" for k, v in flags.items() if v is not None}
    _check(settings, {flag: why for flag, why in declared.items() if flag not in given})
    return settings


def _check(s: GateSettings, declared: dict[str, str] | None = None) -> None:
    """Every setting in range, or a usage error naming the flag, or the model file whose
    declared input set it (``declared``: flag -> what the file declares)."""
    from greenbench.pipeline.export import MAX_IMGSZ, MIN_IMGSZ

    limits = {
        "--imgsz": (s.imgsz, MIN_IMGSZ, MAX_IMGSZ), "--batch": (s.batch, 1, 1024),
        "--threads": (s.threads, 1, 1024),
        "--rounds": (s.rounds, 2, 100), "--blocks": (s.blocks, 2, 1000), "--warmup": (s.warmup, 0, 10_000),
        "--max-rounds": (s.max_rounds, s.rounds, 100),
    }  # fmt: skip
    for flag, (value, low, high) in limits.items():
        if not low <= value <= high and flag in (declared or {}):
            what = "image side" if flag == "--imgsz" else "batch"
            raise _usage(
                f"{(declared or {})[flag]}: its {what} {value} is beyond what the gate measures ({low} to "
                f"{high}); export the model with a {what} in that range (a fixed-shape model runs at its "
                f"declared shape only)."
            )
        if not low <= value <= high:
            why = (
                " (two at least: one process cannot show the spread between processes)"
                if flag == "--rounds"
                else ""
            )
            raise _usage(f"{flag} must be an integer from {low} to {high}, got {value}{why}.")
    if not 0 < s.block_s <= 60:
        raise _usage(f"--block-s must be a number of seconds in (0, 60], got {s.block_s}.")
    if not re.fullmatch(r"cpu|cuda:(?:[0-9]|[1-5][0-9]|6[0-3])", s.device):
        raise _usage(f"--device must be 'cpu' or 'cuda:N' (N from 0 to 63), got {s.device!r}.")


def _config(args: argparse.Namespace) -> Any:
    from greenbench.gate.decision import GateConfig

    if args.alpha is None:
        return GateConfig()
    if not 0 < args.alpha < 0.5:
        raise _usage(f"--alpha must be in (0, 0.5), got {args.alpha}.")
    return GateConfig(confidence=1 - args.alpha)


def _specs(args: argparse.Namespace) -> list[SideSpec]:
    from greenbench.gate.session import parse_side

    if args.calibrate:
        if len(args.sides) > 1:
            raise _usage(
                f"--calibrate takes one MODEL at most (it is gated against itself), got {len(args.sides)}."
            )
    elif len(args.sides) != 2:
        raise _usage(
            f"gate needs REFERENCE and CANDIDATE (two sides), got {len(args.sides)}; e.g. greenbench gate "
            f"kept/model.onnx build/model.onnx, or --calibrate [MODEL]."
        )
    if args.runs < 1 or args.runs > 1000:
        raise _usage(f"--runs must be from 1 to 1000, got {args.runs}.")
    return [parse_side(text, args.allow_pickle) for text in args.sides]


def run(args: argparse.Namespace) -> int:
    """Check every option (exit 2), measure, print, write the Markdown summary; the exit code."""
    from greenbench.commands.run import executor_options
    from greenbench.executors import factory
    from greenbench.gate.decision import rules
    from greenbench.gate.session import file_task, load_suites

    metric_rules = rules(args.fail, args.floor)
    config = _config(args)
    factory(args.executor)  # an unknown executor is a usage error before anything is measured
    args.executor_option = executor_options(args.executor_option, args.address)  # checked once, kept parsed
    file_task(args.task)  # a task that is not installed is a usage error before anything runs
    specs = _specs(args)
    suites = load_suites(specs)
    settings = _settings(args, specs, suites)
    workdir = Path(args.workdir) if args.workdir else default_workdir(default_store())
    if args.markdown and Path(args.markdown).is_dir():
        raise _usage(f"--markdown {args.markdown} is a folder; give a file to append the summary to.")
    return _measure(args, specs, suites, settings, workdir, metric_rules, config)


def _measure(
    args: argparse.Namespace,
    specs: list[SideSpec],
    suites: dict[Path, Any],
    settings: GateSettings,
    workdir: Path,
    metric_rules: tuple[MetricRule, ...],
    config: Any,
) -> int:
    import contextlib

    from greenbench.executors import factory
    from greenbench.executors.local import DEFAULT_STALL_S
    from greenbench.gate.session import GateSession, file_task, prepare_suite_sides, side_of
    from greenbench.measure.device import fingerprint
    from greenbench.run import jobs
    from greenbench.run.lock import ActiveRun, WorkdirLock

    started = time.monotonic()

    def progress(msg: str) -> None:
        from greenbench.errors import TERMINAL_UNSAFE

        print(
            f"[{time.monotonic() - started:6.1f} s] {TERMINAL_UNSAFE.sub('?', msg)}",
            file=sys.stderr,
            flush=True,
        )

    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S-") + uuid.uuid4().hex[:6]
    logdir = workdir.resolve() / "logs" / f"gate-{stamp}"
    device = fingerprint(settings.device, threads=settings.threads)
    # gross energy per image is gated, not net: the idle power is not measured (saves its
    # seconds). It does not cancel in a ratio (it cancels in a difference, and pulls a ratio
    # towards 1), so a gross-energy change reads smaller than the same net change; the reason
    # line says gross
    why = "greenbench gate compares gross energy per image"
    idle = jobs.IdleJob.skip(why, str(workdir.resolve()), settings.device)
    executor = factory(args.executor)(
        logdir=logdir, device=device, idle=idle, progress=progress, cwd=workdir.resolve(),
        stall_s=DEFAULT_STALL_S, options=args.executor_option,
    )  # fmt: skip
    device = dict(executor.device)  # the device its jobs run on, as the executor reports it
    session = GateSession(executor, settings, workdir.resolve(), progress)
    lock = WorkdirLock(workdir, "gate") if suites else contextlib.nullcontext()
    with lock, ActiveRun("gate", workdir):
        prepared = prepare_suite_sides(specs, suites, workdir.resolve(), executor, progress) if suites else {}
        sides = [side_of(spec, prepared, suites, file_task(args.task)) for spec in specs]
        if args.calibrate:
            model = sides[0] if sides else _workload(workdir, settings)
            heavier = None if sides else _heavier_workload(workdir, settings, metric_rules)
            return _calibrate(args, session, model, metric_rules, config, device, logdir, heavier)
        result = session.gate(sides[0], sides[1], metric_rules, config)
    return _report(args, sides, result, settings, device, logdir)


def _workload(workdir: Path, settings: GateSettings, extra_layers: int = 0) -> Side:
    """The built-in calibration model: a small ONNX conv stack at the chosen image size and batch
    (``extra_layers`` more identical layers: a heavier copy whose extra work is known)."""
    from greenbench.gate.session import Side
    from greenbench.measure.workload import conv_stack
    from greenbench.runtimes.base import Artifact

    layers = CALIBRATION_LAYERS + extra_layers
    name = f"conv_stack{layers}-{settings.imgsz}px-b{settings.batch}.onnx"
    path = conv_stack(workdir.resolve() / "gate-workload" / name, layers, settings.imgsz, settings.batch)
    return Side(f"built-in workload ({name})", Artifact("onnx", str(path)), "onnxruntime")


def _heavier_workload(
    workdir: Path, settings: GateSettings, metric_rules: tuple[MetricRule, ...]
) -> tuple[Side, float] | None:
    """The built-in workload with the fewest extra layers that add at least twice the latency
    threshold in work, and that work in %; None when latency is not gated."""
    from greenbench.measure.workload import extra_work

    latency = next((r for r in metric_rules if r.metric == "latency_ms"), None)
    if latency is None or latency.check is None:
        return None
    target = 1 + 2 * max(latency.check.threshold, 1.0) / 100
    extra = 1
    while extra_work(CALIBRATION_LAYERS, extra) < target:
        extra += 1
    return _workload(workdir, settings, extra), (extra_work(CALIBRATION_LAYERS, extra) - 1) * 100


def _outcome(outcome: str, inconclusive_passes: bool) -> int:
    if outcome == "regressed":
        return EXIT_REGRESSED
    if outcome == "inconclusive":
        return EXIT_PASS if inconclusive_passes else EXIT_INCONCLUSIVE
    return EXIT_PASS


def _document(
    sides: list[Side], result: GateResult, settings: GateSettings, device: dict[str, Any]
) -> dict[str, Any]:
    from greenbench.report.gate_report import GATE_SCHEMA_VERSION

    return {
        "schema_version": GATE_SCHEMA_VERSION,
        "outcome": result.verdict.outcome,
        "reference": sides[0].to_dict(),
        "candidate": sides[1].to_dict(),
        "settings": settings.to_dict(),
        "rounds": result.rounds,
        "lost_rounds": result.lost_rounds,
        "wall_s": result.wall_s,
        "device": {k: device.get(k) for k in ("device_id", "cpu_model", "logical_cores", "gpus", "hostname")},
        "runtimes": result.arms,
        "verdict": result.verdict.to_dict(),
    }


def _append(path: str, text: str) -> None:
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(text)
    except OSError as e:
        raise GreenbenchError(f"cannot append the Markdown summary to {path} ({e.strerror or e}).") from None


def _report(
    args: argparse.Namespace,
    sides: list[Side],
    result: GateResult,
    settings: GateSettings,
    device: dict[str, Any],
    logdir: Path,
) -> int:
    from greenbench.report.gate_report import dumps, render_markdown, render_text

    doc = _document(sides, result, settings, device)
    code = _outcome(result.verdict.outcome, args.inconclusive_passes)
    doc["exit_code"] = code
    doc["logs"] = str(logdir)
    print(dumps(doc) if args.json else render_text(doc, result.verdict))
    if args.markdown:
        _append(args.markdown, render_markdown(doc, result.verdict))
    if not any(m.outcome != "not gated" for m in result.verdict.metrics):
        print(
            "greenbench gate: warning: no metric was gated (each is off, or energy is the CPU-time "
            "estimate that latency already covers): this pass decides nothing; gate latency.",
            file=sys.stderr,
        )
    if result.verdict.outcome == "inconclusive":
        fate = "passing (--inconclusive-passes)" if args.inconclusive_passes else "exit 3"
        print(
            f"greenbench gate: warning: still inconclusive after {result.rounds} rounds (--max-rounds "
            f"{settings.max_rounds}); {fate}. Raise --max-rounds or --blocks, or widen --fail; "
            f"`greenbench gate --calibrate` shows what these settings can resolve.",
            file=sys.stderr,
        )
    return code


def _calibrate(
    args: argparse.Namespace,
    session: GateSession,
    model: Side,
    metric_rules: tuple[MetricRule, ...],
    config: Any,
    device: dict[str, Any],
    logdir: Path,
    heavier: tuple[Side, float] | None = None,
) -> int:
    """A/A runs of ``model``; with ``heavier`` (the built-in workload's heavier copy and its
    extra work in %), as many runs against it, counted as the detection rate."""
    from greenbench.gate.calibration import calibration, detection
    from greenbench.report.gate_report import GATE_SCHEMA_VERSION, dumps, render_calibration

    started = time.monotonic()
    results = session.calibrate(model, args.runs, metric_rules, config)
    verdicts = [r.verdict for r in results]
    found = None
    if heavier is not None:
        side, pct = heavier
        injected = session.calibrate(model, args.runs, metric_rules, config, side, f"+{pct:.1f} % work")
        found = detection([r.verdict for r in injected], pct)
    summary = calibration(verdicts, found)
    doc = {
        "schema_version": GATE_SCHEMA_VERSION,
        "mode": "calibrate",
        "model": model.to_dict(),
        "settings": session.settings.to_dict(),
        "runs": [
            {
                "rounds": r.rounds,
                "wall_s": r.wall_s,
                "lost_rounds": r.lost_rounds,
                "verdict": r.verdict.to_dict(),
            }
            for r in results
        ],
        "summary": summary.to_dict(),
        "wall_s": time.monotonic() - started,
        "device": {k: device.get(k) for k in ("device_id", "cpu_model", "logical_cores", "gpus", "hostname")},
        "logs": str(logdir),
        "exit_code": EXIT_PASS,
    }
    if heavier is None:
        doc["detection_skipped"] = (
            "latency is not gated (--fail latency:off)"
            if model.text.startswith("built-in workload")
            else "a heavier copy of a model of yours has no known extra work; run --calibrate without "
            "MODEL, or benchmarks/gate_aab.py"
        )
    text = render_calibration(doc, summary, verdicts)
    print(dumps(doc) if args.json else text)
    if args.markdown:
        _append(args.markdown, f"### greenbench gate --calibrate\n\n```\n{text}\n```\n\n")
    return EXIT_PASS
