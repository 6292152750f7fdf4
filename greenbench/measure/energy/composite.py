"""Choose the meters that can read here, read them together, and subtract idle power.

``auto`` takes every counter that can be read — RAPL for the CPU side, NVML for GPUs — and
falls back to the ``estimate`` model for the CPU side only when RAPL cannot be read; the reason
RAPL (or NVML) was unavailable is kept with the run. A reading that mixes measured and
estimated domains is ``estimated`` as a whole, with each domain keeping its own method.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from greenbench.errors import MeterUnavailable
from greenbench.measure.energy.estimate import DEFAULT_WATTS_PER_CORE, EstimateMeter
from greenbench.measure.energy.meter import Availability, EnergyReading, Meter

METER_NAMES = ("auto", "rapl", "nvml", "estimate")


@dataclass(frozen=True)
class MeterChoice:
    """One meter considered for a run: used or not, and why."""

    name: str
    used: bool
    reason: str = ""
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"name": self.name, "used": self.used, "reason": self.reason, "detail": self.detail}


def _make(name: str, watts_per_core: float, gpus: list[int] | None, powercap_root: Path | None) -> Meter:
    if name == "rapl":
        from greenbench.measure.energy.rapl import RaplMeter

        return RaplMeter(root=powercap_root)
    if name == "nvml":
        from greenbench.measure.energy.nvml import NvmlMeter

        return NvmlMeter(gpus=gpus)
    if name == "estimate":
        return EstimateMeter(watts_per_core=watts_per_core)
    raise ValueError(f"unknown meter {name!r}; expected one of {', '.join(METER_NAMES)}")


def select_meters(
    names: Sequence[str] = ("auto",),
    watts_per_core: float = DEFAULT_WATTS_PER_CORE,
    gpus: list[int] | None = None,
    powercap_root: Path | None = None,
) -> tuple[CompositeMeter, list[MeterChoice]]:
    """Probe the requested meters and combine those that can read.

    A meter named explicitly that cannot read is an error (``MeterUnavailable``) naming the
    reason; under ``auto`` it is skipped and its reason recorded.
    """
    explicit = [n for n in names if n != "auto"]
    wanted = ["rapl", "nvml"] if "auto" in names else []
    wanted += [n for n in explicit if n not in wanted]
    choices: list[MeterChoice] = []
    used: list[Meter] = []
    for name in wanted:
        if name == "estimate":
            continue
        meter = _make(name, watts_per_core, gpus, powercap_root)
        avail: Availability = meter.probe()
        if avail.ok:
            used.append(meter)
        elif name in explicit:
            raise MeterUnavailable(f"meter '{name}' was asked for but cannot read: {avail.reason}")
        choices.append(MeterChoice(name, avail.ok, avail.reason, avail.detail))
    cpu_counted = any(m.name == "rapl" for m in used)
    if "estimate" in explicit or not cpu_counted:
        meter = EstimateMeter(watts_per_core=watts_per_core)
        used.append(meter)
        why = "asked for" if "estimate" in explicit else "no CPU energy counter could be read"
        choices.append(MeterChoice("estimate", True, why, meter.probe().detail))
    return CompositeMeter(used), choices


class CompositeMeter(Meter):
    """Several meters read over the same window; domains are concatenated."""

    name = "composite"

    def __init__(self, meters: Sequence[Meter]) -> None:
        if not meters:
            raise ValueError("a composite meter needs at least one meter")
        self.meters = list(meters)

    @property
    def method(self) -> str:  # type: ignore[override]
        return "measured" if all(m.method == "measured" for m in self.meters) else "estimated"

    def probe(self) -> Availability:
        return Availability(True, detail={"meters": [m.name for m in self.meters]})

    def open(self) -> None:
        for m in self.meters:
            m.open()

    def close(self) -> None:
        for m in self.meters:
            m.close()

    def _begin(self) -> list[Any]:
        return [m._begin() for m in self.meters]

    def _end(self, token: list[Any], duration_s: float) -> EnergyReading:
        readings = [m._end(t, duration_s) for m, t in zip(self.meters, token, strict=True)]
        notes = {m.name: r.notes for m, r in zip(self.meters, readings, strict=True) if r.notes}
        return EnergyReading(
            duration_s=duration_s,
            domains=tuple(d for r in readings for d in r.domains),
            invalid_samples=sum(r.invalid_samples for r in readings),
            notes=notes,
        )


@dataclass(frozen=True)
class IdleBaseline:
    """Idle power per domain (W), measured once per run, or skipped (all zeros, ``skipped``)."""

    power_w: dict[str, float]
    duration_s: float
    method: str
    skipped: bool = False
    reason: str = ""

    def net(self, reading: EnergyReading) -> dict[str, Any]:
        """Gross and net (idle-subtracted) joules of ``reading``; net may dip below 0 in noise."""
        gross = reading.energy_j
        idle_j = sum(self.power_w.get(d.domain, 0.0) for d in reading.domains) * reading.duration_s
        return {
            "energy_j": gross,
            "energy_net_j": gross - idle_j,
            "idle_j": idle_j,
            "method": reading.method,
            "source": reading.source,
        }

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "power_w": dict(self.power_w),
            "duration_s": self.duration_s,
            "method": self.method,
            "skipped": self.skipped,
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> IdleBaseline:
        """Inverse of ``to_dict``."""
        return cls(d["power_w"], d["duration_s"], d["method"], d["skipped"], d.get("reason", ""))


def measure_idle(meter: Meter, seconds: float, sleep: Callable[[float], None] = time.sleep) -> IdleBaseline:
    """Idle power per domain over ``seconds`` of doing nothing; ``seconds <= 0`` skips it."""
    if seconds <= 0:
        return IdleBaseline({}, 0.0, meter.method, skipped=True, reason="idle_s is 0")
    window = meter.begin()
    sleep(seconds)
    reading = meter.end(window)
    power = {d.domain: d.energy_j / reading.duration_s for d in reading.domains}
    return IdleBaseline(power, reading.duration_s, reading.method)


def skipped_idle(reason: str) -> IdleBaseline:
    """An idle baseline that was not measured (net = gross), with the reason recorded."""
    return IdleBaseline({}, 0.0, "none", skipped=True, reason=reason)
