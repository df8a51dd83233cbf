"""Raw pixels as a baseline feature space: no network, no weights."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from synthlens.data.dataset import ImageSet
from synthlens.data.tensors import to_tensor
from synthlens.errors import InputError
from synthlens.features.base import Extractor

BATCH_BYTES = 64 * 2**20
"""Float32 pixels per default batch."""


class PixelExtractor(Extractor):
    """Flattened pixels scaled to [0, 1], optionally area-averaged down to ``size``.

    Parameters
    ----------
    size:
        ``None`` keeps the native resolution; an int (square) or ``(height, width)``
        averages pixels over areas (an exact box mean when the size divides the image,
        PyTorch's adaptive average pooling bins otherwise). Only downsampling is allowed:
        upsampling adds no information.
    """

    name = "pixels"
    distance = "euclidean"
    default_batch_size = 1024

    def __init__(self, size: int | tuple[int, int] | list[int] | None = None) -> None:
        if size is not None:
            hw = (int(size), int(size)) if isinstance(size, int | np.integer) else tuple(
                int(s) for s in size)
            if len(hw) != 2 or min(hw) < 1:
                raise InputError("pixels.size", f"expected a positive int or (height, width), "
                                                f"got {size!r}")
            self.size: tuple[int, int] | None = (hw[0], hw[1])
        else:
            self.size = None
        self._dim: int | None = None

    @property
    def id(self) -> str:
        return "pixels" if self.size is None else f"pixels-area{self.size[0]}x{self.size[1]}"

    @property
    def weights_sha256(self) -> None:
        return None

    @property
    def preprocessing(self) -> dict[str, Any]:
        return {
            "input": "uint8 [0, 255]",
            "channels": "as given (grey 1, RGB 3)",
            "resize": None if self.size is None else {
                "size": list(self.size),
                "filter": "area average (adaptive average pooling; exact box mean when the "
                          "size divides the image); downsampling only",
            },
            "value_range": "x / 255 -> [0, 1]",
            "layout": "height, width, channel flattened in C order",
        }

    @property
    def dim(self) -> int | None:
        return self._dim

    def extract(self, images: np.ndarray | ImageSet, *, batch_size: int | None = None,
                device: str = "cpu", progress: bool = False) -> np.ndarray:
        """Float32 features written straight into the output array; by default a batch
        holds at most about 64 MB of float32 pixels (1024 images of 128x128 grey, 256 of
        256x256), so large images add no more than that above the features."""
        if batch_size is None:
            shape = (images.images if isinstance(images, ImageSet) else np.asarray(images)).shape
            per_image = 4 * int(np.prod(shape[1:], dtype=np.int64))
            gpu = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
            scale = 4 if gpu else 1  # as the base class scales its default
            batch_size = max(1, min(self.default_batch_size, BATCH_BYTES // per_image) * scale)
        return super().extract(images, batch_size=batch_size, device=device,
                               progress=progress)

    def _check_input(self, images: np.ndarray) -> None:
        if self.size is not None and (self.size[0] > images.shape[1]
                                      or self.size[1] > images.shape[2]):
            raise InputError("pixels.size", f"{list(self.size)} is larger than the images "
                                            f"({images.shape[1]}x{images.shape[2]}); "
                                            "pixels only downsample")
        channels = 3 if images.ndim == 4 else 1
        h, w = self.size or images.shape[1:3]
        self._dim = int(h * w * channels)

    def _extract_batch(self, images: np.ndarray, device: str) -> torch.Tensor:
        x = to_tensor(images, device).div_(255.0)
        if self.size is not None and tuple(x.shape[2:]) != self.size:
            x = F.adaptive_avg_pool2d(x, self.size)
        return x.permute(0, 2, 3, 1).reshape(len(x), -1).cpu()
