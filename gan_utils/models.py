"""The notebook's three MNIST GANs, built from your ``gan_pytorch`` functions, and sampling from a generator.

``MODELS`` says which of your networks and losses make each GAN; ``make_trainer`` builds one into your
``GANTrainer``, with one ``get_optimizer`` per network. The notebook, ``train.py`` and the benchmarks all build
their GANs here, so they all train your code.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.autograd.graph import increment_version

import gan_pytorch as gp


@dataclass(frozen=True)
class GANSpec:
    """One GAN: its networks (noise_dim -> (D, G)) and losses, looked up in gan_pytorch when it is built."""

    description: str
    networks: Callable[[int], tuple[nn.Module, nn.Module]]
    losses: Callable[[], tuple[gp.LossFn, gp.LossFn]]
    logits: bool  # D returns logits (cross-entropy losses), or raw scores (least squares)


MODELS: dict[str, GANSpec] = {
    "vanilla": GANSpec("MLP discriminator and generator, cross-entropy losses",
                       lambda noise_dim: (gp.discriminator(), gp.generator(noise_dim)),
                       lambda: (gp.discriminator_loss, gp.generator_loss), logits=True),
    "lsgan": GANSpec("the same MLPs, least-squares losses",
                     lambda noise_dim: (gp.discriminator(), gp.generator(noise_dim)),
                     lambda: (gp.ls_discriminator_loss, gp.ls_generator_loss), logits=False),
    "dcgan": GANSpec("convolutional discriminator and generator (InfoGAN's), cross-entropy losses",
                     lambda noise_dim: (gp.build_dc_classifier(), gp.build_dc_generator(noise_dim)),
                     lambda: (gp.discriminator_loss, gp.generator_loss), logits=True),
}


class _CastCopy(torch.autograd.Function):
    """Hands back ``copy``, a bfloat16 copy of ``weight`` made earlier, as if ``weight`` were cast now: the gradient
    goes back to ``weight`` in its own dtype, as from autocast's cast."""

    @staticmethod
    def forward(ctx, weight: torch.Tensor, copy: torch.Tensor) -> torch.Tensor:
        ctx.dtype = weight.dtype
        # An input returned as is would come back through view_as, which may restride size-1 dimensions and so
        # lose the channels-last layout of a one-channel convolution's weight.
        return copy.as_strided(copy.shape, copy.stride())

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad.to(ctx.dtype), None


class BFloat16(nn.Module):
    """Runs ``net`` under bfloat16 autocast and returns float32.

    The matrix products run in bfloat16 (much faster on CPUs with AMX or AVX-512 BF16 and on recent GPUs), while
    the weights, the optimizer and the losses stay in float32. Autocast casts the weights afresh on every call;
    here the bfloat16 copies of the linear and convolution weights are kept until the weights change (an optimizer
    step), so a training step that runs G twice, or D on the real and the fake batch, casts them once: the same
    values and gradients, less copying.
    """

    CAST = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self._copies: dict[str, tuple[tuple[int, int], torch.Tensor]] = {}

    def _cast_weights(self) -> dict[str, torch.Tensor]:
        weights = {}
        for module_name, module in self.net.named_modules():
            if not isinstance(module, self.CAST):
                continue
            for name, p in module.named_parameters(prefix=module_name, recurse=False):
                version = (p._version, p.data_ptr())
                if name not in self._copies or self._copies[name][0] != version:
                    self._copies[name] = (version, p.detach().to(torch.bfloat16))
                copy = self._copies[name][1]
                weights[name] = _CastCopy.apply(p, copy) if torch.is_grad_enabled() and p.requires_grad else copy
        return weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, dtype=torch.bfloat16):
            if torch.compiler.is_compiling():  # a compiled graph makes its own casts, once per call
                out = self.net(x)
            else:
                out = torch.func.functional_call(self.net, self._cast_weights(), (x,), strict=False)
        return out.float()


def unwrap(net: nn.Module) -> nn.Module:
    """The network inside a ``BFloat16`` wrapper (or ``net`` itself)."""
    return net.net if isinstance(net, BFloat16) else net


