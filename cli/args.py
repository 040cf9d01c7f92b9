"""argparse helpers shared by train.py and inference.py: one-line errors with exit status 2, checked values."""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

import torch

from gan_utils import env


class Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line (no usage block) and exits with status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


class ConfigError(ValueError):
    """A flag value that cannot work; the message is one line naming the flag."""


def _checked(text: str, cast: type, ok, what: str):
    """``cast(text)`` if ``ok`` of it, else an argparse error saying ``what`` was expected."""
    try:
        value = cast(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer > 0."""
    return _checked(text, int, lambda v: v > 0, "a positive integer")


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _checked(text, int, lambda v: v >= 0, "a whole number >= 0")


def positive_float(text: str) -> float:
    """argparse type: a finite float > 0."""
    return _checked(text, float, lambda v: 0 < v < math.inf, "a positive number")


def unit_interval(text: str) -> float:
    """argparse type: a float in [0, 1)."""
    return _checked(text, float, lambda v: 0 <= v < 1, "a number in [0, 1)")


def open_unit_interval(text: str) -> float:
    """argparse type: a float in (0, 1)."""
    return _checked(text, float, lambda v: 0 < v < 1, "a number in (0, 1)")


def device(name: str) -> torch.device:
    """The --device flag: ``gan_utils.env.pick_device``, its ValueError as a ConfigError naming the flag."""
    try:
        return env.pick_device(name)
    except ValueError as exc:
        raise ConfigError(f"--device {exc}") from None


def bfloat16_here(run_device: torch.device) -> bool:
    """Whether a fresh run may train in bfloat16 on ``run_device``: ``gan_utils.env.use_bfloat16``, its ValueError
    (GAN_BF16 set to something unknown) as a ConfigError."""
    try:
        return env.use_bfloat16(run_device)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def check_writable(path: Path, flag: str) -> Path:
    """Check, before any work is done and without creating anything, that ``path`` is or can become a folder
    this process can write in."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise ConfigError(f"{flag} {path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag} {path}: {existing} is not writable")
    return path
