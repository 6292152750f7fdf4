"""End to end: ``greenbench gate`` on real tiny ONNX models and a tiny suite, through fresh
worker processes, under the network guard. Decisions are asserted only where they cannot be
noise: a model against itself with a wide threshold, and a model with ~3× its work added."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import pytest

from greenbench.measure.workload import conv_stack, with_side_branch
from tests.clitools import assert_one_paragraph_error, run_cli

NETGUARD = Path(__file__).parent / "netguard"
#: a short measurement: 2 processes × 6 blocks of ≥ 0.05 s per model (≈ 20 s on 2 busy cores)
QUICK = ("--rounds", "2", "--blocks", "6", "--block-s", "0.05", "--warmup", "2")


def gate(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The real CLI: HOME in tmp, any non-local network attempt refused and logged."""
    env = {
        "HOME": str(cwd / "home"),
        "PYTHONPATH": os.pathsep.join([str(NETGUARD), os.environ.get("PYTHONPATH", "")]),
        "GREENBENCH_NETLOG": str(cwd / "network-attempts.log"),
    }
    return run_cli("gate", *args, "--workdir", str(cwd / "work"), cwd=cwd, env=env)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 4-layer conv stack, and the same model with an 8-layer side branch kept as an output."""
    folder = tmp_path_factory.mktemp("gate-models")
    base = conv_stack(folder / "base.onnx", layers=4, imgsz=64)
    return {"base": base, "slow": with_side_branch(base, folder / "slow.onnx", layers=8)}


def _doc(out: subprocess.CompletedProcess[str]) -> dict:  # type: ignore[type-arg]
    return json.loads(out.stdout)


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["{base}"], ["REFERENCE and CANDIDATE"]),
        (["{base}", "{tmp}/missing.onnx"], ["no such model file"]),
        (["{base}", "{base}", "--fail", "latency:5"], ["'%'"]),
        (["{base}", "{base}", "--fail", "latncy:5%"], ["Did you mean 'latency'"]),
        (["{base}", "{base}", "--floor", "latency:2kg"], ["unknown unit"]),
        (["{base}", "{base}", "--rounds", "1"], ["--rounds", "two at least"]),
        (["{base}", "{base}", "--device", "gpu"], ["cpu' or 'cuda:N"]),
        (["{base}", "{tmp}/model.pt"], ["pickle", "--allow-pickle"]),
        (["{base}", "{tmp}/suite.yaml"], ["suite.yaml:VARIANT"]),
        (["--calibrate", "{base}", "{base}"], ["one MODEL"]),
    ],
)
def test_usage_errors_exit_2_before_measuring(
    models: dict[str, Path], tmp_path: Path, args: list[str], needles: list[str]
) -> None:
    (tmp_path / "model.pt").write_bytes(b"not really a checkpoint")
    (tmp_path / "suite.yaml").write_text("name: x\n")
    filled = [a.format(base=models["base"], tmp=tmp_path) for a in args]
    out = gate(*filled, cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert_one_paragraph_error(out.stderr, *needles)
    assert not (tmp_path / "work" / "logs").exists()  # nothing was measured


@pytest.mark.slow
def test_a_model_that_cannot_load_is_a_usage_error(models: dict[str, Path], tmp_path: Path) -> None:
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")  # allowed to unpickle, but not loadable
    out = gate(
        str(models["base"]), str(broken), "--allow-pickle", "--blocks", "2", "--block-s", "0.05", cwd=tmp_path
    )
    assert out.returncode == 2, out.stderr + out.stdout
    assert "greenbench: error: the candidate" in out.stderr and "could not be run" in out.stderr
    assert "Traceback" not in out.stderr


def test_unknown_flag_is_a_usage_error(tmp_path: Path) -> None:
    out = gate("a.onnx", "b.onnx", "--no-such-flag", cwd=tmp_path)
    assert out.returncode == 2 and "unrecognized arguments" in out.stderr


@pytest.mark.slow
def test_same_model_twice_passes(models: dict[str, Path], tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("# earlier steps\n")
    out = gate(
        str(models["base"]), str(models["base"]), *QUICK, "--max-rounds", "4", "--fail", "latency:25%",
        "--fail", "energy:25%", "--json", "--markdown", str(summary), cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr + out.stdout
    doc = _doc(out)
    assert doc["outcome"] == "pass" and doc["exit_code"] == 0 and doc["schema_version"] == 2
    assert 2 <= doc["rounds"] <= 4 and doc["settings"]["imgsz"] == 64  # read from the ONNX input
    metrics = {m["metric"]: m for m in doc["verdict"]["metrics"]}
    assert set(metrics) == {"latency_ms", "energy_per_image_j"}
    for m in metrics.values():
        assert m["ci_low"] <= m["ratio"] <= m["ci_high"] and m["pairs"] == 6 * doc["rounds"]
        assert m["spread_pct"] is not None and m["spread_pct"] >= 0
    lat, energy = metrics["latency_ms"], metrics["energy_per_image_j"]
    assert lat["outcome"] == "pass" and lat["threshold_pct"] == 25.0
    assert lat["effective_threshold_pct"] >= 25.0
    if energy["method"] == "estimated":  # CPU time again: reported, gated once as latency
        assert energy["outcome"] == "not gated" and energy["threshold_pct"] is None
        assert doc["verdict"]["interval_confidence"] == 0.95
    else:
        assert energy["outcome"] == "pass" and energy["threshold_pct"] == 25.0
    assert doc["reference"]["runtime"] == doc["candidate"]["runtime"] == "onnxruntime"
    text = summary.read_text()
    assert text.startswith("# earlier steps\n") and "### greenbench gate: **pass**" in text
    assert "| latency_ms" in text
    assert not (tmp_path / "network-attempts.log").exists()


@pytest.mark.slow
def test_slowed_model_regresses_with_exit_1(models: dict[str, Path], tmp_path: Path) -> None:
    # up to 6 rounds: on a loaded host two rounds can leave the interval too wide to decide (exit 3)
    out = gate(str(models["base"]), str(models["slow"]), *QUICK, "--max-rounds", "6", cwd=tmp_path)
    assert out.returncode == 1, out.stderr + out.stdout
    first = out.stdout.splitlines()[0]
    assert first.startswith("greenbench gate: REGRESSED") and "slow.onnx" in first
    table = out.stdout
    assert (
        "latency_ms" in table and "regressed" in table and "τ" in table and "t-interval over rounds" in table
    )
    assert "energy per image:" in table  # its provenance, e.g. "estimated (estimate:…)"


@pytest.mark.slow
def test_inconclusive_exits_3_unless_it_may_pass(models: dict[str, Path], tmp_path: Path) -> None:
    # a model against itself with a 0 % threshold (no floor): a pass needs the whole CI below 1
    # and a regression the whole CI above it; a 99.9 % CI of two rounds straddles 1 all but
    # about 1 time in 1000
    edge = (
        "--rounds", "2", "--blocks", "4", "--max-rounds", "2", "--block-s", "0.05", "--warmup", "2",
        "--fail", "latency:0%", "--fail", "energy:off", "--floor", "latency:0ms", "--alpha", "0.001",
        "--json",
    )  # fmt: skip
    failing = gate(str(models["base"]), str(models["base"]), *edge, cwd=tmp_path)
    assert failing.returncode == 3, failing.stderr + failing.stdout
    doc = _doc(failing)
    assert doc["outcome"] == "inconclusive" and doc["exit_code"] == 3 and doc["rounds"] == 2
    lat = next(m for m in doc["verdict"]["metrics"] if m["metric"] == "latency_ms")
    assert lat["ci_low"] <= 1.0 <= lat["ci_high"] and "straddles" in lat["reason"]
    assert lat["interval_confidence"] == pytest.approx(0.999)
    assert "still inconclusive after 2 rounds" in failing.stderr and "exit 3" in failing.stderr
    passing = gate(str(models["base"]), str(models["base"]), *edge, "--inconclusive-passes", cwd=tmp_path)
    assert passing.returncode == 0, passing.stderr + passing.stdout
    assert _doc(passing)["outcome"] == "inconclusive" and "--inconclusive-passes" in passing.stderr


@pytest.mark.slow
def test_calibrate_reports_false_alarms_with_their_interval(tmp_path: Path) -> None:
    out = gate("--calibrate", "--runs", "2", "--imgsz", "64", *QUICK, "--max-rounds", "2", cwd=tmp_path)
    assert out.returncode == 0, out.stderr + out.stdout
    assert "A/A runs of built-in workload" in out.stdout
    assert "false alarms (A/A regressed):" in out.stdout and "/2" in out.stdout
    assert "Clopper–Pearson" in out.stdout and "CI half-width" in out.stdout
    # detection counted against a heavier copy of the built-in graph (+12.2 % work: one layer in 8)
    assert "detection of an injected +12.2 %" in out.stdout and "/2 (" in out.stdout
    assert sorted(p.name for p in (tmp_path / "work" / "gate-workload").iterdir()) == [
        "conv_stack8-64px-b1.onnx", "conv_stack9-64px-b1.onnx",
    ]  # fmt: skip


SUITE = """\
name: gatesuite
task: detect
dataset:
  synthetic: {classes: 2, images: 20, imgsz: 64, seed: 1}
