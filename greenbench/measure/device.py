"""Device fingerprint: what the numbers were measured on, and a stable id for that device."""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
import socket
import sys
from pathlib import Path
from typing import Any

#: libraries that shape the numbers whatever the task (each task adds its framework: ``packages``)
LIBRARIES = ("torch", "torchvision", "numpy", "onnxruntime", "openvino", "codecarbon")
#: CPU instruction-set extensions that decide what int8 and bf16 inference can gain (x86 and Arm
#: names as /proc/cpuinfo spells them): VNNI speeds up int8 dot products, AMX tiles int8 and
#: bf16 matrix products, AVX512_BF16 converts and multiplies bf16
ISA_FLAGS = (
    "sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
    "avx512_bf16", "avx512_fp16", "avx_vnni", "avx_vnni_int8", "amx_tile", "amx_int8", "amx_bf16",
    "amx_fp16", "asimd", "asimddp", "asimdhp", "sve", "sve2", "i8mm", "bf16",
)  # fmt: skip


def _cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_isa(cpuinfo: Path = Path("/proc/cpuinfo")) -> list[str]:
    """The ``ISA_FLAGS`` this CPU has, in that order, from the first ``flags`` (x86) or
    ``Features`` (Arm) line of ``cpuinfo``; empty where it cannot be read."""
    try:
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("flags", "Features"):
                have = set(value.split())
                return [flag for flag in ISA_FLAGS if flag in have]
    except OSError:
        pass
    return []


def _ram_gib(meminfo: Path = Path("/proc/meminfo")) -> float:
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    return 0.0


def task_packages() -> list[str]:
    """The frameworks of every installed task (``Task.packages``), each once, in task order."""
    from greenbench.errors import GreenbenchError
    from greenbench.tasks import task_class, task_names

    found: list[str] = []
    for name in task_names():
        try:
            packages = task_class(name).packages
        except GreenbenchError:  # a broken plugin: its versions are not ours to report
            continue
        found += [p for p in packages if p not in found and p not in LIBRARIES]
    return found


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries that shape the numbers (absent ones omitted)."""
    import greenbench

    versions = {"python": platform.python_version(), "greenbench": greenbench.__version__}
    for name in (*LIBRARIES, *task_packages()):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def git_commit(folder: Path) -> str | None:
    """The commit checked out in the git work tree holding ``folder`` (``+dirty`` if modified)."""
    import subprocess

    try:
        head = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(folder), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def gpu_names(device: str) -> list[str]:
    """Names of the CUDA GPUs when ``device`` is a CUDA device (torch imported only then)."""
    if not device.startswith("cuda"):
        return []
    import torch

    if not torch.cuda.is_available():
        return []
    return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]


def fingerprint(device: str = "cpu", threads: int | None = None) -> dict[str, Any]:
    """The device fingerprint stored with every record.

    ``device_id`` hashes only hardware (CPU model, logical cores, RAM, architecture, GPUs), so
    it is stable across reboots, library upgrades and identical machines of one type.
    """
    hw = {
        "cpu_model": _cpu_model(),
        "logical_cores": os.cpu_count() or 0,
        "ram_gib": _ram_gib(),
        "arch": platform.machine(),
        "gpus": gpu_names(device),
    }
    digest = hashlib.sha256(repr(sorted(hw.items())).encode()).hexdigest()[:12]
    return {
        "device_id": f"{platform.machine()}-{digest}",
        **hw,
        "device": device,
        "isa": cpu_isa(),  # not in device_id: the CPU model already names it
        "threads_used": threads,
        "hostname": socket.gethostname(),
        "os": f"{platform.system()} {platform.release()}",
        "python": sys.version.split()[0],
        "versions": library_versions(),
    }
