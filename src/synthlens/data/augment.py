"""Label-preserving augmentations of image batches (N×C×H×W, in [-1, 1]), drawn from an
explicit ``torch.Generator`` so that training stays reproducible and resumable.

The utility classifiers use both (``augment_shift``, ``augment_intensity``).
No flips: they swap laterality, which is not label-preserving for chest X-rays.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def random_shift(x: torch.Tensor, max_shift: int,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Translate each image by its own offset of up to ``max_shift`` pixels (reflect
    padding): cheap and label-preserving for medical images, unlike flips, which swap
    laterality. Offsets come from ``generator`` (a CPU generator; ``None``: torch's global
    one); ``x`` may live on any device."""
    if max_shift <= 0:
        return x
    n, _, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4, mode="reflect")
    dy, dx = torch.randint(0, 2 * max_shift + 1, (2, n), generator=generator).to(x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]  # (N, 1, H, 1)
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]  # (N, 1, 1, W)
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chans = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return padded[batch, chans, rows, cols]


def random_intensity(x: torch.Tensor, strength: float,
                     generator: torch.Generator) -> torch.Tensor:
    """Scale each image's contrast by 1 ± ``strength`` and shift its brightness by
    ± ``strength`` (uniform; images in [-1, 1]): exposure varies between scanners and sites."""
    if strength <= 0:
        return x
    n = x.shape[0]
    gain = 1.0 + (torch.rand(n, generator=generator) * 2 - 1) * strength
    bias = (torch.rand(n, generator=generator) * 2 - 1) * strength
    return x * gain[:, None, None, None] + bias[:, None, None, None]