defaults: {imgsz: 64}
measure:
  latency: {warmup: 2, threads: 1}
  protocol: {rounds: 2, blocks: 4, min_calls: 2}
  energy: {idle_s: 0, skip_idle: true, min_window_s: 0.05}
baseline: base
variants:
  base: {model: yolov5n.yaml}
  twin: {model: yolov5n.yaml}
"""


@pytest.mark.slow
def test_suite_variants_as_sides_take_the_suites_settings(tmp_path: Path) -> None:
    suite = tmp_path / "gatesuite.yaml"
    suite.write_text(textwrap.dedent(SUITE))
    out = gate(
        f"{suite}:base", f"{suite}:twin", "--max-rounds", "2", "--fail", "latency:30%",
        "--fail", "energy:30%", "--inconclusive-passes", "--json", cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr + out.stdout
    doc = _doc(out)
    assert doc["outcome"] != "regressed"
    assert doc["settings"]["imgsz"] == 64 and doc["settings"]["blocks"] == 4  # from the suite
    for side in ("reference", "candidate"):
        assert doc[side]["kind"] == "torch" and doc[side]["runtime"] == "torch"
        assert Path(doc[side]["path"]).is_file()
    assert doc["runtimes"]["candidate"]["runtime"] == "torch"
    assert not (tmp_path / "home" / ".config" / "Ultralytics").exists()
    assert not (tmp_path / "network-attempts.log").exists()
