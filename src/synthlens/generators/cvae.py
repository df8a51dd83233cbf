"""Conditional VAE (Kingma and Welling 2014; Sohn et al. 2015): the baseline learned
generator. Its samples are blurry but varied, which makes it a useful low-fidelity anchor.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from synthlens.errors import SettingError
from synthlens.generators import distributed
from synthlens.generators.base import Budget, Generator, sample_knob


def _conv_trunk(channels: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for cin, cout in itertools.pairwise(channels):
        layers += [nn.Conv2d(cin, cout, 4, stride=2, padding=1), nn.GroupNorm(8, cout),
                   nn.SiLU()]
    return nn.Sequential(*layers)


class _CVAENet(nn.Module):
    """Encoder q(z | x, y) and decoder p(x | z, y) with a learned class embedding.

    Works on any square size divisible by 4: two stride-2 stages down to H/4.
    """

    def __init__(self, channels: int, size: int, n_classes: int, latent_dim: int,
                 width: int) -> None:
        super().__init__()
        if size % 4:
            raise ValueError(f"cvae needs an image size divisible by 4, got {size}")
        self.base = size // 4
        self.width = width
        self.embed = nn.Embedding(n_classes, 16)
        self.encoder = _conv_trunk([channels + 1, width, width * 2])
        flat = width * 2 * self.base * self.base
        self.to_stats = nn.Linear(flat + 16, 2 * latent_dim)
        self.from_latent = nn.Linear(latent_dim + 16, flat)
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(width * 2, width, 4, stride=2, padding=1), nn.GroupNorm(8, width),
            nn.SiLU(),
            nn.ConvTranspose2d(width, width, 4, stride=2, padding=1), nn.GroupNorm(8, width),
            nn.SiLU(),
            nn.Conv2d(width, channels, 3, padding=1),
        )

    def encode(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # The class enters the encoder as an extra constant plane.
        plane = (y.float() / max(1, self.embed.num_embeddings - 1))[:, None, None, None]
        h = self.encoder(torch.cat([x, plane.expand(-1, 1, *x.shape[2:])], dim=1))
        mu, logvar = self.to_stats(torch.cat([h.flatten(1), self.embed(y)], 1)).chunk(2, 1)
        return mu, logvar.clamp(-10, 10)

    def decode(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.from_latent(torch.cat([z, self.embed(y)], 1))
        h = h.view(-1, self.width * 2, self.base, self.base)
        return torch.tanh(self.decoder(h))


@dataclass(frozen=True)
class CVAEKnobs:
    """Knobs of :class:`ConditionalVAE`.

    Parameters
    ----------
    latent_dim:
        Size of the latent code [32].
    width:
        Channels of the first convolution (doubled once) [32].
    beta:
        Weight of the KL term; below 1 gives sharper, less varied samples [1.0].
    temperature:
        Scale of the prior noise at sampling time [1.0] (a sample knob): below 1 trades
        variety for fidelity.
    """

    latent_dim: int = 32
    width: int = 32
    beta: float = 1.0
    temperature: float = sample_knob(1.0)

    def __post_init__(self) -> None:
        if self.width % 8:  # GroupNorm(8, width)
            raise SettingError("width", f"must be a multiple of 8, got {self.width}")


class ConditionalVAE(Generator[CVAEKnobs]):
    """Class-conditional VAE; knobs: :class:`CVAEKnobs`."""

    family = "cvae"
    Knobs = CVAEKnobs
    size_multiple = 4  # two stride-2 stages down to H/4
    checkpointed = ("net", "optimiser")

    def _build(self, budget: Budget) -> None:
        assert self.image_shape is not None
        knobs = self.knobs
        self.latent_dim = knobs.latent_dim
        self.net = _CVAENet(self.channels, self.image_shape[0], self.n_classes, knobs.latent_dim,
                            knobs.width).to(self.device)
        self.optimiser = torch.optim.Adam(self.net.parameters(), lr=budget.lr)

    def _train_step(self, stage: str, images: torch.Tensor, labels: torch.Tensor,
                    step: int) -> dict[str, float]:
        self.net.train()
        loss, recon_loss, kl = self._parallel(self.net, self._elbo)(images, labels)
        self.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        self.optimiser.step()
        return {"loss": float(loss.detach()), "recon": float(recon_loss.detach()),
                "kl": float(kl.detach())}

    def _elbo(self, images: torch.Tensor, labels: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(negative ELBO, reconstruction term, KL term) of a minibatch."""
        mu, logvar = self.net.encode(images, labels)
        z = mu + distributed.randn_like(mu) * (0.5 * logvar).exp()
        recon = self.net.decode(z, labels)
        # Sum over pixels, mean over the batch: the usual ELBO scaling.
        recon_loss = F.mse_loss(recon, images, reduction="none").flatten(1).sum(1).mean()
        kl = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)).mean()
        return recon_loss + self.knobs.beta * kl, recon_loss, kl

    def _generate(self, labels: torch.Tensor, generator: torch.Generator,
                  knobs: CVAEKnobs) -> torch.Tensor:
        self.net.eval()
        z = torch.randn(len(labels), self.latent_dim, generator=generator).to(self.device)
        return self.net.decode(z * knobs.temperature, labels)
