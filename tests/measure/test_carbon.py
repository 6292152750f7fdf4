"""Grid intensity and CO2 arithmetic, checked against CodeCarbon's own data and functions."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from greenbench.errors import GreenbenchError
from greenbench.measure import carbon
from greenbench.measure.carbon import GridIntensity, IntensityNames, co2_g, grid_intensity

pytest.importorskip("codecarbon")

from codecarbon.core.emissions import Emissions
from codecarbon.core.units import Energy
from codecarbon.external.geography import GeoMetadata
from codecarbon.input import DataSource

CC_DIR = Path(importlib.util.find_spec("codecarbon").submodule_search_locations[0])
PRIVATE_INFRA = CC_DIR / "data" / "private_infra"


def load(name: str) -> dict:
    with open(PRIVATE_INFRA / name, encoding="utf-8") as f:
        return json.load(f)


def codecarbon_g_per_kwh(country: str, region: str | None = None) -> float:
    """CodeCarbon's own figure: its private-infra emissions for 1 kWh, in grams.

    No Electricity Maps token is given, so this stays offline.
    """
    emissions = Emissions(DataSource())
    geo = GeoMetadata(country_iso_code=country, region=region)
    kg = emissions.get_private_infra_emissions(Energy(kWh=1.0), geo)
    return kg * 1000.0


def test_deu_matches_data_file_and_codecarbon() -> None:
    entry = load("global_energy_mix.json")["DEU"]
    got = grid_intensity("DEU")
    assert got.g_per_kwh == entry["carbon_intensity"] == 380.95
    assert got.g_per_kwh == pytest.approx(codecarbon_g_per_kwh("DEU"), rel=1e-12)
    assert got.country == "DEU" and got.region is None
    assert got.source.startswith("codecarbon 3.3.2 global_energy_mix.json: DEU (Germany)")


def test_every_country_matches_codecarbon() -> None:
    for code in load("global_energy_mix.json"):
        assert grid_intensity(code).g_per_kwh == pytest.approx(codecarbon_g_per_kwh(code), rel=1e-12), code


def test_country_code_is_case_insensitive() -> None:
    assert grid_intensity(" deu ") == grid_intensity("DEU")


def test_mix_fallback_matches_codecarbon() -> None:
    """The path for an entry without ``carbon_intensity`` (none in 3.3.2) is CodeCarbon's."""
    per_source = load("carbon_intensity_per_source.json")
    for code in ("DEU", "FRA", "USA", "IND"):
        entry = dict(load("global_energy_mix.json")[code])
        entry.pop("carbon_intensity")
        ours, note = carbon._country_g_per_kwh(entry, per_source)
        theirs = Emissions._global_energy_mix_to_emissions_rate(entry).kgs_per_kWh * 1000
        assert ours == pytest.approx(theirs, rel=1e-12), code
        assert note


def test_world_average_in_data_is_475() -> None:
    assert load("carbon_intensity_per_source.json")["world_average"] == 475


def test_co2_of_one_kwh_is_intensity_times_pue() -> None:
    deu = grid_intensity("DEU")
    assert co2_g(3.6e6, deu) == pytest.approx(380.95)
    assert co2_g(3.6e6, deu, pue=1.5) == pytest.approx(380.95 * 1.5)
    assert co2_g(0.0, deu) == 0.0


def test_pue_scales_linearly() -> None:
    i = GridIntensity(100.0, "test", "DEU", None)
    base = co2_g(1234.5, i)
    assert base == pytest.approx(1234.5 / 3.6e6 * 100.0)
    for pue in (1.0, 1.1, 1.58, 2.0):
        assert co2_g(1234.5, i, pue=pue) == pytest.approx(base * pue)


def test_co2_rejects_bad_inputs() -> None:
    i = GridIntensity(100.0, "test", "DEU", None)
    with pytest.raises(GreenbenchError, match="PUE"):
        co2_g(1.0, i, pue=0.9)
    with pytest.raises(ValueError):
        co2_g(-1.0, i)
    with pytest.raises(ValueError):
        co2_g(float("nan"), i)


def test_override_wins_and_is_labelled() -> None:
    got = grid_intensity("DEU", override_g_per_kwh=123.0)
    assert got == GridIntensity(123.0, "suite: measure.carbon.intensity_g_per_kwh", "DEU", None)
    assert co2_g(3.6e6, got, pue=1.2) == pytest.approx(123.0 * 1.2)
    # An override needs neither CodeCarbon nor a known country.
    assert grid_intensity("XXX", override_g_per_kwh=0).g_per_kwh == 0.0
    with pytest.raises(GreenbenchError, match="intensity_g_per_kwh"):
        grid_intensity("DEU", override_g_per_kwh=-5)


def test_unknown_country_names_code_and_suggests() -> None:
    with pytest.raises(GreenbenchError) as e:
        grid_intensity("XQZ")
    msg = str(e.value)
    assert "'XQZ'" in msg and "measure.carbon.intensity_g_per_kwh" in msg
    with pytest.raises(GreenbenchError, match=r"DEU \(Germany\)"):
        grid_intensity("Germany")
    with pytest.raises(GreenbenchError, match="FRA"):
        grid_intensity("FRX")


def test_usa_state_matches_codecarbon() -> None:
    states = load("2023/usa_emissions.json")
    got = grid_intensity("USA", "California")
    assert got.region == "california"
    assert got.g_per_kwh == pytest.approx(states["california"]["emissions"] * 0.45359237)
    assert got.g_per_kwh == pytest.approx(codecarbon_g_per_kwh("USA", "California"), rel=1e-12)
    assert "usa_emissions.json: USA/california" in got.source
    for state in (k for k in states if not k.startswith("_")):
        assert grid_intensity("USA", state).g_per_kwh == pytest.approx(
            codecarbon_g_per_kwh("USA", state), rel=1e-12
        ), state