def fuse_adam(optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """Switch an Adam optimizer to PyTorch's fused implementation where the device has one: the same update,
    computed for all parameters in one kernel instead of several per tensor."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    if isinstance(optimizer, torch.optim.Adam) and params and params[0].device.type in ("cpu", "cuda"):
        for group in optimizer.param_groups:
            group.update(fused=True, foreach=False)
        # The fused kernel writes the weights without bumping their version counters, as every other in-place
        # update does; BFloat16 relies on those counters to know when its copies are stale.
        optimizer.register_step_post_hook(lambda *_: increment_version(params))
    return optimizer


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Give every parameter group of ``optimizer`` the learning rate ``lr``."""
    for group in optimizer.param_groups:
        group["lr"] = lr


def set_beta2(optimizer: torch.optim.Optimizer, beta2: float) -> None:
    """Give every parameter group of an Adam ``optimizer`` the second-moment decay ``beta2`` (beta1 is kept)."""
    for group in optimizer.param_groups:
        group["betas"] = (group["betas"][0], beta2)


def make_trainer(model: str, *, noise_dim: int = gp.NOISE_DIM, device: torch.device | str = "cpu",
                 seed: int = 0, bf16: bool = False, fast: bool = True, d_lr: float | None = None,
                 g_lr: float | None = None, beta2: float | None = None) -> gp.GANTrainer:
    """Your ``GANTrainer`` for "vanilla", "lsgan" or "dcgan", with weights drawn from ``seed``.

    D and G come from your functions, each gets its own ``get_optimizer``, and the losses are yours. ``d_lr`` and
    ``g_lr``, if given, are D's and G's learning rates, and ``beta2`` both Adams' second-moment decay, set after
    ``get_optimizer`` (a recipe's, where they differ from yours). With ``fast`` (the same maths, less time): Adam
    switched to its fused implementation, and convolutional networks in the channels-last layout. With ``bf16`` the
    networks run under ``BFloat16``.
    """
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")
    spec = MODELS[model]
    torch.manual_seed(seed)
    D, G = (net.to(device) for net in spec.networks(noise_dim))
    convolutional = any(isinstance(m, nn.Conv2d | nn.ConvTranspose2d) for net in (D, G) for m in net.modules())
    if fast and convolutional:
        D, G = D.to(memory_format=torch.channels_last), G.to(memory_format=torch.channels_last)
    D_solver, G_solver = gp.get_optimizer(D), gp.get_optimizer(G)
    for solver, lr in ((D_solver, d_lr), (G_solver, g_lr)):
        if lr is not None:
            set_lr(solver, lr)
        if beta2 is not None:
            set_beta2(solver, beta2)
    if fast:
        D_solver, G_solver = fuse_adam(D_solver), fuse_adam(G_solver)
    if bf16:
        D, G = BFloat16(D), BFloat16(G)
    return gp.GANTrainer(D, G, D_solver, G_solver, *spec.losses(), noise_dim=noise_dim, logits=spec.logits)


class EMA:
    """An exponential moving average of a network's weights, to sample from (Yazici et al., 2019).

    After each step, ``average = d * average + (1 - d) * weights`` with ``d = min(decay, (1 + n) / (10 + n))`` at
    update n: the warm-up keeps the untrained starting weights from lingering in the average. It lasts until update
    (10 decay - 1) / (1 - decay), 8990 for a decay of 0.999; in a shorter run it sets d at every update, and the
    average spans about the last ninth of the updates (1 / (1 - d) = (10 + n) / 9). Buffers (batch-norm statistics)
    are copied. ``module`` is the averaged network, in eval mode.
    """

    def __init__(self, net: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay, self.updates = decay, 0
        self.module = copy.deepcopy(unwrap(net)).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, net: nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        net = unwrap(net)
        torch._foreach_lerp_(list(self.module.parameters()), list(net.parameters()), 1.0 - d)
        for mine, theirs in zip(self.module.buffers(), net.buffers()):
            mine.copy_(theirs)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "updates": self.updates, "module": self.module.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.decay, self.updates = float(state["decay"]), int(state["updates"])
        self.module.load_state_dict(state["module"])


@torch.no_grad()
def sample(G: nn.Module, noise: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """G's outputs for ``noise``, in eval mode (batch norm uses its running statistics), as float32 on the CPU.

    Runs in batches of ``batch_size`` on G's device (the noise's, if G has no weights); G's train/eval mode is
    restored afterwards.
    """
    was_training = G.training
    device = next((p.device for p in G.parameters()), noise.device)
    G.eval()
    try:
        return torch.cat([G(z.to(device)).float().cpu() for z in noise.split(batch_size)])
    finally:
        G.train(was_training)
