"""The non-learned reference sets."""

from __future__ import annotations

import numpy as np

from synthlens.data.dataset import ImageSet
from synthlens.generators.references import duplicate_reference


def test_real_duplicate_draws_training_images_per_class_with_replacement():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (30, 8, 8), dtype=np.uint8)
    labels = np.r_[np.zeros(25, int), np.ones(5, int)]
    train = ImageSet(images, labels, ("a", "b"), split="train")
    dup = duplicate_reference(train, [12, 9], seed=3)
    assert dup.split == "real-duplicate" and dup.class_counts().tolist() == [12, 9]
    rows = {images[i].tobytes(): labels[i] for i in range(30)}
    # every image is a training image of the class it is labelled with
    assert all(rows[img.tobytes()] == lab for img, lab in zip(dup.images, dup.labels,
                                                               strict=True))
    # 9 draws from 5 images: some repeat (with replacement)
    b = {img.tobytes() for img in dup.images[dup.labels == 1]}
    assert len(b) < 9
    again = duplicate_reference(train, [12, 9], seed=3)
    assert np.array_equal(again.images, dup.images)
    assert not np.array_equal(duplicate_reference(train, [12, 9], seed=4).images, dup.images)
