"""The ``estimate`` meter: energy modelled from CPU time, for machines without counters.

Model (printed by ``greenbench env`` and stored with every reading):

    energy_j = cpu_time_s × watts_per_core

``cpu_time_s`` is user + system CPU time of this process *and its waited-for children*
(``getrusage`` of ``RUSAGE_SELF`` + ``RUSAGE_CHILDREN``, µs resolution), so it covers every
thread of a PyTorch run and a command launched by ``greenbench measure``. ``watts_per_core``
is the power one fully busy core draws above idle; the default, 4 W, is CodeCarbon's fallback
for an unknown CPU (per thread). The model attributes only the dynamic power of the measured
work: other processes, idle power of the machine, memory, fans and the GPU are not in it.
Its domain is therefore *process*-scoped: a machine-wide idle baseline does not apply and net
= gross. Every figure it produces is labelled ``estimated``; ``assumptions`` lists all of this
in words, for ``greenbench env``, ``greenbench measure`` and the records.
"""

from __future__ import annotations

import resource
from collections.abc import Callable

from greenbench.measure.energy.meter import Availability, DomainEnergy, EnergyReading, Meter

DEFAULT_WATTS_PER_CORE = 4.0
IDLE_NOT_APPLICABLE = "process-scoped estimate: idle not applicable, net = gross"


def process_cpu_time_s() -> float:
    """User + system CPU seconds (µs resolution) of this process and its waited-for children."""
    total_s = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total_s += usage.ru_utime + usage.ru_stime
    return total_s


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
    def known_domains(self) -> tuple[str, ...]:
        """Always ``("cpu",)``."""
        return ("cpu",)

    @property
    def model(self) -> str:
        """The power model in one line, as stored in records."""
        return f"energy_j = process CPU time (s) × {self.watts_per_core:g} W per busy core"

    @property
    def assumptions(self) -> list[str]:
        """What the model counts and leaves out, one sentence each (shown wherever it is used)."""
        if self.watts_per_core == DEFAULT_WATTS_PER_CORE:
            watts = (
                f"{self.watts_per_core:g} W per busy core is CodeCarbon's default per thread "
                f"for an unknown CPU, not a figure for this CPU"
            )
        else:
            watts = (
                f"{self.watts_per_core:g} W per busy core was set by the user (CodeCarbon's "
                f"default per thread for an unknown CPU is {DEFAULT_WATTS_PER_CORE:g} W)"
            )
        return [
            "counts only the CPU time of this process and its waited-for children",
            "other processes, idle/static power, RAM, GPU and fans are excluded",
            watts,
            "idle baseline not applicable: net = gross",
        ]

    def probe(self) -> Availability:
        return Availability(True, detail={"model": self.model, "assumptions": self.assumptions})

    def _begin(self) -> float:
        return self._cpu_time_fn()

    def _end(self, token: float, duration_s: float) -> EnergyReading:
        cpu_s = max(0.0, self._cpu_time_fn() - token)
        domain = DomainEnergy(
            domain="cpu",
            energy_j=cpu_s * self.watts_per_core,
            method="estimated",
            source=f"estimate:cpu-time×{self.watts_per_core:g}W/core",
            scope="process",
        )
        utilisation = cpu_s / duration_s if duration_s > 0 else 0.0
        notes = {
            "model": self.model,
            "assumptions": self.assumptions,
            "cpu_time_s": cpu_s,
            "busy_cores": utilisation,
        }
        return EnergyReading(duration_s=duration_s, domains=(domain,), notes=notes)
