"""uint8 image arrays to torch tensors and back, and padding them to a network's size.

Images travel between stages as ``uint8`` arrays ``(N, H, W)`` (grey) or ``(N, H, W, 3)``
(RGB); networks take float ``(N, C, H, W)`` tensors, either in pixel units (0..255, which
each feature extractor then scales as its preprocessing says) or in the model range
[-1, 1] that generators and classifiers train in. These are the only conversions.

Networks that halve the resolution several times need a size divisible by a power of two;
a 28×28 MedMNIST image is reflect-padded to 32×32 on the way in and centre-cropped on the
way out, so callers never see the working size.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch.nn import functional as F


def to_tensor(images: np.ndarray, device: str = "cpu") -> torch.Tensor:
    """uint8 (N,H,W) or (N,H,W,3) -> float32 (N,C,H,W) on ``device``, values 0..255.

    The uint8 batch travels to the device before conversion (4x less to copy).
    """
    x = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
    return x.float()


def to_model_range(images: np.ndarray, device: str = "cpu") -> torch.Tensor:
    """uint8 (N,H,W) or (N,H,W,3) -> float32 (N,C,H,W) in [-1, 1] (``x / 127.5 - 1``)."""
    return to_tensor(images, device).div_(127.5).sub_(1.0)


def to_images(x: torch.Tensor) -> np.ndarray:
    """Float (N,C,H,W) in pixel units -> uint8 (N,H,W) (one channel) or (N,H,W,C): rounded
    and clipped to 0..255; only the uint8 result leaves the device."""
    x = x.detach().round().clamp(0, 255).to(torch.uint8).cpu()
    return (x[:, 0] if x.shape[1] == 1 else x.permute(0, 2, 3, 1)).numpy()


def from_model_range(x: torch.Tensor) -> np.ndarray:
    """Model output in [-1, 1], (N,C,H,W) -> uint8 (N,H,W) or (N,H,W,3) (clipped first)."""
    return to_images((x.detach().float().clamp(-1, 1) + 1) * 127.5)


def working_size(size: int, multiple: int) -> int:
    """The smallest size >= ``size`` divisible by ``multiple``."""
    return -(-size // multiple) * multiple


def pad_to(x: torch.Tensor, size: int) -> torch.Tensor:
    """Reflect-pad a square N×C×s×s batch to ``size`` (centred; extra pixel at the end)."""
    extra = size - x.shape[-1]
    if extra == 0:
        return x
    if extra < 0:
        raise ValueError(f"cannot pad {x.shape[-1]} px down to {size}")
    before, after = extra // 2, extra - extra // 2
    if max(before, after) >= x.shape[-1]:  # reflect needs a wider image than the pad
        return F.pad(x, (before, after, before, after), mode="replicate")
    return F.pad(x, (before, after, before, after), mode="reflect")


def crop_to(x: torch.Tensor, size: int) -> torch.Tensor:
    """Centre-crop a square batch to ``size`` (the inverse of :func:`pad_to`)."""
    extra = x.shape[-1] - size
    if extra == 0:
        return x
    before = extra // 2
    return x[..., before:before + size, before:before + size]


@torch.no_grad()
def frozen_outputs(network: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor,
                   size: int, device: str, batch_size: int = 256) -> torch.Tensor:
    """``network`` of every image, reflect-padded to ``size``, run batch by batch on
    ``device`` without gradients and gathered on the CPU: a frozen model's outputs for a
    whole training split (bounded memory on the device)."""
    rows = [network(pad_to(images[start:start + batch_size].to(device), size)).cpu()
            for start in range(0, len(images), batch_size)]
    return torch.cat(rows)
