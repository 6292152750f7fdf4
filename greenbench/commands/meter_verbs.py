"""``greenbench env`` and ``greenbench measure -- CMD``: the meters, outside any suite."""

from __future__ import annotations

import json
import math
import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from greenbench.errors import GreenbenchError
from greenbench.measure.carbon import co2_g, grid_intensity
from greenbench.measure.device import fingerprint
from greenbench.measure.energy.composite import check_meter_names, measure_idle, select_meters, skipped_idle
from greenbench.measure.energy.estimate import DEFAULT_WATTS_PER_CORE, EstimateMeter
from greenbench.measure.energy.nvml import NvmlMeter
from greenbench.measure.energy.rapl import RaplMeter


def env_report(
    powercap_root: Path | None = None, watts_per_core: float = DEFAULT_WATTS_PER_CORE
) -> dict[str, Any]:
    """Device fingerprint and, per meter, whether it can read here and why not."""
    meters = {}
    for name, meter in (
        ("rapl", RaplMeter(root=powercap_root)),
        ("nvml", NvmlMeter()),
        ("estimate", EstimateMeter(watts_per_core=watts_per_core)),
    ):
        a = meter.probe()
        meters[name] = {
            "available": a.ok,
            "method": meter.method,
            "reason": a.reason,
            "detail": a.detail,
        }
    return {"device": fingerprint(), "meters": meters}


def _zone_line(z: dict[str, Any]) -> str:
    counted = "counted" if z.get("counted") else f"not counted: {z.get('status', '')}"
    return f"      {z.get('zone', '?'):16s} {z.get('name', ''):10s} {counted}  ({z.get('path', '')})"


def render_env(report: dict[str, Any]) -> str:
    """``greenbench env`` as text."""
    d = report["device"]
    lines = [
        f"device   {d['device_id']}",
        f"cpu      {d['cpu_model']} · {d['logical_cores']} logical cores · {d['ram_gib']} GiB RAM"
        f" · {d['arch']}",
        f"os       {d['os']} · python {d['python']}",
        "versions " + ", ".join(f"{k} {v}" for k, v in d["versions"].items()),
        "meters",
    ]
    for name, m in report["meters"].items():
        state = f"available ({m['method']})" if m["available"] else "unavailable"
        lines.append(f"  {name:9s}{state}" + (f": {m['reason']}" if m["reason"] else ""))
        if name == "estimate":
            lines.append(f"      model: {m['detail'].get('model', '')}")
            lines += [f"      assumes: {a}" for a in m["detail"].get("assumptions", [])]
        for z in m["detail"].get("zones", []):
            lines.append(_zone_line(z))
    return "\n".join(lines)


class MeasureUsageError(GreenbenchError):
    """A bad ``greenbench measure`` option, found before the command starts (exit code 2)."""

    exit_code = 2


@dataclass(frozen=True)
class MeasureOptions:
    """Options of ``greenbench measure`` (seconds, gCO2/kWh, W; ``pue`` ≥ 1)."""

    meters: tuple[str, ...] = ("auto",)
    idle_s: float = 2.0
    country: str = "DEU"
    pue: float = 1.0
    intensity_g_per_kwh: float | None = None
    watts_per_core: float = DEFAULT_WATTS_PER_CORE
    powercap_root: Path | None = None


def check_options(opt: MeasureOptions) -> None:
    """Raise a ``GreenbenchError`` (exit 2) for options that make no sense, before anything runs."""
    check_meter_names(opt.meters)
    if not math.isfinite(opt.pue) or opt.pue < 1.0:
        raise MeasureUsageError(
            f"--pue must be a finite number >= 1 (facility energy / IT energy), got {opt.pue:g}."
        )
    if not math.isfinite(opt.idle_s) or opt.idle_s < 0:
        raise MeasureUsageError(f"--idle-s must be a finite number of seconds >= 0, got {opt.idle_s:g}.")


