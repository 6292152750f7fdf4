"""The child side of the runner: one job per fresh process.

``python -m greenbench.worker JOB.json RESULT.json`` runs either the stages of a variant
(``kind: stages``) or its measurement (``kind: measure``) and writes RESULT.json. A fresh
process per job keeps measurements free of the previous variant's threads, allocator state and
ultralytics' global thread setting. Progress lines are appended to ``job["events"]``.
A user-caused failure (``GreenbenchError``) is written as ``{"error": ..., "user": true}``;
anything else as the exception with a pointer to the log, and exit code 1 either way.
"""

from __future__ import annotations

import json
import resource
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from greenbench.errors import GreenbenchError
from greenbench.measure.energy.composite import select_meters
from greenbench.measure.energy.meter import EnergyReading, Meter

STAGE_MARKER = "stage.json"


class Events:
    """Append-only progress lines read by the parent's progress display."""

    def __init__(self, path: str | None) -> None:
        self.path = Path(path) if path else None

    def __call__(self, message: str) -> None:
        if self.path is not None:
            with self.path.open("a") as f:
                f.write(message + "\n")


def _prefixed(emit: Events, variant: str) -> Callable[[str], None]:
    return lambda msg: emit(f"{variant}: {msg}")


def _meter(job: dict[str, Any]) -> tuple[Meter, list[dict[str, Any]]]:
    e = job["energy"]
    root = Path(e["powercap_root"]) if e.get("powercap_root") else None
    meter: Meter
    meter, choices = select_meters(e["meters"], e["watts_per_core"], e.get("gpus"), root)
    cc = e.get("codecarbon")
    if cc:  # optional cross-check: CodeCarbon over the same windows, its CSV in the run's folder
        from greenbench.measure.codecarbon_check import CodeCarbonCheck, CrossCheckedMeter

        check = CodeCarbonCheck(Path(cc["out_dir"]), cc["country"], region=cc.get("region"))
        meter = CrossCheckedMeter(meter, check)
    return meter, [c.to_dict() for c in choices]


def _adapter(job: dict[str, Any]) -> Any:
    from greenbench.adapters.detect import DetectAdapter

    return DetectAdapter(Path(job["workdir"]), device=job["device"])


def _cached_stage(marker: Path) -> dict[str, Any] | None:
    """A stage's stored result if it is complete and its checkpoint is still on disk."""
    try:
        result: dict[str, Any] = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    return result if Path(result.get("checkpoint", "")).is_file() else None


def run_stages(job: dict[str, Any], emit: Events) -> dict[str, Any]:
    """Run every stage of the lineage whose artifact is not cached; return per-stage results."""
    from greenbench.pipeline import get_stage
    from greenbench.pipeline.base import StageContext

    adapter = _adapter(job)
    meter, choices = _meter(job)
    checkpoint: str | None = None
    results = []
    with meter:
        for spec in job["stages"]:
            out_dir = Path(spec["out_dir"])
            marker = out_dir / STAGE_MARKER
            cached = None if spec["key"] in job.get("force_keys", []) else _cached_stage(marker)
            if cached is not None:
                result = {**cached, "cached": True}
            else:
                emit(f"{spec['variant']}: {spec['name']}")
                stage = get_stage(spec["name"])()
                ctx = StageContext(
                    adapter=adapter,
                    data_yaml=Path(job["data_yaml"]),
                    defaults=job["defaults"],
                    params=spec["params"],
                    input=Path(checkpoint) if checkpoint else None,
                    model=job["model"],
                    weights=job.get("weights"),
                    out_dir=out_dir,
                    meter=meter,
                    emit=_prefixed(emit, spec["variant"]),
                )
                out = stage.run(ctx)
                result = {
                    "key": spec["key"],
                    "name": spec["name"],
                    "variant": spec["variant"],
                    "params": spec["params"],
                    "checkpoint": str(out.checkpoint),
                    "energy": out.energy.to_dict(),
                    "info": out.info,
                    "meters": choices,
                }
                tmp = marker.with_suffix(".tmp")  # atomic: a crash never leaves half a marker
                tmp.write_text(json.dumps(result, indent=1, default=str))
                tmp.replace(marker)
                result["cached"] = False
            checkpoint = result["checkpoint"]
            results.append(result)
    return {"stages": results, "checkpoint": checkpoint}


