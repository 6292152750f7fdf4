"""NvmlMeter against an autospec'd pynvml: counter path, power polling, sync, availability."""

from __future__ import annotations

import itertools
import math
import sys
import threading
import types
from collections.abc import Callable
from unittest import mock

import pytest

from greenbench.errors import MeterUnavailable
from greenbench.measure.energy.meter import EnergyReading
from greenbench.measure.energy.nvml import LIBRARY_NOT_FOUND, NO_GPU, NvmlMeter
from tests.measure.energy.fakes import FakeGpu, FakeNvml


@pytest.fixture
def install(monkeypatch: pytest.MonkeyPatch) -> Callable[[FakeNvml], FakeNvml]:
    """Put a FakeNvml where ``importlib.import_module('pynvml')`` finds it."""

    def _install(fake: FakeNvml) -> FakeNvml:
        monkeypatch.setitem(sys.modules, "pynvml", fake.module)
        return fake

    return _install


def joules(reading: EnergyReading) -> dict[str, float]:
    return {d.domain: d.energy_j for d in reading.domains}


def edge_times(fake: FakeNvml) -> list[float]:
    """When the fake served each window edge's power sample: the first after each sync."""
    syncs = [i for i, e in enumerate(fake.events) if e[0] == "sync"]
    return [next(e[1] for e in fake.events[i:] if e[0] == "power") for i in syncs]


def test_energy_counter_gives_exact_joules(install: Callable[[FakeNvml], FakeNvml]) -> None:
    fake = install(FakeNvml([FakeGpu(energy_mj=1_000_000), FakeGpu("NVIDIA H100 80GB HBM3", 5_000)]))
    with NvmlMeter(sync=lambda: None) as meter:
        assert isinstance(meter, NvmlMeter)
        window = meter.begin()
        fake.gpus[0].energy_mj += 123_456  # type: ignore[operator]
        fake.gpus[1].energy_mj += 7  # type: ignore[operator]
        reading = meter.end(window)
        assert not [t for t in threading.enumerate() if t.name == "greenbench-nvml-poller"]
    assert joules(reading) == {"gpu:0": 123.456, "gpu:1": 0.007}
    assert {d.source for d in reading.domains} == {"nvml:total_energy"}
    assert reading.method == "measured"
    assert reading.notes["gpu_names"] == {"gpu:0": "NVIDIA A100-SXM4-40GB", "gpu:1": "NVIDIA H100 80GB HBM3"}
    assert fake.initialised == 0  # close() shut NVML down
    fake.module.nvmlShutdown.assert_called()


def test_selected_gpus_only(install: Callable[[FakeNvml], FakeNvml]) -> None:
    fake = install(FakeNvml([FakeGpu(energy_mj=0), FakeGpu(energy_mj=0)]))
    with NvmlMeter(gpus=[1], sync=lambda: None) as meter:
        window = meter.begin()
        fake.gpus[0].energy_mj = 50_000
        fake.gpus[1].energy_mj = 2_000
        assert joules(meter.end(window)) == {"gpu:1": 2.0}