def shell_exit_code(returncode: int) -> int:
    """A ``Popen`` return code as a shell reports it: killed by signal N (-N) → 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


def _signal_name(returncode: int) -> str | None:
    if returncode >= 0:
        return None
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def measure_command(cmd: list[str], opt: MeasureOptions) -> tuple[int, dict[str, Any]]:
    """Run ``cmd`` inside one energy window; return its exit code (as a shell would) and the report."""
    if not cmd:
        raise GreenbenchError("no command given: use 'greenbench measure -- CMD ARGS…'.")
    check_options(opt)
    intensity = grid_intensity(opt.country, None, opt.intensity_g_per_kwh)
    meter, choices = select_meters(opt.meters, opt.watts_per_core, None, opt.powercap_root)
    with meter:
        idle = measure_idle(meter, opt.idle_s) if opt.idle_s > 0 else skipped_idle("--idle-s 0")
        started = time.monotonic()
        window = meter.begin()
        try:
            proc = subprocess.Popen(cmd)
        except OSError as e:
            err = GreenbenchError(f"cannot start {cmd[0]!r}: {e.strerror}. Check the command and PATH.")
            err.exit_code = 127  # what a shell returns for a command it cannot run
            raise err from None
        try:
            returncode = proc.wait()
        except KeyboardInterrupt:
            returncode = proc.wait()
        reading = meter.end(window)
        wall_s = time.monotonic() - started
    code = shell_exit_code(returncode)
    net = idle.net(reading)
    report = {
        "command": cmd,
        "exit_code": code,
        "signal": _signal_name(returncode),
        "wall_s": wall_s,
        "energy_j": net["energy_j"],
        "energy_net_j": net["energy_net_j"],
        "idle_j": net["idle_j"],
        "method": reading.method,
        "invalid_samples": reading.invalid_samples,
        "domains": [
            {
                "domain": x.domain,
                "energy_j": x.energy_j,
                "method": x.method,
                "source": x.source,
                "scope": x.scope,
                "power_w": x.energy_j / reading.duration_s if reading.duration_s else 0.0,
            }
            for x in reading.domains
        ],
        "idle": idle.to_dict(),
        "co2_g": co2_g(net["energy_j"], intensity, opt.pue),
        "co2_net_g": co2_g(max(net["energy_net_j"], 0.0), intensity, opt.pue),
        "carbon": {"g_per_kwh": intensity.g_per_kwh, "source": intensity.source, "pue": opt.pue},
        "meters": [c.to_dict() for c in choices],
        "notes": reading.notes,
    }
    return code, report


def note_warnings(notes: dict[str, Any], prefix: str = "") -> list[str]:
    """Every ``warning`` a meter put in a reading's notes (nested per meter), as ``meter: text``."""
    found = []
    for key, value in notes.items():
        if key == "warning" and isinstance(value, str):
            found.append(f"{prefix}{value}")
        elif isinstance(value, dict):
            found += note_warnings(value, f"{prefix}{key}: ")
    return found


def render_measure(r: dict[str, Any]) -> str:
    """The ``greenbench measure`` report as text (like ``perf stat``)."""
    ended = f"exit code {r['exit_code']}"
    if r.get("signal"):
        ended = f"killed by {r['signal']}, {ended}"
    lines = [
        "",
        f" greenbench measure: {shlex.join(r['command'])}",
        "",
        f"   {r['wall_s']:12.3f} s    wall time ({ended})",
    ]
    for d in r["domains"]:
        lines.append(
            f"   {d['energy_j']:12.3f} J    {d['domain']:10s} {d['method']:9s} "
            f"{d['power_w']:8.2f} W  {d['source']}"
        )
    lines.append(f"   {r['energy_j']:12.3f} J    total      {r['method']} (gross)")
    idle = r["idle"]
    if idle["skipped"]:
        lines.append(f"   {'':12s}      idle baseline skipped ({idle['reason']}): net = gross")
    else:
        watts = sum(idle["power_w"].values())
        lines.append(
            f"   {r['energy_net_j']:12.3f} J    net        minus idle {watts:.2f} W "
            f"(measured over {idle['duration_s']:.1f} s)"
        )
    for domain, why in idle.get("notes", {}).items():
        lines.append(f"   {'':12s}      idle {domain}: {why}")
    c = r["carbon"]
    lines.append(
        f"   {r['co2_g']:12.6f} g    CO2        {r['method']}, {c['g_per_kwh']:.2f} gCO2/kWh "
        f"× PUE {c['pue']:g} ({c['source']})"
    )
    for m in r["meters"]:
        if not m["used"]:
            lines.append(f"   note: {m['name']} not used: {m['reason']}")
        elif m["name"] == "estimate":
            lines.append(f"   note: ESTIMATED — {m['detail'].get('model', '')} ({m['reason']})")
            lines += [f"         assumes: {a}" for a in m["detail"].get("assumptions", [])]
    if r["invalid_samples"]:
        lines.append(f"   warning: {r['invalid_samples']} invalid counter sample(s) discarded")
    lines += [f"   warning: {w}" for w in note_warnings(r["notes"])]
    return "\n".join(lines) + "\n"


def write_report(text: str, output: str | None) -> None:
    """To ``output`` if given, else to stderr (stdout belongs to the measured command)."""
    if output:
        Path(output).write_text(text)
    else:
        sys.stderr.write(text)
        sys.stderr.flush()


def dumps(obj: Any) -> str:
    """Indented JSON with a trailing newline."""
    return json.dumps(obj, indent=2, default=str) + "\n"


def powercap_root_from_env() -> Path | None:
    """``GREENBENCH_POWERCAP_ROOT`` if set (the RAPL meter reads it too; shown here for clarity)."""
    value = os.environ.get("GREENBENCH_POWERCAP_ROOT")
    return Path(value) if value else None
