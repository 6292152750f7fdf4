"""Carbon: CO2 grams from energy, a grid carbon intensity and a PUE. No network, ever.

    co2_g = energy_j / 3.6e6 (J per kWh) × g_per_kwh × pue

The grid intensity comes from the data files CodeCarbon ships, read directly (``import
codecarbon`` is not needed and its online tracker geolocates by IP), and is computed exactly
as CodeCarbon's ``codecarbon.core.emissions.Emissions`` does for private infrastructure:

- country (``get_country_emissions``): ``global_energy_mix.json[ISO3]["carbon_intensity"]``
  in g/kWh; only if that field is missing, the generation-weighted mean of the per-source
  factors in ``carbon_intensity_per_source.json`` over the ``*_TWh`` fields (and CodeCarbon's
  world average if those do not add up to ``total_TWh``).
- USA state (``get_region_emissions``): ``2023/usa_emissions.json[state]["emissions"]``
  in lbs/MWh × 0.00045359237 (kg/kWh per lbs/MWh).
- Canadian province: ``2023/canada_energy_mix.json[province]``, percentages by source;
  Σ share(coal, petroleum, naturalGas) × (0.995725971, 0.8166885263, 0.7438415916) kg/kWh,
  factors hard-coded in CodeCarbon, every other source counted as zero.
- Nordic bidding zones (SE1–SE4, NO1–NO5, FI): ``nordic_emissions.json`` ``emission_factor``.
- Chinese provinces: ``2023/china_provincial_emissions.json`` ``emission_factor`` (CO2 only),
  matched by name as CodeCarbon does (lower case, a trailing "province", "municipality",
  "autonomous region", ... ignored).

Where CodeCarbon silently falls back (an unknown country to the world average, an unknown
region to the country value), ``grid_intensity`` raises ``GreenbenchError`` instead: a
benchmark must not report a made-up number.
"""

from __future__ import annotations

import difflib
import importlib.metadata
import importlib.util
import json
import math
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from greenbench.errors import GreenbenchError

J_PER_KWH = 3.6e6
SUITE_KEY = "measure.carbon.intensity_g_per_kwh"

_GLOBAL_MIX = "data/private_infra/global_energy_mix.json"
_PER_SOURCE = "data/private_infra/carbon_intensity_per_source.json"
_USA = "data/private_infra/2023/usa_emissions.json"
_CANADA = "data/private_infra/2023/canada_energy_mix.json"
_NORDIC = "data/private_infra/nordic_emissions.json"
_CHINA = "data/private_infra/2023/china_provincial_emissions.json"

# Copied from codecarbon.core.units.EmissionsPerKWh and Emissions._region_energy_mix_to_
# emissions_rate (3.3.2): these constants live in code, not in the data files.
_LBS_PER_MWH_TO_KG_PER_KWH = 0.00045359237
_CANADA_KG_PER_KWH = {"coal": 0.995725971, "petroleum": 0.8166885263, "naturalGas": 0.7438415916}
_NORDIC_ZONES = {
    "SWE": ("SE1", "SE2", "SE3", "SE4"),
    "NOR": ("NO1", "NO2", "NO3", "NO4", "NO5"),
    "FIN": ("FI",),
}
_CHINA_SUFFIX = re.compile(r"\s+(autonomous region|municipality|province|sheng|shi|zizhiqu)$")
_REGIONAL_COUNTRIES = ("USA", "CAN", "CHN", *_NORDIC_ZONES)


@dataclass(frozen=True)
class GridIntensity:
    """Carbon intensity of the electricity grid.

    g_per_kwh: grams of CO2(-equivalent) per kWh drawn from the grid.
    source: where the figure came from, e.g.
        ``codecarbon 3.3.2 global_energy_mix.json: DEU (Germany)`` or
        ``suite: measure.carbon.intensity_g_per_kwh``.
    country: ISO 3166-1 alpha-3 code (upper case), or None if not given with an override.
    region: the region key as used in CodeCarbon's data (e.g. ``california``, ``SE3``), or None.
    """

    g_per_kwh: float
    source: str
    country: str | None
    region: str | None


@dataclass(frozen=True)
class IntensityNames:
    """How the caller's user names the settings ``grid_intensity`` reads, for its messages.

    override: the setting that holds ``override_g_per_kwh``.
    source: ``GridIntensity.source`` when that override is used.
    instead: how to give the override instead of a lookup; ``{}`` becomes ``override``.
    country: the setting that holds the country, named in country errors when not empty.
    """

    override: str = SUITE_KEY
    source: str = f"suite: {SUITE_KEY}"
    instead: str = "set {} in the suite"
    country: str = ""

    def use_override(self, unit: bool = False) -> str:
        """E.g. ``set measure.carbon.intensity_g_per_kwh (g CO2 per kWh) in the suite``."""
        return self.instead.format(self.override + (" (g CO2 per kWh)" if unit else ""))


SUITE_NAMES = IntensityNames()


