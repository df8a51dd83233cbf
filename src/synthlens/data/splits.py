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
