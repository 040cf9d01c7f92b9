"""The table of the assignment's parts: every other list of parts (checks, points, notebook cells, reference
generation, grading) is derived from ``PARTS``.

Each part is one thing the student writes in ``gan_pytorch.py``. Its ``kind`` says how it is checked (the probes
in ``gan_utils.probes`` and judges in ``gan_utils.judges`` are written per kind); ``subtests`` are the checks it
must pass, each worth an equal share of its ``points`` (the module is worth 100). Its notebook check cell has the
nbgrader grade id ``check_<name>`` and gives feedback only (0 points): a student's kernel could forge it.

Most sub-tests compare values computed by the student's code with references for hidden inputs. The ``reported``
ones rest on what the student's process reports about itself (shapes, types, the order of calls): they count only
when the part's values show that the student's own code ran (a value sub-test passed, or the outputs match a known
mistake), so forging them gains nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

MODULE_POINTS = 100.0
NOTEBOOK_CELL_POINTS = 0.0


@dataclass(frozen=True)
class Part:
    name: str
    kind: str  # noise | architecture | loss | optimizer | train_step | interpolation
    subtests: tuple[str, ...]
    points: float
    function: str = ""  # as the student sees it, if not ``name`` (a method: "GANTrainer.train_step")
    args: tuple[str, ...] = ()  # a loss's argument names; an architecture's keyword arguments
    uses: str = ""  # a part it calls, judged as if that part were right (one bug costs one part)
    stable: bool = False  # a loss from logits: also checked at logits of +-1000
    reported: tuple[str, ...] = ()  # sub-tests judged on facts the student's process reports about itself

    @property
    def label(self) -> str:
        """How feedback names the part: the function the student writes."""
        return self.function or self.name

    @property
    def cell(self) -> str:
        """The nbgrader grade id of the part's check cell in the notebook."""
        return f"check_{self.name}"

    @property
    def subtest_points(self) -> float:
        return self.points / len(self.subtests)


_ARCHITECTURE = ("parameter count", "layers", "output")
_DISCRIMINATOR = (*_ARCHITECTURE, "image input")
_SHAPES = ("parameter count", "layers")
_LOSS = ("value", "gradient")

PARTS: tuple[Part, ...] = (  # in the order the notebook teaches them
    Part("sample_noise", "noise", ("seeded values", "float32", "uniform"), 6, reported=("float32",)),
    Part("bce_loss", "loss", (*_LOSS, "stable"), 12, args=("input", "target"), stable=True),
    Part("discriminator_loss", "loss", (*_LOSS, "stable"), 6, args=("logits_real", "logits_fake"),
         uses="bce_loss", stable=True),
    Part("generator_loss", "loss", (*_LOSS, "stable"), 6, args=("logits_fake",), uses="bce_loss", stable=True),
    Part("generator_loss_saturating", "loss", (*_LOSS, "stable"), 6, args=("logits_fake",), uses="bce_loss",
         stable=True),
    Part("get_optimizer", "optimizer", ("Adam", "lr", "betas", "parameters"), 4),
    Part("train_step", "train_step",
         ("returns", "order", "fresh noise", "detach", "losses", "discriminator update", "generator update",
          "raw scores"), 20, function="GANTrainer.train_step",
         reported=("returns", "order", "fresh noise", "detach")),
    Part("discriminator", "architecture", (*_DISCRIMINATOR, "seed"), 6, args=("seed",),
         reported=(*_SHAPES, "seed")),
    Part("generator", "architecture", (*_ARCHITECTURE, "seed"), 6, args=("noise_dim", "seed"),
         reported=(*_SHAPES, "seed")),
    Part("ls_discriminator_loss", "loss", _LOSS, 4, args=("scores_real", "scores_fake")),
    Part("ls_generator_loss", "loss", _LOSS, 4, args=("scores_fake",)),
    Part("build_dc_classifier", "architecture", _DISCRIMINATOR, 8, reported=_SHAPES),
    Part("build_dc_generator", "architecture", _ARCHITECTURE, 8, args=("noise_dim",), reported=_SHAPES),
    Part("interpolate_latent", "interpolation", ("values",), 4),
)

PART: dict[str, Part] = {p.name: p for p in PARTS}
NAMES: tuple[str, ...] = tuple(PART)

if abs(sum(p.points for p in PARTS) - MODULE_POINTS) > 1e-9:
    raise RuntimeError(f"the parts' points must sum to {MODULE_POINTS:g}")


def get(name: str) -> Part:
    """The part called ``name``; a KeyError that lists the parts otherwise."""
    try:
        return PART[name]
    except KeyError:
        raise KeyError(f"unknown part {name!r}; the parts are: {', '.join(NAMES)}") from None
