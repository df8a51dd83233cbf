"""Building blocks shared by the generator families: group-norm residual blocks,
attention, resampling and the timestep embedding (padding to a network's working size is
in :mod:`synthlens.data.tensors`)."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


def next_power_of_two(size: int) -> int:
    return 1 << max(2, (size - 1).bit_length())


def group_count(channels: int) -> int:
    """GroupNorm groups: the most of (32, 16, 8, 4, 2) that leaves >= 4 channels a group."""
    for groups in (32, 16, 8, 4, 2):
        if channels % groups == 0 and channels // groups >= 4:
            return groups
    return 1


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of (possibly fractional) timesteps, as in DDPM / ADM."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    return F.pad(emb, (0, 1)) if dim % 2 else emb


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice with a skip; an optional embedding (time + class) is
    projected to a per-channel scale and shift of the second norm (ADM's scale-shift norm).
    """

    def __init__(self, cin: int, cout: int, emb_dim: int | None = None,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(group_count(cin), cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * cout) if emb_dim else None
        self.norm2 = nn.GroupNorm(group_count(cout), cout)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)  # each block starts as the identity
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.norm2(h)
        if self.emb is not None and emb is not None:
            scale, shift = self.emb(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
            h = h * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class AttentionBlock(nn.Module):
    """Multi-head self-attention over all positions, with a residual connection."""

    def __init__(self, channels: int, heads: int = 4) -> None:
        super().__init__()
        while channels % heads:
            heads -= 1
        self.heads = heads
        self.norm = nn.GroupNorm(group_count(channels), channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        n, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(n, 3, self.heads, c // self.heads, h * w) \
            .permute(1, 0, 2, 4, 3).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v)  # (n, heads, hw, c/heads)
        return x + self.proj(out.permute(0, 1, 3, 2).reshape(n, c, h, w))


class Downsample(nn.Module):
    """Stride-2 3×3 convolution."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest-neighbour ×2 then a 3×3 convolution (no checkerboard artefacts)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))
