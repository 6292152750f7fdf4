"""The ``rapl`` meter: CPU package and DRAM energy from Linux powercap (Intel RAPL, AMD RAPL).

Layout read (``/sys/class/powercap`` holds symlinks into ``/sys/devices/virtual/powercap``)::

    intel-rapl:0/{name,energy_uj,max_energy_range_uj}    name "package-0"
    intel-rapl:0:0/…  (also nested as intel-rapl:0/intel-rapl:0:0)  "core", "uncore" or "dram"
    intel-rapl:1/…                                        "psys" on some machines

What is summed: every ``package-N`` and every ``dram`` sub-zone (reported as ``dram-N``; on
Intel servers DRAM is outside the package counter). ``core``/``uncore`` are inside their
package: they are read into ``notes`` only. ``psys`` contains the packages and is reported
alone only when there is no package zone. Zones with the same name and range whose values
are equal in at least 2 of 3 reads 2 ms apart (multi-die AMD can show one counter several
times) are counted once. ``intel-rapl-mmio:N`` (the package counter again, through MMIO) is
not read.

Wraparound: ``energy_uj`` counts up to ``max_energy_range_uj`` and restarts from 0, so a
reading lower than the previous one means one wrap and the delta is
``now - prev + max_energy_range_uj`` (the hardware's true modulus is one energy unit larger,
≈ 15–61 µJ; that error per wrap is ignored). A window can hold many wraps (a 32-bit µJ counter
at 100 W wraps in ≈ 43 s), so ``open()`` starts a poller that reads every counter often enough
that none can wrap twice between two reads (see ``RaplMeter.poll_interval_s``) and adds the
deltas to unwrapped µJ totals. A counter lower than before by less than a plausible wrap (the
wrap would mean more than ``max_power_w``) is an invalid sample: that interval adds nothing.
"""

from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from greenbench.errors import MeterUnavailable
from greenbench.measure.energy.meter import Availability, DomainEnergy, EnergyReading, Meter, PollerThread

POWERCAP_ROOT = Path("/sys/class/powercap")
ROOT_ENV = "GREENBENCH_POWERCAP_ROOT"
DEFAULT_MAX_POWER_W = 500.0
MAX_POLL_INTERVAL_S = 1.0
_MIRROR_ROUNDS = 3
_ZONE_RE = re.compile(r"^(?P<prefix>intel-rapl|amd-rapl):(?P<index>\d+(?::\d+)*)$")
_PACKAGE_RE = re.compile(r"^package-(?P<suffix>\d+(?:-die-\d+)?)$")


def read_text(path: Path) -> str:
    """Read one sysfs attribute: the only place this module opens a powercap file."""
    with open(path) as f:
        return f.read()


def _read_int(path: Path) -> int:
    return int(read_text(path).strip())


def wrap_delta_uj(prev_uj: int, now_uj: int, max_range_uj: int) -> int:
    """µJ consumed between two reads, assuming at most one wrap at ``max_range_uj``."""
    return now_uj - prev_uj if now_uj >= prev_uj else now_uj - prev_uj + max_range_uj


def permission_reason(path: Path, root: Path, prefix: str = "intel-rapl") -> str:
    """The message for an ``energy_uj`` this user may not read, with the ways to allow it."""
    return (
        f"cannot read {path}: permission denied. Since Linux 5.10 (the fix for the PLATYPUS "
        f"power side channel) energy_uj is readable by root only. Grant read access until the "
        f"next reboot with `sudo chmod a+r {root}/{prefix}:*/energy_uj "
        f"{root}/{prefix}:*:*/energy_uj`, make it permanent with a systemd-tmpfiles line "
        f"`z {root}/{prefix}:*/energy_uj 0444 - - -` (one more for `{prefix}:*:*`), or run "
        f"greenbench as root; on a shared machine this re-opens the side channel to local users."
    )


