"""Non-learned reference sets that anchor the scale of every score.

- ``real-holdout``: real training images that no generator saw (the share of the training
  split reserved by :func:`synthlens.data.splits.reserve_holdout`). It is the best a
  generator could do without copying, and the non-member set of the privacy metrics.
- ``real-duplicate``: training images drawn with replacement, as many per class as every
  generated set has. It is what a generator that only replays its training data would give:
  a utility gain that does not beat it is not a gain from synthesis (Xing et al.'s question,
  asked of tuberculosis X-rays in 2026, where no synthetic mix beat this control).
- ``noise``: each class's mean training image plus Gaussian noise with the training
  split's per-pixel standard deviation: realistic intensity statistics, no anatomy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from synthlens.data.dataset import ImageSet
from synthlens.generators.base import counts_per_class


def noise_reference(train: ImageSet, n_per_class: int | Sequence[int] | np.ndarray, *,
                    seed: int = 0, name: str = "noise") -> ImageSet:
    """Per-class mean image + Gaussian noise (per-pixel std of that class), clipped to uint8."""
    counts = counts_per_class(n_per_class, train.n_classes)
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for label, count in enumerate(counts):
        members = train.of_class(label).astype(np.float32)
        mean, std = members.mean(axis=0), members.std(axis=0)
        noisy = mean + rng.standard_normal((int(count), *mean.shape), dtype=np.float32) * std
        images.append(np.clip(np.round(noisy), 0, 255).astype(np.uint8))
        labels.append(np.full(int(count), label, dtype=np.int64))
    return ImageSet(np.concatenate(images), np.concatenate(labels), train.class_names,
                    split=name, source="reference:noise")


def duplicate_reference(train: ImageSet, n_per_class: int | Sequence[int] | np.ndarray, *,
                        seed: int = 0, name: str = "real-duplicate") -> ImageSet:
    """Training images of each class drawn with replacement, ``n_per_class`` of each."""
    counts = counts_per_class(n_per_class, train.n_classes)
    rng = np.random.default_rng([seed, 0xD0B1E])
    index = []
    for label, count in enumerate(counts):
        members = np.flatnonzero(train.labels == label)
        if count and members.size == 0:
            raise ValueError(f"class {train.class_names[label]!r} has no training image to "
                             "duplicate")
        index.append(rng.choice(members, size=int(count), replace=True))
    picked = np.concatenate(index) if index else np.zeros(0, dtype=np.int64)
    out = train.subset(picked, split=name)
    return ImageSet(out.images, out.labels, train.class_names, split=name,
                    source="reference:real-duplicate")
