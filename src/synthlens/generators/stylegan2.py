"""StyleGAN2 (Karras et al. 2020, "Analyzing and Improving the Image Quality of StyleGAN"),
class-conditional as in StyleGAN2-ADA (Karras et al. 2020), which the study used.

Generator: a mapping network (z and an embedded class, each normalised, through fully
connected layers with a 0.01 learning-rate multiplier) gives w; the synthesis network
starts from a learned 4×4 constant and doubles the resolution per block, each block two
weight-modulated and demodulated 3×3 convolutions with per-pixel noise inputs, and a
"skip" output: every block's modulated 1×1 tRGB is added to the upsampled image so far.
Discriminator: the residual architecture with a minibatch standard-deviation layer and a
projection head for the class (Miyato and Koyama 2018). Training: non-saturating logistic
loss, lazy R1 on reals every ``r1_interval`` steps (Adam settings corrected for laziness),
equalised learning rate, exponential moving average of G with ramp-up; all as in the
official code. Omitted, as in its ``cifar`` preset for small images: path-length
regularisation and (by default) style mixing. Resampling uses the [1, 3, 3, 1] filter
(bilinear ×2 up; blur then stride 2 down).

Truncation (``sample(truncation=psi)``) moves each w towards its class's mean w:
w' = w_c + psi (w - w_c); psi = 0 gives one image per class (with the default ``const``
noise, as the official ``generate.py``), psi = 1 the untruncated distribution.

Non-power-of-two sizes (28×28) are generated at the next power of two and centre-cropped;
the discriminator reflect-pads its inputs back to that size.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from synthlens.data.tensors import crop_to, pad_to
from synthlens.device import full_precision
from synthlens.errors import SettingError
from synthlens.generators import distributed
from synthlens.generators.base import Budget, Generator, ema_update, sample_knob
from synthlens.generators.blocks import next_power_of_two

_SQRT2 = math.sqrt(2.0)


def _lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.2) * _SQRT2  # gain keeps the activations' variance


def _normalize(x: torch.Tensor) -> torch.Tensor:
    return x * (x.square().mean(dim=1, keepdim=True) + 1e-8).rsqrt()


def _fir_down(x: torch.Tensor) -> torch.Tensor:
    """Blur with [1, 3, 3, 1] ⊗ [1, 3, 3, 1] / 64 and keep every other pixel."""
    k = torch.tensor([1.0, 3.0, 3.0, 1.0], device=x.device, dtype=x.dtype)
    kernel = (k[:, None] * k[None]) / 64.0
    c = x.shape[1]
    return F.conv2d(x, kernel.expand(c, 1, 4, 4), stride=2, padding=1, groups=c)


def _up(x: torch.Tensor) -> torch.Tensor:
    """×2 bilinear upsampling: zero insertion followed by the [1, 3, 3, 1] filter."""
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


class EqualLinear(nn.Module):
    """Fully connected layer with the equalised learning rate (weights ~ N(0, 1), scaled
    at run time by lr_mul / sqrt(fan_in))."""

    def __init__(self, cin: int, cout: int, *, bias_init: float = 0.0, lr_mul: float = 1.0,
                 activation: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin) / lr_mul)
        self.bias = nn.Parameter(torch.full((cout,), float(bias_init) / lr_mul))
        self.scale = lr_mul / math.sqrt(cin)
        self.lr_mul = lr_mul
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)
        return _lrelu(out) if self.activation else out


class EqualConv2d(nn.Module):
    """Convolution with the equalised learning rate, optionally downsampling by 2 first."""

    def __init__(self, cin: int, cout: int, kernel: int, *, bias: bool = True,
                 activation: bool = True, down: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        self.scale = 1 / math.sqrt(cin * kernel * kernel)
        self.activation, self.down = activation, down

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.down:
            x = _fir_down(x)
        x = F.conv2d(x, self.weight * self.scale, self.bias, padding=self.weight.shape[-1] // 2)
        return _lrelu(x) if self.activation else x


class MappingNetwork(nn.Module):
    """z (+ class) -> w, as StyleGAN2-ADA: normalise z and the class embedding, concatenate,
    ``n_layers`` fully connected layers with lr multiplier 0.01."""

    def __init__(self, z_dim: int, w_dim: int, n_classes: int, n_layers: int,
                 lr_mul: float = 0.01) -> None:
        super().__init__()
        self.n_classes = n_classes
        self.embed = EqualLinear(n_classes, w_dim)
        dims = [z_dim + w_dim] + [w_dim] * n_layers
        self.layers = nn.Sequential(*[EqualLinear(a, b, lr_mul=lr_mul, activation=True)
                                      for a, b in itertools.pairwise(dims)])

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        y = self.embed(F.one_hot(labels, self.n_classes).to(z.dtype))
        return self.layers(torch.cat([_normalize(z), _normalize(y)], dim=1))


class ModulatedConv2d(nn.Module):
    """Weight modulation and demodulation (StyleGAN2 eq. 1-3), computed as scaling the
    input by the style, a shared convolution, and scaling the output by the demodulation
    coefficients (the official code's non-fused path; equal to the per-sample weights)."""

    def __init__(self, cin: int, cout: int, kernel: int, w_dim: int, *,
                 demodulate: bool = True, up: bool = False) -> None:
        super().__init__()
        self.affine = EqualLinear(w_dim, cin, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(cout, cin, kernel, kernel))
        self.scale = 1 / math.sqrt(cin * kernel * kernel)
        self.demodulate, self.up = demodulate, up

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w)
        weight = self.weight * self.scale
        x = x * styles[:, :, None, None]
        if self.up:
            x = _up(x)
        x = F.conv2d(x, weight, padding=weight.shape[-1] // 2)
        if self.demodulate:
            coef = (weight.square().sum(dim=(2, 3))[None] * styles.square()[:, None]).sum(2)
            x = x * (coef + 1e-8).rsqrt()[:, :, None, None]
        return x


class SynthesisLayer(nn.Module):
    """Modulated 3×3 convolution + scaled per-pixel noise + bias + leaky ReLU."""

    def __init__(self, cin: int, cout: int, w_dim: int, resolution: int, up: bool) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(cin, cout, 3, w_dim, up=up)
        self.noise_strength = nn.Parameter(torch.zeros(()))
        self.bias = nn.Parameter(torch.zeros(cout))
        # The fixed noise of ``noise_mode="const"`` (saved with the weights).
        self.register_buffer("noise_const", torch.randn(resolution, resolution))
        self.resolution = resolution

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str,
                generator: torch.Generator | None) -> torch.Tensor:
        x = self.conv(x, w)
        if noise_mode == "random":
            shape = (x.shape[0], 1, self.resolution, self.resolution)
            noise = (torch.randn(shape, generator=generator).to(x.device) if generator
                     is not None else distributed.randn(*shape, device=x.device))
            x = x + noise.to(x.dtype) * self.noise_strength
        elif noise_mode == "const":
            x = x + self.noise_const.to(x.dtype) * self.noise_strength
        return _lrelu(x + self.bias[None, :, None, None])


