"""Choose the meters that can read here, read them together, and subtract idle power.

``auto`` takes every counter that can be read — RAPL for the CPU side, NVML for GPUs — and
falls back to the ``estimate`` model for the CPU side only when RAPL cannot be read; the reason
RAPL (or NVML) was unavailable is kept with the run. ``estimate`` is never read beside RAPL:
both cover the CPU, and their sum would count it twice. A reading that mixes measured and
estimated domains is ``estimated`` as a whole, with each domain keeping its own method.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from greenbench.errors import GreenbenchError, MeterUnavailable
from greenbench.measure.energy.estimate import DEFAULT_WATTS_PER_CORE, IDLE_NOT_APPLICABLE, EstimateMeter
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

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MeterChoice:
        """Inverse of ``to_dict``; a missing ``name`` or ``used`` is a ``KeyError``."""
        return cls(str(d["name"]), bool(d["used"]), str(d.get("reason", "")), dict(d.get("detail") or {}))


class MeterNameError(GreenbenchError):
    """A meter name that greenbench does not know (a usage error: exit code 2)."""

    exit_code = 2


def check_meter_names(names: Sequence[str]) -> None:
    """Raise ``MeterNameError`` naming the valid names if any of ``names`` is not a meter."""
    if not names:
        raise MeterNameError(f"no meter given; expected one or more of {', '.join(METER_NAMES)}.")
    if bad := [n for n in names if n not in METER_NAMES]:
        listed = ", ".join(repr(n) for n in dict.fromkeys(bad))
        raise MeterNameError(
            f"unknown meter {listed}; the meters are {', '.join(METER_NAMES)} "
            f"(a comma list, e.g. 'rapl,nvml')."
        )


def _make(name: str, watts_per_core: float, gpus: list[int] | None, powercap_root: Path | None) -> Meter:
    if name == "rapl":
        from greenbench.measure.energy.rapl import RaplMeter

        return RaplMeter(root=powercap_root)
    if name == "nvml":
        from greenbench.measure.energy.nvml import NvmlMeter

        return NvmlMeter(gpus=gpus)
    if name == "estimate":
        return EstimateMeter(watts_per_core=watts_per_core)
    check_meter_names([name])  # raises for a name greenbench does not know
    raise AssertionError(f"meter {name!r} is in METER_NAMES but has no constructor")


def _double_count(rapl_explicit: bool) -> MeterUnavailable:
    how = "was asked for" if rapl_explicit else "can read here (chosen by 'auto')"
    return MeterUnavailable(
        f"meter 'estimate' was asked for beside 'rapl', which {how}: both cover the CPU, so "
        f"their sum would count the CPU's energy twice. Use 'rapl' for measured CPU energy, or "
        f"'estimate' alone (without 'auto' or 'rapl') for the CPU-time model."
    )


def select_meters(
    names: Sequence[str] = ("auto",),
    watts_per_core: float = DEFAULT_WATTS_PER_CORE,
    gpus: list[int] | None = None,
    powercap_root: Path | None = None,
) -> tuple[CompositeMeter, list[MeterChoice]]:
    """Probe the requested meters and combine those that can read.

    A meter named explicitly that cannot read is an error (``MeterUnavailable``) naming the
    reason; under ``auto`` it is skipped and its reason recorded. An unknown name is a
    ``MeterNameError``; ``estimate`` asked for while RAPL can read is ``MeterUnavailable``
    (both cover the CPU: the total would count it twice).
    """
    check_meter_names(names)
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
            if name == "rapl" and "estimate" in explicit:
                raise _double_count("rapl" in explicit)
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


def _duplicates(names: Sequence[str]) -> list[str]:
    return [name for name, count in Counter(names).items() if count > 1]


class CompositeMeter(Meter):
    """Several meters read over the same window; domains are concatenated.

    Two meters may not report the same domain (their sum would count it twice): rejected at
    construction when the meters know their domains, else when the window closes.
    """

    name = "composite"

    def __init__(self, meters: Sequence[Meter]) -> None:
        if not meters:
            raise ValueError("a composite meter needs at least one meter")
        known = [(d, m.name) for m in meters for d in (m.known_domains or ())]
        if dup := _duplicates([d for d, _ in known]):
            raise ValueError(self._duplicate_message(dup, known))
        self.meters = list(meters)

    @staticmethod
    def _duplicate_message(dup: list[str], owners: list[tuple[str, str]]) -> str:
        who = "; ".join(f"{d!r} from {', '.join(n for dd, n in owners if dd == d)}" for d in dup)
        return (
            f"two meters report the same domain ({who}): a composite meter would count its "
            f"energy twice. Combine meters that cover different domains."
        )

    @property
    def method(self) -> str:  # type: ignore[override]
        return "measured" if all(m.method == "measured" for m in self.meters) else "estimated"

    @property
    def known_domains(self) -> tuple[str, ...] | None:
        """Every child's domains, if every child knows them."""
        known = [m.known_domains for m in self.meters]
        return tuple(d for k in known for d in k or ()) if all(k is not None for k in known) else None

    def probe(self) -> Availability:
        return Availability(True, detail={"meters": [m.name for m in self.meters]})

    def open(self) -> None:
        for m in self.meters:
            m.open()

    def close(self) -> None:
        for m in self.meters:
            m.close()

    def sync(self) -> None:
        """Every meter's ``sync``, so no counter of the window is read before a device drained."""
        for m in self.meters:
            m.sync()

    def _begin(self) -> list[Any]:
        return [m._begin() for m in self.meters]

    def _end(self, token: list[Any], duration_s: float) -> EnergyReading:
        readings = [m._end(t, duration_s) for m, t in zip(self.meters, token, strict=True)]
        owners = [(d.domain, m.name) for m, r in zip(self.meters, readings, strict=True) for d in r.domains]
        if dup := _duplicates([d for d, _ in owners]):
            raise ValueError(self._duplicate_message(dup, owners))
        notes = {m.name: r.notes for m, r in zip(self.meters, readings, strict=True) if r.notes}
        return EnergyReading(
            duration_s=duration_s,
            domains=tuple(d for r in readings for d in r.domains),
            invalid_samples=sum(r.invalid_samples for r in readings),
            notes=notes,
        )


