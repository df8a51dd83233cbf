"""holdout_indices / reserve_holdout: stratified, deterministic, every class on both sides."""

from __future__ import annotations

import numpy as np
import pytest

from synthlens.data import ImageSet, holdout_indices, reserve_holdout
from synthlens.errors import InputError


def _set(counts: list[int]) -> ImageSet:
    labels = np.repeat(np.arange(len(counts)), counts)
    rng = np.random.default_rng(0)
    labels = rng.permutation(labels)
    images = np.arange(labels.size, dtype=np.int64)[:, None, None].repeat(4, 1).repeat(4, 2)
    return ImageSet((images % 256).astype(np.uint8), labels,
                    tuple(f"c{i}" for i in range(len(counts))), split="train")


def test_stratified_counts():
    train = _set([500, 300, 200])
    held = holdout_indices(train, 0.1, seed=0)
    assert np.bincount(train.labels[held], minlength=3).tolist() == [50, 30, 20]
    assert np.all(np.diff(held) > 0) and held.dtype == np.int64


def test_deterministic_and_seeded():
    train = _set([100, 80])
    np.testing.assert_array_equal(holdout_indices(train, 0.2, 3), holdout_indices(train, 0.2, 3))
    assert not np.array_equal(holdout_indices(train, 0.2, 3), holdout_indices(train, 0.2, 4))


def test_small_classes_keep_images_on_both_sides():
    train = _set([40, 2, 1, 3])
    held = holdout_indices(train, 0.1, seed=0)
    counts = np.bincount(train.labels[held], minlength=4).tolist()
    assert counts == [4, 1, 0, 1]  # at least 1, at most n-1; a lone image stays in fit


def test_reserve_holdout_partitions_train():
    train = _set([60, 40])
    fit, holdout = reserve_holdout(train, 0.25, seed=1)
    assert fit.split == "train" and holdout.split == "holdout"
    assert len(fit) + len(holdout) == len(train)
    assert holdout.class_counts().tolist() == [15, 10]
    held = holdout_indices(train, 0.25, seed=1)
    np.testing.assert_array_equal(holdout.images, train.images[held])
    np.testing.assert_array_equal(holdout.labels, train.labels[held])
    ids_fit = set(fit.images[:, 0, 0].tolist())
    ids_held = set(holdout.images[:, 0, 0].tolist())
    assert not ids_fit & ids_held  # every image (unique id < 256 here) on one side only
    assert fit.class_names == holdout.class_names == train.class_names


def test_fraction_validation():
    with pytest.raises(InputError, match=r"holdout fraction: must be between 0 and 1 .*got 1.0"):
        holdout_indices(_set([5, 5]), 1.0)
    with pytest.raises(InputError, match="holdout fraction"):
        holdout_indices(_set([5, 5]), 0.0)
    with pytest.raises(InputError, match="too few images to hold any out"):
        holdout_indices(_set([1, 1]), 0.5)


def test_stratified_subsample_keeps_shares_and_is_order_free():
    from synthlens.data import stratified_subsample

    labels = np.repeat([0, 1, 2], [700, 290, 10])
    pixels = np.random.default_rng(0).integers(0, 256, (1000, 4, 4), dtype=np.uint8)
    images = ImageSet(pixels, labels, ["a", "b", "c"], split="s")
    drawn = stratified_subsample(images, 100, seed=3)
    assert np.bincount(drawn.labels).tolist() == [70, 29, 1]
    assert drawn.images.tolist() == stratified_subsample(images, 100, seed=3).images.tolist()
    assert drawn.images.tolist() != stratified_subsample(images, 100, seed=4).images.tolist()
    assert stratified_subsample(images, 1000, seed=3) is images  # small enough: kept whole
