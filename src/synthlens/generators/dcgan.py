"""Conditional DCGAN (Radford, Metz and Chintala 2016; conditioning after Mirza and Osindero
2014 and Miyato and Koyama 2018): the baseline GAN that anchors the scale below StyleGAN2.

Generator: z concatenated with a class embedding, projected to a base×base map, then
stride-2 transposed convolutions with BatchNorm and ReLU, tanh output. Discriminator:
stride-2 convolutions with LeakyReLU(0.2) and BatchNorm (none on the first layer), a linear
real/fake output plus a projection of the class embedding. Adam (lr 2e-4, beta1 0.5),
non-saturating loss, as in the paper.

The number of doublings is chosen from the image size (28 -> 7×7 base, 2 doublings;
64 -> 4×4, 4 doublings), so no padding is needed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from synthlens.generators import distributed
from synthlens.generators.base import Budget, Generator


def doublings(size: int) -> int:
    """Largest k with size divisible by 2**k and size / 2**k >= 4."""
    k = 0
    while size % 2 ** (k + 1) == 0 and size // 2 ** (k + 1) >= 4:
        k += 1
    return k


class DCGANGenerator(nn.Module):
    def __init__(self, size: int, img_channels: int, n_classes: int, z_dim: int,
                 width: int) -> None:
        super().__init__()
        self.n_up = doublings(size)
        self.base = size // 2 ** self.n_up
        self.top = width * 2 ** (self.n_up - 1) if self.n_up else width
        self.embed = nn.Embedding(n_classes, z_dim)
        self.project = nn.Sequential(
            nn.Linear(2 * z_dim, self.top * self.base * self.base, bias=False),
            nn.BatchNorm1d(self.top * self.base * self.base), nn.ReLU(True))
        layers: list[nn.Module] = []
        ch = self.top
        for i in range(self.n_up):
            last = i == self.n_up - 1
            out = img_channels if last else ch // 2
            layers.append(nn.ConvTranspose2d(ch, out, 4, stride=2, padding=1, bias=last))
            if not last:
                layers += [nn.BatchNorm2d(out), nn.ReLU(True)]
            ch = out
        if not self.n_up:
            layers.append(nn.Conv2d(ch, img_channels, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.project(torch.cat([z, self.embed(labels)], 1))
        return torch.tanh(self.net(h.view(-1, self.top, self.base, self.base)))


class DCGANDiscriminator(nn.Module):
    def __init__(self, size: int, img_channels: int, n_classes: int, width: int) -> None:
        super().__init__()
        n_down = doublings(size)
        layers: list[nn.Module] = []
        ch_in, ch = img_channels, width
        for i in range(n_down):
            layers.append(nn.Conv2d(ch_in, ch, 4, stride=2, padding=1, bias=i == 0))
            if i > 0:
                layers.append(nn.BatchNorm2d(ch))
            layers.append(nn.LeakyReLU(0.2, True))
            ch_in, ch = ch, ch * 2
        self.net = nn.Sequential(*layers)
        base = size // 2 ** n_down
        self.features = ch_in * base * base
        self.out = nn.Linear(self.features, 1)
        self.embed = nn.Embedding(n_classes, self.features)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.net(x).flatten(1)
        return self.out(h)[:, 0] + (self.embed(labels) * h).sum(1)


@dataclass(frozen=True)
class DCGANKnobs:
    """Knobs of :class:`DCGAN`.

    Parameters
    ----------
    z_dim:
        Latent size [100].
    width:
        Feature maps of the discriminator's first layer and the generator's last hidden
        layer [64]; doubled per resolution step.
    beta1:
        Adam beta1 [0.5].
    """

    z_dim: int = 100
    width: int = 64
    beta1: float = 0.5


class DCGAN(Generator[DCGANKnobs]):
    """Conditional DCGAN; knobs: :class:`DCGANKnobs` (each left out comes from the
    budget's ``options``, else its default)."""

    family = "dcgan"
    Knobs = DCGANKnobs
    size_multiple = 4  # as the other families (its stride-2 stack adapts: 28 -> 7×7 base)
    checkpointed = ("G", "D", "opt_G", "opt_D")

    def _build(self, budget: Budget) -> None:
        assert self.image_shape is not None
        size = self.image_shape[0]
        knobs = self.knobs
        self.z_dim = knobs.z_dim
        width = knobs.width
        self.G = DCGANGenerator(size, self.channels, self.n_classes, self.z_dim,
                                width).to(self.device)
        self.D = DCGANDiscriminator(size, self.channels, self.n_classes, width).to(self.device)
        for module in (*self.G.modules(), *self.D.modules()):
            # DCGAN initialisation: N(0, 0.02) weights, BatchNorm scale N(1, 0.02).
            if isinstance(module, nn.Conv2d | nn.ConvTranspose2d | nn.Linear | nn.Embedding):
                nn.init.normal_(module.weight, 0.0, 0.02)
            elif isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d):
                nn.init.normal_(module.weight, 1.0, 0.02)
                nn.init.zeros_(module.bias)
        betas = (knobs.beta1, 0.999)
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=budget.lr, betas=betas)
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=budget.lr, betas=betas)

    def _train_step(self, stage: str, images: torch.Tensor, labels: torch.Tensor,
                    step: int) -> dict[str, float]:
        self.G.train()
        self.D.train()
        z = distributed.randn(len(labels), self.z_dim, device=self.device)
        fake = self._parallel(self.G)(z, labels)
        # Discriminator on real and (detached) fake batches.
        D = self._parallel(self.D)
        loss_d = (F.softplus(-D(images, labels)).mean()
                  + F.softplus(D(fake.detach(), labels)).mean())
        self.opt_D.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_D.step()
        # Generator: non-saturating loss (D's own gradients here are not used, so it runs
        # outside DDP; G's are averaged over the ranks).
        loss_g = F.softplus(-self.D(fake, labels)).mean()
        self.opt_G.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_G.step()
        return {"loss_d": float(loss_d.detach()), "loss_g": float(loss_g.detach())}

    def _generate(self, labels: torch.Tensor, generator: torch.Generator,
                  knobs: DCGANKnobs) -> torch.Tensor:
        self.G.eval()  # BatchNorm running statistics: a sample does not depend on its batch
        z = torch.randn(len(labels), self.z_dim, generator=generator).to(self.device)
        return self.G(z, labels)
