"""Multi-scale SSIM (Wang, Simoncelli and Bovik 2003), written out for batches of image pairs.

Conventions follow torchmetrics' ``multiscale_structural_similarity_index_measure`` with
``normalize="relu"`` so the two agree to float precision: an 11-tap Gaussian window
(σ = 1.5) applied after reflection padding, K1 = 0.01, K2 = 0.03, 2×2 average pooling between
scales, the contrast-structure term at every scale but the last (its border, one window
radius wide, left out) and the full SSIM at the last scale, each clipped at 0 and raised to
its scale's weight. Small images (MedMNIST is 28×28) cannot hold five scales; ``scales=None``
uses as many as keep the coarsest scale at least one window wide, with the standard weights
of those scales renormalised to sum to 1.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def _gaussian_window(size: int, sigma: float, channels: int, dtype: torch.dtype) -> torch.Tensor:
    """The 1-D Gaussian taps, shaped ``(channels, 1, 1, size)``: the 2-D window is their outer
    product, applied as a row pass then a column pass (11 + 11 taps per pixel, not 121)."""
    coords = torch.arange(size, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return g.expand(channels, 1, 1, size).contiguous()


def _ssim_and_cs(x: torch.Tensor, y: torch.Tensor, window: torch.Tensor, c1: float,
                 c2: float) -> tuple[torch.Tensor, torch.Tensor]:
    pad = (window.shape[-1] - 1) // 2
    channels = x.shape[1]
    x = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    y = F.pad(y, (pad, pad, pad, pad), mode="reflect")
    stack = torch.cat([x, y, x * x, y * y, x * y])
    rows = F.conv2d(stack, window, groups=channels)
    mu_x, mu_y, xx, yy, xy = F.conv2d(rows, window.transpose(2, 3),
                                      groups=channels).split(x.shape[0])
    var_x = (xx - mu_x**2).clamp(min=0)
    var_y = (yy - mu_y**2).clamp(min=0)
    cov = xy - mu_x * mu_y
    cs_map = (2 * cov + c2) / (var_x + var_y + c2)
    ssim_map = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1) * cs_map
    cs_map = cs_map[..., pad:-pad, pad:-pad]
    return ssim_map.flatten(1).mean(1), cs_map.flatten(1).mean(1)


def default_scales(height: int, width: int, window: int = 11) -> int:
    """Most scales (≤ 5) whose coarsest level is still at least ``window`` pixels wide."""
    side = min(height, width)
    scales = 1
    while scales < len(MS_SSIM_WEIGHTS) and side // 2**scales >= window:
        scales += 1
    return scales


def ms_ssim(x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor, *,
            data_range: float = 255.0, scales: int | None = None, window: int = 11,
            sigma: float = 1.5, k1: float = 0.01, k2: float = 0.03) -> np.ndarray:
    """MS-SSIM of aligned image pairs ``x[i], y[i]``; images (N,H,W) or (N,H,W,C)."""
    xt = torch.as_tensor(np.asarray(x), dtype=torch.float64)
    yt = torch.as_tensor(np.asarray(y), dtype=torch.float64)
    if xt.shape != yt.shape:
        raise ValueError(f"image batches differ in shape: {tuple(xt.shape)} vs {tuple(yt.shape)}")
    if xt.ndim == 3:
        xt, yt = xt[:, None], yt[:, None]
    elif xt.ndim == 4:
        xt, yt = xt.permute(0, 3, 1, 2), yt.permute(0, 3, 1, 2)
    else:
        raise ValueError(f"expected images of shape (N,H,W) or (N,H,W,C), got {tuple(xt.shape)}")
    height, width = xt.shape[-2:]
    if scales is None:
        scales = default_scales(height, width, window)
    if min(height, width) // 2 ** (scales - 1) <= (window - 1) // 2:
        raise ValueError(f"{height}x{width} images are too small for {scales} MS-SSIM scales")
    weights = torch.tensor(MS_SSIM_WEIGHTS[:scales], dtype=torch.float64)
    if scales < len(MS_SSIM_WEIGHTS):
        weights = weights / weights.sum()
    win = _gaussian_window(window, sigma, xt.shape[1], torch.float64)
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    terms = []
    for level in range(scales):
        ssim, cs = _ssim_and_cs(xt, yt, win, c1, c2)
        terms.append(ssim if level == scales - 1 else cs)
        if level < scales - 1:
            xt, yt = F.avg_pool2d(xt, 2), F.avg_pool2d(yt, 2)
    stacked = torch.stack(terms).clamp(min=0)
    return torch.prod(stacked ** weights[:, None], dim=0).numpy()