def _energy_windows(
    meter: Meter, predict: Any, images_per_call: int, min_window_s: float, windows: int
) -> list[dict[str, Any]]:
    """``windows`` readings of repeated inference, each at least ``min_window_s`` long."""
    readings: list[dict[str, Any]] = []
    for _ in range(windows):
        calls = 0
        window = meter.begin()
        while True:  # counters update every 10-100 ms: the window must be long enough
            predict()
            calls += 1
            if time.monotonic() - window.start_s >= min_window_s:
                break
        reading: EnergyReading = meter.end(window)
        images = calls * images_per_call
        readings.append({**reading.to_dict(), "images": images})
    return readings


def run_measure(job: dict[str, Any], emit: Events) -> dict[str, Any]:
    """Complexity, latency, energy per image and accuracy of one checkpoint, in that order."""
    from greenbench.measure.complexity import count_macs, count_params, file_size_mb
    from greenbench.measure.latency import LatencyConfig, cuda_sync, time_calls

    adapter = _adapter(job)
    variant = job["variant"]
    ckpt = job.get("checkpoint")
    if ckpt:
        yolo = adapter.load(Path(ckpt))
        weights_file = Path(ckpt)
    else:  # a variant without stages: the model as configured, saved so it has a size
        yolo = adapter.build(job["model"], job.get("weights"))
        weights_file = adapter.save(yolo, Path(job["out_dir"]) / "untrained.pt")

    lat = job["latency"]
    module = adapter.inference_module(yolo)
    predict = adapter.predictor(module, lat["batch"], lat["imgsz"])
    sync = cuda_sync(job["device"])

    emit(f"{variant}: latency")
    config = LatencyConfig(
        lat["warmup"], lat["min_repeats"], lat["min_time_s"], lat["max_time_s"], lat["threads"]
    )
    latency = time_calls(predict, config, sync)

    emit(f"{variant}: energy per image")
    meter, choices = _meter(job)
    e = job["energy"]

    def predict_synced() -> None:
        predict()
        sync()

    with meter:
        windows = _energy_windows(meter, predict_synced, lat["batch"], e["min_window_s"], e["windows"])
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6  # KiB on Linux → MB

    macs = count_macs(module, lat["imgsz"])
    emit(f"{variant}: accuracy")
    split = job.get("eval_split", "test")
    out_dir = Path(job["out_dir"]) / "val"
    accuracy: dict[str, Any] = adapter.evaluate(
        yolo, Path(job["data_yaml"]), job["eval_imgsz"], out_dir, split
    )
    accuracy["split"] = split
    return {
        "params": count_params(module),
        "macs": macs,
        "size_mb": file_size_mb(weights_file),
        "weights_file": str(weights_file),
        "peak_rss_mb": peak_rss_mb,
        "latency": latency.to_dict(),
        "energy_windows": windows,
        "meters": choices,
        "accuracy": accuracy,
    }


def _die_with_parent() -> None:
    """Linux: get SIGTERM when the runner dies, even by SIGKILL, instead of running on alone."""
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m greenbench.worker JOB.json RESULT.json``."""
    _die_with_parent()
    job_path, result_path = (argv or sys.argv[1:])[:2]
    job = json.loads(Path(job_path).read_text())
    emit = Events(job.get("events"))
    try:
        runner = {"stages": run_stages, "measure": run_measure}[job["kind"]]
        result: dict[str, Any] = {"ok": True, **runner(job, emit)}
        code = 0
    except GreenbenchError as e:
        result, code = {"ok": False, "error": str(e), "user": True}, 1
    except Exception as e:
        traceback.print_exc()
        result = {"ok": False, "error": f"{type(e).__name__}: {e}", "user": False}
        code = 1
    Path(result_path).write_text(json.dumps(result, indent=1, default=str))
    return code


if __name__ == "__main__":
    sys.exit(main())
