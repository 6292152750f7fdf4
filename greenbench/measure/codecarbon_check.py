"""Optional cross-check: CodeCarbon's ``OfflineEmissionsTracker`` over the same window as ours.

The tracker is configured to stay offline and to write only into ``out_dir``:

- country (and region) are given, so it never geolocates; the country is validated first with
  ``greenbench.measure.carbon.grid_intensity`` because CodeCarbon silently falls back to the
  world average for an unknown code.
- Every constructor argument that changes the figures or could open a connection is passed
  explicitly, so ``~/.codecarbon.config``, ``./.codecarbon.config`` and ``CODECARBON_*``
  environment variables (which CodeCarbon reads, never writes) cannot override it: only the
  CSV output (no API, HTTP endpoint, Prometheus, Logfire), no Electricity Maps token, PUE 1.
  A deprecated ``co2_signal_api_token`` in those files would still switch the Electricity
  Maps API on, so the token is cleared after construction.
- ``allow_multiple_runs=True``: otherwise CodeCarbon creates the lock file
  ``<tempfile.gettempdir()>/.codecarbon.lock`` and replaces the process' SIGINT/SIGTERM
  handlers. With it, nothing is written outside ``out_dir`` (importing codecarbon calls
  ``tempfile.gettempdir()``, which creates and deletes a probe file in the temp dir).
- Files: ``out_dir/emissions.csv`` (one row appended per window; an existing file with other
  columns is renamed to ``emissions.csv.bak`` in the same folder).

Cost (2-vCPU VM, codecarbon 3.3.2): the constructor takes ≈ 0.3 s; the first ``start()`` in a
process probes the hardware (≈ 1.2 s: runs ``lscpu``, ``dmesg``, a py-cpuinfo subprocess,
``nvidia-smi``/``rocm-smi`` if present), later ones reuse CodeCarbon's per-process cache. The
tracker runs two background threads (1 s power monitor, 15 s measurement) between start and stop.
"""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from greenbench.errors import GreenbenchError
from greenbench.measure.carbon import J_PER_KWH, grid_intensity
from greenbench.measure.energy.meter import Availability, EnergyReading, Meter

OUTPUT_FILE = "emissions.csv"


