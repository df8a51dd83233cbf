"""Pixel-space denoising diffusion (Ho et al. 2020, "Denoising Diffusion Probabilistic
Models"), class-conditional with classifier-free guidance (Ho and Salimans 2022).

The pipeline glues the model (:class:`~synthlens.generators.unet.ConditionalUNet`) to the
schedule and sampler (:mod:`synthlens.generators.schedulers`): training minimises
||eps - eps_theta(x_t, t, y)||^2 at uniformly drawn t, with the label replaced by the null
class with probability ``p_uncond``; sampling runs DDIM (``eta = 0``) or ancestral DDPM
(``eta = 1``, all steps) from the EMA weights with guidance scale s.

:class:`~synthlens.generators.latent_diffusion.LatentDiffusion` reuses all of this in the
latent space of a first-stage autoencoder by overriding the two space mappings.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Literal

import torch
from torch.nn import functional as F

from synthlens.data.tensors import crop_to, pad_to, working_size
from synthlens.errors import SettingError
from synthlens.generators import distributed
from synthlens.generators.base import Budget, Generator, ema_update, sample_knob
from synthlens.generators.schedulers import NoiseSchedule, ddim_sample
from synthlens.generators.unet import ConditionalUNet
from synthlens.nets.schedule import cosine_lr


@dataclass(frozen=True)
class DDPMKnobs:
    """Knobs of :class:`DDPM` (and, with other defaults, of latent diffusion).

    Parameters
    ----------
    base_channels, channel_mults, num_res_blocks, attention_levels, mid_attention, dropout:
        UNet width [64], per-level multipliers [(1, 2, 2)], blocks per level [2], levels with
        self-attention [(1,)], attention in the middle block [True] and dropout [0.1].
    num_train_timesteps, beta_start, beta_end, beta_schedule:
        The forward process [1000 steps, linear 1e-4 to 0.02 as Ho et al.].
    p_uncond:
        Label dropout for classifier-free guidance [0.1].
    ema_decay, warmup:
        EMA decay of the sampling weights [0.999, ramped up as min(decay, (1+n)/(10+n))]
        and learning-rate warm-up steps [200].
    num_inference_steps, eta, guidance_scale:
        Sampler settings of every draw [50 DDIM steps, eta 0, guidance 1.5] (sample knobs).
    """

    base_channels: int = 64
    channel_mults: tuple[int, ...] = (1, 2, 2)
    num_res_blocks: int = 2
    attention_levels: tuple[int, ...] = (1,)
    mid_attention: bool = True
    dropout: float = 0.1
    num_train_timesteps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02
    beta_schedule: Literal["linear", "scaled_linear", "cosine"] = "linear"
    p_uncond: float = 0.1
    ema_decay: float = 0.999
    warmup: int = 200
    num_inference_steps: int = sample_knob(50)
    guidance_scale: float = sample_knob(1.5)
    eta: float = sample_knob(0.0)

    def __post_init__(self) -> None:
        if not self.channel_mults:
            raise SettingError("channel_mults", "is empty; give one multiplier per level")
        if not 1 <= self.num_inference_steps <= self.num_train_timesteps:
            raise SettingError("num_inference_steps", f"must lie in [1, "
                               f"{self.num_train_timesteps}], got {self.num_inference_steps}")
        if self.guidance_scale < 0:
            raise SettingError("guidance_scale", f"must be >= 0, got {self.guidance_scale}")


class DDPM(Generator[DDPMKnobs]):
    """Class-conditional pixel-space DDPM (stage ``diffusion``); knobs: :class:`DDPMKnobs`
    (each left out comes from the budget's ``options``, else its default)."""

    family = "ddpm"
    Knobs: type[DDPMKnobs] = DDPMKnobs
    # Reflect-padded to a multiple of 2 ** (levels - 1) inside; 4 as the other families.
    size_multiple = 4
    checkpointed: tuple[str, ...] = ("unet", "ema", "opt_unet")
    clip_sample = True  # pixel space has a known range

    # ------------------------------------------------------------- space mappings
    def stages(self) -> list[str]:
        return ["diffusion"]

    def _space(self) -> tuple[int, int]:
        """(channels, size) of the space the diffusion runs in."""
        return self.channels, self.work_size

    def _to_space(self, images: torch.Tensor) -> torch.Tensor:
        return pad_to(images, self.work_size)

    def _from_space(self, x: torch.Tensor) -> torch.Tensor:
        return crop_to(x, self.size)

    # ------------------------------------------------------------- harness hooks
    def _build(self, budget: Budget) -> None:
        assert self.image_shape is not None
        self.size = self.image_shape[0]
        self.work_size = working_size(self.size, 2 ** (len(self.knobs.channel_mults) - 1))
        self._build_unet(budget)

    def _build_unet(self, budget: Budget) -> None:
        channels, size = self._space()
        knobs = self.knobs
        mults = knobs.channel_mults
        if size % 2 ** (len(mults) - 1):
            raise ValueError(f"{self.family}: a {size}-px diffusion space cannot be halved "
                             f"{len(mults) - 1} times; use fewer channel_mults")
        self.unet = ConditionalUNet(
            channels, channels, self.n_classes, base_channels=knobs.base_channels,
            channel_mults=mults, num_res_blocks=knobs.num_res_blocks,
            attention_levels=knobs.attention_levels, mid_attention=knobs.mid_attention,
            dropout=knobs.dropout).to(self.device)
        self.ema = copy.deepcopy(self.unet).eval()
        for p in self.ema.parameters():
            p.requires_grad_(False)
        self.opt_unet = torch.optim.AdamW(self.unet.parameters(), lr=budget.lr,
                                          weight_decay=0.0)
        self.schedule = NoiseSchedule(knobs.num_train_timesteps, knobs.beta_start,
                                      knobs.beta_end, knobs.beta_schedule)

    def _train_step(self, stage: str, images: torch.Tensor, labels: torch.Tensor,
                    step: int) -> dict[str, float]:
        return self._diffusion_step(images, labels, step)

    def _diffusion_step(self, images: torch.Tensor, labels: torch.Tensor,
                        step: int) -> dict[str, float]:
        assert self.budget is not None
        total = self.budget.stage_steps("diffusion")
        for group in self.opt_unet.param_groups:
            group["lr"] = self.budget.lr * cosine_lr(step, total, self.knobs.warmup)
        self.unet.train()
        x0 = self._to_space(images)
        n = x0.shape[0]
        # per-sample draws for the global batch, this rank's rows (see .distributed)
        t = distributed.randint(self.schedule.num_train_timesteps, n, device=x0.device)
        noise = distributed.randn_like(x0)
        xt = self.schedule.add_noise(x0, noise, t)
        drop = distributed.rand(n, device=x0.device) < self.knobs.p_uncond
        y = torch.where(drop, torch.full_like(labels, self.n_classes), labels)
        loss = F.mse_loss(self._parallel(self.unet)(xt, t, y).float(), noise)
        self.opt_unet.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.unet.parameters(), 1.0)
        self.opt_unet.step()
        decay = min(self.knobs.ema_decay, (1 + step) / (10 + step))
        ema_update(self.ema, self.unet, decay)
        return {"loss": float(loss.detach())}

    def _generate(self, labels: torch.Tensor, generator: torch.Generator,
                  knobs: DDPMKnobs) -> torch.Tensor:
        channels, size = self._space()
        x = ddim_sample(self.ema, self.schedule, (len(labels), channels, size, size), labels,
                        null_label=self.n_classes, generator=generator,
                        num_inference_steps=knobs.num_inference_steps, eta=knobs.eta,
                        guidance_scale=knobs.guidance_scale,
                        clip_sample=self.clip_sample, device=self.device)
        return self._from_space(x).clamp(-1, 1)
