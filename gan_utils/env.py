"""Where and how the code runs: smoke mode, threads, the device, bfloat16, the images folder.

Smoke mode (environment variable ``GAN_SMOKE=1``) cuts every training run to ``SMOKE_ITERATIONS`` iterations, so
that the whole notebook runs in a minute and still draws every figure. ``GAN_BF16=0`` trains the MNIST GANs in
float32 even where the machine supports bfloat16 (``use_bfloat16``).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

IMAGE_DIR = Path(__file__).resolve().parent.parent / "images"
SMOKE_ITERATIONS = 20


def is_smoke() -> bool:
    """True when the environment variable GAN_SMOKE is set (to anything but 0)."""
    return os.environ.get("GAN_SMOKE", "") not in ("", "0")


def iterations(n: int) -> int:
    """``n`` training iterations, or ``SMOKE_ITERATIONS`` in smoke mode (if fewer)."""
    return min(n, SMOKE_ITERATIONS) if is_smoke() else n


def image_path(name: str) -> Path:
    """``images/<name>.png``: where the notebook's figures and sample grids go."""
    return IMAGE_DIR / f"{name}.png"


def available_cores() -> int:
    """Cores this process may run on (``sched_getaffinity`` sees container limits, ``cpu_count`` does not)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def requested_threads() -> int | None:
    """The threads that the environment variable GAN_THREADS asks for (None if unset or empty).

    Raises ValueError if it is set to anything but a positive whole number."""
    value = os.environ.get("GAN_THREADS", "")
    if not value:
        return None
    if not (value.isascii() and value.isdigit() and int(value) > 0):
        raise ValueError(f"GAN_THREADS must be a positive whole number of threads, got {value!r}")
    return int(value)


def set_threads(n: int | None = None) -> int:
    """Set torch's intra-op threads: ``n``, else $GAN_THREADS (``requested_threads``), else one per available
    core; returns the count.

    On a machine shared with other busy processes, fewer threads than cores is often faster (threads that wait
    for each other get descheduled): try GAN_THREADS=1 there.
    """
    if n is None:
        n = requested_threads()
    torch.set_num_threads(max(1, n or available_cores()))
    return torch.get_num_threads()


def pick_device(name: str = "auto") -> torch.device:
    """"auto": CUDA if there is one, else Apple's MPS, else the CPU. Any other name must be a device that exists.

    Raises ValueError naming the problem (an unknown name, or CUDA/MPS missing on this machine).
    """
    mps = getattr(torch.backends, "mps", None)
    has_mps = mps is not None and mps.is_available()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"{name!r} is not a device name (try auto, cpu, cuda, cuda:1, mps)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{name}: CUDA is not available on this machine")
    if device.type == "mps" and not has_mps:
        raise ValueError(f"{name}: MPS is not available on this machine")
    return device


def supports_bfloat16(device: torch.device | str) -> bool:
    """Whether bfloat16 autocast speeds up this device: CUDA with bf16 support, or a CPU with AVX-512 BF16 or
    AMX instructions (without them a CPU emulates bfloat16, slower than float32)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")  # private, hence looked up with care
        return any(getattr(torch.cpu, name, lambda: False)() for name in probes)
    return False


def use_bfloat16(device: torch.device | str) -> bool:
    """Whether the MNIST GANs train in bfloat16 on ``device``: where it ``supports_bfloat16``, unless the environment
    variable GAN_BF16 is 0 (float32 everywhere, as on a machine without it; unset or 1: where supported).

    Raises ValueError if GAN_BF16 is set to anything else."""
    value = os.environ.get("GAN_BF16", "")
    if value not in ("", "0", "1"):
        raise ValueError(f"GAN_BF16 must be 0 (train in float32) or 1 (bfloat16 where supported), got {value!r}")
    return value != "0" and supports_bfloat16(device)