@dataclass(frozen=True)
class Zone:
    """One powercap zone as found on disk.

    zone_id: ``intel-rapl:0:1``. path: where it was found (the root's own entry when it has one).
    name: its ``name`` file. domain: greenbench's name (``package-0``, ``dram-0``, ``core-0``,
    ``psys``). max_range_uj: ``max_energy_range_uj``, where ``energy_uj`` wraps (µJ).
    counted: added to a reading's total. detail: read into ``notes`` without being counted.
    status: ``counted`` or why not (``psys: contains packages``, ``mirror of intel-rapl:0``).
    read_error: why ``energy_uj`` (or ``name``) could not be read; empty when it could.
    """

    zone_id: str
    path: Path
    name: str
    domain: str
    max_range_uj: int
    counted: bool
    detail: bool
    status: str
    read_error: str = ""

    @property
    def energy_path(self) -> Path:
        """The zone's ``energy_uj`` file."""
        return self.path / "energy_uj"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict for ``probe().detail``."""
        out: dict[str, Any] = {"zone": self.zone_id, "path": str(self.path), "name": self.name}
        out |= {"domain": self.domain, "counted": self.counted, "status": self.status}
        return out | ({"error": self.read_error} if self.read_error else {})


@dataclass
class _Found:
    """A zone folder with its files read, before it is classified."""

    zone_id: str
    path: Path
    name: str = ""
    max_range_uj: int = 0
    energy_uj: int | None = None
    error: str = ""
    domain: str = ""
    kind: str = ""  # package | psys | dram | detail | unknown
    status: str = ""
    parts: tuple[int, ...] = field(default_factory=tuple)


def _zone_order(zone_id: str) -> tuple[str, tuple[int, ...]]:
    m = _ZONE_RE.match(zone_id)
    assert m is not None
    return m["prefix"], tuple(int(p) for p in m["index"].split(":"))


def _zone_dirs(root: Path) -> list[tuple[str, Path]]:
    """Zone folders under ``root``, flat entries first, each zone once (by id and real path)."""

    def children(folder: Path) -> list[Path]:
        found = [p for p in folder.iterdir() if _ZONE_RE.match(p.name) and p.is_dir()]
        return sorted(found, key=lambda p: _zone_order(p.name))

    queue, out = children(root), []
    seen_ids: set[str] = set()
    seen_paths: set[Path] = set()
    while queue:
        folder = queue.pop(0)
        real = folder.resolve()
        if folder.name in seen_ids or real in seen_paths:
            continue
        seen_ids.add(folder.name)
        seen_paths.add(real)
        out.append((folder.name, folder))
        queue.extend(children(folder))
    return out


def _read_zone(zone_id: str, path: Path, root: Path) -> _Found:
    zone = _Found(zone_id, path, parts=_zone_order(zone_id)[1])
    try:
        zone.name = read_text(path / "name").strip()
        zone.max_range_uj = _read_int(path / "max_energy_range_uj")
        zone.energy_uj = _read_int(path / "energy_uj")
        if zone.max_range_uj <= 0:
            zone.error = f"{path}/max_energy_range_uj is {zone.max_range_uj}: wraps cannot be undone"
    except PermissionError as err:
        zone.error = permission_reason(Path(err.filename or path), root, _zone_order(zone_id)[0])
    except (OSError, ValueError) as err:
        zone.error = f"cannot read {path}: {err}"
    return zone


def _classify(zones: list[_Found]) -> None:
    by_id = {z.zone_id: z for z in zones}
    for z in zones:
        parent = by_id.get(z.zone_id.rsplit(":", 1)[0]) if len(z.parts) > 1 else None
        package = _PACKAGE_RE.match(parent.name) if parent else None
        suffix = package["suffix"] if package else str(z.parts[-1] if parent else z.parts[0])
        if _PACKAGE_RE.match(z.name):
            z.kind, z.domain = "package", z.name
        elif z.name == "psys":
            z.kind, z.domain = "psys", "psys"
        elif z.name in ("dram", "core", "uncore"):
            z.kind = "dram" if z.name == "dram" else "detail"
            z.domain = f"{z.name}-{suffix}"
        else:
            z.kind, z.domain, z.status = "unknown", z.name, f"unknown zone name {z.name!r}"
    has_package = any(z.kind == "package" for z in zones)
    for z in zones:
        if z.kind == "psys" and has_package:
            z.status = "psys: contains packages"
        elif z.kind in ("dram", "detail") and not has_package and any(o.kind == "psys" for o in zones):
            z.status = f"{z.name}: contained in psys"
        elif z.kind == "detail":
            z.status = f"{z.name}: inside the package counter (notes only)"
        elif z.kind != "unknown":
            z.status = "counted"


def _mark_mirrors(zones: list[_Found]) -> None:
    """Zones of one domain whose counters stay equal over reads are one counter seen twice."""
    groups: dict[tuple[str, int], list[_Found]] = {}
    for z in zones:
        if z.status.startswith("counted") or z.kind == "detail":
            if z.energy_uj is not None:
                groups.setdefault((z.domain, z.max_range_uj), []).append(z)
    for members in (g for g in groups.values() if len(g) > 1):
        equal = [0] * len(members)
        values = [z.energy_uj for z in members]
        for round_ in range(_MIRROR_ROUNDS):
            if round_:
                time.sleep(0.002)  # hardware counters update every ≈ 1 ms
                try:
                    values = [_read_int(z.path / "energy_uj") for z in members]
                except (OSError, ValueError):
                    break
            for i, v in enumerate(values):
                equal[i] += v == values[0]
        first = members[0]
        for z, n in zip(members[1:], equal[1:], strict=True):
            if 2 * n > _MIRROR_ROUNDS:
                z.status = f"mirror of {first.zone_id}"
            else:  # same name, different counter: keep both, with distinct names
                z.domain = f"{z.domain}@{z.zone_id}"


def discover(root: Path) -> list[Zone]:
    """Every RAPL zone under ``root`` (flat, nested or both), classified; [] if there is none."""
    if not root.is_dir():
        return []
    found = [_read_zone(zid, path, root) for zid, path in _zone_dirs(root)]
    _classify(found)
    _mark_mirrors(found)
    zones = []
    for z in found:
        counted = z.status.startswith("counted")
        detail = z.kind == "detail" and "notes only" in z.status
        fields = (z.domain, z.max_range_uj, counted, detail, z.status, z.error)
        zones.append(Zone(z.zone_id, z.path, z.name, *fields))
    return zones


def assess(root: Path, zones: list[Zone]) -> str:
    """Why a meter on these zones cannot read, or '' when it can."""
    if not root.is_dir():
        return (
            f"no powercap folder at {root} (this machine exposes no RAPL counters; "
            f"set {ROOT_ENV} to a mounted copy)"
        )
    if not zones:
        return (
            f"no RAPL zones (intel-rapl:N or amd-rapl:N folders) in {root}: load the driver with "
            f"`sudo modprobe intel_rapl_msr`; virtual machines and containers usually expose none"
        )
    counted = [z for z in zones if z.counted]
    if not counted:
        names = ", ".join(f"{z.zone_id} ({z.name or '?'})" for z in zones)
        return f"no package, dram or psys zone in {root}; found {names}"
    unreadable = [z for z in counted if z.read_error]
    return unreadable[0].read_error if unreadable else ""


@dataclass(frozen=True)
class _Snapshot:
    totals_uj: dict[str, int]
    invalid: int
    polls: int


class RaplMeter(Meter):
    """Package + DRAM energy (J) from powercap counters, exact to the µJ across wraps."""

    name = "rapl"
    method = "measured"

    def __init__(
        self,
        root: Path | None = None,
        poll_interval_s: float | None = None,
        max_power_w: float = DEFAULT_MAX_POWER_W,
    ) -> None:
        """root: powercap folder (default ``$GREENBENCH_POWERCAP_ROOT`` or /sys/class/powercap).

        poll_interval_s: seconds between poller reads (default: derived, see
        ``poll_interval_s``). max_power_w: the most one zone can draw (W); it sets the poll
        interval and decides whether a counter that went backwards wrapped or glitched.
        """
        if max_power_w <= 0:
            raise ValueError(f"max_power_w must be > 0, got {max_power_w}")
        if poll_interval_s is not None and poll_interval_s <= 0:
            raise ValueError(f"poll_interval_s must be > 0, got {poll_interval_s}")
        self.root = root if root is not None else Path(os.environ.get(ROOT_ENV) or POWERCAP_ROOT)
        self.max_power_w = max_power_w
        self._poll_interval_s = poll_interval_s
        self._zones: list[Zone] | None = None
        self._lock = threading.Lock()
        self._raw_uj: dict[str, int] = {}
        self._totals_uj: dict[str, int] = {}
        self._last_poll_s: float | None = None
        self._invalid = 0
        self._polls = 0
        self._thread: PollerThread | None = None
        self._poller_error = ""
        self._poller_cpu_s = 0.0

    # -- discovery -------------------------------------------------------------------------

    def probe(self) -> Availability:
        zones = discover(self.root)
        reason = assess(self.root, zones)
        detail: dict[str, Any] = {"root": str(self.root), "zones": [z.to_dict() for z in zones]}
        if not reason:
            detail["poll_interval_s"] = self._interval_for(zones)
        return Availability(not reason, reason, detail)

    def _ready_zones(self) -> list[Zone]:
        if self._zones is None:
            zones = discover(self.root)
            if reason := assess(self.root, zones):
                raise MeterUnavailable(reason)
            self._zones = zones
        return self._zones

    def _read_zones(self) -> list[Zone]:
        return [z for z in self._ready_zones() if z.counted or (z.detail and not z.read_error)]

    def _interval_for(self, zones: list[Zone]) -> float:
        if self._poll_interval_s is not None:
            return self._poll_interval_s
        ranges = [z.max_range_uj for z in zones if z.counted or z.detail]
        # At max_power_w a counter then moves at most half its range between two reads.
        return min(MAX_POLL_INTERVAL_S, 0.5 * min(ranges) / (self.max_power_w * 1e6))

    @property
    def poll_interval_s(self) -> float:
        """Seconds between poller reads: ``min(1, 0.5 × max_range_uj / (max_power_w × 1e6))``.

        Half the time the fastest-wrapping counter needs to wrap at ``max_power_w``, capped at
        1 s, unless set in the constructor. Discovers the zones (raises ``MeterUnavailable``).
        """
        return self._interval_for(self._ready_zones())

    # -- polling ---------------------------------------------------------------------------

    def poll(self) -> None:
        """Read every counter now and add its delta to the unwrapped totals (thread-safe)."""
        self._poll()

    def _poll(self) -> _Snapshot:
        zones, interval = self._read_zones(), self.poll_interval_s
        with self._lock:
            now_s = time.monotonic()
            elapsed_s = now_s - self._last_poll_s if self._last_poll_s is not None else 0.0
            # Counters move in steps (≈ 1 ms) and two reads can straddle one, so the elapsed
            # time is floored at the poll interval: a true wrap then implies ≤ half a range,
            # a counter that stepped back a little implies almost a whole range.
            limit_uj = self.max_power_w * 1e6 * max(elapsed_s, interval)
            for z in zones:
                now_uj = _read_int(z.energy_path)
                prev_uj = self._raw_uj.get(z.zone_id)
                self._raw_uj[z.zone_id] = now_uj
                if prev_uj is None:
                    self._totals_uj[z.zone_id] = 0
                    continue
                delta = wrap_delta_uj(prev_uj, now_uj, z.max_range_uj)
                if now_uj < prev_uj and delta > limit_uj:
                    self._invalid += 1  # not a wrap: drop this interval, re-base on now_uj
                    continue
                self._totals_uj[z.zone_id] += delta
            self._last_poll_s = now_s
            self._polls += 1
            return _Snapshot(dict(self._totals_uj), self._invalid, self._polls)

    def _snapshot(self) -> _Snapshot:
        try:
            return self._poll()
        except PermissionError as err:
            prefix = _zone_order(self._read_zones()[0].zone_id)[0]
            path = Path(err.filename or self.root)
            raise MeterUnavailable(permission_reason(path, self.root, prefix)) from err
        except (OSError, ValueError) as err:
            raise MeterUnavailable(
                f"cannot read a RAPL counter under {self.root}: {err}. Check that the powercap "
                f"zones still exist (`ls {self.root}`) and that the intel_rapl driver is loaded."
            ) from err

    @property
    def poll_count(self) -> int:
        """How many times the counters were read (poller and window edges)."""
        return self._polls

    @property
    def poller_cpu_s(self) -> float:
        """CPU seconds the current (or last) poller thread has used."""
        return self._poller_cpu_s

    def open(self) -> None:
        """Discover the zones, read a baseline and start the poller (raises MeterUnavailable)."""
        if self._thread is not None:
            return
        self._snapshot()
        self._poller_error = ""
        interval_s = self.poll_interval_s
        self._thread = PollerThread(lambda stop: self._run(stop, interval_s), "greenbench-rapl-poller")

    def close(self) -> None:
        """Stop the poller. Safe to call twice."""
        if self._thread is not None:
            self._thread.stop()
            self._thread = None

    def _run(self, stop: threading.Event, interval_s: float) -> None:
        while not stop.wait(interval_s):
            try:
                self._poll()
            except (OSError, ValueError) as err:
                self._poller_error = f"{type(err).__name__}: {err}"
                return
            finally:
                self._poller_cpu_s = time.thread_time()

    # -- windows ---------------------------------------------------------------------------

    def _begin(self) -> _Snapshot:
        return self._snapshot()

    def _end(self, token: _Snapshot, duration_s: float) -> EnergyReading:
        if self._poller_error:
            raise MeterUnavailable(
                f"the RAPL poller stopped reading {self.root} during the window "
                f"({self._poller_error}); counter wraps may have been missed, so the window "
                f"has no valid reading. Check the powercap files and measure again."
            )
        snap = self._snapshot()
        zones = self._read_zones()
        used = {z.zone_id: snap.totals_uj[z.zone_id] - token.totals_uj.get(z.zone_id, 0) for z in zones}
        domains = tuple(
            DomainEnergy(z.domain, used[z.zone_id] / 1e6, "measured", f"rapl:{z.path}")
            for z in zones
            if z.counted
        )
        notes: dict[str, Any] = {
            "polls": snap.polls - token.polls,
            "poll_interval_s": self.poll_interval_s,
            "subzones_j": {z.domain: used[z.zone_id] / 1e6 for z in zones if z.detail},
            "not_counted": {z.zone_id: z.status for z in self._ready_zones() if not (z.counted or z.detail)},
        }
        wrap_s = min(z.max_range_uj for z in zones) / (self.max_power_w * 1e6)
        if self._thread is None and duration_s > wrap_s:
            notes["warning"] = (
                f"{duration_s:.3g} s window without the poller: at max_power_w a counter can pass "
                f"its whole range in {wrap_s:.3g} s, which two reads cannot see; use the meter as "
                f"a context manager (or call open()) for exact totals"
            )
        return EnergyReading(duration_s, domains, snap.invalid - token.invalid, notes)