def test_power_polling_integrates_a_known_profile(install: Callable[[FakeNvml], FakeNvml]) -> None:
    period_s, mean_w, swing_w = 0.5, 150.0, 100.0
    k = 2 * math.pi / period_s

    def profile(t: float) -> float:
        return mean_w + swing_w * math.sin(k * t)

    def true_j(a: float, b: float) -> float:
        return mean_w * (b - a) - swing_w / k * (math.cos(k * b) - math.cos(k * a))

    old = FakeGpu("Tesla P100-PCIE-16GB", energy_mj=None, power_w=profile)  # no energy counter
    fake = install(FakeNvml([FakeGpu(energy_mj=0), old]))
    meter = NvmlMeter(sync=lambda: fake.log("sync"))
    meter.open()
    try:
        window = meter.begin()
        threading.Event().wait(0.6)
        reading = meter.end(window)
    finally:
        meter.close()

    edges = edge_times(fake)
    samples = [(t, w) for kind, t, w in fake.events if kind == "power" and edges[0] <= t <= edges[1]]
    # The meter's figure is the trapezoid over exactly these samples, edges included (the
    # meter stamps a sample just before calling NVML, the fake inside the call, after the
    # autospec's tens of µs: 0.05 J covers 250 W × 0.1 ms at each edge) …
    trapezoid_j = sum(0.5 * (w0 + w1) * (t1 - t0_) for (t0_, w0), (t1, w1) in itertools.pairwise(samples))
    domain = {d.domain: d for d in reading.domains}["gpu:1"]
    assert domain.energy_j == pytest.approx(trapezoid_j, abs=0.05)
    # … and within the trapezoid rule's error bound at the sampling actually achieved.
    h_max = max(t1 - t0_ for (t0_, _), (t1, _) in itertools.pairwise(samples))
    curvature = swing_w * k**2  # max |P''| in W/s²
    bound_j = (edges[1] - edges[0]) * h_max**2 * curvature / 12 + 0.05  # + the edge stamps
    truth_j = true_j(*edges)
    assert abs(domain.energy_j - truth_j) <= bound_j
    assert len(samples) >= 4  # the poller sampled between the edges (20 Hz → ≈ 13)
    assert domain.source == "nvml:power_polling@20Hz"
    assert reading.notes["power_samples"]["gpu:1"] == len(samples)
    assert {d.source for d in reading.domains} == {"nvml:total_energy", "nvml:power_polling@20Hz"}


def test_sync_is_called_before_the_reads_at_both_edges(install: Callable[[FakeNvml], FakeNvml]) -> None:
    fake = install(FakeNvml([FakeGpu(energy_mj=0)]))
    sync = mock.Mock(side_effect=lambda: fake.log("sync"))
    with NvmlMeter(sync=sync) as meter:
        fake.events.clear()
        meter.end(meter.begin())
    assert sync.call_count == 2
    assert [e[0] for e in fake.events] == ["sync", "energy", "sync", "energy"]


def test_default_sync_waits_for_torch_cuda_only_when_started(
    install: Callable[[FakeNvml], FakeNvml], monkeypatch: pytest.MonkeyPatch
) -> None:
    install(FakeNvml([FakeGpu(energy_mj=0)]))
    cuda = types.SimpleNamespace(is_initialized=mock.Mock(return_value=True), synchronize=mock.Mock())
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=cuda))
    with NvmlMeter() as meter:
        meter.end(meter.begin())
        assert cuda.synchronize.call_count == 2
        cuda.is_initialized.return_value = False
        meter.end(meter.begin())
        assert cuda.synchronize.call_count == 2
        monkeypatch.delitem(sys.modules, "torch")
        meter.end(meter.begin())  # no torch loaded: nothing to wait for, nothing imported
    assert "torch" not in sys.modules


def test_counter_going_backwards_is_invalid(install: Callable[[FakeNvml], FakeNvml]) -> None:
    fake = install(FakeNvml([FakeGpu(energy_mj=9_000)]))
    with NvmlMeter(sync=lambda: None) as meter:
        window = meter.begin()
        fake.gpus[0].energy_mj = 10  # driver reloaded
        reading = meter.end(window)
    assert joules(reading) == {"gpu:0": 0.0}
    assert reading.invalid_samples == 1


def test_begin_opens_and_close_shuts_down(install: Callable[[FakeNvml], FakeNvml]) -> None:
    fake = install(FakeNvml([FakeGpu(energy_mj=None, power_w=80.0)]))
    meter = NvmlMeter(sync=lambda: fake.log("sync"))
    window = meter.begin()
    assert [t.name for t in threading.enumerate()].count("greenbench-nvml-poller") == 1
    threading.Event().wait(0.2)
    reading = meter.end(window)
    meter.close()
    meter.close()
    assert fake.initialised == 0
    assert "greenbench-nvml-poller" not in [t.name for t in threading.enumerate()]
    # constant 80 W: the integral is 80 W × the time its samples span, on the meter's own clock
    # reads (exactly; the fake's read times differ from those by scheduling latency, which a
    # loaded host stretches, so they are not the reference)
    span = reading.notes["power_span_s"]["gpu:0"]
    assert joules(reading)["gpu:0"] == pytest.approx(80.0 * span, rel=1e-9)
    first, last = edge_times(fake)
    assert 0 < span and 0 < last - first


# -- availability -------------------------------------------------------------------------


