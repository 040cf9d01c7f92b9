"""Generative Adversarial Networks in PyTorch.

Write your code where a function reads ``# YOUR CODE HERE`` (and delete the ``raise NotImplementedError``
below it). Every function states the shapes it takes and returns; the notebook's check cells, and
``pytest``, compare your code with reference arrays in ``gan-checks.npz``.

Conventions: images are flattened to 784 values in [-1, 1]; a discriminator returns one raw score
(a logit) per image, of shape (N, 1); noise vectors have ``noise_dim`` entries drawn uniformly from
[-1, 1].
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import nn

NOISE_DIM = 96  # the size of the generator's input
LEARNING_RATE = 1e-3  # Adam's settings for every network (CS231n's; beta1 = 0.5 as in DCGAN)
BETAS = (0.5, 0.999)

LossFn = Callable[..., torch.Tensor]


def sample_noise(batch_size: int, dim: int, seed: int | None = None) -> torch.Tensor:
    """Draw a batch of noise vectors, uniform on [-1, 1], with torch's random number generator.

    Inputs:
    - batch_size: N, the number of vectors.
    - dim: D, the size of each vector.
    - seed: if given, torch's generator is seeded with it first, so the same seed returns the same noise.

    Returns: float32 tensor of shape (N, D) with values in [-1, 1].
    """
    if seed is not None:
        torch.manual_seed(seed)
    ### BEGIN SOLUTION
    return torch.rand(batch_size, dim) * 2 - 1
    ### END SOLUTION


def discriminator(seed: int | None = None) -> nn.Module:
    """The vanilla GAN discriminator, an MLP.

    Architecture: Flatten, Linear(784, 256), LeakyReLU(0.01), Linear(256, 256), LeakyReLU(0.01),
    Linear(256, 1).

    Input: images of shape (N, 784) or (N, 1, 28, 28). Output: logits of shape (N, 1).
    ``seed`` (if given) makes the initial weights reproducible.
    """
    if seed is not None:
        torch.manual_seed(seed)
    ### BEGIN SOLUTION
    model = nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, 256),
        nn.LeakyReLU(0.01),
        nn.Linear(256, 256),
        nn.LeakyReLU(0.01),
        nn.Linear(256, 1),
    )
    return model
    ### END SOLUTION


def generator(noise_dim: int = NOISE_DIM, seed: int | None = None) -> nn.Module:
    """The vanilla GAN generator, an MLP.

    Architecture: Linear(noise_dim, 1024), ReLU, Linear(1024, 1024), ReLU, Linear(1024, 784), Tanh.

    Input: noise of shape (N, noise_dim). Output: images of shape (N, 784) with values in [-1, 1].
    ``seed`` (if given) makes the initial weights reproducible.
    """
    if seed is not None:
        torch.manual_seed(seed)
    ### BEGIN SOLUTION
    model = nn.Sequential(
        nn.Linear(noise_dim, 1024),
        nn.ReLU(),
        nn.Linear(1024, 1024),
        nn.ReLU(),
        nn.Linear(1024, 784),
        nn.Tanh(),
    )
    return model
    ### END SOLUTION


def bce_loss(input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy, computed from logits in a numerically stable way.

    For a logit s and target y in {0, 1}, with sigmoid(s) the predicted probability:

        loss(s, y) = -[ y log sigmoid(s) + (1 - y) log(1 - sigmoid(s)) ]
                   = max(s, 0) - s y + log(1 + exp(-|s|))

    The second form never overflows, even at logits of +-1000.

    Inputs:
    - input: logits, a tensor of any shape.
    - target: a tensor of the same shape with values 0 or 1.

    Returns: a scalar tensor, the mean of loss(s, y) over all elements.
    """
    ### BEGIN SOLUTION
    loss = input.clamp(min=0) - input * target + torch.log1p(torch.exp(-input.abs()))
    return loss.mean()
    ### END SOLUTION


def discriminator_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """The discriminator's loss: real images should be called real (1), fakes fake (0).

        L_D = - E_x[log D(x)] - E_z[log(1 - D(G(z)))]

    Each expectation is a mean over its own batch, and the two terms are summed (not averaged).

    Inputs:
    - logits_real: (N, 1) discriminator logits on real images.
    - logits_fake: (N, 1) discriminator logits on generated images.

    Returns: a scalar tensor.
    """
    ### BEGIN SOLUTION
    return (bce_loss(logits_real, torch.ones_like(logits_real))
            + bce_loss(logits_fake, torch.zeros_like(logits_fake)))
    ### END SOLUTION


def generator_loss(logits_fake: torch.Tensor) -> torch.Tensor:
    """The non-saturating generator loss, L_G = - E_z[log D(G(z))].

    Input: logits_fake, (N, 1) discriminator logits on generated images.
    Returns: a scalar tensor.
    """
    ### BEGIN SOLUTION
    return bce_loss(logits_fake, torch.ones_like(logits_fake))
    ### END SOLUTION


