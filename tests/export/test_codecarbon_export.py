"""The CodeCarbon emissions.csv export: CodeCarbon's own column set, values in its units, and the
file handed to CodeCarbon's own ``FileOutput`` (header check, append, update) and read back with
pandas, as CodeCarbon reads it (``FileOutput`` update mode and ``codecarbon.viz`` both use
``pd.read_csv``; the dashboard itself needs ``dash``, not installed, so it is not run)."""

from __future__ import annotations

import io
from dataclasses import fields
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from codecarbon.output_methods.emissions_data import EmissionsData
from codecarbon.output_methods.file import FileOutput

from greenbench.errors import GreenbenchError
from greenbench.export import codecarbon_csv as cc
from greenbench.store import Store
from tests.clitools import assert_one_paragraph_error, run_cli
from tests.export.export_records import HOSTILE, measured, reading, store_of

KWH = 3.6e6


def read(text: str) -> pd.DataFrame:
    """The CSV as CodeCarbon reads an emissions.csv: ``pd.read_csv`` with its defaults."""
    return pd.read_csv(io.StringIO(text))


def exported(path: Path, **kw: Any) -> tuple[cc.Exported, pd.DataFrame]:
    with Store(path, readonly=True) as s:
        out = cc.export(s, **kw)
    return out, read(out.text)


def codecarbon_row(run_id: str) -> EmissionsData:
    """A row as CodeCarbon's tracker builds one (its own dataclass)."""
    values: dict[str, Any] = {f.name: 0.0 for f in fields(EmissionsData)}
    text = ("timestamp", "project_name", "experiment_id", "country_name", "country_iso_code", "region",
            "cloud_provider", "cloud_region", "os", "python_version", "codecarbon_version", "cpu_model",
            "gpu_model", "tracking_mode", "on_cloud")  # fmt: skip
    values.update({name: "" for name in text})
    values.update(run_id=run_id, timestamp="2025-01-03T00:00:00", project_name="codecarbon", on_cloud="N")
    return EmissionsData(**values)


def test_columns_are_codecarbons_own_in_its_order() -> None:
    assert cc.COLUMNS == tuple(f.name for f in fields(EmissionsData))


def test_rows_per_stage_and_per_variant_in_codecarbon_units(tmp_path: Path) -> None:
    store = store_of(tmp_path / "gb.db", measured("base"), measured("fast"))
    out, df = exported(store)
    assert list(df.columns) == list(cc.COLUMNS) and out.items == len(df) == 4
    assert list(df.run_id) == [
        "r1/base/stage1:train",
        "r1/base/inference",
        "r1/fast/stage1:train",
        "r1/fast/inference",
    ]
    assert list(df.project_name) == ["s"] * 4 and list(df.experiment_id) == ["base", "base", "fast", "fast"]
    train, inference = df.iloc[0], df.iloc[1]
    # 3600 J over 60 s at PUE 1.5 and 400 g/kWh
    assert train.duration == 60.0 and train.energy_consumed == pytest.approx(3600 * 1.5 / KWH)
    assert train.emissions == pytest.approx(3600 * 1.5 / KWH * 400 / 1000)
    assert train.emissions_rate == pytest.approx(train.emissions / 60)
    assert train.cpu_power == pytest.approx(3600 / 60 * 1.5) and train.gpu_power == 0 and train.ram_power == 0
    # inference: 4 blocks of 2 J over 0.5 s each
    assert inference.duration == pytest.approx(2.0) and inference.cpu_energy == pytest.approx(8 * 1.5 / KWH)
    for _, r in df.iterrows():
        assert r.energy_consumed == pytest.approx(r.cpu_energy + r.gpu_energy + r.ram_energy)
    assert set(df.country_iso_code) == {"DEU"} and set(df.country_name) == {"Germany"}
    assert set(df.tracking_mode) == {"machine"} and set(df.on_cloud) == {"N"} and set(df.pue) == {1.5}
    assert train.timestamp == "2025-01-02T10:05:00" and train.cpu_model == "Test CPU @ 2.0GHz"
    assert df.region.isna().all() and df.longitude.isna().all() and train.gpu_count == 0
    assert not out.notes  # every figure measured


