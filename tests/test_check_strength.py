"""The checks catch the classic mistakes and accept every correct formulation.

Each wrong implementation must fail its part with a message that names the problem; each alternative correct
implementation (own attribute names, F.* calls, library losses) must pass.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import gan_pytorch as solution
from gan_utils import checks
from instructor.make_checks import _dc_generator, _Module, train_step_variant


@pytest.fixture(scope="module")
def cases():
    return checks.load_cases()


def outcomes(cases, part, **overrides):
    return checks.run(part, _Module(solution, **overrides), cases)


def assert_passes(cases, part, **overrides):
    bad = [o.message for o in outcomes(cases, part, **overrides) if not o.passed]
    assert not bad, "\n".join(bad)


def assert_fails(cases, part, *expected: str, **overrides) -> str:
    """The part fails, and the failure messages contain every expected fragment."""
    bad = [o for o in outcomes(cases, part, **overrides) if not o.passed]
    assert bad, f"{part}: the check accepted a wrong implementation"
    text = "\n".join(o.message for o in bad)
    for fragment in expected:
        assert fragment in text, f"{fragment!r} not in:\n{text}"
    return text


# ---- sample_noise ------------------------------------------------------------------------------------------


def seeded_noise(draw):
    """A sample_noise with the given seeding (as in the stub) and the given draw."""
    def sample_noise(n, d, seed=None):
        if seed is not None:
            torch.manual_seed(seed)
        return draw(n, d)

    return sample_noise


NOISE_ALTERNATIVES = [seeded_noise(lambda n, d: torch.empty(n, d).uniform_(-1, 1)),
                      seeded_noise(lambda n, d: 2 * torch.rand(n, d) - 1),
                      seeded_noise(lambda n, d: (torch.rand(n, d) - 0.5) * 2),
                      lambda n, d, seed=None: torch.rand(n, d, generator=None if seed is None else
                                                         torch.Generator().manual_seed(seed)) * 2 - 1]


@pytest.mark.parametrize("impl", NOISE_ALTERNATIVES)
def test_sample_noise_accepts_alternatives(cases, impl):
    assert_passes(cases, "sample_noise", sample_noise=impl)


NOISE_MISTAKES = {
    "zero to one": (seeded_noise(torch.rand), "scale it to [-1, 1]"),
    "gaussian": (seeded_noise(torch.randn), "torch.randn"),
    "seed ignored": (lambda n, d, seed=None: torch.rand(n, d, generator=torch.Generator().manual_seed(
        int(torch.randint(2**31, ())))) * 2 - 1, "the same seed gave different noise"),
    "float64": (seeded_noise(lambda n, d: torch.rand(n, d, dtype=torch.float64) * 2 - 1), "float32"),
    "one draw per row": (seeded_noise(lambda n, d: (torch.rand(n, 1) * 2 - 1).expand(n, d)), "independent"),
    "not uniform": (seeded_noise(lambda n, d: torch.rand(n, d) ** 2 * 2 - 1), "Kolmogorov-Smirnov"),
    "wrong shape": (seeded_noise(lambda n, d: torch.rand(d, n) * 2 - 1), "shape"),
    "numpy": (seeded_noise(lambda n, d: torch.rand(n, d).numpy()), "expected a torch.Tensor"),
    "own generator": (lambda n, d, seed=None: torch.rand(
        n, d, generator=torch.Generator().manual_seed(seed + 1 if seed is not None else 0)) * 2 - 1,
        "differs from torch's draws"),
}


@pytest.mark.parametrize("name", NOISE_MISTAKES)
def test_sample_noise_catches(cases, name):
    impl, fragment = NOISE_MISTAKES[name]
    assert_fails(cases, "sample_noise", fragment, sample_noise=impl)


# ---- architectures ------------------------------------------------------------------------------------------


class CustomDiscriminator(nn.Module):
    """A hand-written module with its own attribute names and F.* calls."""

    def __init__(self):
        super().__init__()
        self.hidden_a = nn.Linear(784, 256)
        self.hidden_b = nn.Linear(256, 256)
        self.score = nn.Linear(256, 1)

    def forward(self, x):
        x = x.reshape(len(x), -1)
        x = F.leaky_relu(self.hidden_a(x), 0.01)
        return self.score(F.leaky_relu(self.hidden_b(x), negative_slope=0.01))


class CustomGenerator(nn.Module):
    def __init__(self, noise_dim):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(noise_dim, 1024), nn.Linear(1024, 1024), nn.Linear(1024, 784)])

    def forward(self, z):
        for layer in self.layers[:-1]:
            z = torch.relu(layer(z))
        return torch.tanh(self.layers[-1](z))


class CustomDCClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(1, 32, 5), nn.Conv2d(32, 64, 5)
        self.f1, self.f2 = nn.Linear(1024, 1024), nn.Linear(1024, 1)

    def forward(self, x):
        x = x.view(-1, 1, 28, 28)
        x = F.max_pool2d(F.leaky_relu(self.c1(x), 0.01), 2)
        x = F.max_pool2d(F.leaky_relu(self.c2(x), 0.01), 2)
        return self.f2(F.leaky_relu(self.f1(x.flatten(1)), 0.01))


class CustomDCGenerator(nn.Module):
    def __init__(self, noise_dim):
        super().__init__()
        self.fc1, self.bn1 = nn.Linear(noise_dim, 1024), nn.BatchNorm1d(1024)
        self.fc2, self.bn2 = nn.Linear(1024, 7 * 7 * 128), nn.BatchNorm1d(7 * 7 * 128)
        self.up1, self.bn3 = nn.ConvTranspose2d(128, 64, 4, stride=2, padding=1), nn.BatchNorm2d(64)
        self.up2 = nn.ConvTranspose2d(64, 1, 4, stride=2, padding=1)

    def forward(self, z):
        x = self.bn2(F.relu(self.fc2(self.bn1(F.relu(self.fc1(z))))))
        x = self.bn3(F.relu(self.up1(x.view(-1, 128, 7, 7))))
        return torch.tanh(self.up2(x)).view(len(z), 784)


def seeded(build):
    def make(*args, seed=None, **kwargs):
        if seed is not None:
            torch.manual_seed(seed)
        return build(*args, **kwargs)

    return make


ARCHITECTURE_ALTERNATIVES = [
    ("discriminator", {"discriminator": seeded(CustomDiscriminator)}),
    ("generator", {"generator": seeded(lambda noise_dim=96: CustomGenerator(noise_dim))}),
    ("build_dc_classifier", {"build_dc_classifier": lambda batch_size=None: CustomDCClassifier()}),
    ("build_dc_generator", {"build_dc_generator": lambda noise_dim=96: CustomDCGenerator(noise_dim)}),
]


@pytest.mark.parametrize("part,overrides", ARCHITECTURE_ALTERNATIVES, ids=[a for a, _ in ARCHITECTURE_ALTERNATIVES])
def test_architectures_accept_custom_modules(cases, part, overrides):
    assert_passes(cases, part, **overrides)


def mlp_d(slope=0.01, sizes=(784, 256, 256, 1)):
    layers = [nn.Flatten()]
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.LeakyReLU(slope)]
    return nn.Sequential(*layers[:-1])


def mlp_g(noise_dim=96, tanh=True, sizes=(1024, 1024, 784)):
    layers, width = [], noise_dim
    for size in sizes:
        layers += [nn.Linear(width, size), nn.ReLU()]
        width = size
    return nn.Sequential(*layers[:-1], *([nn.Tanh()] if tanh else []))


def swapped_dc_classifier(batch_size=None):  # the two convolutions in the wrong order cannot even take the input
    return nn.Sequential(nn.Unflatten(1, (1, 28, 28)), nn.Conv2d(32, 64, 5), nn.LeakyReLU(0.01),
                         nn.MaxPool2d(2), nn.Conv2d(1, 32, 5), nn.LeakyReLU(0.01), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(1024, 1024), nn.LeakyReLU(0.01), nn.Linear(1024, 1))


ARCHITECTURE_MISTAKES = [
    ("discriminator", seeded(lambda: mlp_d(slope=0.2)), "LeakyReLU with slope 0.2"),
    ("discriminator", seeded(lambda: mlp_d(sizes=(784, 128, 256, 1))), "has shape (128, 784), expected (256, 784)"),
    ("discriminator", seeded(lambda: nn.Sequential(*mlp_d(), nn.Sigmoid())), "returns logits"),
    ("generator", seeded(lambda noise_dim=96: mlp_g(noise_dim, tanh=False)), "the final Tanh is missing"),
    ("generator", seeded(lambda noise_dim=96: mlp_g(noise_dim, sizes=(1024, 784, 784))), "expected (1024, 1024)"),
    ("generator", seeded(lambda noise_dim=96: mlp_g(96)), "shape (1024, 96), expected (1024, 32)"),
    ("discriminator", seeded(lambda: nn.Sequential(*list(mlp_d())[1:])), "flatten the input first"),
    ("build_dc_generator", lambda noise_dim=96: _dc_generator(noise_dim, bn_first=True), "batch norm before ReLU"),
    ("build_dc_classifier", swapped_dc_classifier,
     "tensor 0 (in the order the layers run) has shape (64, 32, 5, 5)"),
    ("discriminator", lambda seed=None: CustomDiscriminator(), "same seed"),  # the seed is ignored
]


@pytest.mark.parametrize("part,impl,fragment", ARCHITECTURE_MISTAKES)
def test_architectures_catch(cases, part, impl, fragment):
    assert_fails(cases, part, fragment, **{part: impl})


# ---- losses ------------------------------------------------------------------------------------------------


def bce_library(input, target):
    return F.binary_cross_entropy_with_logits(input, target)


def bce_module(input, target):
    return nn.BCEWithLogitsLoss()(input, target)


def bce_logsigmoid(input, target):
    return -(target * F.logsigmoid(input) + (1 - target) * F.logsigmoid(-input)).mean()


def bce_unstable(input, target):
    p = torch.sigmoid(input)
    return -(target * torch.log(p) + (1 - target) * torch.log(1 - p)).mean()


def d_loss_library(logits_real, logits_fake):
    return (F.binary_cross_entropy_with_logits(logits_real, torch.ones_like(logits_real))
            + F.binary_cross_entropy_with_logits(logits_fake, torch.zeros_like(logits_fake)))


def d_loss_softplus(logits_real, logits_fake):
    return F.softplus(-logits_real).mean() + F.softplus(logits_fake).mean()


LOSS_ALTERNATIVES = [
    ("bce_loss", bce_library), ("bce_loss", bce_module), ("bce_loss", bce_logsigmoid),
    ("discriminator_loss", d_loss_library), ("discriminator_loss", d_loss_softplus),
    ("generator_loss", lambda logits_fake: F.softplus(-logits_fake).mean()),
    ("generator_loss_saturating", lambda logits_fake: -F.softplus(logits_fake).mean()),
    ("ls_discriminator_loss", lambda r, f: 0.5 * F.mse_loss(r, torch.ones_like(r)) + 0.5 * F.mse_loss(f, 0 * f)),
    ("ls_generator_loss", lambda f: 0.5 * F.mse_loss(f, torch.ones_like(f))),
]


@pytest.mark.parametrize("part,impl", LOSS_ALTERNATIVES)
def test_losses_accept_alternatives(cases, part, impl):
    assert_passes(cases, part, **{part: impl})


def test_losses_built_on_the_students_bce_pass(cases):
    """The solution's losses call the module's bce_loss; with the library BCE in its place they still pass."""
    module = _Module(solution, bce_loss=bce_library)
    for part in ("discriminator_loss", "generator_loss", "generator_loss_saturating"):
        assert all(o.passed for o in checks.run(part, module, cases))


LOSS_MISTAKES = [
    ("bce_loss", bce_unstable, "logits of +-1000"),
    ("bce_loss", lambda s, y: (s.clamp(min=0) - s * y + torch.log1p(torch.exp(-s.abs()))).sum(), "summed"),
    ("discriminator_loss", lambda r, f: d_loss_library(r, f) / 2, "averaged; they should be summed"),
    ("discriminator_loss", lambda r, f: d_loss_library(f, r), "swapped"),
    ("discriminator_loss", lambda r, f: bce_unstable(r, torch.ones_like(r)) + bce_unstable(f, torch.zeros_like(f)),
     "logits of +-1000"),
    ("generator_loss", lambda f: torch.log(1 - torch.sigmoid(f)).mean(), "saturating"),
    ("generator_loss", lambda f: -torch.log(torch.sigmoid(f)).mean(), "logits of +-1000"),
    ("generator_loss_saturating", lambda f: F.softplus(f).mean(), "sign is flipped"),
    ("ls_discriminator_loss", lambda r, f: ((r - 1) ** 2).mean() + (f ** 2).mean(), "1/2 is missing"),
    ("ls_discriminator_loss", lambda r, f: 0.5 * (r ** 2).mean() + 0.5 * ((f - 1) ** 2).mean(), "swapped"),
    ("ls_generator_loss", lambda f: ((f - 1) ** 2).mean(), "1/2 is missing"),
    ("ls_generator_loss", lambda f: torch.tensor(0.5 * ((f.detach() - 1) ** 2).mean().item()), "no gradient"),
]


@pytest.mark.parametrize("part,impl,fragment", LOSS_MISTAKES)
def test_losses_catch(cases, part, impl, fragment):
    text = assert_fails(cases, part, fragment, **{part: impl})
    if "gradient" not in fragment:
        assert "max relative error" in text or "inf or nan" in text


# ---- get_optimizer -------------------------------------------------------------------------------------------


OPTIMIZER_MISTAKES = [  # (implementation, what the message says, how many sub-tests it fails)
    (lambda m: torch.optim.Adam(m.parameters(), lr=1e-3), "betas", 1),
    (lambda m: torch.optim.SGD(m.parameters(), lr=1e-3), "use torch.optim.Adam", 2),  # SGD has no betas either
    (lambda m: torch.optim.Adam(list(m.parameters())[:1], 1e-3, (0.5, 0.999)), "pass model.parameters()", 1),
    (lambda m: torch.optim.Adam(m.parameters(), 2e-4, (0.5, 0.999)), "learning rate is 0.0002", 1),
]


def test_get_optimizer_accepts_positional_settings_and_fused(cases):
    assert_passes(cases, "get_optimizer", get_optimizer=lambda m: torch.optim.Adam(m.parameters(), 1e-3, (0.5, 0.999)))
    assert_passes(cases, "get_optimizer", get_optimizer=lambda m: torch.optim.Adam(m.parameters(), 1e-3, (0.5, 0.999),
                                                                                  fused=True))


@pytest.mark.parametrize("impl,fragment,failures", OPTIMIZER_MISTAKES, ids=[f for _, f, _ in OPTIMIZER_MISTAKES])
def test_get_optimizer_catches(cases, impl, fragment, failures):
    text = assert_fails(cases, "get_optimizer", fragment, get_optimizer=impl)
    assert text.count("get_optimizer:") == failures, text


# ---- train_step ----------------------------------------------------------------------------------------------


def no_grad_trainer(module):
    """Correct, written differently: fakes made under no_grad, both solvers zeroed up front, zero_grad(False)."""

    class NoGradTrainer(module.GANTrainer):
        def train_step(self, real_batch):
            n = len(real_batch)
            self.D_solver.zero_grad(set_to_none=False)
            self.G_solver.zero_grad(set_to_none=False)
            with torch.no_grad():
                fake = self.G(module.sample_noise(n, self.noise_dim))
            out_real, out_fake = self.D(real_batch), self.D(fake)
            d_loss = self.discriminator_loss(out_real, out_fake)
            d_loss.backward()
            self.D_solver.step()
            self.G_solver.zero_grad()
            g_loss = self.generator_loss(self.D(self.G(module.sample_noise(n, self.noise_dim))))
            g_loss.backward()
            self.G_solver.step()
            return module.StepStats(d_loss.detach(), g_loss.detach(), self.mean_output(out_real),
                                    self.mean_output(out_fake))

    return NoGradTrainer


def train_step_outcomes(cases, make_trainer):
    """Run the train_step check on a copy of the module whose GANTrainer is make_trainer(copy).

    The trainer must draw noise through the copy, whose sample_noise the check replaces with a replay.
    """
    module = _Module(solution)
    module.GANTrainer = make_trainer(module)
    return checks.run("train_step", module, cases)


def test_train_step_accepts_alternatives(cases):
    for make in (no_grad_trainer, train_step_variant):
        bad = [o.message for o in train_step_outcomes(cases, make) if not o.passed]
        assert not bad, "\n".join(bad)


def returning(kind):
    """A correct train_step that returns its stats as Python floats, or still attached to the graph."""

    def make(module):
        class Trainer(train_step_variant(module)):
            def train_step(self, real_batch):
                stats = super().train_step(real_batch)
                if kind == "floats":
                    return module.StepStats(*(float(v) for v in stats))
                return module.StepStats(*(v.detach().requires_grad_() * 1.0 for v in stats))

        return Trainer

    return make


def always_sigmoid(module):
    """Reports sigmoid(D(x)) whatever ``logits`` says (LSGAN's raw scores come out wrong)."""

    class Trainer(train_step_variant(module)):
        def mean_output(self, out):
            return torch.sigmoid(out).mean().detach()

    return Trainer


def concatenating(module):
    """Scores real and fake images in one batch: works only when they have the same shape."""

    class Trainer(module.GANTrainer):
        def train_step(self, real_batch):
            n = len(real_batch)
            self.D_solver.zero_grad()
            fake = self.G(module.sample_noise(n, self.noise_dim)).detach()
            out = self.D(torch.cat([real_batch, fake]))
            d_loss = self.discriminator_loss(out[:n], out[n:])
            d_loss.backward()
            self.D_solver.step()
            self.G_solver.zero_grad()
            g_loss = self.generator_loss(self.D(self.G(module.sample_noise(n, self.noise_dim))))
            g_loss.backward()
            self.G_solver.step()
            return module.StepStats(d_loss.detach(), g_loss.detach(), self.mean_output(out[:n]),
                                    self.mean_output(out[n:]))

    return Trainer


TRAIN_STEP_MISTAKES = [
    (lambda m: train_step_variant(m, detach=False), "detach the fake images"),
    (lambda m: train_step_variant(m, zero_d=False), "D's gradients are not zeroed"),
    (lambda m: train_step_variant(m, zero_g=False), "G's gradients are not zeroed"),
    (lambda m: train_step_variant(m, g_uses_d_loss=True), "G is updated with the discriminator's loss"),
    (lambda m: train_step_variant(m, reuse_noise=True), "called [1, 1] times per step, expected 2"),
    (lambda m: train_step_variant(m, reuse_noise=True), "reuses the discriminator step's noise"),
    (lambda m: train_step_variant(m, g_first=True), "G stepped before D"),
    (returning("floats"), "a Python number"),
    (returning("attached"), "still attached to the graph"),
    (always_sigmoid, "logits=False"),
    (concatenating, "RuntimeError"),
]


@pytest.mark.parametrize("make,fragment", TRAIN_STEP_MISTAKES, ids=[f for _, f in TRAIN_STEP_MISTAKES])
def test_train_step_catches(cases, make, fragment):
    bad = [o.message for o in train_step_outcomes(cases, make) if not o.passed]
    assert bad, "the check accepted a wrong train_step"
    assert fragment in "\n".join(bad), "\n".join(bad)


def test_g_first_is_named_as_such_and_not_as_a_missing_detach(cases):
    outcomes = {o.test: o for o in train_step_outcomes(cases, lambda m: train_step_variant(m, g_first=True))}
    assert not outcomes["order"].passed and outcomes["detach"].passed


@pytest.mark.parametrize("kind,test", [("floats", "returns"), ("attached", "returns")])
def test_wrong_return_types_cost_only_their_subtest(cases, kind, test):
    failed = [o.test for o in train_step_outcomes(cases, returning(kind)) if not o.passed]
    assert failed == [test]


# ---- interpolate_latent ---------------------------------------------------------------------------------------


def no_end_point(z0, z1, steps):
    return torch.stack([torch.lerp(z0, z1, i / steps) for i in range(steps)])


def test_interpolate_latent(cases):
    def lerp(z0, z1, steps):
        return torch.stack([torch.lerp(z0, z1, i / (steps - 1)) for i in range(steps)])

    assert_passes(cases, "interpolate_latent", interpolate_latent=lerp)
    assert_fails(cases, "interpolate_latent", "leaves out the end point", interpolate_latent=no_end_point)


# ---- robustness of the checks themselves ----------------------------------------------------------------------


def broken_bce(input, target):
    return input.nonexistent


def test_a_crash_in_student_code_is_reported_not_raised(cases):
    text = assert_fails(cases, "bce_loss", "AttributeError", bce_loss=broken_bce)
    assert "gan_pytorch.py" not in text or "line" in text


class AlwaysEqual(float):
    def __eq__(self, other):
        return True

    __le__ = __ge__ = __lt__ = __gt__ = __eq__


def test_objects_that_claim_equality_do_not_pass(cases):
    """Outputs that are not plain numeric arrays are rejected, whatever their comparisons say."""
    case = cases["bce_loss"]
    outputs = {"value": AlwaysEqual(0.0), "grad_input": AlwaysEqual(0.0), "grad_target": AlwaysEqual(0.0),
               "extreme": AlwaysEqual(0.0)}
    assert not any(o.passed for o in checks.judge("bce_loss", outputs, case))


# ---- declared order, shapes and types the notebook's training relies on ---------------------------------------


class DeclaredOutOfOrderDCGenerator(nn.Module):
    """Correct, with the layers declared in another order than they run: linear and transposed convolutions first,
    then the three batch norms."""

    def __init__(self, noise_dim):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(noise_dim, 1024), nn.Linear(1024, 7 * 7 * 128)
        self.deconv1, self.deconv2 = nn.ConvTranspose2d(128, 64, 4, 2, 1), nn.ConvTranspose2d(64, 1, 4, 2, 1)
        self.bn1, self.bn2, self.bn3 = nn.BatchNorm1d(1024), nn.BatchNorm1d(7 * 7 * 128), nn.BatchNorm2d(64)

    def forward(self, z):
        x = self.bn2(F.relu(self.fc2(self.bn1(F.relu(self.fc1(z))))))
        x = self.bn3(F.relu(self.deconv1(x.view(-1, 128, 7, 7))))
        return torch.tanh(self.deconv2(x)).flatten(1)


class ReversedDiscriminator(nn.Module):
    def __init__(self):
        super().__init__()
        self.out, self.hidden2, self.hidden1 = nn.Linear(256, 1), nn.Linear(256, 256), nn.Linear(784, 256)

    def forward(self, x):
        x = F.leaky_relu(self.hidden1(x.flatten(1)), 0.01)
        return self.out(F.leaky_relu(self.hidden2(x), 0.01))


def test_layers_are_matched_in_the_order_they_run(cases):
    assert_passes(cases, "build_dc_generator", build_dc_generator=lambda noise_dim=96: DeclaredOutOfOrderDCGenerator(
        noise_dim))
    assert_passes(cases, "discriminator", discriminator=seeded(ReversedDiscriminator))


class FlatOnly(ReversedDiscriminator):
    def forward(self, x):
        if x.dim() != 2:
            raise ValueError("expected (N, 784)")
        return super().forward(x)


def test_a_discriminator_for_flat_input_only_fails_image_input_alone(cases):
    failed = [o for o in outcomes(cases, "discriminator", discriminator=seeded(FlatOnly)) if not o.passed]
    assert [o.test for o in failed] == ["image input"] and "flatten the input first" in failed[0].message


def one_element_ls_generator_loss(f):
    return 0.5 * ((f - 1) ** 2).mean().reshape(1)


def test_losses_must_be_0_dim(cases):
    impl = one_element_ls_generator_loss
    assert_fails(cases, "ls_generator_loss", "0-dim", ls_generator_loss=impl)
    assert [o.test for o in outcomes(cases, "ls_generator_loss", ls_generator_loss=impl) if not o.passed] == ["value"]


# ---- one bug costs one part -----------------------------------------------------------------------------------


def module_from_source(source: str, path):
    """A real module object (its functions look each other up in its own globals, as a student's do)."""
    import importlib.util

    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"gan_pytorch_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_wrong_bce_loss_costs_only_bce_loss(cases, tmp_path):
    from instructor.fixtures import replace_function, solution_source

    summed = "return (input.clamp(min=0) - input * target + torch.log1p(torch.exp(-input.abs()))).sum()"
    source = replace_function(solution_source(), "bce_loss", summed)
    module = module_from_source(source, tmp_path / "summed.py")
    assert not all(o.passed for o in checks.run("bce_loss", module, cases))
    for part in ("discriminator_loss", "generator_loss", "generator_loss_saturating"):
        results = checks.run(part, module, cases)
        assert all(o.passed for o in results), part  # full points in the grader
        assert any("fix bce_loss first" in o.note for o in results), part
    with pytest.raises(checks.CheckFailed, match="fix bce_loss first"):  # the student's own check says so
        checks.check("discriminator_loss", module=module, quiet=True)


# ---- self-reported facts earn nothing on their own ------------------------------------------------------------


def test_forged_self_reports_earn_at_most_five_points(cases):
    """A stub whose probe reports every fact the judges take on trust, with made-up values for everything else."""
    import numpy as np

    from gan_utils.judges import judge
    from gan_utils.parts import PARTS
    from gan_utils.probes import probe
    from gan_utils.references import inputs_of

    rng = np.random.default_rng(0)
    earned = 0.0
    for part in PARTS:
        honest = probe(part.name, solution, inputs_of(cases[part.name]))
        forged = {k: v if v.dtype.kind not in "f" else rng.uniform(-1, 1, v.shape).astype(v.dtype)
                  for k, v in honest.items()}
        outcomes_ = judge(part.name, forged, cases[part.name])
        earned += sum(o.passed for o in outcomes_) * part.subtest_points
    assert 0 < earned <= 5, earned  # sample_noise's uniformity, judged on raw draws any sampler can make


# ---- every mistake above either fails a check or trains in the notebook's own loop ---------------------------


# mistakes that their own tests above check in more detail (the summed bce_loss is in LOSS_MISTAKES)
OTHER_MISTAKES = [
    ("discriminator", {"discriminator": seeded(FlatOnly)}),
    ("interpolate_latent", {"interpolate_latent": no_end_point}),
    ("ls_generator_loss", {"ls_generator_loss": one_element_ls_generator_loss}),
    ("bce_loss", {"bce_loss": broken_bce}),
]


def all_mistakes():
    """Every wrong implementation defined in this file (the lists above, and OTHER_MISTAKES)."""
    yield from (("sample_noise", {"sample_noise": impl}) for impl, _ in NOISE_MISTAKES.values())
    yield from ((part, {part: impl}) for part, impl, _ in ARCHITECTURE_MISTAKES)
    yield from ((part, {part: impl}) for part, impl, _ in LOSS_MISTAKES)
    yield from (("get_optimizer", {"get_optimizer": impl}) for impl, _, _ in OPTIMIZER_MISTAKES)
    yield from (("train_step", {"GANTrainer": make}) for make, _ in TRAIN_STEP_MISTAKES)
    yield from OTHER_MISTAKES


@pytest.mark.parametrize("part,overrides", list(all_mistakes()))
def test_every_mistake_fails_a_check_or_trains(cases, part, overrides, monkeypatch):
    from gan_utils import models, training
    from gan_utils.data import Batches

    module = _Module(solution)
    for name, value in overrides.items():
        setattr(module, name, value(module) if name == "GANTrainer" else value)
    if any(not o.passed for o in checks.run(part, module, cases)):
        return
    monkeypatch.setattr(models, "gp", module)
    images = torch.rand(16, 1, 28, 28) * 2 - 1
    for model in models.MODELS:
        trainer = models.make_trainer(model)
        history = training.fit(trainer, Batches(images, 8), 2, progress=False)
        assert len(history) == 2 and torch.isfinite(torch.from_numpy(history.table())).all()
