"""The class-conditional denoising UNet shared by pixel DDPM and latent diffusion.

The architecture of Ho et al. (2020) as refined by Dhariwal and Nichol (2021, "ADM"):
residual blocks with GroupNorm, a sinusoidal timestep embedding, self-attention at the
coarser resolutions, skip connections from every encoder block to the decoder. The class
enters through a learned embedding added to the timestep embedding; index ``n_classes``
is the "no class" token that classifier-free guidance (Ho and Salimans 2022) trains with
label dropout and queries at sampling time.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from synthlens.generators.blocks import (
    AttentionBlock,
    Downsample,
    ResBlock,
    Upsample,
    group_count,
    timestep_embedding,
)


class _Step(nn.Module):
    """A residual block optionally followed by attention (one UNet "layer")."""

    def __init__(self, cin: int, cout: int, emb_dim: int, attention: bool, heads: int,
                 dropout: float) -> None:
        super().__init__()
        self.res = ResBlock(cin, cout, emb_dim, dropout)
        self.attn = AttentionBlock(cout, heads) if attention else None

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        x = self.res(x, emb)
        return self.attn(x) if self.attn is not None else x


class ConditionalUNet(nn.Module):
    """eps-prediction UNet ``model(x_t, t, y)``.

    Parameters
    ----------
    in_channels, out_channels:
        Image (or latent) channels in and out.
    n_classes:
        Number of real classes; the embedding has one more row, the null class.
    base_channels, channel_mults:
        Width of the first level and the multiplier of each level; the input size must be
        divisible by ``2 ** (len(channel_mults) - 1)``.
    num_res_blocks:
        Residual blocks per level on the way down (one more on the way up, as in DDPM).
    attention_levels:
        Level indices (0 = full resolution) that get self-attention after each block.
    mid_attention:
        Self-attention in the middle block (DDPM has it; tiny CPU budgets turn it off).
    """

    def __init__(self, in_channels: int, out_channels: int, n_classes: int, *,
                 base_channels: int = 64, channel_mults: Sequence[int] = (1, 2, 2),
                 num_res_blocks: int = 2, attention_levels: Sequence[int] = (2,),
                 mid_attention: bool = True, heads: int = 4, dropout: float = 0.0) -> None:
        super().__init__()
        self.n_classes = n_classes
        self.levels = len(channel_mults)
        self.base_channels = base_channels
        emb_dim = base_channels * 4
        self.time_mlp = nn.Sequential(nn.Linear(base_channels, emb_dim), nn.SiLU(),
                                      nn.Linear(emb_dim, emb_dim))
        self.class_embed = nn.Embedding(n_classes + 1, emb_dim)
        self.conv_in = nn.Conv2d(in_channels, base_channels, 3, padding=1)

        self.down = nn.ModuleList()
        skips = [base_channels]
        ch = base_channels
        for level, mult in enumerate(channel_mults):
            for _ in range(num_res_blocks):
                self.down.append(_Step(ch, base_channels * mult, emb_dim,
                                       level in attention_levels, heads, dropout))
                ch = base_channels * mult
                skips.append(ch)
            if level < self.levels - 1:
                self.down.append(Downsample(ch))
                skips.append(ch)
        self.mid = nn.ModuleList([_Step(ch, ch, emb_dim, mid_attention, heads, dropout),
                                  _Step(ch, ch, emb_dim, False, heads, dropout)])
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mults))):
            for _ in range(num_res_blocks + 1):
                self.up.append(_Step(ch + skips.pop(), base_channels * mult, emb_dim,
                                     level in attention_levels, heads, dropout))
                ch = base_channels * mult
            if level > 0:
                self.up.append(Upsample(ch))
        self.norm_out = nn.GroupNorm(group_count(ch), ch)
        self.conv_out = nn.Conv2d(ch, out_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        emb = self.time_mlp(timestep_embedding(t, self.base_channels)) + self.class_embed(y)
        h = self.conv_in(x)
        skips = [h]
        for layer in self.down:
            h = layer(h, emb)
            skips.append(h)
        for layer in self.mid:
            h = layer(h, emb)
        for layer in self.up:
            if isinstance(layer, Upsample):
                h = layer(h)
            else:
                h = layer(torch.cat([h, skips.pop()], dim=1), emb)
        return self.conv_out(F.silu(self.norm_out(h)))
