"""Gated PixelCNN (van den Oord et al. 2016, "Conditional Image Generation with PixelCNN
Decoders"): the autoregressive prior over discrete code maps used by VQ-VAE (2017) and,
extended with attention as PixelSNAIL, by VQ-VAE-2 (2019).

Vertical and horizontal stacks remove the blind spot of the original PixelCNN; gated
activations tanh(W_f * x + V_f h) * sigmoid(W_g * x + V_g h) take the conditioning ``h``:
a class embedding (global) and, for the bottom prior of VQ-VAE-2, a map computed from the
top-level codes (spatial, non-causal, since the top codes are known in full).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class _GatedLayer(nn.Module):
    def __init__(self, dim: int, kernel: int, first: bool, n_classes: int,
                 cond_channels: int) -> None:
        super().__init__()
        self.first = first
        half = kernel // 2
        # Vertical stack: rows above (and, after the first layer, the current row of the
        # vertical stack, which itself only depends on rows above).
        self.vertical = nn.Conv2d(dim, 2 * dim, (half + 1, kernel), padding=(half, half))
        self.horizontal = nn.Conv2d(dim, 2 * dim, (1, half + 1), padding=(0, half))
        self.v_to_h = nn.Conv2d(2 * dim, 2 * dim, 1)
        self.h_out = nn.Conv2d(dim, dim, 1)
        self.class_embed = nn.Embedding(n_classes, 2 * dim)
        self.cond = nn.Conv2d(cond_channels, 2 * dim, 1) if cond_channels else None
        if first:
            # Type "A": the first layer must not see the pixel it predicts.
            v_mask = torch.ones_like(self.vertical.weight)
            v_mask[:, :, -1] = 0
            h_mask = torch.ones_like(self.horizontal.weight)
            h_mask[:, :, :, -1] = 0
            self.register_buffer("v_mask", v_mask, persistent=False)
            self.register_buffer("h_mask", h_mask, persistent=False)

    @staticmethod
    def _gate(x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        return torch.tanh(a) * torch.sigmoid(b)

    def forward(self, v: torch.Tensor, h: torch.Tensor, labels: torch.Tensor,
                cond: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        height, width = v.shape[-2:]
        v_weight = self.vertical.weight * self.v_mask if self.first else self.vertical.weight
        h_weight = self.horizontal.weight * self.h_mask if self.first else self.horizontal.weight
        v_feat = F.conv2d(v, v_weight, self.vertical.bias,
                          padding=self.vertical.padding)[:, :, :height]
        h_feat = F.conv2d(h, h_weight, self.horizontal.bias,
                          padding=self.horizontal.padding)[:, :, :, :width]
        bias = self.class_embed(labels)[:, :, None, None]
        if self.cond is not None and cond is not None:
            bias = bias + self.cond(cond)
        v_out = self._gate(v_feat + bias)
        h_gated = self._gate(self.v_to_h(v_feat) + h_feat + bias)
        h_out = self.h_out(h_gated)
        return v_out, (h_out if self.first else h + h_out)


class GatedPixelCNN(nn.Module):
    """p(codes | class [, top codes]) over an H×W map of ``num_codes`` symbols.

    Parameters
    ----------
    num_codes:
        Alphabet size (the codebook size).
    dim, n_layers, kernel:
        Width, number of gated layers and kernel size; the receptive field grows by
        ``kernel // 2`` rows per layer, so ``n_layers * (kernel // 2)`` should reach the
        map's height.
    n_classes:
        Classes of the global conditioning.
    cond_codes, cond_upsample:
        For a bottom prior: the alphabet of the conditioning (top) code map and how much
        smaller it is than this map (2 in VQ-VAE-2). 0 for an unconditional-map prior.
    """

    def __init__(self, num_codes: int, *, dim: int = 64, n_layers: int = 8, kernel: int = 5,
                 n_classes: int = 1, cond_codes: int = 0, cond_upsample: int = 2) -> None:
        super().__init__()
        self.num_codes = num_codes
        self.embed = nn.Embedding(num_codes, dim)
        cond_channels = 0
        if cond_codes:
            cond_channels = dim
            self.cond_embed = nn.Embedding(cond_codes, dim)
            self.cond_net = nn.Sequential(
                nn.Conv2d(dim, dim, 3, padding=1), nn.ELU(),
                nn.Upsample(scale_factor=cond_upsample, mode="nearest"),
                nn.Conv2d(dim, dim, 3, padding=1), nn.ELU(),
                nn.Conv2d(dim, dim, 3, padding=1),
            )
        self.layers = nn.ModuleList([
            _GatedLayer(dim, kernel, i == 0, n_classes, cond_channels) for i in range(n_layers)
        ])
        self.head = nn.Sequential(nn.ReLU(), nn.Conv2d(dim, 2 * dim, 1), nn.ReLU(),
                                  nn.Conv2d(2 * dim, num_codes, 1))

    def condition(self, cond_codes: torch.Tensor | None) -> torch.Tensor | None:
        if cond_codes is None or not hasattr(self, "cond_net"):
            return None
        return self.cond_net(self.cond_embed(cond_codes).permute(0, 3, 1, 2))

    def forward(self, codes: torch.Tensor, labels: torch.Tensor,
                cond_codes: torch.Tensor | None = None,
                cond: torch.Tensor | None = None) -> torch.Tensor:
        """Logits N×K×H×W of every position given the positions before it (raster order).
        Pass ``cond`` (from :meth:`condition`) to reuse the conditioning across calls."""
        if cond is None:
            cond = self.condition(cond_codes)
        x = self.embed(codes).permute(0, 3, 1, 2)
        v, h = x, x
        for layer in self.layers:
            v, h = layer(v, h, labels, cond)
        return self.head(h)

    @torch.no_grad()
    def sample(self, labels: torch.Tensor, shape: tuple[int, int], *,
               generator: torch.Generator, cond_codes: torch.Tensor | None = None,
               temperature: float = 1.0) -> torch.Tensor:
        """Draw code maps position by position (raster order), N×H×W int64.

        Draws use ``generator`` on the CPU, so a seed gives the same codes on any device.
        """
        height, width = shape
        device = labels.device
        codes = torch.zeros(len(labels), height, width, dtype=torch.long, device=device)
        cond = self.condition(cond_codes)
        for i in range(height):
            for j in range(width):
                # Only rows <= i influence position (i, j): crop to save work.
                crop_cond = cond[:, :, :i + 1] if cond is not None else None
                logits = self.forward(codes[:, :i + 1], labels, cond=crop_cond)[:, :, i, j]
                probs = F.softmax(logits.float().cpu() / max(temperature, 1e-6), dim=1)
                codes[:, i, j] = torch.multinomial(probs, 1, generator=generator)[:, 0].to(device)
        return codes