def grid_intensity(
    country: str = "DEU",
    region: str | None = None,
    override_g_per_kwh: float | None = None,
    names: IntensityNames = SUITE_NAMES,
) -> GridIntensity:
    """Grid intensity (g/kWh) for an ISO3 country and optional region, from CodeCarbon's data.

    ``override_g_per_kwh`` (the suite's ``measure.carbon.intensity_g_per_kwh``) wins when given
    and needs no CodeCarbon. Raises ``GreenbenchError`` for an unknown country or region, or
    when CodeCarbon is not installed; its message names the settings as ``names`` does (the
    suite's keys by default).
    """
    code = country.strip().upper() if country is not None else None
    if override_g_per_kwh is not None:
        value = float(override_g_per_kwh)
        if not math.isfinite(value) or value < 0:
            raise GreenbenchError(
                f"{names.override} must be a finite number >= 0 (g CO2 per kWh), got {override_g_per_kwh!r}."
            )
        return GridIntensity(value, names.source, code, region)
    if not code:
        given = f" ({names.country})" if names.country else ""
        raise GreenbenchError(
            f"No grid country given{given}: set an ISO3 code such as 'DEU' or {names.override}."
        )

    root = _codecarbon_dir(names)
    mix = _load_json(str(root / _GLOBAL_MIX), names)
    if code not in mix:
        raise GreenbenchError(_unknown_country_message(country, mix, names))
    prefix = f"codecarbon {_codecarbon_version()}"
    if region is None:
        entry = mix[code]
        g, how = _country_g_per_kwh(entry, _load_json(str(root / _PER_SOURCE), names))
        name = entry.get("country_name", code)
        return GridIntensity(g, f"{prefix} global_energy_mix.json: {code} ({name}){how}", code, None)

    if code == "USA":
        key, g, detail = _usa(root, region, names)
    elif code == "CAN":
        key, g, detail = _canada(root, region, names)
    elif code == "CHN":
        key, g, detail = _china(root, region, names)
    elif code in _NORDIC_ZONES:
        key, g, detail = _nordic(root, code, region, names)
    else:
        raise GreenbenchError(
            f"Region {region!r} given for {code}, but CodeCarbon has regional grid data only for "
            f"{', '.join(_REGIONAL_COUNTRIES)}. Drop the region to use the {code} country value, "
            f"or {names.use_override()}."
        )
    return GridIntensity(g, f"{prefix} {detail}", code, key)


def co2_g(energy_j: float, intensity: GridIntensity, pue: float = 1.0) -> float:
    """Grams of CO2 for ``energy_j`` joules at the IT load: kWh × g/kWh × PUE.

    ``pue`` (power usage effectiveness, ≥ 1) scales IT energy up to facility energy.
    """
    if not math.isfinite(energy_j) or energy_j < 0:
        raise ValueError(f"energy_j must be a finite number >= 0, got {energy_j!r}")
    if not math.isfinite(pue) or pue < 1.0:
        raise GreenbenchError(f"PUE must be a finite number >= 1.0, got {pue!r}.")
    return energy_j / J_PER_KWH * intensity.g_per_kwh * pue


def country_name(code: str) -> str | None:
    """The name CodeCarbon's data gives the ISO3 country ``code`` (``DEU`` → ``Germany``); None
    if the code is unknown or CodeCarbon is not installed."""
    try:
        mix = _load_json(str(_codecarbon_dir(SUITE_NAMES) / _GLOBAL_MIX), SUITE_NAMES)
    except GreenbenchError:
        return None
    entry = mix.get(code.strip().upper())
    name = entry.get("country_name") if isinstance(entry, dict) else None
    return str(name) if name else None


# --- CodeCarbon's data files --------------------------------------------------------------


