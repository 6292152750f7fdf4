"""``greenbench env --peak``: fp32/int8 matmul peak, stored with the device and read back."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from greenbench.commands.env_peak import peak_threads
from greenbench.errors import GreenbenchError
from greenbench.measure.peak import INT8_FLAGS, _matmul_integer_model, cpu_flags, measure_peak
from greenbench.store import Store
from tests.clitools import assert_one_paragraph_error, run_cli

TINY = {"n": 32, "duration_s": 0.04, "repeats": 2}


def cpuinfo(tmp_path: Path, flags: str) -> Path:
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: fpu sse2 avx2 {flags}\n\n")
    return path


def test_cpu_flags(tmp_path: Path) -> None:
    assert {"avx2", "avx512_vnni"} <= cpu_flags(cpuinfo(tmp_path, "avx512_vnni"))
    assert cpu_flags(tmp_path / "absent") == set()


def test_int8_skipped_without_a_dot_product_unit(tmp_path: Path) -> None:
    peak = measure_peak(1, cpuinfo=cpuinfo(tmp_path, ""), **TINY)  # type: ignore[arg-type]
    assert peak["int8_gops_per_s"] is None and peak["int8_note"].startswith("skipped")
    assert all(flag in peak["int8_note"] for flag in INT8_FLAGS)
    assert peak["fp32_gflops_per_s"] > 0 and peak["threads"] == 1
    assert {"method", "measured_at", "matrix_n"} <= set(peak)


def test_int8_measured_where_the_cpu_has_vnni(tmp_path: Path) -> None:
    peak = measure_peak(1, cpuinfo=cpuinfo(tmp_path, "avx512_vnni amx_int8"), **TINY)  # type: ignore[arg-type]
    assert peak["int8_gops_per_s"] > 0
    assert "avx512_vnni" in peak["int8_note"] and "amx_int8" in peak["int8_note"]


def test_int8_graph_computes_the_integer_product() -> None:
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    model_bytes = _matmul_integer_model(16)
    b = numpy_helper.to_array(onnx.load_from_string(model_bytes).graph.initializer[0]).astype(np.int32)
    a = np.random.default_rng(3).integers(0, 256, size=(16, 16), dtype=np.uint8)
    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    (y,) = session.run(None, {"A": a})
    assert y.dtype == np.int32 and np.array_equal(y, a.astype(np.int32) @ b)


def test_bad_settings_rejected() -> None:
    with pytest.raises(ValueError):
        measure_peak(0, **TINY)  # type: ignore[arg-type]


def test_store_keeps_peaks_newest_counts(tmp_path: Path) -> None:
    path = tmp_path / "gb.db"
    with Store(path) as s:
        assert s.device_peak("dev") is None
        s.save_device_peak("dev", {"fp32_gflops_per_s": 1.0, "measured_at": "2026-01-01"})
        s.save_device_peak("dev", {"fp32_gflops_per_s": 2.0, "measured_at": "2026-01-02"})
        s.save_device_peak("other", {"fp32_gflops_per_s": 9.0, "measured_at": "2026-01-03"})
    with Store(path, readonly=True) as s:
        assert s.device_peak("dev") == {"fp32_gflops_per_s": 2.0, "measured_at": "2026-01-02"}
        with pytest.raises(GreenbenchError, match="read-only"):
            s.save_device_peak("dev", {})


def test_threads_from_flag_or_suite(tmp_path: Path) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\nmeasure:\n  latency: {threads: 3}\n")
    ns = argparse.Namespace
    assert peak_threads(ns(threads=None, suite=str(suite))) == 3
    assert peak_threads(ns(threads=2, suite=str(suite))) == 2
    assert peak_threads(ns(threads=None, suite=None)) == 1
    with pytest.raises(GreenbenchError, match="threads"):
        peak_threads(ns(threads=0, suite=None))


def test_cli_stores_and_reads_back(tmp_path: Path) -> None:
    db = tmp_path / "gb.db"
    done = run_cli(
        "env", "--peak", "--json", "--store", str(db), "--peak-seconds", "0.04", "--peak-size", "32"
    )
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    with Store(db, readonly=True) as s:
        stored = s.device_peak(shown["device_id"])
    assert stored is not None and stored["fp32_gflops_per_s"] == shown["fp32_gflops_per_s"] > 0
    assert stored["threads"] == 1 and stored["matrix_n"] == 32
    bad = run_cli("env", "--peak", "--store", str(db), "--threads", "0")
    assert_one_paragraph_error(bad.stderr, "--threads")
