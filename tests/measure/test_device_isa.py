"""The CPU instruction set in the device fingerprint, read from a cpuinfo file."""

from __future__ import annotations

from pathlib import Path

from greenbench.measure.device import ISA_FLAGS, cpu_isa, fingerprint

X86 = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu vme sse4_2 avx avx2 fma f16c avx512f avx512bw avx512vl avx512_vnni avx512_bf16 \
amx_bf16 amx_tile amx_int8 avx_vnni ssse3

processor\t: 1
flags\t\t: fpu sse4_2
"""
ARM = """processor\t: 0
BogoMIPS\t: 50.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc \
dcpop asimddp i8mm bf16 sve
"""


def test_x86_flags_are_read_from_the_first_flags_line_in_a_fixed_order(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(X86)
    assert cpu_isa(cpuinfo) == [
        "sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
        "avx512_bf16", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16",
    ]  # fmt: skip


def test_arm_features_and_unreadable_files(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(ARM)
    assert cpu_isa(cpuinfo) == ["asimd", "asimddp", "asimdhp", "sve", "i8mm", "bf16"]
    assert cpu_isa(tmp_path / "missing") == []
    cpuinfo.write_text("processor\t: 0\n")
    assert cpu_isa(cpuinfo) == []


def test_fingerprint_records_this_machines_isa_outside_the_device_id() -> None:
    found = fingerprint()
    assert set(found["isa"]) <= set(ISA_FLAGS)
    assert found["isa"] == cpu_isa()
    assert "openvino" in found["versions"]
