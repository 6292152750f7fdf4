"""The ``estimate`` meter: energy modelled from CPU time, for machines without counters.

Model (printed by ``greenbench env`` and stored with every reading):

    energy_j = cpu_time_s × watts_per_core

``cpu_time_s`` is user + system CPU time of this process *and its waited-for children*
(``os.times()``), so it covers every thread of a PyTorch run and a command launched by
``greenbench measure``. ``watts_per_core`` is the power one fully busy core draws above idle;
the default, 4 W, is CodeCarbon's fallback for an unknown CPU (per thread). The model
attributes only the dynamic power of the measured work: idle power of the machine, memory,
fans and the GPU are not in it, so its idle baseline is ≈ 0 and net ≈ gross. Every figure it
produces is labelled ``estimated``.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from greenbench.measure.energy.meter import Availability, DomainEnergy, EnergyReading, Meter

DEFAULT_WATTS_PER_CORE = 4.0


def process_cpu_time_s() -> float:
    """User + system CPU seconds of this process and its waited-for children."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class EstimateMeter(Meter):
    """CPU time × a per-core power model. Always available; always ``estimated``."""

    name = "estimate"
    method = "estimated"

    def __init__(
        self,
        watts_per_core: float = DEFAULT_WATTS_PER_CORE,
        cpu_time_fn: Callable[[], float] = process_cpu_time_s,
    ) -> None:
        if watts_per_core <= 0:
            raise ValueError(f"watts_per_core must be > 0, got {watts_per_core}")
        self.watts_per_core = watts_per_core
        self._cpu_time_fn = cpu_time_fn

    @property
    def model(self) -> str:
        """The power model in one line, as stored in records."""
        return f"energy_j = process CPU time (s) × {self.watts_per_core:g} W per busy core"

    def probe(self) -> Availability:
        return Availability(True, detail={"model": self.model})

    def _begin(self) -> float:
        return self._cpu_time_fn()

    def _end(self, token: float, duration_s: float) -> EnergyReading:
        cpu_s = max(0.0, self._cpu_time_fn() - token)
        domain = DomainEnergy(
            domain="cpu",
            energy_j=cpu_s * self.watts_per_core,
            method="estimated",
            source=f"estimate:cpu-time×{self.watts_per_core:g}W/core",
        )
        utilisation = cpu_s / duration_s if duration_s > 0 else 0.0
        return EnergyReading(
            duration_s=duration_s,
            domains=(domain,),
            notes={"model": self.model, "cpu_time_s": cpu_s, "busy_cores": utilisation},
        )
