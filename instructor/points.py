"""Points per part of gan_pytorch.py; each part's points are split evenly over its sub-tests (partial credit).

The module is worth 100 points. The notebook's autograded cells give feedback only (they run the same checks
as the module grader, on public data, in a process the student controls); its manually graded answers keep the
points written in their nbgrader metadata and are graded by people.
"""

from __future__ import annotations

from gan_utils.checks import PARTS, SUBTESTS

POINTS: dict[str, float] = {
    "sample_noise": 6,
    "discriminator": 6,
    "generator": 6,
    "build_dc_classifier": 8,
    "build_dc_generator": 8,
    "bce_loss": 12,
    "discriminator_loss": 6,
    "generator_loss": 6,
    "generator_loss_saturating": 6,
    "ls_discriminator_loss": 4,
    "ls_generator_loss": 4,
    "get_optimizer": 4,
    "train_step": 20,
    "interpolate_latent": 4,
}
MODULE_TOTAL = 100.0

if set(POINTS) != set(PARTS) or abs(sum(POINTS.values()) - MODULE_TOTAL) > 1e-9:
    raise RuntimeError("instructor/points.py: POINTS must name every part of gan_utils.checks and sum to 100")


def subtest_points(part: str) -> float:
    """Points of one sub-test of ``part``."""
    return POINTS[part] / len(SUBTESTS[part])
