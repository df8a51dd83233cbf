"""Extract features once per (data, extractor, preprocessing).

The key is the SHA-256 of the image set (:meth:`ImageSet.sha256`) together with the
extractor's ``describe()`` minus its dimension: id, weights SHA-256 (for trained extractors
the fitted state's), preprocessing and distance. Any change to the images, the weights or
the preprocessing gives a new key; an unchanged set is never extracted twice, across runs
that share the cache folder too. Files are written atomically (``.npy`` + a ``.json`` note
of what they hold), so an interrupted run leaves no half-written features.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from synthlens.data.dataset import ImageSet
from synthlens.features.base import Extractor
from synthlens.hashing import array_sha256, json_sha256
from synthlens.io import atomic_path, write_json


class FeatureCache:
    """Feature arrays on disk under ``root``, keyed by data hash and feature space.

    ``extractions`` counts the sets actually extracted by this instance (``hits`` the ones
    served from disk), so a caller can assert that a repeated evaluation extracted nothing.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.extractions = 0
        self.images_extracted = 0
        self.hits = 0

    def key(self, extractor: Extractor, images: ImageSet | np.ndarray) -> str:
        data = images.sha256() if isinstance(images, ImageSet) else array_sha256(images)
        return json_sha256({"data": data, "space": extractor.cache_key()})

    def path(self, extractor: Extractor, images: ImageSet | np.ndarray) -> Path:
        folder = re.sub(r"[^A-Za-z0-9._-]+", "_", extractor.id)
        return self.root / folder / f"{self.key(extractor, images)}.npy"

    def __contains__(self, item: tuple[Extractor, ImageSet | np.ndarray]) -> bool:
        return self.path(*item).is_file()

    def get(self, extractor: Extractor, images: ImageSet | np.ndarray, *, device: str = "cpu",
            batch_size: int | None = None, progress: bool = False) -> np.ndarray:
        """Features of ``images``: read from the cache, or extracted and stored."""
        path = self.path(extractor, images)
        n = len(images)
        if path.is_file():
            try:
                features = np.load(path, allow_pickle=False)
            except (OSError, ValueError):  # unreadable file: extract again
                features = None
            if features is not None and features.shape[0] == n:
                self.hits += 1
                return features
        features = extractor.extract(images, batch_size=batch_size, device=device,
                                     progress=progress)
        self.extractions += 1
        self.images_extracted += n
        with atomic_path(path, suffix=".npy") as tmp, open(tmp, "wb") as handle:
            np.save(handle, features, allow_pickle=False)
        write_json(path.with_suffix(".json"), self._note(extractor, images, features))
        return features

    @staticmethod
    def _note(extractor: Extractor, images: ImageSet | np.ndarray,
              features: np.ndarray) -> dict[str, Any]:
        note: dict[str, Any] = {
            "feature_space": json.loads(json.dumps(extractor.describe())),
            "shape": list(features.shape),
            "dtype": str(features.dtype),
        }
        if isinstance(images, ImageSet):
            note.update(data_sha256=images.sha256(), split=images.split, source=images.source)
        else:
            note.update(data_sha256=array_sha256(images))
        return note
