"""The VQ-VAE-2 autoencoder (Razavi, van den Oord and Vinyals 2019), without its priors.

Two-level hierarchical VQ-VAE: the bottom encoder downsamples by 4, the top encoder by a
further 2; the top code map is quantised first, decoded and concatenated with the bottom
features before the bottom map is quantised; the decoder sees both code maps (the layout
of the authors' description and of the widely used ``rosinality/vq-vae-2-pytorch``).
Codebooks follow EMA updates with commitment loss beta = 0.25 (:class:`VectorQuantizer`).

The ``vqvae2`` generator family trains it with class-conditional priors on its codes; the
``vqvae_codes`` feature extractor trains it alone and compares the code maps.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from synthlens.nets.quantizer import VectorQuantizer


class _ResBlock(nn.Module):
    def __init__(self, channels: int, res_channels: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, res_channels, 3, padding=1),
                                 nn.ReLU(), nn.Conv2d(res_channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


def _encoder(cin: int, channels: int, n_res: int, res_channels: int, stride: int) -> nn.Module:
    if stride == 4:
        layers: list[nn.Module] = [
            nn.Conv2d(cin, channels // 2, 4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(channels // 2, channels, 4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1)]
    else:
        layers = [nn.Conv2d(cin, channels // 2, 4, stride=2, padding=1), nn.ReLU(),
                  nn.Conv2d(channels // 2, channels, 3, padding=1)]
    layers += [_ResBlock(channels, res_channels) for _ in range(n_res)] + [nn.ReLU()]
    return nn.Sequential(*layers)


def _decoder(cin: int, cout: int, channels: int, n_res: int, res_channels: int,
             stride: int) -> nn.Module:
    layers: list[nn.Module] = [nn.Conv2d(cin, channels, 3, padding=1)]
    layers += [_ResBlock(channels, res_channels) for _ in range(n_res)] + [nn.ReLU()]
    if stride == 4:
        layers += [nn.ConvTranspose2d(channels, channels // 2, 4, stride=2, padding=1), nn.ReLU(),
                   nn.ConvTranspose2d(channels // 2, cout, 4, stride=2, padding=1)]
    else:
        layers += [nn.ConvTranspose2d(channels, cout, 4, stride=2, padding=1)]
    return nn.Sequential(*layers)


class VQVAE2Net(nn.Module):
    """The two-level autoencoder (no prior). Input size must be divisible by 8."""

    def __init__(self, in_channels: int, *, channels: int = 128, res_channels: int = 32,
                 n_res_blocks: int = 2, num_codes: int = 512, code_dim: int = 64,
                 decay: float = 0.99, commitment: float = 0.25) -> None:
        super().__init__()
        self.enc_b = _encoder(in_channels, channels, n_res_blocks, res_channels, 4)
        self.enc_t = _encoder(channels, channels, n_res_blocks, res_channels, 2)
        self.quant_conv_t = nn.Conv2d(channels, code_dim, 1)
        self.quantize_t = VectorQuantizer(num_codes, code_dim, decay=decay,
                                          commitment=commitment)
        self.dec_t = _decoder(code_dim, code_dim, channels, n_res_blocks, res_channels, 2)
        self.quant_conv_b = nn.Conv2d(code_dim + channels, code_dim, 1)
        self.quantize_b = VectorQuantizer(num_codes, code_dim, decay=decay,
                                          commitment=commitment)
        self.upsample_t = nn.ConvTranspose2d(code_dim, code_dim, 4, stride=2, padding=1)
        self.dec = _decoder(2 * code_dim, in_channels, channels, n_res_blocks, res_channels, 4)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                torch.Tensor, torch.Tensor]:
        """-> (quantised top, quantised bottom, commitment loss, top codes, bottom codes)."""
        h_b = self.enc_b(x)
        h_t = self.enc_t(h_b)
        q_t, commit_t, id_t = self.quantize_t(self.quant_conv_t(h_t))
        dec_t = self.dec_t(q_t)
        q_b, commit_b, id_b = self.quantize_b(self.quant_conv_b(torch.cat([dec_t, h_b], 1)))
        return q_t, q_b, commit_t + commit_b, id_t, id_b

    def decode(self, q_t: torch.Tensor, q_b: torch.Tensor) -> torch.Tensor:
        return self.dec(torch.cat([self.upsample_t(q_t), q_b], 1))

    def decode_codes(self, id_t: torch.Tensor, id_b: torch.Tensor) -> torch.Tensor:
        return self.decode(self.quantize_t.lookup(id_t), self.quantize_b.lookup(id_b))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q_t, q_b, commit, _, _ = self.encode(x)
        return self.decode(q_t, q_b), commit

    def loss(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Training loss of a batch (size divisible by 8): reconstruction MSE plus the
        commitment loss of both levels; also returns the MSE and both code perplexities."""
        recon, commit = self(x)
        recon_loss = F.mse_loss(recon, x)
        return recon_loss + commit, {"recon": float(recon_loss.detach()),
                                     "perplexity_top": self.quantize_t.perplexity(),
                                     "perplexity_bottom": self.quantize_b.perplexity()}

    def code_rows(self, x: torch.Tensor) -> torch.Tensor:
        """Code maps of a batch as rows: the top map, then the bottom map, flattened."""
        _, _, _, id_t, id_b = self.encode(x)
        return torch.cat([id_t.flatten(1), id_b.flatten(1)], 1)
