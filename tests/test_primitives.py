"""The one home of each small primitive: image <-> tensor conversion, the device resolver and
the label check, each against an independent computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from synthlens.data.dataset import ImageSet, validate_labels
from synthlens.data.tensors import (
    crop_to,
    from_model_range,
    pad_to,
    to_images,
    to_model_range,
    to_tensor,
)
from synthlens.device import resolve_device, seeded_rng
from synthlens.errors import InputError


@pytest.mark.parametrize("shape", [(3, 5, 6), (3, 5, 6, 3)])
def test_conversions_keep_layout_and_values(shape: tuple[int, ...]) -> None:
    images = np.random.default_rng(0).integers(0, 256, shape).astype(np.uint8)
    x = to_tensor(images)
    channels_last = images if images.ndim == 4 else images[..., None]
    assert x.dtype == torch.float32 and x.shape == (3, channels_last.shape[-1], 5, 6)
    np.testing.assert_array_equal(x.permute(0, 2, 3, 1).numpy(), channels_last)
    model = to_model_range(images)
    np.testing.assert_allclose(model.numpy(), x.numpy() / 127.5 - 1.0, rtol=0, atol=1e-6)
    assert model.min() >= -1 and model.max() <= 1
    # every uint8 value survives the round trip through the model range exactly
    np.testing.assert_array_equal(from_model_range(model), images)
    np.testing.assert_array_equal(to_images(x), images)


def test_from_model_range_clips_and_rounds() -> None:
    x = torch.tensor([-3.0, -1.0, 0.0, 0.999, 5.0]).view(1, 1, 1, 5)
    assert from_model_range(x).tolist() == [[[0, 0, 128, 255, 255]]]  # 127.5 rounds to even
    assert to_images(torch.tensor([[[[-2.0, 254.6, 300.0]]]])).tolist() == [[[0, 255, 255]]]


def test_pad_to_and_crop_to_are_inverse() -> None:
    x = torch.arange(2 * 28 * 28, dtype=torch.float32).view(2, 1, 28, 28)
    padded = pad_to(x, 32)
    assert padded.shape == (2, 1, 32, 32)
    torch.testing.assert_close(crop_to(padded, 28), x)
    torch.testing.assert_close(padded[..., 0, 2:30], x[..., 2, :])  # reflect: row 2 mirrors


def test_resolve_device() -> None:
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(InputError, match="device: must be cpu, cuda or auto, got 'gpu'"):
        resolve_device("gpu")
    with pytest.raises(InputError, match="must be cpu, cuda or auto"):
        resolve_device("cudax")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="torch sees no GPU"):
            resolve_device("cuda:0")


def test_seeded_rng_seeds_the_block_and_restores_the_caller_state() -> None:
    torch.manual_seed(1)
    before = torch.get_rng_state()
    with seeded_rng("cpu", 7):
        inside = torch.rand(3)
    assert torch.equal(torch.get_rng_state(), before)
    torch.manual_seed(7)
    torch.testing.assert_close(inside, torch.rand(3))


def test_one_label_check_for_loaders_image_sets_and_metrics() -> None:
    from synthlens.metrics.evaluate import evaluate_features
    from synthlens.metrics.reference import RealReference

    np.testing.assert_array_equal(validate_labels(np.array([[1.0], [0.0]]), 2, "x"), [1, 0])
    assert validate_labels(np.array([True, False]), 2, "x").dtype == np.int64
    features = np.random.default_rng(0).standard_normal((30, 3))
    reference = RealReference(k=3)
    bad = np.r_[np.zeros(29, int), -1]
    images = np.zeros((30, 4, 4), np.uint8)
    # the same check, and so the same message, wherever labels enter
    messages = []
    for call in (lambda: validate_labels(bad, 30, "labels"),
                 lambda: ImageSet(images, bad, ("a", "b"), source="labels"),
                 lambda: reference.fit(features, bad),
                 lambda: evaluate_features(RealReference(k=3).fit(features), features, bad)):
        with pytest.raises(InputError, match="negative label -1") as error:
            call()
        messages.append(error.value.problem)
    assert len(set(messages)) == 1
    fitted = RealReference(k=3).fit(features, np.arange(30) % 2)
    with pytest.raises(InputError, match="synthetic labels: 30 images but 3 labels"):
        evaluate_features(fitted, features, np.zeros(3, int))