def test_probe_lists_gpus_and_their_source(install: Callable[[FakeNvml], FakeNvml]) -> None:
    fake = install(FakeNvml([FakeGpu(energy_mj=0), FakeGpu("Tesla K80", energy_mj=None)]))
    avail = NvmlMeter().probe()
    assert avail.ok
    assert avail.detail["gpus"] == [
        {"index": 0, "name": "NVIDIA A100-SXM4-40GB", "source": "nvml:total_energy"},
        {
            "index": 1,
            "name": "Tesla K80",
            "source": "nvml:power_polling@20Hz",
            "energy_counter_error": "Not Supported",
        },
    ]
    assert fake.initialised == 0  # probe leaves NVML as it found it


def test_library_not_found(install: Callable[[FakeNvml], FakeNvml]) -> None:
    real = FakeNvml([]).real
    install(FakeNvml([FakeGpu()], init_error=real.NVMLError_LibraryNotFound))
    meter = NvmlMeter()
    avail = meter.probe()
    assert avail.ok is False
    assert avail.reason == LIBRARY_NOT_FOUND
    with pytest.raises(MeterUnavailable, match="NVML library not found"):
        meter.begin()


def test_bindings_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml → ImportError
    avail = NvmlMeter().probe()
    assert avail.ok is False
    assert avail.reason.startswith(LIBRARY_NOT_FOUND)
    assert "pip install nvidia-ml-py" in avail.reason


def test_no_gpu(install: Callable[[FakeNvml], FakeNvml]) -> None:
    fake = install(FakeNvml([]))
    assert NvmlMeter().probe().reason == NO_GPU
    with pytest.raises(MeterUnavailable, match=NO_GPU):
        NvmlMeter().open()
    assert fake.initialised == 0


def test_gpu_index_out_of_range(install: Callable[[FakeNvml], FakeNvml]) -> None:
    install(FakeNvml([FakeGpu(), FakeGpu()]))
    avail = NvmlMeter(gpus=[0, 2]).probe()
    assert avail.ok is False
    assert avail.reason.startswith("GPU index 2 requested but NVML sees 2 GPU(s), indices 0–1")


def test_gpu_without_energy_or_power(install: Callable[[FakeNvml], FakeNvml]) -> None:
    fake = install(FakeNvml([FakeGpu("GeForce GT 710", energy_mj=None)]))
    fake.module.nvmlDeviceGetPowerUsage.side_effect = fake.real.NVMLError_NotSupported
    avail = NvmlMeter().probe()
    assert avail.ok is False
    assert avail.reason.startswith("GPU 0 (GeForce GT 710) reports neither energy (Not Supported)")


def test_nvml_error_while_listing_gpus(install: Callable[[FakeNvml], FakeNvml]) -> None:
    fake = install(FakeNvml([FakeGpu()]))
    fake.module.nvmlDeviceGetHandleByIndex.side_effect = fake.real.NVMLError_GpuIsLost
    avail = NvmlMeter().probe()
    assert avail.ok is False
    assert avail.reason == "NVML could not list or open the GPUs (GPU is lost); check them with `nvidia-smi`"
    assert fake.initialised == 0


def test_poll_rate_below_10_hz_is_rejected() -> None:
    with pytest.raises(ValueError, match="poll_hz"):
        NvmlMeter(poll_hz=5)


def test_window_token_keeps_counter_mj_and_polled_joules_in_separate_fields(
    install: Callable[[FakeNvml], FakeNvml],
) -> None:
    fake = install(FakeNvml([FakeGpu(energy_mj=2_000_000_123), FakeGpu("Tesla P100", None, 50.0)]))
    with NvmlMeter(sync=lambda: None) as meter:
        window = meter.begin()
        fake.gpus[0].energy_mj += 1  # type: ignore[operator]
        reading = meter.end(window)
    token = window.token
    assert token.counter_mj == {0: 2_000_000_123} and isinstance(token.counter_mj[0], int)  # NVML's mJ
    assert set(token.polled_j) == {1} and 0.0 <= token.polled_j[1] < 50.0  # joules integrated so far
    assert joules(reading)["gpu:0"] == 0.001  # one mJ, exact even on a counter at 2 MJ
