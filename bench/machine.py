"""The line each benchmark prints first: the day and the machine, so that every figure names where it came from; and
how a benchmark that reads MNIST ends when the files are missing (``run``)."""

from __future__ import annotations

import platform
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path

import torch

from gan_utils import env
from gan_utils.data import MNISTDataError

# the instruction sets that decide how fast bfloat16 runs on a CPU (see gan_utils.env.supports_bfloat16)
BFLOAT16_FLAGS = {"avx512f": "AVX-512", "avx512_bf16": "AVX-512 BF16", "amx_bf16": "AMX"}


def cpu_name(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU as Linux's ``cpuinfo`` describes its first core, with the family and model numbers (which tell apart
    CPUs that share a marketing name) and which of AVX-512, AVX-512 BF16 and AMX it has, e.g.
    "Intel(R) Xeon(R) Processor (family 6, model 207; AVX-512, AVX-512 BF16, AMX)". Without that file (macOS,
    Windows) or a model name in it (ARM), Python's name for the processor."""
    try:
        first_core = cpuinfo.read_text().strip().split("\n\n")[0]
    except OSError:
        first_core = ""
    fields = dict((key.strip(), value.strip()) for key, _, value in
                  (line.partition(":") for line in first_core.splitlines()))
    name = fields.get("model name") or platform.processor() or platform.machine()
    details = []
    if "cpu family" in fields and "model" in fields:
        details.append(f"family {fields['cpu family']}, model {fields['model']}")
    if "flags" in fields:
        flags = set(fields["flags"].split())
        details.append(", ".join(label for flag, label in BFLOAT16_FLAGS.items() if flag in flags) or "no AVX-512")
    return f"{name} ({'; '.join(details)})" if details else name


def header() -> str:
    """Today's date, the CPU (``cpu_name``), the cores this process may use and torch's version."""
    return f"{date.today()}, {cpu_name()}, {env.available_cores()} cores, torch {torch.__version__}"


def run(main: Callable[[], object], script: str) -> None:
    """Call a benchmark's ``main``; missing or corrupt MNIST files end it with one line that says where to put them
    (after the script's name), without a traceback."""
    try:
        main()
    except MNISTDataError as error:
        sys.exit(f"{Path(script).name}: {error}")
