"""Known records for the device-report tests: a suite with a baseline, paired and unpaired,
noisy, estimated and measured figures, training stages, a failed variant and hostile names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from greenbench.store import RunRecord, Store, metric
from tests.factories import make_record

HOSTILE = "<script>alert(1)</script>"
MATH = "tiny$x^2$"
DEVICE_ID = "x86_64-0123456789ab"
SUITE = "yolo_study"

DEVICE = {
    "device_id": DEVICE_ID,
    "cpu_model": "Test CPU @ 2.0GHz",
    "logical_cores": 2,
    "ram_gib": 7.8,
    "arch": "x86_64",
    "gpus": [],
    "device": "cpu",
    "threads_used": 1,
    "hostname": "secret-host",
    "os": "Linux 6.1",
    "python": "3.11.2",
    "versions": {"torch": "2.14.1", "onnxruntime": "1.32.0"},
}
PROTOCOL = {"stat": "median of block medians", "rounds": 3, "blocks": 10, "rounds_disagree": False}
IDLE = {"power_w": {"cpu-estimate": 0.0}, "duration_s": 2.0, "method": "estimated", "skipped": False}


def _reading(method: str, source: str, energy_j: float) -> dict[str, Any]:
    domain = {"domain": "cpu", "energy_j": energy_j, "method": method, "source": source, "scope": "process"}
    return {"energy_j": energy_j, "duration_s": 1.0, "method": method, "source": source, "domains": [domain]}


def _block(variant: str, method: str, source: str, energy_j: float) -> dict[str, Any]:
    return {"arm": variant, "round": 0, "reading": _reading(method, source, energy_j)}


def _stage(name: str, energy_j: float, method: str = "estimated") -> dict[str, Any]:
    source = "estimate" if method == "estimated" else "rapl:package-0"
    return {
        "variant": "v", "name": name, "params": {"epochs": 1}, "cached": False, "checkpoint": "x.pt",
        "duration_s": energy_j / 10, "energy": _reading(method, source, energy_j), "energy_j": energy_j,
        "energy_net_j": energy_j * 0.9, "method": method,
    }  # fmt: skip


def paired(pct: float, low: float, high: float, key: str = "base") -> dict[str, Any]:
    """A stored paired Δ as the runner writes it."""
    return {
        "paired": True, "baseline": "base", "baseline_key": key, "run_id": "r1", "delta_pct": pct,
        "delta_ci_low_pct": low, "delta_ci_high_pct": high, "significant": not (low <= 0 <= high),
        "p_value": 0.01, "pairs": 30, "rounds": 3, "rounds_disagree": False,
    }  # fmt: skip


def variant(
    name: str,
    *,
    map50: float,
    latency_ms: float,
    energy_j: float,
    method: str = "estimated",
    noisy: bool = False,
    deltas: dict[str, Any] | None = None,
    stages: list[dict[str, Any]] | None = None,
    suite: str = SUITE,
    run_id: str = "r1",
    finished_at: str = "2026-01-01T10:00:00",
    runtime: str = "torch",
    latency_noisy: bool | None = None,
) -> RunRecord:
    """An ok record of ``name`` with every figure the report shows."""
    source = "estimate (4.0 W/core × CPU time)" if method == "estimated" else "rapl:package-0"
    e = {"method": method, "source": source}
    lat_ci = {"ci_low": latency_ms * 0.95, "ci_high": latency_ms * 1.05}
    metrics = {
        "precision": metric(map50 + 0.1, "fraction"),
        "map50": metric(map50, "fraction", split="test"),
        "params": metric(1.8e6 * map50 * 2, "count"),
        "size_mb": metric(3.9 * map50 * 2, "MB"),
        "gflops": metric(4.2 * map50 * 2, "GFLOP", convention="GFLOPs = 2 × GMACs", imgsz=64),
        "latency_ms": metric(
            latency_ms,
            "ms",
            noisy=noisy if latency_noisy is None else latency_noisy,
            threads=1,
            ci_method="bootstrap",
            **lat_ci,
            **PROTOCOL,
        ),
        "energy_per_image_j": metric(
            energy_j, "J", ci_low=energy_j * 0.9, ci_high=energy_j * 1.1, noisy=noisy, **e, **PROTOCOL
        ),
        "train_energy_j": metric(sum(s["energy_j"] for s in stages or []), "J", **e),
        "co2_train_g": metric(sum(s["energy_j"] for s in stages or []) / 3.6e6 * 380, "g", **e),
    }
    return make_record(
        run_id=run_id,
        suite=suite,
        variant=name,
        variant_hash=name if runtime == "torch" else f"{name}@{runtime}",
        parent=None if name == "base" else "base",
        baseline="base",
        runtime=runtime,
        device_id=DEVICE_ID,
        finished_at=finished_at,
        metrics=metrics,
        deltas=deltas or {},
        stages=stages or [],
        device=DEVICE,
        measurement={
            "blocks": [_block(name, method, source, energy_j * 10)],
            "idle": IDLE,
            "carbon": {"g_per_kwh": 380.95, "source": "codecarbon offline data, DEU", "pue": 1.0},
            "settings": {"energy": {"meters": ["auto"]}},
        },
    )


def study_records() -> list[RunRecord]:
    """The study: a baseline, a paired pruned variant, a noisy unpaired hostile one, a ``$``
    name, a measured one and a failed one."""
    return [
        variant("base", map50=0.5, latency_ms=10.0, energy_j=0.02, stages=[_stage("train", 12000.0)]),
        variant(
            "pruned",
            map50=0.45,
            latency_ms=7.0,
            energy_j=0.014,
            deltas={"latency_ms": paired(-30, -33, -27), "energy_per_image_j": paired(-30, -35, -25)},
            stages=[_stage("sparse_train", 5000.0), _stage("prune", 40.0), _stage("finetune", 3000.0)],
        ),
        variant(
            HOSTILE, map50=0.3, latency_ms=9.0, energy_j=0.018, noisy=True, stages=[_stage("train", 800.0)]
        ),
        variant(MATH, map50=0.2, latency_ms=4.0, energy_j=0.008),
        variant("measured", map50=0.35, latency_ms=8.0, energy_j=0.016, method="measured"),
        make_record(
            variant="broken",
            variant_hash="broken",
            suite=SUITE,
            status="failed",
            error="boom <b>x</b>",
            device_id=DEVICE_ID,
            baseline="base",
            device=DEVICE,
        ),
    ]


def hostile_suite_records() -> list[RunRecord]:
    """A second suite whose name is a script tag."""
    return [
        variant("base", map50=0.4, latency_ms=5.0, energy_j=0.01, suite=HOSTILE),
        variant(HOSTILE, map50=0.38, latency_ms=4.0, energy_j=0.009, suite=HOSTILE),
    ]


def make_store(path: Path, records: list[RunRecord] | None = None) -> Path:
    """A store at ``path`` holding ``records`` (default: the study and the hostile suite)."""
    with Store(path) as store:
        for r in records if records is not None else study_records() + hostile_suite_records():
            store.add(r)
    return path


#: the YOLOv5 study's shape: 9 models, each on 3 runtimes (27 rows), accuracies tied across runtimes
STUDY27_MODELS = (
    ("base", 0.50, 1.00), ("sparse", 0.50, 0.98), ("pruned-10", 0.49, 0.90), ("pruned-20", 0.47, 0.81),
    ("pruned-30", 0.44, 0.72), ("pruned-30-finetuned", 0.47, 0.72), ("int8-dynamic", 0.48, 0.62),
    ("int8-static", 0.46, 0.55), ("distilled-n", 0.45, 0.40),
)  # fmt: skip
STUDY27_RUNTIMES = (
    ("torch", 1.0),
    ("onnxruntime(threads=1, graph_optimization=all)", 0.83),
    ("openvino(precision=f32, threads=1, hint=latency)", 0.79),
)


def study27_records() -> list[RunRecord]:
    """27 variants as the study has them: 9 models × 3 runtimes, accuracies tied across runtimes,
    close energies (clusters), one latency-only noisy row, one energy-only noisy row, paired Δs
    and training stages on the torch rows."""
    records = []
    for m, (name, map50, cost) in enumerate(STUDY27_MODELS):
        for r, (runtime, speed) in enumerate(STUDY27_RUNTIMES):
            latency = 12.0 * cost * speed
            energy = 0.021 * cost * speed * (1 + 0.01 * r)
            torch_row = runtime == "torch"
            pct = (cost * speed - 1) * 100
            record = variant(
                name, map50=map50, latency_ms=latency, energy_j=energy, runtime=runtime,
                noisy=(m, r) == (4, 1),  # energy (and latency) noisy…
                latency_noisy=(m, r) in ((4, 1), (2, 2)),  # …and one latency-only noisy row
                deltas={} if name == "base" else {
                    "latency_ms": paired(pct, pct - 3, pct + 3),
                    "energy_per_image_j": paired(pct, pct - 4, pct + 4),
                },
                stages=[_stage("train", 12000.0 * cost)] if torch_row and m < 6 else [],
            )  # fmt: skip
            if (m, r) == (3, 2):  # energy noisy only
                record.metrics["energy_per_image_j"]["noisy"] = True
            records.append(record)
    return records
