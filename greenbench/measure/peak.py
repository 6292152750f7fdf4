"""This device's peak arithmetic throughput: the ceiling of the leaderboard's roofline column.

- fp32: dense matrix products ``n × n`` by ``n × n`` in torch (``torch.mm``, which calls the
  BLAS torch was built with) at an explicit thread count; GFLOP/s = 2 n³ × calls ÷ seconds ÷ 10⁹.
- int8: the same product as an ONNX ``MatMulInteger`` (uint8 × int8 → int32) run by ONNX
  Runtime's CPU provider, whose kernels use VNNI/AMX instructions where the CPU has them;
  GOP/s counted the same way. Measured only where ``/proc/cpuinfo`` lists an int8 dot-product
  flag (``INT8_FLAGS``); elsewhere it is None and ``int8_note`` says why.

Each figure is the median of ``repeats`` timed windows of about ``duration_s / repeats`` seconds
each, after one untimed warm-up call: a host whose speed moves shows up as spread, not as a
single lucky number. A measured peak is what these kernels reach here, not the vendor's
theoretical figure; achieved ÷ peak above 100 % can happen for a model whose kernels beat a
plain matmul (or when the host was busier while the peak was measured).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

#: cpuinfo flags of an int8 dot-product unit: x86 VNNI (AVX-512 or AVX), AMX, Arm dot product / i8mm
INT8_FLAGS = ("avx512_vnni", "avx_vnni", "avx_vnni_int8", "amx_int8", "asimddp", "i8mm")


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The CPU's feature flags (x86 ``flags``, Arm ``Features``); empty when unreadable."""
    try:
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("flags", "Features"):
                return set(value.split())
    except OSError:
        pass
    return set()


def _median_rate(call: Callable[[], object], ops: float, duration_s: float, repeats: int) -> float:
    """Median of ``repeats`` windows of ops per second (each window: calls until its time is up)."""
    call()  # warm-up: thread pools, allocations, kernel selection
    window_s = duration_s / repeats
    rates = []
    for _ in range(repeats):
        calls, start = 0, time.perf_counter()
        while True:
            call()
            calls += 1
            elapsed = time.perf_counter() - start
            if elapsed >= window_s:
                break
        rates.append(ops * calls / elapsed)
    return statistics.median(rates)


def fp32_peak_gflops(threads: int, n: int = 1024, duration_s: float = 3.0, repeats: int = 5) -> float:
    """fp32 GFLOP/s of ``n × n`` matrix products in torch on ``threads`` CPU threads."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        gen = torch.Generator().manual_seed(0)
        a = torch.rand(n, n, generator=gen, dtype=torch.float32)
        b = torch.rand(n, n, generator=gen, dtype=torch.float32)
        out = torch.empty(n, n, dtype=torch.float32)
        with torch.inference_mode():
            rate = _median_rate(lambda: torch.mm(a, b, out=out), 2.0 * n**3, duration_s, repeats)
    finally:
        torch.set_num_threads(before)
    return rate / 1e9


def _matmul_integer_model(n: int) -> bytes:
    """An ONNX graph ``Y = MatMulInteger(A: uint8[n, n], B: int8[n, n] constant)`` (int32 out)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    b = numpy_helper.from_array(rng.integers(-127, 128, size=(n, n), dtype=np.int8), name="B")
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["A", "B"], ["Y"])],
        "int8_peak",
        [helper.make_tensor_value_info("A", TensorProto.UINT8, [n, n])],
        [helper.make_tensor_value_info("Y", TensorProto.INT32, [n, n])],
        initializer=[b],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    return model.SerializeToString()


def int8_peak_gops(threads: int, n: int = 1024, duration_s: float = 3.0, repeats: int = 5) -> float:
    """int8 GOP/s of ``n × n`` ``MatMulInteger`` products in ONNX Runtime on ``threads`` threads
    (intra-op threads not spinning, as greenbench's measurements default to)."""
    import numpy as np
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(_matmul_integer_model(n), opts, providers=["CPUExecutionProvider"])
    a = np.random.default_rng(1).integers(0, 256, size=(n, n), dtype=np.uint8)
    return _median_rate(lambda: session.run(None, {"A": a}), 2.0 * n**3, duration_s, repeats) / 1e9


def measure_peak(
    threads: int,
    n: int = 1024,
    duration_s: float = 3.0,
    repeats: int = 5,
    cpuinfo: Path = Path("/proc/cpuinfo"),
) -> dict[str, Any]:
    """This CPU's peak as ``Store.save_device_peak`` keeps it: ``fp32_gflops_per_s``,
    ``int8_gops_per_s`` (None where the CPU has no int8 dot-product unit; ``int8_note`` says
    why or which flags), ``threads``, ``method``, ``measured_at`` (UTC), ``matrix_n``, ``repeats``,
    ``duration_s`` (per precision)."""
    if threads < 1 or n < 1 or duration_s <= 0 or repeats < 1:
        raise ValueError("threads, n and repeats must be at least 1 and duration_s positive")
    flags = sorted(cpu_flags(cpuinfo) & set(INT8_FLAGS))
    fp32 = fp32_peak_gflops(threads, n, duration_s, repeats)
    int8: float | None = None
    if flags:
        int8 = int8_peak_gops(threads, n, duration_s, repeats)
        note = f"measured: the CPU lists {', '.join(flags)}"
    else:
        note = (
            f"skipped: {cpuinfo} lists none of {', '.join(INT8_FLAGS)}, so int8 kernels would run "
            f"without a dot-product unit and the figure would not be a peak"
        )
    return {
        "fp32_gflops_per_s": fp32,
        "int8_gops_per_s": int8,
        "int8_note": note,
        "threads": threads,
        "matrix_n": n,
        "repeats": repeats,
        "duration_s": duration_s,
        "method": (
            f"median of {repeats} windows over {duration_s:g} s of {n}x{n} products on {threads} "
            f"thread(s): fp32 torch.mm; int8 ONNX Runtime MatMulInteger (uint8 x int8); "
            f"ops = 2 n^3 per product"
        ),
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
