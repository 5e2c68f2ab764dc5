"""MNIST-C corruptions: deterministic, shape-preserving, and each doing what MNIST-C's does."""

import numpy as np
import pytest
import torch

from vaepipe.core.paths import IMAGE_SIDE as SIDE
from vaepipe.data.corruptions import CORRUPTIONS, corrupt


def digits(n: int = 16) -> torch.Tensor:
    """Synthetic 'digits': a bright bar and a ring of varying size, grey levels included, flat [n, 784]."""
    rows, cols = torch.meshgrid(torch.arange(SIDE), torch.arange(SIDE), indexing="ij")
    images = []
    for i in range(n):
        radius = 5 + i % 5
        ring = ((rows - 14) ** 2 + (cols - 14) ** 2 - radius ** 2).abs() < 2 * radius
        bar = (cols - 12 - i % 3).abs() <= 1
        images.append(torch.where(ring | bar, 1.0, 0.0) * (0.6 + 0.4 * (i % 2)))
    return torch.stack(images).reshape(n, -1)


MNIST_C = {"shot_noise", "impulse_noise", "glass_blur", "motion_blur", "shear", "scale", "rotate", "brightness",
           "translate", "stripe", "fog", "spatter", "dotted_line", "zigzag", "canny_edges"}


def test_mnist_cs_types_but_the_two_that_need_other_libraries():
    assert set(CORRUPTIONS) == MNIST_C - {"motion_blur", "canny_edges"}


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_deterministic_shape_preserving_and_not_the_identity(name):
    x = digits()
    first, again = corrupt(x, name, seed=1), corrupt(x, name, seed=1)
    assert first.shape == x.shape and first.dtype == torch.uint8
    assert torch.equal(first, again)
    assert (first.float() / 255 - x).abs().mean() > 0.005


@pytest.mark.parametrize("name", ["shot_noise", "impulse_noise", "glass_blur", "shear", "rotate", "translate",
                                  "fog", "spatter", "dotted_line", "zigzag"])
def test_random_types_follow_the_seed(name):
    x = digits(32)
    assert not torch.equal(corrupt(x, name, seed=1), corrupt(x, name, seed=2))


def test_stripe_inverts_the_outer_seven_columns():
    x = digits(2)
    out = corrupt(x, "stripe", 0).float().view(2, SIDE, SIDE) / 255
    grey = x.view(2, SIDE, SIDE)
    expected = torch.cat([1 - grey[:, :, :7], grey[:, :, 7:21], 1 - grey[:, :, 21:]], dim=2)
    assert torch.allclose(out, expected, atol=0.5 / 255)


def test_brightness_adds_half_and_clips():
    x = digits(2)
    out = corrupt(x, "brightness", 0).float() / 255
    assert torch.allclose(out, (x + 0.5).clamp(max=1), atol=0.5 / 255)


def centre_of_mass(images: torch.Tensor) -> torch.Tensor:
    grid = torch.arange(SIDE, dtype=torch.float32)
    m = images.float().view(-1, SIDE, SIDE)
    total = m.sum((1, 2))
    return torch.stack([(m.sum(2) * grid).sum(1) / total, (m.sum(1) * grid).sum(1) / total], 1)  # row, column


def test_translate_moves_each_image_three_pixels_along_each_axis():
    x = torch.zeros(16, SIDE, SIDE)
    x[:, 10:18, 11:17] = 1  # a block well inside the frame, so nothing is shifted out
    x = x.reshape(16, -1)
    shift = centre_of_mass(corrupt(x, "translate", 0)) - centre_of_mass(x)
    assert torch.allclose(shift.abs(), torch.full_like(shift, 3.0), atol=0.05)
    assert {tuple(s) for s in torch.sign(shift).tolist()} != {(1.0, 1.0)}  # directions vary


def test_scale_shrinks_about_the_centre_to_seven_tenths():
    x = digits()
    def spread(images):
        m = images.float().view(-1, SIDE, SIDE)
        centred = ((torch.arange(SIDE) - 13.5) ** 2)
        return ((m.sum(2) * centred).sum(1) / m.sum((1, 2))).sqrt()
    ratio = spread(corrupt(x, "scale", 0)) / spread(x)
    assert torch.allclose(ratio, torch.full_like(ratio, 0.7), atol=0.03)


def test_rotate_turns_a_bar_by_0_4_radians():
    bar = torch.zeros(4, SIDE, SIDE)
    bar[:, 4:24, 13:15] = 1  # vertical
    out = corrupt(bar.reshape(4, -1), "rotate", 0).float().view(4, SIDE, SIDE) / 255
    rows, cols = torch.nonzero(out[0] > 0.5, as_tuple=True)
    slope = np.polyfit(rows.numpy(), cols.numpy(), 1)[0]  # columns per row along the bar
    assert abs(abs(np.arctan(slope)) - 0.4) < 0.05


def test_impulse_noise_touches_about_seventeen_percent_of_pixels():
    x = torch.full((50, SIDE * SIDE), 0.5)
    out = corrupt(x, "impulse_noise", 0).float() / 255
    changed = (out - 0.5).abs() > 0.1
    assert abs(changed.float().mean().item() - 0.17) < 0.01
    assert set(torch.unique(out[changed]).tolist()) == {0.0, 1.0}


def test_fog_adds_a_haze_of_strength_three_and_rescales_to_a_quarter():
    """MNIST-C's fog at severity 5: (x + 3 h) * peak / (peak + 3) with h a fractal in [0, 1]; for a peak of 1
    that is (x + 3 h) / 4, so 4 * fog - x is the haze, within [0, 3], and varies across the image."""
    x = digits(8)
    x = x / x.max(dim=1, keepdim=True).values  # peak 1
    haze = 4 * corrupt(x, "fog", 0).float() / 255 - x
    assert haze.min() > -4 / 255 and haze.max() < 3 + 4 / 255
    assert (haze.std(dim=1) > 0.05).all()
