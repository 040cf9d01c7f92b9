"""The toy part's networks: MLPs on 2D points, PacGAN's packing and maxout units; D's decision surface."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

LIMIT = 6.0  # the plane shown by default: [-LIMIT, LIMIT]^2


NORMS = {"batch": nn.BatchNorm1d, "layer": nn.LayerNorm, "none": None}


def toy_generator(noise_dim: int = 2, hidden: int = 64, layers: int = 3, norm: str = "batch") -> nn.Module:
    """An MLP from noise (N, noise_dim) to points (N, 2): ``layers`` hidden Linear-[norm]-ReLU blocks and a linear
    output (no tanh: the modes sit at +-4). ``norm``: "batch" (BatchNorm, which couples the samples of a batch),
    "layer" (LayerNorm, per sample) or "none"."""
    if min(noise_dim, hidden, layers) <= 0 or norm not in NORMS:
        raise ValueError(f"noise_dim, hidden and layers must be positive and norm one of {list(NORMS)}, got "
                         f"{noise_dim}, {hidden}, {layers}, {norm!r}")
    blocks: list[nn.Module] = []
    width = noise_dim
    for _ in range(layers):
        blocks += [nn.Linear(width, hidden), *([NORMS[norm](hidden)] if NORMS[norm] else []), nn.ReLU()]
        width = hidden
    blocks.append(nn.Linear(width, 2))
    return nn.Sequential(*blocks)


class Pack(nn.Module):
    """PacGAN's packing: concatenate groups of ``m`` consecutive samples, (N, d) -> (N / m, m * d)."""

    def __init__(self, m: int) -> None:
        super().__init__()
        if m < 1:
            raise ValueError(f"pack size must be at least 1, got {m}")
        self.m = m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] % self.m:
            raise ValueError(f"a batch of {x.shape[0]} samples cannot be packed in groups of {self.m}; "
                             f"use a batch size divisible by {self.m}")
        return x.reshape(x.shape[0] // self.m, -1)

    def extra_repr(self) -> str:
        return f"m={self.m}"


class Maxout(nn.Module):
    """Maxout units (Goodfellow et al. 2013): a linear map to ``out_features * pieces``, then the max of each
    group of ``pieces``. Each unit is a convex piecewise-linear function with ``pieces`` facets."""

    def __init__(self, in_features: int, out_features: int, pieces: int) -> None:
        super().__init__()
        self.pieces = pieces
        self.linear = nn.Linear(in_features, out_features * pieces)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # max(...).values rather than amax: its backward sends each gradient to the winning piece by its saved index
        return self.linear(x).unflatten(-1, (-1, self.pieces)).max(-1).values


def toy_discriminator(hidden: int = 64, layers: int = 3, maxout: int = 0, pack: int = 1) -> nn.Module:
    """An MLP scoring points (N, 2); returns logits (N / pack, 1).

    Hidden layers are Linear + LeakyReLU(0.2), or, with ``maxout`` = k > 0, maxout units of k pieces (PacGAN's
    discriminator units). With ``pack`` = m > 1 it is a PacGAN discriminator that judges m samples at once (all
    real or all fake), so a generator that repeats itself is easier to catch; N must be divisible by m.
    """
    if min(hidden, layers) <= 0 or maxout < 0:
        raise ValueError(f"hidden and layers must be positive and maxout >= 0, got {hidden}, {layers}, {maxout}")
    blocks: list[nn.Module] = [Pack(pack)] if pack > 1 else []
    width = 2 * pack
    for _ in range(layers):
        blocks += [Maxout(width, hidden, maxout)] if maxout else [nn.Linear(width, hidden), nn.LeakyReLU(0.2)]
        width = hidden
    blocks.append(nn.Linear(width, 1))
    return nn.Sequential(*blocks)


def pack_size(D: nn.Module) -> int:
    """How many samples ``D`` packs into one input (1 for an ordinary discriminator)."""
    return next((m.m for m in D.modules() if isinstance(m, Pack)), 1)


def surface_grid(n: int = 121, limit: float = LIMIT) -> tuple[np.ndarray, np.ndarray]:
    """The (n, n) meshgrid X, Y over [-limit, limit]^2 on which decision surfaces are evaluated."""
    axis = np.linspace(-limit, limit, n, dtype=np.float32)
    return np.meshgrid(axis, axis)


def point_logits(D: nn.Module, points: torch.Tensor) -> torch.Tensor:
    """D's logit for each point of ``points`` (N, 2), shape (N,). A packed D scores a pack of m copies of a point."""
    return D(points.repeat_interleave(pack_size(D), dim=0)).reshape(len(points))


@torch.no_grad()
def decision_surface(D: nn.Module, n: int = 121, limit: float = LIMIT) -> np.ndarray:
    """sigmoid(D(x)) on ``surface_grid(n, limit)``, shape (n, n)."""
    X, Y = surface_grid(n, limit)
    points = torch.from_numpy(np.stack([X.ravel(), Y.ravel()], 1))
    return torch.sigmoid(point_logits(D, points)).reshape(n, n).numpy()