class CodeCarbonCheck:
    """One CodeCarbon measurement window, run beside greenbench's own meter.

    ``start()`` and ``stop()`` raise ``GreenbenchError`` with the reason when CodeCarbon is
    missing or fails; the caller records it and the run goes on.
    """

    def __init__(
        self,
        out_dir: Path,
        country: str,
        project_name: str = "greenbench",
        region: str | None = None,
        tracking_mode: str = "process",
    ) -> None:
        """``tracking_mode``: ``process`` (CPU load and RAM of this process) or ``machine``."""
        if tracking_mode not in ("process", "machine"):
            raise ValueError(f"tracking_mode must be 'process' or 'machine', got {tracking_mode!r}")
        self.out_dir = Path(out_dir)
        self.country = country
        self.region = region
        self.project_name = project_name
        self.tracking_mode = tracking_mode
        self._tracker: Any = None
        self._version = ""

    def start(self) -> None:
        """Build the offline tracker and start it."""
        if self._tracker is not None:
            raise GreenbenchError("CodeCarbon check already started: call stop() first.")
        # Validates country/region offline, with greenbench's messages.
        grid_intensity(self.country, self.region)
        try:
            from codecarbon import OfflineEmissionsTracker
            from codecarbon.output_methods.base_output import OutputMethod
        except ImportError as e:
            raise GreenbenchError(
                f"CodeCarbon cross-check unavailable: cannot import codecarbon ({e}). "
                "`pip install codecarbon`, or switch the check off."
            ) from e
        self._version = importlib.metadata.version("codecarbon")
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise GreenbenchError(
                f"CodeCarbon check: cannot create its output folder {self.out_dir} ({e})."
            ) from e
        # CodeCarbon sets this level itself a few lines into its constructor; setting it first
        # also silences the two INFO/WARNING lines it logs before that.
        logging.getLogger("codecarbon").setLevel(logging.ERROR)

        tracker = OfflineEmissionsTracker.__new__(OfflineEmissionsTracker)
        try:
            _unsuppressed(OfflineEmissionsTracker.__init__)(
                tracker,
                country_iso_code=self.country.strip().upper(),
                region=self.region,
                cloud_provider=None,
                cloud_region=None,
                country_2letter_iso_code=None,
                project_name=self.project_name,
                output_dir=str(self.out_dir),
                output_file=OUTPUT_FILE,
                output_methods=[OutputMethod.CSV],
                output_handlers=[],
                on_csv_write="append",
                emissions_endpoint=None,
                electricitymaps_api_token=None,
                allow_multiple_runs=True,
                tracking_mode=self.tracking_mode,
                measure_power_secs=15.0,
                pue=1.0,
                force_cpu_power=None,
                force_ram_power=None,
                force_carbon_intensity_g_co2e_kwh=None,
                force_mode_cpu_load=False,
                rapl_include_dram=False,
                rapl_prefer_psys=False,
                log_level="error",
            )
            tracker._electricitymaps_api_token = None  # see module docstring
            _unsuppressed(type(tracker).start)(tracker)
        except Exception as e:
            _stop_quietly(tracker)
            raise GreenbenchError(f"CodeCarbon check failed to start: {type(e).__name__}: {e}") from e
        if getattr(tracker, "_start_time", None) is None:
            _stop_quietly(tracker)
            raise GreenbenchError("CodeCarbon check failed to start: the tracker did not start.")
        self._tracker = tracker

    def stop(self) -> dict[str, Any]:
        """Stop the tracker; CodeCarbon's figures for the window, units in the key names.

        Keys: ``emissions_kg``, ``energy_kwh``, ``co2_g``, ``energy_j``, ``cpu_energy_j``,
        ``ram_energy_j``, ``gpu_energy_j``, ``duration_s``, ``intensity_g_per_kwh`` (CodeCarbon's
        emissions / energy, None for zero energy), ``country``, ``region``, ``tracking_mode``,
        ``cpu_model``, ``csv`` (path of the CSV), ``version`` (codecarbon's).
        """
        tracker, self._tracker = self._tracker, None
        if tracker is None:
            raise GreenbenchError("CodeCarbon check was not started (or start() failed).")
        try:
            emissions_kg = _unsuppressed(type(tracker).stop)(tracker)
            data = tracker.final_emissions_data
        except Exception as e:
            _stop_quietly(tracker)
            raise GreenbenchError(f"CodeCarbon check failed to stop: {type(e).__name__}: {e}") from e
        if emissions_kg is None:
            raise GreenbenchError("CodeCarbon check failed to stop: the tracker returned nothing.")
        energy_kwh = float(data.energy_consumed)
        return {
            "emissions_kg": float(emissions_kg),
            "energy_kwh": energy_kwh,
            "co2_g": float(emissions_kg) * 1000.0,
            "energy_j": energy_kwh * J_PER_KWH,
            "cpu_energy_j": float(data.cpu_energy) * J_PER_KWH,
            "ram_energy_j": float(data.ram_energy) * J_PER_KWH,
            "gpu_energy_j": float(data.gpu_energy) * J_PER_KWH,
            "duration_s": float(data.duration),
            "intensity_g_per_kwh": (float(emissions_kg) * 1000.0 / energy_kwh if energy_kwh > 0 else None),
            "country": data.country_iso_code,
            "region": data.region,
            "tracking_mode": data.tracking_mode,
            "cpu_model": data.cpu_model,
            "csv": str(self.out_dir / OUTPUT_FILE),
            "version": self._version,
        }


def _unsuppressed(method: Callable[..., Any]) -> Callable[..., Any]:
    """The function under CodeCarbon's ``@suppress(Exception)`` decorator.

    CodeCarbon wraps the tracker's ``__init__``, ``start`` and ``stop`` in a context manager
    that logs every exception and swallows it; the ``contextlib`` decorator keeps the original
    in ``__wrapped__``. Calling that lets a failure reach us with its reason.
    """
    return getattr(method, "__wrapped__", method)


def _stop_quietly(tracker: Any) -> None:
    """Best effort: stop the tracker's background threads after a failure."""
    for name in ("_scheduler", "_scheduler_monitor_power"):
        scheduler = getattr(tracker, name, None)
        if scheduler is not None:
            try:
                scheduler.stop()
            except Exception:  # cleanup after an error that is already being reported
                pass


class CrossCheckedMeter(Meter):
    """``inner`` with a ``CodeCarbonCheck`` run over every window.

    Readings are ``inner``'s; CodeCarbon's result (or the reason it failed) is added to the
    reading's ``notes["codecarbon"]``, so both totals sit side by side in the record and
    CodeCarbon's figures never enter greenbench's own.
    """

    def __init__(self, inner: Meter, check: CodeCarbonCheck) -> None:
        self.inner = inner
        self.check = check
        self.name = inner.name
        self.method = inner.method

    def probe(self) -> Availability:
        return self.inner.probe()

    def open(self) -> None:
        self.inner.open()

    def close(self) -> None:
        self.inner.close()

    def sync(self) -> None:
        self.inner.sync()

    def _begin(self) -> tuple[Any, str | None]:
        error = None
        try:
            self.check.start()
        except GreenbenchError as e:
            error = str(e)
        return self.inner._begin(), error

    def _end(self, token: tuple[Any, str | None], duration_s: float) -> EnergyReading:
        inner_token, error = token
        reading = self.inner._end(inner_token, duration_s)
        if error is None:
            try:
                result: dict[str, Any] = self.check.stop()
            except GreenbenchError as e:
                result = {"error": str(e)}
        else:
            result = {"error": error}
        return replace(reading, notes={**reading.notes, "codecarbon": result})
