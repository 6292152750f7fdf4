"""Fakes at the hardware boundary: a powercap sysfs tree on disk and an autospec'd ``pynvml``.

``FakePowercap`` writes the kernel's layout and file names; its counters wrap exactly like
the meter assumes (``energy_uj`` counts to ``max_energy_range_uj`` and restarts from 0), and it
keeps the exact µJ it advanced so tests can compare to the µJ. ``FakeNvml`` builds a stand-in
``pynvml`` module whose functions are ``create_autospec`` of the real ones.
"""

from __future__ import annotations

import ctypes
import importlib
import os
import pickle
import threading
import time
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from unittest import mock

XEON_MAX_RANGE_UJ = 262_143_328_850  # max_energy_range_uj of a real Xeon package zone
Layout = Literal["sysfs", "nested", "flat"]


@dataclass
class _FakeZone:
    zone_id: str
    folder: Path
    max_range_uj: int
    energy_uj: int
    mirrors: list[Path] = field(default_factory=list)
    children: int = 0


class FakePowercap:
    """A powercap tree under ``base``; ``root`` is what the meter is pointed at.

    layout ``sysfs``: zone folders nested under ``devices/virtual/powercap/intel-rapl`` and
    ``class/powercap`` holding one symlink per zone (sub-zones too), as on a real machine.
    ``nested``: root is the devices folder itself (sub-zones only nested). ``flat``: plain
    folders, no nesting, no symlinks (a copied tree).
    """

    def __init__(self, base: Path, layout: Layout = "sysfs", prefix: str = "intel-rapl") -> None:
        self.layout, self.prefix = layout, prefix
        self.devices = base / "devices" / "virtual" / "powercap" / prefix
        self.root = self.devices if layout == "nested" else base / "class" / "powercap"
        self.root.mkdir(parents=True, exist_ok=True)
        self.devices.mkdir(parents=True, exist_ok=True)
        (self.devices / "enabled").write_text("1\n")
        if layout == "sysfs":
            (self.root / prefix).symlink_to(os.path.relpath(self.devices, self.root))
        self.zones: dict[str, _FakeZone] = {}
        self.advanced_uj: dict[str, int] = {}
        self._tops = 0
        self._lock = threading.Lock()

    # -- building ------------------------------------------------------------------------

    def add_zone(
        self,
        name: str,
        parent: str | None = None,
        max_range_uj: int = XEON_MAX_RANGE_UJ,
        energy_uj: int = 0,
        mirror_of: str | None = None,
    ) -> str:
        """Create a zone (sub-zone of ``parent`` if given) and return its id.

        mirror_of: the zone's folder shows that zone's counter (multi-die AMD); it advances
        with it, has its name and range, and ``advance`` on it is not allowed.
        """
        if parent is None:
            zone_id = f"{self.prefix}:{self._tops}"
            self._tops += 1
        else:
            zone_id = f"{parent}:{self.zones[parent].children}"
            self.zones[parent].children += 1
        if self.layout == "flat" or parent is None:
            folder = (self.root if self.layout == "flat" else self.devices) / zone_id
        else:
            folder = self.zones[parent].folder / zone_id
        folder.mkdir()
        if self.layout == "sysfs":
            (self.root / zone_id).symlink_to(os.path.relpath(folder, self.root))
        if mirror_of is not None:
            source = self.zones[mirror_of]
            name, max_range_uj = (source.folder / "name").read_text().strip(), source.max_range_uj
            source.mirrors.append(folder)
            energy_uj = source.energy_uj
        else:
            self.zones[zone_id] = _FakeZone(zone_id, folder, max_range_uj, energy_uj)
            self.advanced_uj[zone_id] = 0
        files = {
            "name": name,
            "max_energy_range_uj": str(max_range_uj),
            "energy_uj": str(energy_uj),
            "enabled": "1",
            "constraint_0_name": "long_term",
            "constraint_0_power_limit_uw": "150000000",
            "constraint_0_time_window_us": "999424",
            "uevent": "",
        }
        for file, text in files.items():
            (folder / file).write_text(text + "\n")
        return zone_id

    def add_package(
        self,
        index: int,
        max_range_uj: int = XEON_MAX_RANGE_UJ,
        energy_uj: int = 0,
        subzones: tuple[str, ...] = (),
    ) -> str:
        """A ``package-N`` zone with sub-zones (``core``, ``uncore``, ``dram``) of the same range."""
        zone_id = self.add_zone(f"package-{index}", max_range_uj=max_range_uj, energy_uj=energy_uj)
        for name in subzones:
            self.add_zone(name, parent=zone_id, max_range_uj=max_range_uj)
        return zone_id

    def sub(self, package: str, name: str) -> str:
        """The id of ``package``'s sub-zone called ``name``."""
        for zone_id, zone in self.zones.items():
            if zone_id.startswith(package + ":") and (zone.folder / "name").read_text() == name + "\n":
                return zone_id
        raise KeyError(f"{package} has no sub-zone {name}")

    def path(self, zone_id: str) -> Path:
        """Where the meter is expected to report the zone: its entry in root when it has one."""
        flat = self.root / zone_id
        return flat if flat.exists() else self.zones[zone_id].folder

    # -- driving -------------------------------------------------------------------------

    def energy(self, zone_id: str) -> int:
        """The counter's current raw value (µJ)."""
        return self.zones[zone_id].energy_uj

    def advance(self, zone_id: str, uj: int) -> None:
        """Consume ``uj`` µJ in the zone: the counter moves on and wraps at its range."""
        if uj < 0:
            raise ValueError("energy only grows; use set_energy to move a counter back")
        with self._lock:
            zone = self.zones[zone_id]
            self._write(zone, (zone.energy_uj + uj) % zone.max_range_uj)
            self.advanced_uj[zone_id] += uj

    def set_energy(self, zone_id: str, raw_uj: int) -> None:
        """Write a raw counter value (a glitch: nothing is added to ``advanced_uj``)."""
        with self._lock:
            self._write(self.zones[zone_id], raw_uj)

    def _write(self, zone: _FakeZone, raw_uj: int) -> None:
        zone.energy_uj = raw_uj
        for folder in (zone.folder, *zone.mirrors):
            tmp = folder / ".energy_uj.new"
            tmp.write_text(f"{raw_uj}\n")
            os.replace(tmp, folder / "energy_uj")  # readers see the old or the new value whole

    def deny_read(self, zone_id: str) -> Path:
        """Make ``energy_uj`` mode 000 (root-only since Linux 5.10 is 0400 root; 000 also stops a
        root without CAP_DAC_OVERRIDE, see ``call_without_dac_override``)."""
        path = self.zones[zone_id].folder / "energy_uj"
        path.chmod(0)
        return path

    def run_at(self, power_w: dict[str, float], tick_s: float = 0.002) -> Runner:
        """Start a thread that advances each zone at ``power_w`` watts until ``stop()``."""
        return Runner(self, power_w, tick_s)