@dataclass(frozen=True)
class IdleBaseline:
    """Idle power per domain (W), measured once per run, or skipped (all zeros, ``skipped``).

    notes: per domain, why its idle power is not what the meter read (a process-scoped
    domain gets 0 W: see ``measure_idle``).
    """

    power_w: dict[str, float]
    duration_s: float
    method: str
    skipped: bool = False
    reason: str = ""
    notes: dict[str, str] = field(default_factory=dict)

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
            "notes": dict(self.notes),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> IdleBaseline:
        """Inverse of ``to_dict`` (also reads dicts stored before ``notes`` existed)."""
        return cls(
            d["power_w"],
            d["duration_s"],
            d["method"],
            d["skipped"],
            d.get("reason", ""),
            dict(d.get("notes", {})),
        )


def measure_idle(meter: Meter, seconds: float, sleep: Callable[[float], None] = time.sleep) -> IdleBaseline:
    """Idle power per domain over ``seconds`` of doing nothing; ``seconds <= 0`` skips it.

    A ``process``-scoped domain gets 0 W: it counts only the work of the process that reads
    it, and the baseline is taken in another process (the idle job's, not the measuring
    worker's), so subtracting what that process did while waiting would be wrong.
    """
    if seconds <= 0:
        return IdleBaseline({}, 0.0, meter.method, skipped=True, reason="idle_s is 0")
    window = meter.begin()
    sleep(seconds)
    reading = meter.end(window)
    power: dict[str, float] = {}
    notes: dict[str, str] = {}
    for d in reading.domains:
        if d.scope == "process":
            power[d.domain] = 0.0
            notes[d.domain] = IDLE_NOT_APPLICABLE
        else:
            power[d.domain] = d.energy_j / reading.duration_s
    return IdleBaseline(power, reading.duration_s, reading.method, notes=notes)


def skipped_idle(reason: str) -> IdleBaseline:
    """An idle baseline that was not measured (net = gross), with the reason recorded."""
    return IdleBaseline({}, 0.0, "none", skipped=True, reason=reason)