class ToRGB(nn.Module):
    def __init__(self, cin: int, cout: int, w_dim: int) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(cin, cout, 1, w_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(cout))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return self.conv(x, w) + self.bias[None, :, None, None]


class SynthesisNetwork(nn.Module):
    """Skip-architecture synthesis from 4×4 to ``resolution``; consumes ``num_ws`` w's."""

    def __init__(self, resolution: int, img_channels: int, w_dim: int,
                 channels: Mapping[int, int]) -> None:
        super().__init__()
        self.resolutions = [2 ** i for i in range(2, int(math.log2(resolution)) + 1)]
        self.const = nn.Parameter(torch.randn(channels[4], 4, 4))
        self.convs = nn.ModuleList()
        self.torgbs = nn.ModuleList()
        self.w_index: list[tuple[int, ...]] = []  # per block: conv indices, torgb index
        index = 0
        for res in self.resolutions:
            cin = channels[max(4, res // 2)]
            if res == 4:
                self.convs.append(nn.ModuleList([SynthesisLayer(cin, channels[4], w_dim, 4,
                                                                False)]))
                self.w_index.append((index, index + 1))
                index += 1
            else:
                self.convs.append(nn.ModuleList([
                    SynthesisLayer(cin, channels[res], w_dim, res, True),
                    SynthesisLayer(channels[res], channels[res], w_dim, res, False)]))
                self.w_index.append((index, index + 1, index + 2))
                index += 2
            self.torgbs.append(ToRGB(channels[res], img_channels, w_dim))
        self.num_ws = index + 1

    def forward(self, ws: torch.Tensor, noise_mode: str = "random",
                generator: torch.Generator | None = None) -> torch.Tensor:
        x = self.const[None].expand(ws.shape[0], -1, -1, -1).to(ws.dtype)
        img = None
        for layers, torgb, idx in zip(self.convs, self.torgbs, self.w_index, strict=True):
            for layer, i in zip(layers, idx[:-1], strict=True):
                x = layer(x, ws[:, i], noise_mode, generator)
            y = torgb(x, ws[:, idx[-1]])
            img = y if img is None else _up(img) + y
        assert img is not None
        return img


class StyleGenerator(nn.Module):
    def __init__(self, resolution: int, img_channels: int, n_classes: int, *, z_dim: int,
                 w_dim: int, mapping_layers: int, channels: Mapping[int, int]) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.mapping = MappingNetwork(z_dim, w_dim, n_classes, mapping_layers)
        self.synthesis = SynthesisNetwork(resolution, img_channels, w_dim, channels)

    def forward(self, z: torch.Tensor, labels: torch.Tensor, noise_mode: str = "random",
                generator: torch.Generator | None = None) -> torch.Tensor:
        w = self.mapping(z, labels)
        ws = w[:, None].expand(-1, self.synthesis.num_ws, -1)
        return self.synthesis(ws, noise_mode, generator)


class _DBlock(nn.Module):
    """Residual discriminator block: conv, downsampling conv, 1×1 skip; sum / sqrt(2)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv0 = EqualConv2d(cin, cin, 3)
        self.conv1 = EqualConv2d(cin, cout, 3, down=True)
        self.skip = EqualConv2d(cin, cout, 1, bias=False, activation=False, down=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.skip(x) + self.conv1(self.conv0(x))) / _SQRT2


class Discriminator(nn.Module):
    """Residual discriminator with minibatch-std and a projection class head."""

    def __init__(self, resolution: int, img_channels: int, n_classes: int,
                 channels: Mapping[int, int], mbstd_group: int = 4) -> None:
        super().__init__()
        self.n_classes, self.mbstd_group = n_classes, mbstd_group
        self.fromrgb = EqualConv2d(img_channels, channels[resolution], 1)
        res_list = [2 ** i for i in range(int(math.log2(resolution)), 2, -1)]
        self.blocks = nn.Sequential(*[_DBlock(channels[r], channels[r // 2]) for r in res_list])
        c4 = channels[4]
        self.conv = EqualConv2d(c4 + 1, c4, 3)
        self.fc = EqualLinear(c4 * 16, c4, activation=True)
        self.out = EqualLinear(c4, 1)
        self.embed = EqualLinear(n_classes, c4)

    def _mbstd(self, x: torch.Tensor) -> torch.Tensor:
        # groups over the global batch, also when each rank holds a share of it
        full = distributed.gather_rows(x)
        n, c, h, w = full.shape
        group = min(self.mbstd_group, n)
        while n % group:
            group -= 1
        y = full.float().reshape(group, -1, c, h, w)
        y = (y - y.mean(0)).square().mean(0).add(1e-8).sqrt().mean(dim=(1, 2, 3))
        y = y.reshape(-1, 1, 1, 1).repeat(group, 1, h, w).to(x.dtype)
        return torch.cat([x, distributed.local_rows(y, len(x))], dim=1)

    def forward(self, img: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.blocks(self.fromrgb(img))
        h = self.fc(self.conv(self._mbstd(h)).flatten(1))
        proj = (self.embed(F.one_hot(labels, self.n_classes).to(h.dtype)) * h).sum(1)
        return self.out(h)[:, 0] + proj / math.sqrt(h.shape[1])


def _requires_grad(module: nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


@dataclass(frozen=True)
class StyleGAN2Knobs:
    """Knobs of :class:`StyleGAN2` (defaults: ADA ``paper256``; budgets scale them down).

    Parameters
    ----------
    z_dim, w_dim, mapping_layers:
        Latent sizes [512, 512] and mapping depth [8].
    channel_base, channel_max:
        Feature maps at resolution r: min(channel_base // r, channel_max) [16384, 512].
    r1_gamma, r1_interval:
        R1 weight [0.01 (ADA ``cifar``)] and lazy interval [16].
    ema_kimg, ema_rampup:
        G EMA half-life in thousands of images [10] and its ramp-up [0.05].
    style_mixing:
        Probability of mixing two w's in a batch [0.0].
    g_lr, d_lr:
        Adam learning rates [None: ``budget.lr``]; betas (0, 0.99) as the official code.
    truncation:
        psi of every draw [1.0] (a sample knob), in [0, 1].
    noise_mode:
        Noise of every draw [``const``] (a sample knob): ``const`` (fixed maps),
        ``random`` or ``none``.
    """

    z_dim: int = 512
    w_dim: int = 512
    mapping_layers: int = 8
    channel_base: int = 16384
    channel_max: int = 512
    r1_gamma: float = 0.01
    r1_interval: int = 16
    ema_kimg: float = 10.0
    ema_rampup: float = 0.05
    style_mixing: float = 0.0
    g_lr: float | None = None
    d_lr: float | None = None
    truncation: float = sample_knob(1.0)
    noise_mode: Literal["const", "random", "none"] = sample_knob("const")

    def __post_init__(self) -> None:
        if not 0.0 <= self.truncation <= 1.0:
            raise SettingError("truncation", f"psi must lie in [0, 1], got {self.truncation}")
        if self.r1_interval < 1:
            raise SettingError("r1_interval", f"must be at least 1, got {self.r1_interval}")


class StyleGAN2(Generator[StyleGAN2Knobs]):
    """Class-conditional StyleGAN2 (single stage ``main``); knobs: :class:`StyleGAN2Knobs`
    (each left out comes from the budget's ``options``, else its default)."""

    family = "stylegan2"
    Knobs = StyleGAN2Knobs
    # Generated at the next power of two and centre-cropped; 4 as the other families.
    size_multiple = 4
    checkpointed = ("G", "D", "G_ema", "opt_G", "opt_D")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._w_class_mean: torch.Tensor | None = None

    def _build(self, budget: Budget) -> None:
        assert self.image_shape is not None
        size = self.image_shape[0]
        knobs = self.knobs
        self.size = size
        self.resolution = next_power_of_two(size)
        base, cmax = knobs.channel_base, knobs.channel_max
        channels = {2 ** i: min(base // 2 ** i, cmax)
                    for i in range(2, int(math.log2(self.resolution)) + 1)}
        self.z_dim = knobs.z_dim
        self.G = StyleGenerator(self.resolution, self.channels, self.n_classes,
                                z_dim=self.z_dim, w_dim=knobs.w_dim,
                                mapping_layers=knobs.mapping_layers,
                                channels=channels).to(self.device)
        self.D = Discriminator(self.resolution, self.channels, self.n_classes,
                               channels).to(self.device)
        self.G_ema = copy.deepcopy(self.G).eval()
        _requires_grad(self.G_ema, False)
        self.r1_gamma = knobs.r1_gamma
        self.r1_interval = knobs.r1_interval
        g_lr = knobs.g_lr if knobs.g_lr is not None else budget.lr
        d_lr = knobs.d_lr if knobs.d_lr is not None else budget.lr
        # Lazy regularisation: scale D's lr and betas so that the R1 steps do not change
        # the effective optimisation (StyleGAN2 appendix B).
        ratio = self.r1_interval / (self.r1_interval + 1)
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=g_lr, betas=(0.0, 0.99), eps=1e-8)
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=d_lr * ratio,
                                      betas=(0.0, 0.99 ** ratio), eps=1e-8)
        self._w_class_mean = None

    def _mix_ws(self, ws: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        prob = self.knobs.style_mixing
        if prob <= 0 or float(torch.rand(())) >= prob:
            return ws
        cutoff = int(torch.randint(1, ws.shape[1], ()))
        z2 = distributed.randn(ws.shape[0], self.z_dim, device=ws.device)
        ws = ws.clone()
        ws[:, cutoff:] = self.G.mapping(z2, labels)[:, None]
        return ws

    def _fake(self, labels: torch.Tensor) -> torch.Tensor:
        z = distributed.randn(len(labels), self.z_dim, device=self.device)
        w = self.G.mapping(z, labels)
        ws = self._mix_ws(w[:, None].expand(-1, self.G.synthesis.num_ws, -1), labels)
        return self.G.synthesis(ws, "random")

    def _d_input(self, images: torch.Tensor) -> torch.Tensor:
        """What D sees: the image at the user's size, padded to the working size."""
        return pad_to(crop_to(images, self.size), self.resolution)

    def _train_step(self, stage: str, images: torch.Tensor, labels: torch.Tensor,
                    step: int) -> dict[str, float]:
        assert self.budget is not None
        self._w_class_mean = None
        self.G.train()
        self.D.train()
        real = pad_to(images, self.resolution)
        # Generator: non-saturating loss (D, frozen here, runs outside DDP).
        _requires_grad(self.D, False)
        fake = self._parallel(self.G, self._fake)(labels)
        loss_g = F.softplus(-self.D(self._d_input(fake), labels)).mean()
        self.opt_G.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_G.step()
        # Discriminator: logistic loss, plus lazy R1 on reals.
        _requires_grad(self.D, True)
        do_r1 = self.r1_gamma > 0 and step % self.r1_interval == 0
        real = real.detach().requires_grad_(do_r1)
        loss_d, fake_logits, real_logits, r1 = self._parallel(self.D, self._d_loss)(
            fake.detach(), real, labels)
        logs = {"loss_g": float(loss_g.detach()), "loss_d": float(loss_d.detach()),
                "d_real": float(real_logits.detach().mean()),
                "d_fake": float(fake_logits.detach().mean())}
        if r1 is not None:
            loss_d = loss_d + r1 * (self.r1_gamma / 2) * self.r1_interval
            logs["r1"] = float(r1.detach())
        self.opt_D.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_D.step()
        # G EMA with the official half-life and ramp-up (in images of the global batch).
        batch = len(labels) * self.world.size
        ema_nimg = self.knobs.ema_kimg * 1000
        rampup = self.knobs.ema_rampup
        if rampup > 0:
            ema_nimg = min(ema_nimg, (step + 1) * batch * rampup)
        ema_update(self.G_ema, self.G, 0.5 ** (batch / max(ema_nimg, 1e-8)))
        return logs

    def _d_loss(self, fake: torch.Tensor, real: torch.Tensor, labels: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """D's logistic loss, its logits on fakes and reals, and the R1 penalty on the reals
        when they require a gradient (a lazy R1 step; computed in this forward, so that a
        data-parallel D averages the gradients of both terms in one backward pass)."""
        fake_logits = self.D(self._d_input(fake), labels)
        real_logits = self.D(real, labels)
        loss_d = F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()
        r1 = None
        if real.requires_grad:
            with full_precision(real):
                grad, = torch.autograd.grad(real_logits.float().sum(), real, create_graph=True)
                r1 = grad.float().square().sum(dim=(1, 2, 3)).mean()
        return loss_d, fake_logits, real_logits, r1

    @torch.no_grad()
    def class_mean_w(self, n: int = 4096) -> torch.Tensor:
        """Mean w of each class under the EMA mapping network (n_classes × w_dim), from a
        fixed set of z's so that it is the same after save/load."""
        if self._w_class_mean is None:
            generator = torch.Generator().manual_seed(20200303)
            z = torch.randn(n, self.z_dim, generator=generator).to(self.device)
            means = []
            for label in range(self.n_classes):
                labels = torch.full((n,), label, dtype=torch.long, device=self.device)
                means.append(self.G_ema.mapping(z, labels).float().mean(0))
            self._w_class_mean = torch.stack(means)
        return self._w_class_mean

    def _generate(self, labels: torch.Tensor, generator: torch.Generator,
                  knobs: StyleGAN2Knobs) -> torch.Tensor:
        psi, noise_mode = knobs.truncation, knobs.noise_mode
        z = torch.randn(len(labels), self.z_dim, generator=generator).to(self.device)
        w = self.G_ema.mapping(z, labels)
        if psi != 1.0:
            mean = self.class_mean_w()[labels].to(w.dtype)
            w = mean + psi * (w - mean)
        ws = w[:, None].expand(-1, self.G_ema.synthesis.num_ws, -1)
        img = self.G_ema.synthesis(ws, noise_mode, generator)
        return crop_to(img, self.size)

    def _load_state(self, state: Mapping[str, Any]) -> None:
        super()._load_state(state)
        self._w_class_mean = None  # computed again from the loaded mapping network


def truncation_sweep(model: StyleGAN2, n_per_class: int | np.ndarray,
                     psis: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0), *,
                     seed: int = 0, batch_size: int = 256) -> dict[float, Any]:
    """One synthetic set per psi from the same z's (the study's fidelity/variety sweep)."""
    return {psi: model.sample(n_per_class, seed=seed, batch_size=batch_size,
                              name=f"{model.family}-psi{psi:g}", truncation=psi)
            for psi in psis}
