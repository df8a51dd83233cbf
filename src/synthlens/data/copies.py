"""Exact copies: which images of a set are byte-identical to an image of a real split.

One hash per image (:func:`synthlens.hashing.rows_sha256`), so the check is exact and
cheap (a dictionary look-up per image), whatever the feature space. It serves the privacy
audit (copies of the training images, the members) and the leak check (copies of the real
val and test images, which would inflate utility).
"""

from __future__ import annotations

import numpy as np

from synthlens.hashing import rows_sha256


class ImageIndex:
    """The images of one real split, by hash: :meth:`find` says which images of another
    array are identical to one of them."""

    def __init__(self, images: np.ndarray) -> None:
        self.index: dict[str, int] = {}
        for i, digest in enumerate(rows_sha256(images)):
            self.index.setdefault(digest, i)

    def find(self, images: np.ndarray) -> np.ndarray:
        """Per image of ``images``: the index of an identical image of this split (the
        first, when it holds several), −1 when there is none (``int64``)."""
        return np.array([self.index.get(d, -1) for d in rows_sha256(images)], dtype=np.int64)


def copy_indices(found: np.ndarray) -> list[int]:
    """Rows that :meth:`ImageIndex.find` matched (an identical real image exists)."""
    return np.flatnonzero(found >= 0).tolist()
