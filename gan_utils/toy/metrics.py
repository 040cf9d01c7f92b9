"""The toy part's measures: mode coverage and quality (the VEEGAN / PacGAN 2D-grid protocol), and their summary
over seeds."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

import gan_pytorch as gp

if TYPE_CHECKING:
    from gan_utils.toy.training import ToyRun

PACGAN4 = {"modes": 24.8, "high_quality": 0.936, "reverse_kl": 0.04}  # PacGAN paper, Table 1 (2D grid)
METRICS = ("modes", "high_quality", "reverse_kl")
# The best score on each metric (every mode, every sample high quality, the modes filled evenly): what bounds how
# far any method can gain over a baseline
BEST = {"modes": float(len(gp.Toy2dGridGaussiansDataset.GRID) ** 2), "high_quality": 1.0, "reverse_kl": 0.0}
N_EVAL = 2500  # generated samples per evaluation, as in VEEGAN / PacGAN


def mode_metrics(samples: np.ndarray | torch.Tensor, dataset: gp.Toy2dGridGaussiansDataset,
                 threshold: float = 3.0) -> dict[str, float]:
    """Mode-collapse metrics of the VEEGAN / PacGAN 2D-grid protocol, as in PacGAN's released code.

    Each sample is assigned to its nearest mode, and is *high quality* if it lies within ``threshold``
    standard deviations (3 * 0.05 = 0.15) of that mode's mean.

    - modes: the number of modes with at least one high-quality sample assigned (of 25).
    - high_quality: the fraction of all samples that are high quality, in [0, 1].
    - reverse_kl: KL(p || u) = sum_k p_k log(p_k K), with p the histogram of the high-quality samples over the
      K modes (normalised) and u the true, uniform mode distribution. Empty bins add 0 (0 log 0 = 0), so all
      modes equally hit gives 0 and one mode only gives log 25 = 3.22. NaN if no sample is high quality.
    """
    x = torch.as_tensor(np.asarray(samples), dtype=torch.float32)
    if x.ndim != 2 or x.shape[1] != 2 or len(x) == 0:
        raise ValueError(f"samples must have shape (N, 2) with N > 0, got {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError("samples contain NaN or inf: the generator diverged")
    modes = dataset.modes.float()
    nearest_dist, nearest = torch.cdist(x, modes).min(dim=1)
    good = nearest_dist < threshold * dataset.std
    counts = torch.bincount(nearest[good], minlength=len(modes)).double()
    if counts.sum() == 0:
        kl = math.nan
    else:
        p = counts[counts > 0] / counts.sum()
        kl = float((p * torch.log(p * len(modes))).sum())
    return {"modes": float((counts > 0).sum()), "high_quality": float(good.double().mean()), "reverse_kl": kl}


def summarize(runs: Sequence[ToyRun]) -> dict[str, tuple[float, float]]:
    """Mean and standard deviation (over runs, ddof=0) of each metric, of G's gradient norm ("g_grad", averaged
    over each run after D's head start), and of "seconds" and "cpu_seconds". A reverse KL that is undefined (no
    high-quality sample) is left out of its mean."""
    if not runs:
        raise ValueError("no runs to summarize")
    out = {}
    for key in (*METRICS, "g_grad", "seconds", "cpu_seconds"):
        values = np.array([r.metrics[key] if key in METRICS else r.mean_g_grad if key == "g_grad" else
                           getattr(r, key) for r in runs], dtype=float)
        finite = values[np.isfinite(values)]
        out[key] = (float(finite.mean()), float(finite.std())) if len(finite) else (math.nan, math.nan)
    return out


def format_table(results: Mapping[str, Sequence[ToyRun]], reference: bool = True, gradient: bool = False) -> str:
    """A markdown table with one row per method: mean ± std of each metric over its runs (and of G's gradient norm
    with ``gradient``); PacGAN4's published row last with ``reference``."""
    head = "| method | runs | modes (of 25) | high quality (%) | reverse KL |" + (" G's gradient norm |" if gradient
                                                                                   else "") + " s / run |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for name, runs in results.items():
        s = summarize(runs)
        grad = f" {s['g_grad'][0]:.2g} ± {s['g_grad'][1]:.1g} |" if gradient else ""
        lines.append(f"| {name} | {len(runs)} | {s['modes'][0]:.1f} ± {s['modes'][1]:.1f} "
                     f"| {100 * s['high_quality'][0]:.1f} ± {100 * s['high_quality'][1]:.1f} "
                     f"| {s['reverse_kl'][0]:.3f} ± {s['reverse_kl'][1]:.3f} |{grad} {s['seconds'][0]:.1f} |")
    if reference:
        lines.append(f"| PacGAN4 (paper; 400 epochs on a GPU) | 10 | {PACGAN4['modes']} "
                     f"| {100 * PACGAN4['high_quality']:.1f} | {PACGAN4['reverse_kl']:.2f} |"
                     + (" - |" if gradient else "") + " - |")
    return "\n".join(lines)


def gain_text(baseline: Sequence[ToyRun], remedy: Sequence[ToyRun]) -> str:
    """The remedy's gain on each metric, in its own units and in standard deviations across seeds (the larger of the
    two methods' standard deviations, so that a gain of k is at least k spreads of either), beside the most that any
    remedy could gain in those units against this baseline: a perfect one (``BEST`` on every seed, so no spread of
    its own) gains |best - baseline mean| / baseline std. A metric whose baseline spreads widely toward its best
    value cannot show a gain of many standard deviations, however good the remedy. With one run of either method
    there is no spread to compare with, and the text says so."""
    b, r = summarize(baseline), summarize(remedy)
    parts = []
    for key, scale, unit in (("modes", 1, " modes"), ("high_quality", 100, " points"), ("reverse_kl", 1, "")):
        diff = (r[key][0] - b[key][0]) * scale
        spread = max(b[key][1], r[key][1]) * scale
        if min(len(baseline), len(remedy)) < 2:
            sds = "one run: no spread across seeds"
        elif spread > 0 and math.isfinite(spread):
            sds = f"{abs(diff) / spread:.1f} standard deviations"
            if b[key][1] > 0:
                sds += f"; at most {abs(BEST[key] - b[key][0]) / b[key][1]:.1f} for any remedy"
        else:
            sds = "no spread across seeds"
        parts.append(f"{key.replace('_', ' ')} {diff:+.2f}{unit} ({sds})")
    return "gain of the remedy over the baseline: " + "; ".join(parts)