def test_canadian_province_matches_codecarbon() -> None:
    got = grid_intensity("CAN", "Ontario")
    assert got.region == "ontario"
    assert got.g_per_kwh == pytest.approx(codecarbon_g_per_kwh("CAN", "Ontario"), rel=1e-12)
    for province in load("2023/canada_energy_mix.json"):
        assert grid_intensity("CAN", province).g_per_kwh == pytest.approx(
            codecarbon_g_per_kwh("CAN", province), rel=1e-12
        ), province


@pytest.mark.parametrize(
    ("country", "region"),
    [("SWE", "se3"), ("NOR", "NO4"), ("FIN", "FI"), ("CHN", "Guangdong Province"), ("CHN", "Beijing")],
)
def test_other_regions_match_codecarbon(country: str, region: str) -> None:
    assert grid_intensity(country, region).g_per_kwh == pytest.approx(
        codecarbon_g_per_kwh(country, region), rel=1e-12
    )


def test_unknown_region_names_it_and_lists_valid_ones() -> None:
    with pytest.raises(GreenbenchError) as e:
        grid_intensity("USA", "Californa")
    msg = str(e.value)
    assert "'Californa'" in msg and "'california'" in msg and "'alabama'" in msg
    with pytest.raises(GreenbenchError, match="'california'"):
        grid_intensity("USA", "CA")  # a state code: CodeCarbon wants the name
    with pytest.raises(GreenbenchError, match="'ontario'"):
        grid_intensity("CAN", "Ontari")
    with pytest.raises(GreenbenchError, match="'SE1'"):
        grid_intensity("SWE", "NO1")
    with pytest.raises(GreenbenchError, match="Tibet"):
        grid_intensity("CHN", "Tibet")


def test_region_for_country_without_regional_data() -> None:
    with pytest.raises(GreenbenchError, match=r"'Bavaria'.*USA, CAN"):
        grid_intensity("DEU", "Bavaria")


def test_codecarbon_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(carbon.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(GreenbenchError) as e:
        grid_intensity("DEU")
    assert "pip install codecarbon" in str(e.value)
    assert "measure.carbon.intensity_g_per_kwh" in str(e.value)
    assert grid_intensity("DEU", override_g_per_kwh=300).g_per_kwh == 300


def test_does_not_import_codecarbon() -> None:
    code = (
        "import sys\n"
        "from greenbench.measure.carbon import grid_intensity\n"
        "grid_intensity('DEU'); grid_intensity('USA', 'texas'); grid_intensity('CAN', 'quebec')\n"
        "assert 'codecarbon' not in sys.modules, 'codecarbon was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])


CLI_NAMES = IntensityNames(
    override="--intensity", source="option --intensity", instead="pass {}", country="--country"
)


def test_names_reword_every_message_and_the_source() -> None:
    got = grid_intensity("DEU", override_g_per_kwh=300, names=CLI_NAMES)
    assert got == GridIntensity(300.0, "option --intensity", "DEU", None)
    with pytest.raises(GreenbenchError) as e:
        grid_intensity("DEU", override_g_per_kwh=-5, names=CLI_NAMES)
    assert str(e.value).startswith("--intensity must be a finite number >= 0")
    with pytest.raises(GreenbenchError) as e:
        grid_intensity("xx", names=CLI_NAMES)
    assert "Unknown grid country 'xx' (--country)" in str(e.value)
    assert str(e.value).endswith("or pass --intensity (g CO2 per kWh).")
    with pytest.raises(GreenbenchError, match=r"No grid country given \(--country\).*or --intensity"):
        grid_intensity(" ", names=CLI_NAMES)
    with pytest.raises(GreenbenchError, match=r"Or pass --intensity\.$"):
        grid_intensity("USA", "Californa", names=CLI_NAMES)
    with pytest.raises(GreenbenchError, match=r"or pass --intensity\.$"):
        grid_intensity("DEU", "Bavaria", names=CLI_NAMES)
    for call in (
        lambda: grid_intensity("DEU", override_g_per_kwh=-5, names=CLI_NAMES),
        lambda: grid_intensity("xx", names=CLI_NAMES),
        lambda: grid_intensity("CHN", "Tibet", names=CLI_NAMES),
    ):
        with pytest.raises(GreenbenchError) as e:
            call()
        assert "measure.carbon" not in str(e.value) and "suite" not in str(e.value)


def test_default_names_keep_the_suite_messages() -> None:
    with pytest.raises(GreenbenchError) as e:
        grid_intensity("xx")
    assert str(e.value).endswith("or set measure.carbon.intensity_g_per_kwh (g CO2 per kWh) in the suite.")
    assert "(--country)" not in str(e.value) and "Unknown grid country 'xx': " in str(e.value)
    with pytest.raises(GreenbenchError, match=r"Or set measure\.carbon\.intensity_g_per_kwh in the suite\.$"):
        grid_intensity("USA", "Californa")
    with pytest.raises(GreenbenchError, match=r"^No grid country given: set an ISO3 code such as 'DEU' or"):
        grid_intensity("")


def test_codecarbon_missing_names_the_option(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(carbon.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(GreenbenchError) as e:
        grid_intensity("DEU", names=CLI_NAMES)
    assert str(e.value).endswith("`pip install codecarbon`, or pass --intensity (g CO2 per kWh).")
