"""Bringing a user's synthetic set to the real image size (``resize:``, ``--resize``).

``area`` averages the source pixels each output pixel covers (Pillow's ``BOX`` filter:
the usual choice for shrinking; growing by it repeats pixels); ``lanczos`` is Pillow's
Lanczos-3 windowed sinc (sharper, for growing or shrinking). Both work on ``uint8``
images, one at a time, and round to ``uint8``; grey stays grey and RGB stays RGB.
"""

from __future__ import annotations

import numpy as np

#: Accepted values of ``resize:``; ``none`` refuses a set whose size differs.
RESIZE_METHODS = ("none", "area", "lanczos")


def resize_images(images: np.ndarray, size: tuple[int, int], method: str) -> np.ndarray:
    """``images`` (``(N, H, W)`` or ``(N, H, W, 3)`` ``uint8``) resampled to ``size``
    (height, width) with ``method`` (``area`` or ``lanczos``)."""
    from PIL import Image

    filters = {"area": Image.Resampling.BOX, "lanczos": Image.Resampling.LANCZOS}
    if method not in filters:
        raise ValueError(f"resize method {method!r} is not one of {sorted(filters)}")
    height, width = (int(s) for s in size)
    out = np.empty((images.shape[0], height, width, *images.shape[3:]), dtype=np.uint8)
    for i, image in enumerate(images):
        out[i] = np.asarray(Image.fromarray(image).resize((width, height), filters[method]))
    return out
