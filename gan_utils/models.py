"""The GANs the command-line scripts can train: the assignment's three and a wider seed-style MLP GAN.

Each entry names how to build D and G, which losses to train them with and the optimizer defaults.
The assignment's nets and losses come from ``gan_pytorch``; only the wide MLP GAN is defined here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

import gan_pytorch as gp

IMG_SHAPE = (1, 28, 28)  # MNIST; every model here makes 28x28 single-channel images


@dataclass(frozen=True)
class ModelSpec:
    """How to build and train one GAN."""

    name: str
    help: str
    build_d: Callable[[float], nn.Module]  # dropout -> discriminator
    build_g: Callable[[int], nn.Module]  # latent_dim -> generator returning (N, 784) in [-1, 1]
    d_loss: gp.LossFn
    g_loss: gp.LossFn
    logits: bool  # D returns logits (BCE) rather than LSGAN scores
    latent_dim: int
    lr: float
    b1: float
    b2: float
    dropout: bool = False  # whether D takes a dropout probability


def wide_discriminator(dropout: float = 0.0) -> nn.Module:
    """D 784-1024-512-256-1 with LeakyReLU(0.2), as in the popular PyTorch-GAN ``gan.py``; returns logits."""
    layers: list[nn.Module] = [nn.Flatten()]
    for fan_in, fan_out in ((784, 1024), (1024, 512), (512, 256)):
        layers += [nn.Linear(fan_in, fan_out), nn.LeakyReLU(0.2)]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(256, 1))
    return nn.Sequential(*layers)


def wide_generator(latent_dim: int = 100) -> nn.Module:
    """G latent-128-256-512-1024-784 with ReLU and a Tanh output."""
    widths = (latent_dim, 128, 256, 512, 1024)
    layers: list[nn.Module] = []
    for fan_in, fan_out in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
    layers += [nn.Linear(1024, 784), nn.Tanh()]
    return nn.Sequential(*layers)


def _no_dropout(build: Callable[[], nn.Module]) -> Callable[[float], nn.Module]:
    return lambda dropout: build()


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec("mlp", "the assignment's vanilla GAN (MLP D and G, BCE losses)",
                  _no_dropout(gp.discriminator), gp.generator, gp.discriminator_loss, gp.generator_loss,
                  logits=True, latent_dim=gp.NOISE_DIM, lr=1e-3, b1=0.5, b2=0.999),
        ModelSpec("lsgan", "the assignment's least-squares GAN (same nets, least-squares losses)",
                  _no_dropout(gp.discriminator), gp.generator, gp.ls_discriminator_loss, gp.ls_generator_loss,
                  logits=False, latent_dim=gp.NOISE_DIM, lr=1e-3, b1=0.5, b2=0.999),
        ModelSpec("dcgan", "the assignment's DCGAN (InfoGAN's conv D and G, BCE losses)",
                  _no_dropout(gp.build_dc_classifier), gp.build_dc_generator, gp.discriminator_loss,
                  gp.generator_loss, logits=True, latent_dim=gp.NOISE_DIM, lr=1e-3, b1=0.5, b2=0.999),
        ModelSpec("mlp-wide", "the seed-style MLP GAN: G 100-128-256-512-1024-784, D 784-1024-512-256-1",
                  wide_discriminator, wide_generator, gp.discriminator_loss, gp.generator_loss,
                  logits=True, latent_dim=100, lr=2e-4, b1=0.5, b2=0.999, dropout=True),
    )
}


@dataclass
class GAN:
    """Built networks, optimizers and the trainer that steps them."""

    spec: ModelSpec
    D: nn.Module
    G: nn.Module
    D_solver: torch.optim.Optimizer
    G_solver: torch.optim.Optimizer
    trainer: gp.GANTrainer


def build(name: str, latent_dim: int, lr: float, b1: float, b2: float, dropout: float = 0.0,
          device: torch.device | str = "cpu", seed: int | None = None) -> GAN:
    """Build model ``name`` on ``device`` with Adam(lr, (b1, b2)) for both nets; ``seed`` fixes the weights.

    Adam is the fused implementation where PyTorch has one (CPU, CUDA): the same update as the
    notebook's ``get_optimizer`` up to float rounding.
    """
    spec = MODELS[name]
    if seed is not None:
        torch.manual_seed(seed)
    D = spec.build_d(dropout).to(device)
    G = spec.build_g(latent_dim).to(device)
    # The fused kernel updates all parameters in one pass: ~20% faster steps on a CPU for the wide MLP.
    fused = torch.device(device).type in ("cpu", "cuda")
    D_solver = torch.optim.Adam(D.parameters(), lr=lr, betas=(b1, b2), fused=fused)
    G_solver = torch.optim.Adam(G.parameters(), lr=lr, betas=(b1, b2), fused=fused)
    trainer = gp.GANTrainer(D, G, D_solver, G_solver, spec.d_loss, spec.g_loss, noise_dim=latent_dim,
                            logits=spec.logits)
    return GAN(spec, D, G, D_solver, G_solver, trainer)