def generator_loss_saturating(logits_fake: torch.Tensor) -> torch.Tensor:
    """The original minimax generator loss, L_G = E_z[log(1 - D(G(z)))], which the generator minimises.

    Its gradient vanishes when the discriminator confidently rejects the fakes (D(G(z)) near 0).

    Input: logits_fake, (N, 1) discriminator logits on generated images.
    Returns: a scalar tensor (always <= 0).
    """
    ### BEGIN SOLUTION
    return -bce_loss(logits_fake, torch.zeros_like(logits_fake))
    ### END SOLUTION


def ls_discriminator_loss(scores_real: torch.Tensor, scores_fake: torch.Tensor) -> torch.Tensor:
    """The least-squares GAN discriminator loss:

        L_D = 1/2 E_x[(D(x) - 1)^2] + 1/2 E_z[D(G(z))^2]

    Inputs:
    - scores_real: (N, 1) discriminator scores on real images.
    - scores_fake: (N, 1) discriminator scores on generated images.

    Returns: a scalar tensor.
    """
    ### BEGIN SOLUTION
    return 0.5 * ((scores_real - 1) ** 2).mean() + 0.5 * (scores_fake ** 2).mean()
    ### END SOLUTION


def ls_generator_loss(scores_fake: torch.Tensor) -> torch.Tensor:
    """The least-squares GAN generator loss, L_G = 1/2 E_z[(D(G(z)) - 1)^2].

    Input: scores_fake, (N, 1) discriminator scores on generated images.
    Returns: a scalar tensor.
    """
    ### BEGIN SOLUTION
    return 0.5 * ((scores_fake - 1) ** 2).mean()
    ### END SOLUTION


def get_optimizer(model: nn.Module) -> torch.optim.Optimizer:
    """Adam over all of ``model``'s parameters, with learning rate ``LEARNING_RATE`` (1e-3) and betas ``BETAS``
    ((0.5, 0.999)).
    """
    ### BEGIN SOLUTION
    return torch.optim.Adam(model.parameters(), lr=LEARNING_RATE, betas=BETAS)
    ### END SOLUTION


def build_dc_classifier(batch_size: int | None = None) -> nn.Module:
    """The DCGAN discriminator (InfoGAN's MNIST design), a small convolutional network.

    Architecture (LeakyReLU slope 0.01 everywhere):
    - reshape to (N, 1, 28, 28)
    - Conv2d(1, 32, kernel 5, stride 1), LeakyReLU, MaxPool 2x2 stride 2
    - Conv2d(32, 64, kernel 5, stride 1), LeakyReLU, MaxPool 2x2 stride 2
    - Flatten, Linear(4*4*64, 1024), LeakyReLU
    - Linear(1024, 1)

    Input: images of shape (N, 784) or (N, 1, 28, 28). Output: logits of shape (N, 1).
    ``batch_size`` is accepted for compatibility with CS231n and not needed.
    """
    ### BEGIN SOLUTION
    return nn.Sequential(
        nn.Flatten(),
        nn.Unflatten(1, (1, 28, 28)),
        nn.Conv2d(1, 32, kernel_size=5),
        nn.LeakyReLU(0.01),
        nn.MaxPool2d(2, 2),
        nn.Conv2d(32, 64, kernel_size=5),
        nn.LeakyReLU(0.01),
        nn.MaxPool2d(2, 2),
        nn.Flatten(),
        nn.Linear(4 * 4 * 64, 1024),
        nn.LeakyReLU(0.01),
        nn.Linear(1024, 1),
    )
    ### END SOLUTION


def build_dc_generator(noise_dim: int = NOISE_DIM) -> nn.Module:
    """The DCGAN generator (InfoGAN's MNIST design).

    Architecture:
    - Linear(noise_dim, 1024), ReLU, BatchNorm1d(1024)
    - Linear(1024, 7*7*128), ReLU, BatchNorm1d(7*7*128)
    - reshape to (N, 128, 7, 7)
    - ConvTranspose2d(128, 64, kernel 4, stride 2, padding 1), ReLU, BatchNorm2d(64)   -> (N, 64, 14, 14)
    - ConvTranspose2d(64, 1, kernel 4, stride 2, padding 1), Tanh                       -> (N, 1, 28, 28)
    - flatten

    Input: noise of shape (N, noise_dim). Output: images of shape (N, 784) with values in [-1, 1].
    """
    ### BEGIN SOLUTION
    return nn.Sequential(
        nn.Linear(noise_dim, 1024),
        nn.ReLU(),
        nn.BatchNorm1d(1024),
        nn.Linear(1024, 7 * 7 * 128),
        nn.ReLU(),
        nn.BatchNorm1d(7 * 7 * 128),
        nn.Unflatten(1, (128, 7, 7)),
        nn.ConvTranspose2d(128, 64, kernel_size=4, stride=2, padding=1),
        nn.ReLU(),
        nn.BatchNorm2d(64),
        nn.ConvTranspose2d(64, 1, kernel_size=4, stride=2, padding=1),
        nn.Tanh(),
        nn.Flatten(),
    )
    ### END SOLUTION


