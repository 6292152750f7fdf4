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
from types import FrameType, TracebackType
from typing import Any

from greenbench.errors import GreenbenchError
from greenbench.measure.carbon import GridIntensity, IntensityNames, co2_g, grid_intensity
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


MAX_IDLE_S = 3600.0  # an hour of idle baseline is already far more than any meter needs
# The carbon settings as ``greenbench measure`` users know them: options, not suite keys.
CLI_INTENSITY_NAMES = IntensityNames(
    override="--intensity", source="option --intensity", instead="pass {}", country="--country"
)


@dataclass(frozen=True)
class MeasureOptions:
    """Options of ``greenbench measure`` (seconds, gCO2/kWh, W; ``pue`` ≥ 1).

    ``output``: the file for the report (``-o``), or None for stderr.
    """

    meters: tuple[str, ...] = ("auto",)
    idle_s: float = 2.0
    country: str = "DEU"
    pue: float = 1.0
    intensity_g_per_kwh: float | None = None
    watts_per_core: float = DEFAULT_WATTS_PER_CORE
    powercap_root: Path | None = None
    output: str | None = None


def check_output(path: str | None) -> None:
    """Raise ``MeasureUsageError`` unless the report can be written to ``path`` (None: stderr).

    Checked before the command runs, so a typo in ``-o`` does not cost the measurement.
    """
    if path is None or path == "-":  # "-": standard output, after the command's own output
        return
    if not path.strip():
        raise MeasureUsageError("-o/--output is empty: give a file name, or drop -o to report on stderr.")
    target = Path(path)
    folder = target.parent
    if target.is_dir():
        raise MeasureUsageError(
            f"-o/--output {path} is a folder: give a file name, e.g. {target / 'report.txt'}."
        )
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise MeasureUsageError(
            f"-o/--output {path}: the folder {folder} {what}; create it first or choose another path."
        )
    # os.access answers for the real user, as the write will be made; EROFS counts too.
    writable = os.access(target, os.W_OK) if target.exists() else os.access(folder, os.W_OK | os.X_OK)
    if not writable:
        where = f"the file {target}" if target.exists() else f"the folder {folder}"
        raise MeasureUsageError(f"-o/--output {path}: {where} is not writable; choose a path you can write.")


def measure_intensity(opt: MeasureOptions) -> GridIntensity:
    """The grid intensity ``opt`` asks for; a bad ``--intensity``/``--country`` is a usage error."""
    try:
        return grid_intensity(opt.country, None, opt.intensity_g_per_kwh, CLI_INTENSITY_NAMES)
    except GreenbenchError as e:
        raise MeasureUsageError(str(e)) from None


def check_options(opt: MeasureOptions) -> None:
    """Raise a ``GreenbenchError`` (exit 2) for options that make no sense, before anything runs."""
    check_meter_names(opt.meters)
    if not math.isfinite(opt.pue) or opt.pue < 1.0:
        raise MeasureUsageError(
            f"--pue must be a finite number >= 1 (facility energy / IT energy), got {opt.pue:g}."
        )
    if not math.isfinite(opt.idle_s) or not 0 <= opt.idle_s <= MAX_IDLE_S:
        raise MeasureUsageError(
            f"--idle-s must be a finite number of seconds from 0 to {MAX_IDLE_S:g}, got {opt.idle_s:g}."
        )
    measure_intensity(opt)
    check_output(opt.output)


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


FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class SignalForwarder:
    """While greenbench measures a command: SIGINT, SIGTERM and SIGHUP are passed on to the
    command (greenbench stays to close the energy window and report), and the first one is
    kept for the exit code, 128 + N. Like GNU ``timeout``, every such signal is forwarded, a
    Ctrl-C too (the command may then see SIGINT twice, from the terminal and from greenbench;
    the kernel merges the two when they arrive before the command handles the first)."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> SignalForwarder:
        for signum in FORWARDED_SIGNALS:
            self._old[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for signum, handler in self._old.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.received is None:
            self.received = signum
        self._forward(signum)

    def _forward(self, signum: int) -> None:
        if self._proc is not None and self._proc.poll() is None:
            try:
                self._proc.send_signal(signum)
            except ProcessLookupError:  # it ended between poll and kill
                pass

    def started(self, proc: subprocess.Popen[bytes]) -> None:
        """The command is running: a signal that came while it was being started goes on now."""
        self._proc = proc
        if self.received is not None:
            self._forward(self.received)

    @property
    def name(self) -> str | None:
        """The name of the first signal received (``SIGTERM``), or None."""
        return None if self.received is None else signal.Signals(self.received).name


def measure_command(cmd: list[str], opt: MeasureOptions) -> tuple[int, dict[str, Any]]:
    """Run ``cmd`` inside one energy window; return its exit code (as a shell would) and the report.

    A SIGINT, SIGTERM or SIGHUP that greenbench receives meanwhile is forwarded to the command;
    the code is then 128 + N and the report's ``interrupted_by`` names the signal. One received
    before the command starts (during the idle baseline) is a ``GreenbenchError`` with that code.
    """
    if not cmd:
        raise MeasureUsageError("no command given: use 'greenbench measure -- CMD ARGS…'.")
    check_options(opt)
    intensity = measure_intensity(opt)  # cheap: CodeCarbon's files are parsed once per process
    meter, choices = select_meters(opt.meters, opt.watts_per_core, None, opt.powercap_root)
    with meter, SignalForwarder() as forwarder:
        idle = measure_idle(meter, opt.idle_s) if opt.idle_s > 0 else skipped_idle("--idle-s 0")
        if forwarder.received is not None:
            err = GreenbenchError(
                f"received {forwarder.name} during the idle baseline, before {cmd[0]!r} was started; "
                f"the command was not run."
            )
            err.exit_code = 128 + forwarder.received
            raise err
        started = time.monotonic()
        window = meter.begin()
        try:
            proc = subprocess.Popen(cmd)
        except OSError as e:
            err = GreenbenchError(f"cannot start {cmd[0]!r}: {e.strerror}. Check the command and PATH.")
            err.exit_code = 127  # what a shell returns for a command it cannot run
            raise err from None
        forwarder.started(proc)
        returncode = proc.wait()  # PEP 475: a forwarded signal does not interrupt the wait
        reading = meter.end(window)
        wall_s = time.monotonic() - started
    code = shell_exit_code(returncode) if forwarder.received is None else 128 + forwarder.received
    net = idle.net(reading)
    report = {
        "command": cmd,
        "exit_code": code,
        "command_exit_code": shell_exit_code(returncode),
        "signal": _signal_name(returncode),
        "interrupted_by": forwarder.name,
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
    ended = f"exit code {r.get('command_exit_code', r['exit_code'])}"
    if r.get("signal"):
        ended = f"killed by {r['signal']}, {ended}"
    lines = [
        "",
        f" greenbench measure: {shlex.join(r['command'])}",
        "",
        f"   {r['wall_s']:12.3f} s    wall time ({ended})",
    ]
    if r.get("interrupted_by"):
        lines.append(
            f"   {'':12s}      interrupted: greenbench received {r['interrupted_by']} and forwarded it "
            f"to the command; greenbench exits {r['exit_code']}"
        )
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


def _to_stderr(text: str) -> None:
    sys.stderr.write(text)
    sys.stderr.flush()


def write_report(text: str, output: str | None, command_exit_code: int = 0) -> None:
    """To ``output`` if given, else to stderr (stdout belongs to the measured command).

    If ``output`` cannot be written (``check_output`` passed, but the command may have removed
    its folder), the report goes to stderr instead and a ``GreenbenchError`` says so; it exits
    with the command's code, or 1 if that was 0, so a script never takes a missing file for
    success.
    """
    if not output:
        _to_stderr(text)
        return
    if output == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    try:
        Path(output).write_text(text)
    except OSError as e:
        _to_stderr(text)
        err = GreenbenchError(
            f"cannot write the report to {output} ({e.strerror or e}); it is printed above on "
            "stderr instead. The command itself ran to the end."
        )
        err.exit_code = command_exit_code or 1
        raise err from None


def dumps(obj: Any) -> str:
    """Indented JSON with a trailing newline."""
    return json.dumps(obj, indent=2, default=str) + "\n"