def test_domains_go_to_cpu_gpu_ram_and_estimates_are_said(tmp_path: Path) -> None:
    stage = {
        "name": "train", "duration_s": 10.0,
        "energy": {"duration_s": 10.0, "domains": [
            {"domain": "package-0", "energy_j": 100.0, "method": "measured", "scope": "system"},
            {"domain": "dram-0", "energy_j": 20.0, "method": "measured", "scope": "system"},
            {"domain": "gpu:0", "energy_j": 300.0, "method": "measured", "scope": "system"},
        ]},
    }  # fmt: skip
    gpu = measured("gpu", stages=[stage], device={"gpus": ["NVIDIA H200", "NVIDIA H200"], "ram_gib": 64})
    estimated = measured(
        "est", stages=[{"name": "train", "energy": reading(50.0, 5.0, "cpu", "estimated", "process")}]
    )
    _, df = exported(store_of(tmp_path / "gb.db", gpu))
    row = df.iloc[0]
    assert row.cpu_energy * KWH == pytest.approx(150) and row.ram_energy * KWH == pytest.approx(30)
    assert row.gpu_energy * KWH == pytest.approx(450) and row.gpu_power == pytest.approx(45)
    assert row.gpu_count == 2 and row.gpu_model == "2 x NVIDIA H200"
    out, df = exported(store_of(tmp_path / "est.db", estimated))
    assert df.iloc[0].tracking_mode == "process" and df.iloc[1].tracking_mode == "machine"
    assert any("1 of 2 row(s) hold estimated energy" in n for n in out.notes)


def test_codecarbon_file_output_accepts_appends_and_updates_the_file(tmp_path: Path) -> None:
    store = store_of(tmp_path / "gb.db", measured("base"), measured(HOSTILE, suite=HOSTILE))
    done = run_cli("export", "codecarbon", "--store", str(store), "-o", str(tmp_path / "emissions.csv"))
    assert done.returncode == 0, done.stderr
    assert "wrote 4 row(s)" in done.stderr and "\x1b" not in done.stderr
    ours = read((tmp_path / "emissions.csv").read_text())
    assert set(ours.experiment_id) == {"base", HOSTILE} and set(ours.project_name) == {"s", HOSTILE}

    append = FileOutput("emissions.csv", str(tmp_path), on_csv_write="append")
    assert append.has_valid_headers(codecarbon_row("x"))
    append.out(codecarbon_row("cc-append"), None)
    update = FileOutput("emissions.csv", str(tmp_path), on_csv_write="update")
    update.out(codecarbon_row("cc-update"), None)  # reads our file with pd.read_csv, writes it back
    assert sorted(p.name for p in tmp_path.iterdir() if "emissions" in p.name) == ["emissions.csv"]  # no .bak

    after = pd.read_csv(tmp_path / "emissions.csv")
    assert list(after.columns) == list(cc.COLUMNS) and len(after) == len(ours) + 2
    mine = after[after.run_id.str.startswith("r1/")].reset_index(drop=True)
    pd.testing.assert_frame_equal(mine, ours, check_dtype=False)  # every value of ours survived
    assert set(after.run_id) >= {"cc-append", "cc-update", f"r1/{HOSTILE}/inference"}


def test_newest_ok_record_per_variant_and_device(tmp_path: Path) -> None:
    store = store_of(
        tmp_path / "gb.db",
        measured("base", run_id="old"),
        measured("base", run_id="new"),
        measured("base", run_id="failed", status="failed", error="x", stages=[], measurement={}),
        measured("base", run_id="quick", smoke={"settings": {}}),
        measured("base", run_id="other", device_id="gpu-box"),
    )
    _, df = exported(store)
    assert sorted({r.split("/")[0] for r in df.run_id}) == ["new", "other"]
    _, df = exported(store, device_id="gpu-box")
    assert {r.split("/")[0] for r in df.run_id} == {"other"}


def test_no_energy_window_and_no_intensity(tmp_path: Path) -> None:
    bare = measured("bare", stages=[], measurement={})
    with Store(store_of(tmp_path / "a.db", bare), readonly=True) as s:
        with pytest.raises(GreenbenchError, match="holds an energy window"):
            cc.export(s)
    unknown = measured("u", measurement={**measured("u").measurement, "carbon": {"pue": 1.0}})
    out, df = exported(store_of(tmp_path / "b.db", unknown, bare))
    assert df.emissions.isna().all() and (df.energy_consumed > 0).all()
    assert any("bare" in n and "no energy window" in n for n in out.notes)
    assert any("emissions are left empty" in n for n in out.notes)


def test_cli_error_for_an_empty_selection(tmp_path: Path) -> None:
    store = store_of(tmp_path / "gb.db", measured("base"))
    done = run_cli(
        "export", "codecarbon", "--store", str(store), "--suite", "other", "-o", "e.csv", cwd=tmp_path
    )
    assert done.returncode == 1
    assert_one_paragraph_error(done.stderr, "nothing to export", "suites in it: s")
    assert not (tmp_path / "e.csv").exists()
