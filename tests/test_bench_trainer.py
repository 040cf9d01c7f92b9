"""The trainer benchmark's count of a step's matrix products, which bounds how fast that step can run."""

from __future__ import annotations

import math

import torch
from torch import nn

from bench import bench_trainer
from gan_utils.models import make_trainer


def test_the_graded_step_counts_one_more_forward_pass_of_g_than_the_g_once_step():
    batch = 8
    images = torch.rand(4 * batch, 1, 28, 28) * 2 - 1
    graded = bench_trainer.step_product_flops("vanilla", images, batch, bf16=False)
    g_once = bench_trainer.step_product_flops("vanilla", images, batch, bf16=False, g_once=True)
    linears = [m for m in make_trainer("vanilla").G.modules() if isinstance(m, nn.Linear)]
    g_forward = sum(2 * batch * m.in_features * m.out_features for m in linears)
    assert len(linears) == 3 and graded - g_once == g_forward
    # the rest of the step (D's passes, both backward passes) is counted too
    assert g_once > 2 * g_forward


def test_product_rate_is_a_positive_rate():
    rate = bench_trainer.product_rate(torch.float32, size=64, calls=2)
    assert math.isfinite(rate) and rate > 0
