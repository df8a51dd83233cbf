"""The holdout: a share of the real train split that no generator sees.

It is the ``real-holdout`` reference set (what a perfect generator's scores look like) and
the non-member set of the privacy metrics. The draw is stratified by class and deterministic
given the seed; :func:`holdout_indices` is public so that a run folder can record exactly
which train images were held out.
"""

from __future__ import annotations

import numpy as np

from synthlens.data.dataset import ImageSet
from synthlens.errors import InputError

HOLDOUT_FRACTION = 0.1


def holdout_indices(train: ImageSet, fraction: float = HOLDOUT_FRACTION,
                    seed: int = 0) -> np.ndarray:
    """Sorted indices into ``train`` of the holdout images.

    Per class with ``n`` images, ``round(n * fraction)`` go to the holdout, at least one and
    at most ``n - 1``, so that every class with two or more images is on both sides; a class
    with a single image stays on the fit side.
    """
    if not 0.0 < fraction < 1.0:
        raise InputError("holdout fraction", f"must be between 0 and 1 (exclusive), got "
                                             f"{fraction}")
    rng = np.random.default_rng([int(seed), 0x401D])
    chosen = []
    for label in range(train.n_classes):
        members = np.flatnonzero(train.labels == label)
        n = members.size
        if n < 2:
            continue
        k = min(max(round(n * fraction), 1), n - 1)
        chosen.append(rng.permutation(members)[:k])
    if not chosen:
        raise InputError(train.source, "too few images to hold any out (every class has "
                                       "fewer than 2 training images)")
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def reserve_holdout(train: ImageSet, fraction: float = HOLDOUT_FRACTION,
                    seed: int = 0) -> tuple[ImageSet, ImageSet]:
    """Split ``train`` into ``(fit, holdout)``: generators fit on the first only.

    ``fit`` keeps the split name ``"train"``; ``holdout`` is named ``"holdout"``.
    """
    held = holdout_indices(train, fraction, seed)
    keep = np.ones(len(train), dtype=bool)
    keep[held] = False
    return train.subset(np.flatnonzero(keep), split=train.split), train.subset(held, "holdout")


def stratified_indices(labels: np.ndarray, n_total: int, rng: np.random.Generator, *,
                       min_per_class: int = 0) -> np.ndarray:
    """Sorted indices of ``n_total`` items, each class keeping its share (largest remainder),
    at least ``min(min_per_class, class size)`` per class."""
    labels = np.asarray(labels)
    classes, counts = np.unique(labels, return_counts=True)
    n_total = int(min(max(n_total, 0), len(labels)))
    exact = counts * n_total / len(labels)
    take = np.floor(exact).astype(np.int64)
    remainder = n_total - int(take.sum())
    if remainder > 0:
        take[np.argsort(-(exact - take), kind="stable")[:remainder]] += 1
    take = np.minimum(np.maximum(take, np.minimum(min_per_class, counts)), counts)
    chosen = [rng.choice(np.flatnonzero(labels == c), size=int(k), replace=False)
              for c, k in zip(classes, take, strict=True)]
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)


#: Stream id of the per-space subsample draw (independent of every other draw of the seed).
_SUBSAMPLE_STREAM = 0x5AB5


def stratified_subsample(images: ImageSet, n: int, seed: int = 0) -> ImageSet:
    """``n`` images of ``images``, every class keeping its share (and at least one image of
    each class present, which may add a few), drawn by ``seed`` alone: the same draw for
    every set of a run, whatever order the sets are scored in. ``images`` itself when it
    has ``n`` or fewer."""
    if len(images) <= n:
        return images
    rng = np.random.default_rng([int(seed), _SUBSAMPLE_STREAM])
    index = stratified_indices(images.labels, n, rng, min_per_class=1)
    return images.subset(index, split=images.split)