class StepStats(NamedTuple):
    """What one training step reports; each field is a 0-dim tensor (call ``float()`` to print it)."""

    d_loss: torch.Tensor
    g_loss: torch.Tensor
    d_real: torch.Tensor  # mean D(x): the discriminator's probability (or score) on real data
    d_fake: torch.Tensor  # mean D(G(z)), on the fakes of the discriminator step


class GANTrainer:
    """Owns a GAN's two networks, their optimizers and losses, and trains them one step at a time.

    Arguments:
    - D, G: discriminator and generator modules.
    - D_solver, G_solver: their optimizers.
    - discriminator_loss: f(out_real, out_fake) -> scalar;  generator_loss: f(out_fake) -> scalar.
    - noise_dim: the size of G's input.
    - logits: True if D returns logits (D(x) is then reported as sigmoid(logit)); False for LSGAN scores.
    """

    def __init__(self, D: nn.Module, G: nn.Module, D_solver: torch.optim.Optimizer,
                 G_solver: torch.optim.Optimizer, discriminator_loss: LossFn, generator_loss: LossFn,
                 noise_dim: int = NOISE_DIM, logits: bool = True) -> None:
        self.D, self.G = D, G
        self.D_solver, self.G_solver = D_solver, G_solver
        self.discriminator_loss, self.generator_loss = discriminator_loss, generator_loss
        self.noise_dim = noise_dim
        self.logits = logits

    def mean_output(self, out: torch.Tensor) -> torch.Tensor:
        """D's mean output on a batch, as StepStats reports it: the mean probability sigmoid(s) when D returns
        logits, the mean raw score for LSGAN (``logits=False``). A detached 0-dim tensor."""
        return (torch.sigmoid(out) if self.logits else out).mean().detach()

    def train_step(self, real_batch: torch.Tensor) -> StepStats:
        """One discriminator update, then one generator update.

        1. Discriminator: draw noise with ``sample_noise(N, self.noise_dim)``, make fakes with G and
           detach them (no gradient may reach G here), score the real batch and the fakes, and take one
           ``D_solver`` step on ``discriminator_loss``.
        2. Generator: draw *fresh* noise with a second ``sample_noise(N, self.noise_dim)`` call, score
           G's new fakes with D, and take one ``G_solver`` step on ``generator_loss``.

        Clear each optimizer's gradients before its backward pass. Move noise to ``real_batch.device``.

        Input: real_batch, (N, ...) real samples (N images of (1, 28, 28) or 784 values, or toy points).
        Returns: StepStats(d_loss, g_loss, d_real, d_fake), each a detached 0-dim tensor; d_real and
        d_fake come from the discriminator step and go through ``self.mean_output``.
        """
        ### BEGIN SOLUTION
        n = real_batch.shape[0]
        device = real_batch.device

        self.D_solver.zero_grad()
        fake = self.G(sample_noise(n, self.noise_dim).to(device)).detach()
        out_real = self.D(real_batch)
        out_fake = self.D(fake)
        d_loss = self.discriminator_loss(out_real, out_fake)
        d_loss.backward()
        self.D_solver.step()

        self.G_solver.zero_grad()
        g_loss = self.generator_loss(self.D(self.G(sample_noise(n, self.noise_dim).to(device))))
        g_loss.backward()
        self.G_solver.step()

        return StepStats(d_loss.detach(), g_loss.detach(),
                         self.mean_output(out_real), self.mean_output(out_fake))
        ### END SOLUTION


def interpolate_latent(z0: torch.Tensor, z1: torch.Tensor, steps: int) -> torch.Tensor:
    """Points on the straight line from z0 to z1, both endpoints included.

    Inputs:
    - z0, z1: latent vectors of shape (D,).
    - steps: the number of points, at least 2.

    Returns: tensor of shape (steps, D); row i is (1 - t_i) z0 + t_i z1 with t_i = i / (steps - 1).
    """
    ### BEGIN SOLUTION
    t = torch.linspace(0, 1, steps, dtype=z0.dtype, device=z0.device).unsqueeze(1)
    return (1 - t) * z0.unsqueeze(0) + t * z1.unsqueeze(0)
    ### END SOLUTION


class Toy2dGridGaussiansDataset(torch.utils.data.Dataset):
    """A mixture of 25 Gaussians whose means sit on the grid {-4, -2, 0, 2, 4}^2 (provided, not a task).

    Each point picks a mode uniformly at random and adds isotropic Gaussian noise of standard deviation
    ``std`` (0.05 in the VEEGAN/PacGAN protocol). The same ``seed`` gives the same points.

    ``dataset.points`` is a float32 tensor of shape (n_samples, 2); ``dataset.labels`` says each point's
    mode; ``dataset.modes`` is (25, 2).
    """

    GRID = (-4.0, -2.0, 0.0, 2.0, 4.0)

    def __init__(self, n_samples: int = 100_000, std: float = 0.05, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed)
        grid = torch.tensor(self.GRID)
        self.modes = torch.cartesian_prod(grid, grid)
        self.std = std
        self.labels = torch.randint(len(self.modes), (n_samples,), generator=generator)
        noise = torch.randn(n_samples, 2, generator=generator) * std
        self.points = self.modes[self.labels] + noise

    def __len__(self) -> int:
        return len(self.points)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.points[index]
