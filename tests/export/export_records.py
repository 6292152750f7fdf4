"""Records as a real run stores them (blocks with per-call samples and energy windows, stages with
their windows, device fingerprint, carbon settings), for the export tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from greenbench.store import RunRecord, Store, metric
from tests.factories import make_record

#: hostile names: commas, quotes, a newline, a spreadsheet formula, an escape sequence
HOSTILE = "v,1 \"q\" 'x'\n=cmd|' /C calc'!A0 \x1b[31mred"

DEVICE = {
    "device_id": "dev", "cpu_model": "Test CPU @ 2.0GHz", "logical_cores": 2, "ram_gib": 7.8,
    "arch": "x86_64", "gpus": [], "device": "cpu", "threads_used": 1, "hostname": "host",
    "os": "Linux 6.1.0-test", "python": "3.11.7",
}  # fmt: skip


def reading(
    energy_j: float,
    duration_s: float,
    domain: str = "package-0",
    method: str = "measured",
    scope: str = "system",
) -> dict[str, Any]:
    """An ``EnergyReading.to_dict()`` of one domain."""
    return {
        "duration_s": duration_s, "energy_j": energy_j, "method": method, "source": f"test:{domain}",
        "invalid_samples": 0,
        "domains": [
            {"domain": domain, "energy_j": energy_j, "method": method, "source": "t", "scope": scope}
        ],
    }  # fmt: skip


def block(rnd: int, cycle: int, samples_ms: list[float], energy_j: float = 2.0, **kw: Any) -> dict[str, Any]:
    """A block as ``Block.to_dict`` writes it: one image per call, one energy window of 0.5 s."""
    ordered = sorted(samples_ms)
    return {
        "arm": "x", "round": rnd, "cycle": cycle, "position": 0, "start_s": float(cycle), "duration_s": 0.5,
        "calls": len(samples_ms), "images": len(samples_ms), "samples_ms": samples_ms,
        "latency_ms": ordered[len(ordered) // 2], "energy_j": energy_j,
        "energy_per_image_j": energy_j / len(samples_ms), "reading": reading(energy_j, 0.5, **kw),
    }  # fmt: skip


def measured(variant: str, scale: float = 1.0, **fields: Any) -> RunRecord:
    """An ok record of suite ``s`` on device ``dev``: 2 rounds × 2 blocks × 4 calls around
    ``10 × scale`` ms, 2 J per block (RAPL package), one training stage of 3600 J over 60 s,
    Germany at 400 g/kWh, PUE 1.5, runtime onnxruntime; ``fields`` override any of that."""
    blocks = [
        block(rnd, cycle, [scale * (10.0 + 0.5 * i + rnd + 0.25 * cycle) for i in range(4)])
        for rnd in range(2)
        for cycle in range(2)
    ]
    stage = {
        "variant": variant, "name": "train", "params": {"epochs": 1}, "cached": False, "checkpoint": "c.pt",
        "duration_s": 60.0, "energy": reading(3600.0, 60.0), "energy_j": 3600.0, "energy_net_j": 3000.0,
        "method": "measured", "invalid_samples": 0, "info": {},
    }  # fmt: skip
    base: dict[str, Any] = {
        "variant": variant,
        "variant_hash": f"h-{variant}",
        "baseline": "base",
        "runtime": "onnxruntime",
        "started_at": "2025-01-02T10:00:00+00:00",
        "finished_at": "2025-01-02T10:05:00+00:00",
        "metrics": {
            "latency_ms": metric(10.8 * scale, "ms", ci_low=10.0 * scale, ci_high=11.5 * scale, noisy=False),
            "energy_per_image_j": metric(0.5, "J", method="measured", source="rapl", ci_low=0.4, ci_high=0.6),
            "energy_per_image_net_j": metric(0.3, "J", method="measured", source="rapl"),
        },
        "stages": [stage],
        "measurement": {
            "blocks": blocks,
            "protocol": {"rounds": 2, "blocks": 2},
            "carbon": {"g_per_kwh": 400.0, "source": "test", "pue": 1.5},
            "settings": {
                "carbon": {"country": "DEU", "region": None, "intensity_g_per_kwh": None, "pue": 1.5}
            },
        },
        "device": DEVICE,
        "versions": {"codecarbon": "3.3.2", "suite_git_commit": "abc123+dirty"},
    }
    return make_record(**{**base, **fields})


def store_of(path: Path, *records: RunRecord) -> Path:
    """A store at ``path`` holding ``records``, added in order."""
    with Store(path) as s:
        for r in records:
            s.add(r)
    return path
