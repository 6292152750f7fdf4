"""The meter interface: open a window with ``begin()``, close it with ``end()`` → ``EnergyReading``.

Modelled on zeus' ``begin_window``/``end_window``. A meter covers one or more *domains*
(``package-0``, ``dram-0``, ``gpu:0``, ``cpu``) and every reading states its *method*:
``measured`` (a hardware counter was read) or ``estimated`` (a power model was applied).
Meters that need a background thread (counter pollers) start it in ``open()`` and stop it in
``close()``; a meter is also a context manager doing both.

A domain's *scope* says what its figure covers: ``system`` (a hardware counter sees every
process on the device, so idle power can be subtracted) or ``process`` (a model of this
process' own work, e.g. the ``estimate`` meter, where a machine-wide idle baseline is not
applicable).
"""

from __future__ import annotations

import abc
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

Method = Literal["measured", "estimated"]
Scope = Literal["system", "process"]


@dataclass(frozen=True)
class DomainEnergy:
    """Energy of one domain over one window.

    energy_j: joules consumed in the window (gross: idle power not subtracted).
    method: ``measured`` or ``estimated``.
    source: what produced the figure, e.g. ``rapl:/sys/class/powercap/intel-rapl:0``,
        ``nvml:total_energy_counter``, ``estimate:cpu-time×4.0W/core``.
    scope: ``system`` (the whole device, idle included) or ``process`` (this process and its
        waited-for children only; no idle baseline applies).
    """

    domain: str
    energy_j: float
    method: Method
    source: str
    scope: Scope = "system"


@dataclass(frozen=True)
class EnergyReading:
    """The result of one window.

    duration_s: wall-clock seconds between ``begin`` and ``end`` (monotonic clock).
    domains: per-domain energy; the total is their sum (meters never report a domain that
        another domain of the same reading already contains, e.g. ``psys`` beside packages).
    invalid_samples: counter samples discarded (a counter that went backwards without a
        plausible wrap); a reading with any is flagged in records.
    notes: free-form provenance (assumptions of a model, sub-zones read, …).
    """

    duration_s: float
    domains: tuple[DomainEnergy, ...]
    invalid_samples: int = 0
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def energy_j(self) -> float:
        """Total joules over all domains."""
        return sum(d.energy_j for d in self.domains)

    @property
    def power_w(self) -> float:
        """Mean power in watts over the window (0 for an empty window)."""
        return self.energy_j / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def method(self) -> Method:
        """``measured`` only if every domain was measured; one estimate makes the total estimated."""
        if self.domains and all(d.method == "measured" for d in self.domains):
            return "measured"
        return "estimated"

    @property
    def source(self) -> str:
        """The distinct sources of the domains, joined by ``+``."""
        return "+".join(dict.fromkeys(d.source for d in self.domains))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (units in the key names)."""
        return {
            "energy_j": self.energy_j,
            "duration_s": self.duration_s,
            "power_w": self.power_w,
            "method": self.method,
            "source": self.source,
            "invalid_samples": self.invalid_samples,
            "domains": [
                {
                    "domain": d.domain,
                    "energy_j": d.energy_j,
                    "method": d.method,
                    "source": d.source,
                    "scope": d.scope,
                }
                for d in self.domains
            ],
            "notes": dict(self.notes),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EnergyReading:
        """Inverse of ``to_dict`` (the derived keys are recomputed, not read)."""
        domains = tuple(
            DomainEnergy(x["domain"], x["energy_j"], x["method"], x["source"], x.get("scope", "system"))
            for x in d["domains"]
        )
        return cls(d["duration_s"], domains, d.get("invalid_samples", 0), dict(d.get("notes", {})))


@dataclass(frozen=True)
class Availability:
    """Whether a meter can read here, and if not, the exact reason (shown by ``greenbench env``)."""

    ok: bool
    reason: str = ""
    detail: dict[str, Any] = field(default_factory=dict)


class Meter(abc.ABC):
    """Base class of all meters.

    Subclasses implement ``probe``, ``_begin`` and ``_end``; ``begin``/``end`` add the
    monotonic timing so every reading's ``duration_s`` is measured the same way, and call
    ``sync`` before any counter is read at either edge.
    """

    name: str = "meter"
    method: Method = "measured"

    @property
    def known_domains(self) -> tuple[str, ...] | None:
        """The domains this meter will report, when known without touching hardware; else None."""
        return None

    @abc.abstractmethod
    def probe(self) -> Availability:
        """Check, without side effects, whether this meter can read on this machine."""

    def open(self) -> None:  # noqa: B027 - optional hook
        """Start background work (pollers). Called once before the first window."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Stop background work. Safe to call twice."""

    def sync(self) -> None:  # noqa: B027 - optional hook
        """Wait until work queued on this meter's device (GPU kernels) has finished.

        ``begin`` and ``end`` call it before reading any counter or the clock, so queued work
        lands in the window it was queued in and ``duration_s`` includes draining it.
        """

    @abc.abstractmethod
    def _begin(self) -> Any:
        """Snapshot counters; return an opaque token for ``_end``."""

    @abc.abstractmethod
    def _end(self, token: Any, duration_s: float) -> EnergyReading:
        """Read counters again and return the energy since ``token``."""

    def begin(self) -> Window:
        """Open a window now."""
        self.sync()  # work queued before the window belongs before it
        token = self._begin()  # first-use discovery in _begin must not count as window time
        return Window(self, token, time.monotonic())

    def end(self, window: Window) -> EnergyReading:
        """Close ``window`` and return its reading."""
        self.sync()  # before the clock: draining queued work is part of the window
        duration_s = time.monotonic() - window.start_s
        return self._end(window.token, duration_s)

    def __enter__(self) -> Meter:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class Window:
    """An open measurement window (returned by ``Meter.begin``)."""

    meter: Meter
    token: Any
    start_s: float


class PollerThread:
    """A daemon thread running ``loop(stop)`` until ``stop()`` sets the event and joins it.

    The loop must return soon after ``stop`` is set (wait on it, never on ``time.sleep``).
    """

    def __init__(self, loop: Callable[[threading.Event], None], name: str) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=loop, args=(self._stop,), name=name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the loop and wait for the thread to end."""
        self._stop.set()
        self._thread.join()


def cpu_time_only(source: str | None) -> bool:
    """Whether every meter behind an energy figure is the CPU-time estimate (source ``estimate`` or
    ``estimate:…``), so that its Δ is the CPU-time Δ. A GPU counter beside it
    (``nvml:…+estimate:…``) is not."""
    parts = [s for s in (source or "").split("+") if s]
    return bool(parts) and all(s == "estimate" or s.startswith("estimate:") for s in parts)