def _codecarbon_dir(names: IntensityNames) -> Path:
    """The installed codecarbon package folder, found without importing it."""
    try:
        spec = importlib.util.find_spec("codecarbon")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise GreenbenchError(
            "CodeCarbon is not installed, and greenbench reads grid carbon intensities from its "
            f"data files: `pip install codecarbon`, or {names.use_override(unit=True)}."
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _codecarbon_version() -> str:
    try:
        return importlib.metadata.version("codecarbon")
    except importlib.metadata.PackageNotFoundError:
        return "(version unknown)"


@cache
def _load_json(path: str, names: IntensityNames) -> dict[str, Any]:
    """Parse one of CodeCarbon's data files (cached: pure read; callers must not mutate it)."""
    try:
        with open(path, encoding="utf-8") as f:
            data: dict[str, Any] = json.load(f)
    except OSError as e:
        raise GreenbenchError(
            f"Cannot read CodeCarbon's data file {path} ({e.strerror}): reinstall codecarbon, "
            f"or {names.use_override()}."
        ) from e
    return data


def _country_g_per_kwh(entry: dict[str, Any], per_source: dict[str, Any]) -> tuple[float, str]:
    """CodeCarbon's ``Emissions._global_energy_mix_to_emissions_rate``, in g/kWh.

    Returns the figure and a note for the source string (empty when the file's own
    ``carbon_intensity`` was used).
    """
    if entry.get("carbon_intensity") is not None:
        return float(entry["carbon_intensity"]), ""
    total = entry["total_TWh"]
    g = 0.0
    covered = 0.0
    for field, twh in entry.items():
        if "_TWh" in field:
            factor = per_source.get(field[: -len("_TWh")])
            if factor is not None:
                g += twh / total * factor
                covered += twh
    # Exact comparison on purpose: it is CodeCarbon's test, and this must give its number.
    if covered != total:
        return float(per_source["world_average"]), (
            "; mix does not add up to total_TWh, CodeCarbon's world average used"
        )
    return g, "; computed from the generation mix × carbon_intensity_per_source.json"


def _usa(root: Path, region: str, names: IntensityNames) -> tuple[str, float, str]:
    data = _load_json(str(root / _USA), names)
    states = {k: v for k, v in data.items() if not k.startswith("_")}
    key = region.strip().lower()
    if key not in states:
        by_code = {v.get("regionCode", "").upper(): k for k, v in states.items()}
        hint = by_code.get(region.strip().upper())
        valid = list(states)
        raise GreenbenchError(_unknown_region_message("USA", region, valid, names, [hint] if hint else None))
    lbs = states[key]["emissions"]
    g = lbs * _LBS_PER_MWH_TO_KG_PER_KWH * 1000
    basis = data.get("_source", {}).get("name", "EPA eGRID")
    return key, g, f"2023/usa_emissions.json: USA/{key} ({basis}: {lbs} lbs/MWh)"


def _canada(root: Path, region: str, names: IntensityNames) -> tuple[str, float, str]:
    data = _load_json(str(root / _CANADA), names)
    key = region.strip().lower()
    if key not in data:
        raise GreenbenchError(_unknown_region_message("CAN", region, list(data), names))
    mix = data[key]
    kg = sum(mix[fuel] / mix["total"] * f for fuel, f in _CANADA_KG_PER_KWH.items())
    detail = f"2023/canada_energy_mix.json: CAN/{key} (fossil shares × CodeCarbon's per-fuel factors)"
    return key, kg * 1000, detail


def _nordic(root: Path, code: str, region: str, names: IntensityNames) -> tuple[str, float, str]:
    zones = _NORDIC_ZONES[code]
    key = region.strip().upper()
    data = _load_json(str(root / _NORDIC), names)["data"]
    if key not in zones or key not in data:
        raise GreenbenchError(_unknown_region_message(code, region, list(zones), names))
    zone = data[key]
    detail = f"nordic_emissions.json: {code}/{key} ({zone.get('description', key)})"
    return key, float(zone["emission_factor"]), detail


def _china(root: Path, region: str, names: IntensityNames) -> tuple[str, float, str]:
    data = _load_json(str(root / _CHINA), names)["data"]
    name = _CHINA_SUFFIX.sub("", " ".join(region.lower().split()))
    for code, province in data.items():
        if name in province["names"]:
            detail = f"2023/china_provincial_emissions.json: CHN/{name} ({code}, CO2 only)"
            return name, float(province["emission_factor"]), detail
    valid = [n for p in data.values() for n in p["names"]]
    message = _unknown_region_message("CHN", region, valid, names)
    raise GreenbenchError(
        message + " CodeCarbon publishes no factor for Tibet, Hong Kong, Macao or Taiwan "
        "(it uses the national value): drop the region for that."
    )


# --- messages ------------------------------------------------------------------------------


def _unknown_country_message(country: str, mix: dict[str, Any], names: IntensityNames) -> str:
    code = country.strip().upper()
    by_name = {str(v.get("country_name", "")).lower(): k for k, v in mix.items()}
    hints = []
    if country.strip().lower() in by_name:
        hints.append(by_name[country.strip().lower()])
    hints += difflib.get_close_matches(code, list(mix), n=4, cutoff=0.5)
    hints += [by_name[n] for n in difflib.get_close_matches(country.strip().lower(), by_name, n=3)]
    hints = list(dict.fromkeys(hints))[:5]
    suggestion = (
        "Did you mean " + ", ".join(f"{h} ({mix[h].get('country_name', h)})" for h in hints) + "? "
        if hints
        else ""
    )
    given = f" ({names.country})" if names.country else ""
    return (
        f"Unknown grid country {country!r}{given}: CodeCarbon's global_energy_mix.json has no ISO3 "
        f"code {code!r}. {suggestion}Use an ISO 3166-1 alpha-3 code (e.g. DEU, USA, FRA), or "
        f"{names.use_override(unit=True)}."
    )


def _unknown_region_message(
    country: str, region: str, valid: list[str], names: IntensityNames, hints: list[str] | None = None
) -> str:
    by_lower = {v.lower(): v for v in valid}
    close = hints or [
        by_lower[c] for c in difflib.get_close_matches(region.strip().lower(), by_lower, n=3, cutoff=0.6)
    ]
    did_you_mean = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    examples = ", ".join(repr(v) for v in valid[:6])
    more = f", … ({len(valid)} in all)" if len(valid) > 6 else ""
    return (
        f"Unknown region {region!r} for {country} in CodeCarbon's data.{did_you_mean} "
        f"Valid regions include {examples}{more}. Or {names.use_override()}."
    )