class Runner:
    """A background thread advancing counters in real time; ``advanced_uj`` stays exact."""

    def __init__(self, fake: FakePowercap, power_w: dict[str, float], tick_s: float) -> None:
        self._fake, self._power_w, self._tick_s = fake, power_w, tick_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        start = last = time.monotonic()
        done = dict.fromkeys(self._power_w, 0)
        while not self._stop.wait(self._tick_s):
            last = time.monotonic()
            for zone_id, watts in self._power_w.items():
                due = round(watts * (last - start) * 1e6)
                self._fake.advance(zone_id, due - done[zone_id])
                done[zone_id] = due

    def stop(self) -> None:
        """Stop advancing; returns when the thread has written its last value."""
        self._stop.set()
        self._thread.join()

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH = 1, 2


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [(n, ctypes.c_uint32) for n in ("effective", "permitted", "inheritable")]


def _drop_dac_override() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    header, data = _CapHeader(0x20080522, 0), (_CapData * 2)()  # _LINUX_CAPABILITY_VERSION_3
    if libc.capget(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capget failed")
    data[0].effective &= ~((1 << _CAP_DAC_OVERRIDE) | (1 << _CAP_DAC_READ_SEARCH))
    if libc.capset(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capset failed")


class CannotDropPrivileges(RuntimeError):
    """This kernel or sandbox refused ``capset``: the test cannot make a file unreadable."""


def call_without_dac_override(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` where file modes apply, and return its (picklable) result.

    A normal user runs it in-process. Root bypasses modes (CAP_DAC_OVERRIDE), so ``fn`` runs
    in a forked child that first drops that capability: the kernel then refuses a mode-000
    file with a real EACCES, which is what a non-root user gets from ``energy_uj``.
    """
    if os.geteuid() != 0:
        return fn()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        try:
            os.close(read_end)
            try:
                _drop_dac_override()
            except OSError as err:
                result: tuple[str, Any] = ("nocap", str(err))
            else:
                result = ("ok", fn())
        except BaseException as err:  # the parent re-raises it
            result = ("error", f"{type(err).__name__}: {err}")
        with os.fdopen(write_end, "wb") as out:
            out.write(pickle.dumps(result))
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as inp:
        kind, value = pickle.loads(inp.read())
    os.waitpid(pid, 0)
    if kind == "nocap":
        raise CannotDropPrivileges(value)
    if kind == "error":
        raise RuntimeError(f"child failed: {value}")
    return value


# -- NVML ----------------------------------------------------------------------------------


@dataclass
class FakeGpu:
    """One GPU as NVML reports it.

    energy_mj: ``nvmlDeviceGetTotalEnergyConsumption`` (mJ); None → NVMLError_NotSupported
    (pre-Volta). power_w: ``nvmlDeviceGetPowerUsage`` in W, constant or a function of
    ``time.monotonic()``.
    """

    name: str = "NVIDIA A100-SXM4-40GB"
    energy_mj: int | None = 0
    power_w: float | Callable[[float], float] = 100.0


@dataclass(frozen=True)
class _Handle:
    index: int


class FakeNvml:
    """A ``pynvml`` stand-in: the real module's constants and error classes, and autospec'd
    functions backed by ``gpus``. ``events`` logs (kind, monotonic s, value) of reads, for
    ordering and timing assertions; ``init_error`` makes ``nvmlInit`` raise it."""

    FUNCTIONS = (
        "nvmlInit",
        "nvmlShutdown",
        "nvmlDeviceGetCount",
        "nvmlDeviceGetHandleByIndex",
        "nvmlDeviceGetName",
        "nvmlDeviceGetTotalEnergyConsumption",
        "nvmlDeviceGetPowerUsage",
    )

    def __init__(self, gpus: list[FakeGpu], init_error: type[Exception] | None = None) -> None:
        real = importlib.import_module("pynvml")
        self.real, self.gpus, self.init_error = real, gpus, init_error
        self.events: list[tuple[str, float, Any]] = []
        self.module = types.ModuleType("pynvml")
        for name in dir(real):
            if name.startswith(("NVML_", "NVMLError")):
                setattr(self.module, name, getattr(real, name))
        for name in self.FUNCTIONS:
            impl = getattr(self, "_" + name)
            setattr(self.module, name, mock.create_autospec(getattr(real, name), side_effect=impl))
        self.initialised = 0

    def log(self, kind: str, value: Any = None) -> None:
        """Append an event (also used by tests for their own ``sync``)."""
        self.events.append((kind, time.monotonic(), value))

    def _nvmlInit(self) -> None:
        if self.init_error is not None:
            raise self.init_error()
        self.initialised += 1

    def _nvmlShutdown(self) -> None:
        if self.initialised == 0:
            raise self.real.NVMLError_Uninitialized()
        self.initialised -= 1

    def _gpu(self, handle: _Handle) -> FakeGpu:
        if self.initialised == 0:
            raise self.real.NVMLError_Uninitialized()
        return self.gpus[handle.index]

    def _nvmlDeviceGetCount(self) -> int:
        if self.initialised == 0:
            raise self.real.NVMLError_Uninitialized()
        return len(self.gpus)

    def _nvmlDeviceGetHandleByIndex(self, index: int) -> _Handle:
        if not 0 <= index < self._nvmlDeviceGetCount():
            raise self.real.NVMLError_InvalidArgument()
        return _Handle(index)

    def _nvmlDeviceGetName(self, handle: _Handle) -> str:
        return self._gpu(handle).name

    def _nvmlDeviceGetTotalEnergyConsumption(self, handle: _Handle) -> int:
        gpu = self._gpu(handle)
        if gpu.energy_mj is None:
            raise self.real.NVMLError_NotSupported()
        self.log("energy", gpu.energy_mj)
        return gpu.energy_mj

    def _nvmlDeviceGetPowerUsage(self, handle: _Handle) -> int:
        gpu, now = self._gpu(handle), time.monotonic()
        watts = gpu.power_w(now) if callable(gpu.power_w) else gpu.power_w
        self.events.append(("power", now, watts))
        return round(watts * 1000)  # NVML reports mW
