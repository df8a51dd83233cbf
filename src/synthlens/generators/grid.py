"""Sample grids: one row per class, the first ``per_class`` images of that class, written as
a lossless PNG into the run folder for the report."""

from __future__ import annotations

import io
import os

import numpy as np

from synthlens.data.dataset import ImageSet
from synthlens.io import write_bytes


def sample_grid(images: ImageSet, per_class: int = 8, pad: int = 2) -> np.ndarray:
    """uint8 grid (rows = classes, in label order) with ``pad`` px of white between
    cells; classes with fewer images leave black cells."""
    h, w = images.image_shape[:2]
    channels = images.image_shape[2:]
    rows, cols = images.n_classes, per_class
    grid = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, *channels), 255,
                   dtype=np.uint8)
    for label in range(rows):
        members = images.of_class(label)[:per_class]
        for col in range(cols):
            y, x = pad + label * (h + pad), pad + col * (w + pad)
            grid[y:y + h, x:x + w] = members[col] if col < len(members) else 0
    return grid


def write_sample_grid(images: ImageSet, path: str | os.PathLike[str], per_class: int = 8,
                      scale: int = 1) -> None:
    """Write :func:`sample_grid` as a PNG (atomically), optionally enlarged ``scale``×
    by pixel repetition so that 28-px images stay visible."""
    from PIL import Image

    grid = sample_grid(images, per_class)
    if scale > 1:
        grid = grid.repeat(scale, axis=0).repeat(scale, axis=1)
    buffer = io.BytesIO()
    Image.fromarray(grid).save(buffer, format="PNG")
    write_bytes(path, buffer.getvalue())
