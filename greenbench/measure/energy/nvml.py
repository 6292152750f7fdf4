"""The ``nvml`` meter: GPU energy from NVIDIA's management library (through ``pynvml``).

Per GPU, the best source NVML offers:

* ``nvmlDeviceGetTotalEnergyConsumption`` — a mJ counter since the driver loaded (Volta and
  newer): read at both window edges, ``energy_j = Δ mJ / 1000``.
* otherwise ``nvmlDeviceGetPowerUsage`` (mW), sampled by a thread at ``poll_hz`` and
  integrated with the trapezoid rule over ``time.monotonic()`` timestamps into a running
  energy total; each window edge adds a sample at that exact moment, so a window's energy is
  the integral from its first to its last edge sample.

GPUs are chosen by NVML index (PCI bus order; ``CUDA_VISIBLE_DEVICES`` does not renumber
them). ``Meter.begin``/``end`` call ``sync`` before each edge read (and, at the end, before
the clock), so that queued GPU work is inside the window it belongs to; a caller that reads
the edges without it (a wrapper calling ``_begin``/``_end``) gets the sync from the edge
itself. NVML's counters update only every ≈ 10–100 ms: repeat short work.
``pynvml`` is imported when first needed, so this module imports on machines without it.
"""

from __future__ import annotations

import importlib
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from greenbench.errors import MeterUnavailable
from greenbench.measure.energy.meter import (
    Availability,
    DomainEnergy,
    EnergyReading,
    Meter,
    PollerThread,
    Window,
)

LIBRARY_NOT_FOUND = (
    "NVML library not found (install the NVIDIA driver; pip package nvidia-ml-py provides only the bindings)"
)
NO_GPU = "no NVIDIA GPU found"
MIN_POLL_HZ = 10.0
SHORT_WINDOW_S = 0.1  # NVML counters update every ≈ 10–100 ms


def load_pynvml() -> Any:
    """Import ``pynvml`` now (tests put a fake in ``sys.modules['pynvml']``)."""
    return importlib.import_module("pynvml")


def torch_cuda_sync() -> None:
    """Wait for this process' queued CUDA work on the current device, if PyTorch started CUDA.

    Looks PyTorch up in ``sys.modules`` instead of importing it: a process that never
    imported torch has no torch work to wait for, and importing it would take seconds.
    Work on several devices needs a ``sync`` that synchronises each of them.
    """
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        torch.cuda.synchronize()


@dataclass
class _Gpu:
    """One selected GPU; the power fields are the running trapezoid integral (under lock)."""

    index: int
    handle: Any
    name: str
    counter: bool
    counter_error: str = ""
    last_t: float | None = None
    last_w: float = 0.0
    energy_j: float = 0.0
    samples: int = 0

    @property
    def domain(self) -> str:
        return f"gpu:{self.index}"


@dataclass(frozen=True)
class _Token:
    counter_mj: dict[int, int]  # energy counter GPUs: NVML's mJ, kept whole for exact deltas
    polled_j: dict[int, float]  # power-polled GPUs: the running trapezoid integral (J)
    samples: dict[int, int]
    invalid: int
    polled_t: dict[int, float | None]  # power-polled GPUs: when the integral's last sample was read


def _span(first: float | None, last: float | None) -> float | None:
    return None if first is None or last is None else last - first


