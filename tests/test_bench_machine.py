"""The machine line that every benchmark prints first."""

from __future__ import annotations

import platform
from datetime import date
from pathlib import Path

import pytest

from bench import machine

INTEL = """processor\t: 0
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 207
model name\t: Intel(R) Xeon(R) Processor
flags\t\t: fpu vme avx2 avx512f avx512_bf16 amx_bf16 amx_tile

processor\t: 1
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 207
model name\t: Intel(R) Xeon(R) Processor
flags\t\t: fpu vme avx2 avx512f avx512_bf16 amx_bf16 amx_tile
"""
AMD_WITHOUT_AVX512 = """processor\t: 0
cpu family\t: 23
model\t\t: 49
model name\t: AMD EPYC 7B12
flags\t\t: fpu sse avx avx2 fma
"""
ARM = """processor\t: 0
BogoMIPS\t: 50.00
Features\t: fp asimd evtstrm
CPU implementer\t: 0x41
"""


@pytest.mark.parametrize(("cpuinfo", "expected"), [
    (INTEL, "Intel(R) Xeon(R) Processor (family 6, model 207; AVX-512, AVX-512 BF16, AMX)"),
    (AMD_WITHOUT_AVX512, "AMD EPYC 7B12 (family 23, model 49; no AVX-512)"),
])
def test_the_cpu_is_named_with_its_model_and_bfloat16_instructions(tmp_path: Path, cpuinfo: str,
                                                                   expected: str) -> None:
    path = tmp_path / "cpuinfo"
    path.write_text(cpuinfo)
    assert machine.cpu_name(path) == expected


@pytest.mark.parametrize("cpuinfo", [None, ARM])
def test_without_a_model_name_the_cpu_is_named_by_python(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         cpuinfo: str | None) -> None:
    monkeypatch.setattr(platform, "processor", lambda: "arm")
    path = tmp_path / "cpuinfo"
    if cpuinfo is not None:
        path.write_text(cpuinfo)
    assert machine.cpu_name(path) == "arm"


def test_the_header_gives_the_day_the_cpu_the_cores_and_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(machine, "cpu_name", lambda: "Some CPU (family 1, model 2; no AVX-512)")
    monkeypatch.setattr(machine.env, "available_cores", lambda: 3)
    monkeypatch.setattr(machine.torch, "__version__", "9.9.9")
    assert machine.header() == f"{date.today()}, Some CPU (family 1, model 2; no AVX-512), 3 cores, torch 9.9.9"
