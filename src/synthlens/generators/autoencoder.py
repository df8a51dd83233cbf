"""First-stage autoencoders of latent diffusion (Rombach et al. 2022, section 3.1).

The encoder/decoder pair of the latent diffusion code base (residual blocks, a middle block
with self-attention, stride-2 downsampling per level), regularised either by a small KL
term towards N(0, I) (``KLAutoencoder``, "KL-reg") or by a vector-quantisation layer
absorbed into the decoder (``VQAutoencoder``, "VQ-reg": the diffusion model works on the
continuous encoder output and the decoder quantises it, as in the paper's VQ models).

Not included: the LPIPS perceptual loss (it needs downloaded VGG weights) and the patch
discriminator; the reconstruction loss is L1 + L2.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from synthlens.generators import distributed
from synthlens.generators.blocks import AttentionBlock, ResBlock, group_count
from synthlens.nets.quantizer import VectorQuantizer


class Encoder(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, base_channels: int,
                 channel_mults: Sequence[int], num_res_blocks: int) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(in_channels, base_channels, 3, padding=1)
        layers: list[nn.Module] = []
        ch = base_channels
        for level, mult in enumerate(channel_mults):
            for _ in range(num_res_blocks):
                layers.append(ResBlock(ch, base_channels * mult))
                ch = base_channels * mult
            if level < len(channel_mults) - 1:
                layers.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))
        layers += [ResBlock(ch, ch), AttentionBlock(ch), ResBlock(ch, ch),
                   nn.GroupNorm(group_count(ch), ch), nn.SiLU(),
                   nn.Conv2d(ch, out_channels, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.conv_in(x))


class Decoder(nn.Module):
    def __init__(self, latent_channels: int, out_channels: int, base_channels: int,
                 channel_mults: Sequence[int], num_res_blocks: int) -> None:
        super().__init__()
        ch = base_channels * channel_mults[-1]
        layers: list[nn.Module] = [nn.Conv2d(latent_channels, ch, 3, padding=1),
                                   ResBlock(ch, ch), AttentionBlock(ch), ResBlock(ch, ch)]
        for level, mult in reversed(list(enumerate(channel_mults))):
            for _ in range(num_res_blocks + 1):
                layers.append(ResBlock(ch, base_channels * mult))
                ch = base_channels * mult
            if level > 0:
                layers += [nn.Upsample(scale_factor=2.0, mode="nearest"),
                           nn.Conv2d(ch, ch, 3, padding=1)]
        layers += [nn.GroupNorm(group_count(ch), ch), nn.SiLU(),
                   nn.Conv2d(ch, out_channels, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class KLAutoencoder(nn.Module):
    """Encoder -> diagonal Gaussian posterior -> decoder; downsampling factor
    ``2 ** (len(channel_mults) - 1)``."""

    def __init__(self, in_channels: int, latent_channels: int = 4, *, base_channels: int = 64,
                 channel_mults: Sequence[int] = (1, 2, 2), num_res_blocks: int = 1,
                 kl_weight: float = 1e-6) -> None:
        super().__init__()
        self.kl_weight = kl_weight
        self.encoder = Encoder(in_channels, 2 * latent_channels, base_channels, channel_mults,
                               num_res_blocks)
        self.decoder = Decoder(latent_channels, in_channels, base_channels, channel_mults,
                               num_res_blocks)

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, logvar = self.encoder(x).chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def encode_params(self, x: torch.Tensor) -> torch.Tensor:
        """The posterior's parameters, mean and log-variance stacked on the channel axis:
        deterministic, so a frozen encoder's output can be computed once and reused."""
        return torch.cat(self.posterior(x), dim=1)

    def latent(self, params: torch.Tensor, sample: bool = True) -> torch.Tensor:
        """A latent from :meth:`encode_params`: a posterior draw (global RNG), or its mean
        with ``sample=False``."""
        mean, logvar = params.chunk(2, dim=1)
        return mean + distributed.randn_like(mean) * (0.5 * logvar).exp() if sample else mean

    def encode(self, x: torch.Tensor, sample: bool = True) -> torch.Tensor:
        """A latent of x: a posterior draw (global RNG), or its mean with ``sample=False``."""
        return self.latent(self.encode_params(x), sample)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def loss(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        mean, logvar = self.posterior(x)
        z = mean + distributed.randn_like(mean) * (0.5 * logvar).exp()
        recon = self.decoder(z)
        rec = (recon - x).abs().mean() + F.mse_loss(recon, x)
        # KL per latent element, matching the per-pixel reconstruction scale.
        kl = 0.5 * (mean.square() + logvar.exp() - 1 - logvar).mean()
        loss = rec + self.kl_weight * kl * mean[0].numel()
        return loss, {"recon": float(rec.detach()), "kl": float(kl.detach())}


class VQAutoencoder(nn.Module):
    """Encoder -> (vector quantiser in the decoder) -> decoder."""

    def __init__(self, in_channels: int, latent_channels: int = 4, *, base_channels: int = 64,
                 channel_mults: Sequence[int] = (1, 2, 2), num_res_blocks: int = 1,
                 num_codes: int = 512, commitment: float = 0.25) -> None:
        super().__init__()
        self.encoder = Encoder(in_channels, latent_channels, base_channels, channel_mults,
                               num_res_blocks)
        self.quantize = VectorQuantizer(num_codes, latent_channels, commitment=commitment)
        self.decoder = Decoder(latent_channels, in_channels, base_channels, channel_mults,
                               num_res_blocks)

    def encode_params(self, x: torch.Tensor) -> torch.Tensor:
        """The continuous encoder output (the decoder quantises it)."""
        return self.encoder(x)

    def latent(self, params: torch.Tensor, sample: bool = True) -> torch.Tensor:
        """The latent for :meth:`encode_params` (deterministic: ``sample`` has no effect)."""
        return params

    def encode(self, x: torch.Tensor, sample: bool = True) -> torch.Tensor:
        return self.latent(self.encode_params(x), sample)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.quantize(z)[0])

    def loss(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        quantised, commit, _ = self.quantize(self.encoder(x))
        recon = self.decoder(quantised)
        rec = (recon - x).abs().mean() + F.mse_loss(recon, x)
        return rec + commit, {"recon": float(rec.detach()), "commit": float(commit.detach()),
                              "perplexity": self.quantize.perplexity()}
