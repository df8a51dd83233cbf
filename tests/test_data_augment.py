"""Augmentations shared by the utility classifiers and the VQ-VAE-2 priors."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from synthlens.data.augment import random_intensity, random_shift


def test_random_shift_moves_each_image_within_bounds():
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).reshape(2, 1, 6, 6)
    generator = torch.Generator().manual_seed(0)
    assert torch.equal(random_shift(x, 0, generator), x)
    shifted = random_shift(x, 1, generator)
    padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
    for i in range(2):  # every output image is one 6x6 window of its padded input
        windows = [padded[i, :, dy:dy + 6, dx:dx + 6] for dy in range(3) for dx in range(3)]
        assert any(torch.equal(shifted[i], w) for w in windows)


def test_random_shift_draws_per_image_offsets_from_the_given_generator():
    x = torch.randn(64, 1, 8, 8)
    a = random_shift(x, 2, torch.Generator().manual_seed(3))
    b = random_shift(x, 2, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    # 64 images, 25 possible offsets: some images move, some by different amounts
    moved = [not torch.equal(a[i], x[i]) for i in range(64)]
    assert any(moved) and not all(torch.equal(a[i] - x[i], a[0] - x[0]) for i in range(64))
    torch.manual_seed(5)
    c = random_shift(x, 2)  # None: torch's global generator
    torch.manual_seed(5)
    assert torch.equal(c, random_shift(x, 2))


def test_random_intensity_is_an_affine_map_per_image_within_strength():
    x = torch.randn(16, 1, 5, 5)
    generator = torch.Generator().manual_seed(0)
    assert torch.equal(random_intensity(x, 0.0, generator), x)
    y = random_intensity(x, 0.2, generator)
    for i in range(16):
        # fit y = gain * x + bias exactly, with |gain - 1| <= 0.2 and |bias| <= 0.2
        a = torch.stack([x[i].flatten(), torch.ones(25)], 1)
        gain, bias = torch.linalg.lstsq(a, y[i].flatten()[:, None]).solution.flatten()
        assert abs(gain - 1) <= 0.2 + 1e-5 and abs(bias) <= 0.2 + 1e-5
        torch.testing.assert_close(gain * x[i] + bias, y[i], atol=1e-5, rtol=1e-5)