class NvmlMeter(Meter):
    """Energy (J) of NVIDIA GPUs: the hardware energy counter, or integrated power samples."""

    name = "nvml"
    method = "measured"

    def __init__(
        self,
        gpus: list[int] | None = None,
        poll_hz: float = 20.0,
        sync: Callable[[], None] | None = None,
    ) -> None:
        """gpus: NVML indices (default: all). poll_hz: power samples per second for GPUs
        without an energy counter (≥ 10). sync: called before every edge read (default:
        ``torch_cuda_sync``); ``sync()`` calls it."""
        if poll_hz < MIN_POLL_HZ:
            raise ValueError(f"poll_hz must be ≥ {MIN_POLL_HZ:g}, got {poll_hz}")
        self.gpus = list(gpus) if gpus is not None else None
        self.poll_hz = poll_hz
        self._sync_fn = sync if sync is not None else torch_cuda_sync
        self._synced = False  # sync() ran since the last edge read
        self._nv: Any = None
        self._devices: list[_Gpu] = []
        self._lock = threading.Lock()
        self._thread: PollerThread | None = None
        self._invalid = 0

    @property
    def known_domains(self) -> tuple[str, ...] | None:
        """``gpu:N`` per selected GPU, once chosen (by the constructor or by ``open``)."""
        if self._devices:
            return tuple(g.domain for g in self._devices)
        return tuple(f"gpu:{i}" for i in self.gpus) if self.gpus is not None else None

    @property
    def polling_source(self) -> str:
        """The ``source`` of a power-polled GPU, e.g. ``nvml:power_polling@20Hz``."""
        return f"nvml:power_polling@{self.poll_hz:g}Hz"

    # -- library and devices -----------------------------------------------------------

    def _init(self) -> Any:
        try:
            nv = load_pynvml()
        except ImportError as err:
            raise MeterUnavailable(
                f"{LIBRARY_NOT_FOUND}; the Python bindings are missing too: `pip install nvidia-ml-py`"
            ) from err
        try:
            nv.nvmlInit()
        except nv.NVMLError_LibraryNotFound as err:
            raise MeterUnavailable(LIBRARY_NOT_FOUND) from err
        except nv.NVMLError as err:
            raise MeterUnavailable(
                f"NVML failed to start ({err}); check the driver with `nvidia-smi`"
            ) from err
        return nv

    def _select(self, nv: Any) -> list[_Gpu]:
        try:
            return self._select_gpus(nv)
        except nv.NVMLError as err:
            raise MeterUnavailable(
                f"NVML could not list or open the GPUs ({err}); check them with `nvidia-smi`"
            ) from err

    def _select_gpus(self, nv: Any) -> list[_Gpu]:
        count = nv.nvmlDeviceGetCount()
        if count == 0:
            raise MeterUnavailable(NO_GPU)
        indices = self.gpus if self.gpus is not None else list(range(count))
        if bad := [i for i in indices if not 0 <= i < count]:
            raise MeterUnavailable(
                f"GPU index {', '.join(map(str, bad))} requested but NVML sees {count} GPU(s), "
                f"indices 0–{count - 1} (NVML numbers GPUs in PCI bus order and ignores "
                f"CUDA_VISIBLE_DEVICES; `nvidia-smi -L` lists them)"
            )
        devices = []
        for index in indices:
            handle = nv.nvmlDeviceGetHandleByIndex(index)
            name = nv.nvmlDeviceGetName(handle)
            name = name.decode() if isinstance(name, bytes) else str(name)
            try:
                nv.nvmlDeviceGetTotalEnergyConsumption(handle)
                devices.append(_Gpu(index, handle, name, counter=True))
            except nv.NVMLError as err:  # NotSupported before Volta
                devices.append(_Gpu(index, handle, name, counter=False, counter_error=str(err)))
                try:
                    nv.nvmlDeviceGetPowerUsage(handle)
                except nv.NVMLError as power_err:
                    raise MeterUnavailable(
                        f"GPU {index} ({name}) reports neither energy ({err}) nor power "
                        f"({power_err}) through NVML; leave it out with the gpus option"
                    ) from power_err
        return devices

    def _source(self, gpu: _Gpu) -> str:
        return "nvml:total_energy" if gpu.counter else self.polling_source

    def probe(self) -> Availability:
        try:
            nv = self._init()
        except MeterUnavailable as err:
            return Availability(False, str(err))
        try:
            devices = self._select(nv)
        except MeterUnavailable as err:
            return Availability(False, str(err))
        finally:
            nv.nvmlShutdown()
        gpus = [
            {"index": g.index, "name": g.name, "source": self._source(g)}
            | ({"energy_counter_error": g.counter_error} if g.counter_error else {})
            for g in devices
        ]
        return Availability(True, detail={"gpus": gpus})

    # -- lifecycle -----------------------------------------------------------------------

    def open(self) -> None:
        """Start NVML, pick the GPUs and start the power poller if one has no energy counter."""
        if self._nv is not None:
            return
        nv = self._init()
        try:
            self._devices = self._select(nv)
        except BaseException:
            nv.nvmlShutdown()
            raise
        self._nv = nv
        if any(not g.counter for g in self._devices):
            self._thread = PollerThread(self._run, "greenbench-nvml-poller")

    def close(self) -> None:
        """Stop the poller and shut NVML down. Safe to call twice."""
        if self._thread is not None:
            self._thread.stop()
            self._thread = None
        if self._nv is not None:
            nv, self._nv = self._nv, None
            nv.nvmlShutdown()

    def _run(self, stop: threading.Event) -> None:
        period_s = 1.0 / self.poll_hz
        next_s = time.monotonic()
        while True:
            next_s = max(next_s + period_s, time.monotonic())  # never burst to catch up
            if stop.wait(next_s - time.monotonic()):
                return
            with self._lock:
                for gpu in self._devices:
                    if not gpu.counter:
                        self._sample(gpu)

    def _sample(self, gpu: _Gpu) -> None:
        """Add one power sample to ``gpu``'s running integral (caller holds the lock)."""
        now_s = time.monotonic()
        try:
            power_w = self._nv.nvmlDeviceGetPowerUsage(gpu.handle) / 1000.0
        except self._nv.NVMLError:
            self._invalid += 1  # the trapezoid bridges the gap to the next good sample
            return
        if gpu.last_t is not None:
            gpu.energy_j += 0.5 * (power_w + gpu.last_w) * (now_s - gpu.last_t)
        gpu.last_t, gpu.last_w = now_s, power_w
        gpu.samples += 1

    # -- windows ---------------------------------------------------------------------------

    def sync(self) -> None:
        """Wait for queued GPU work with the ``sync`` callable given to the constructor."""
        self._sync_fn()
        self._synced = True

    def begin(self) -> Window:
        """Open NVML if needed (neither window time nor between sync and read), then the window."""
        self.open()
        return super().begin()

    def _edge(self) -> _Token:
        if self._nv is None:
            raise MeterUnavailable("the nvml meter was closed during the window; close it after end()")
        if not self._synced:  # read by a caller that did not call sync() first
            self.sync()
        self._synced = False
        counter_mj: dict[int, int] = {}
        polled_j: dict[int, float] = {}
        with self._lock:
            for gpu in self._devices:
                if gpu.counter:
                    try:
                        counter_mj[gpu.index] = self._nv.nvmlDeviceGetTotalEnergyConsumption(gpu.handle)
                    except self._nv.NVMLError as err:
                        raise MeterUnavailable(
                            f"NVML stopped reporting the energy of GPU {gpu.index} "
                            f"({gpu.name}): {err}; check it with `nvidia-smi -i {gpu.index}`"
                        ) from err
                else:
                    self._sample(gpu)
                    polled_j[gpu.index] = gpu.energy_j
            samples = {g.index: g.samples for g in self._devices}
            polled_t = {g.index: g.last_t for g in self._devices if not g.counter}
            return _Token(counter_mj, polled_j, samples, self._invalid, polled_t)

    def _begin(self) -> _Token:
        self.open()  # no-op when open; otherwise the meter stays open until close()
        return self._edge()

    def _end(self, token: _Token, duration_s: float) -> EnergyReading:
        end = self._edge()
        invalid = end.invalid - token.invalid
        domains = []
        for gpu in self._devices:
            if gpu.counter:
                delta_mj = end.counter_mj[gpu.index] - token.counter_mj[gpu.index]
                if delta_mj < 0:  # the counter restarted (driver reload): no valid figure
                    invalid, delta_mj = invalid + 1, 0
                energy_j = delta_mj / 1000.0
            else:
                energy_j = end.polled_j[gpu.index] - token.polled_j[gpu.index]
            domains.append(DomainEnergy(gpu.domain, energy_j, "measured", self._source(gpu)))
        notes: dict[str, Any] = {"gpu_names": {g.domain: g.name for g in self._devices}}
        if polled := [g for g in self._devices if not g.counter]:
            # samples the window's integral used, both edge samples included
            notes["power_samples"] = {
                g.domain: end.samples[g.index] - token.samples[g.index] + 1 for g in polled
            }
            # the time the integral covers, first to last sample (the window's edges are
            # sampled, so it matches duration_s up to the reads' own latency)
            notes["power_span_s"] = {
                g.domain: _span(token.polled_t.get(g.index), end.polled_t.get(g.index)) for g in polled
            }
        if duration_s < SHORT_WINDOW_S:
            notes["warning"] = (
                f"{duration_s * 1000:.3g} ms window is shorter than NVML's update period "
                f"(≈ 10–100 ms): repeat the work inside one window"
            )
        return EnergyReading(duration_s, tuple(domains), invalid, notes)
