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
from collections.abc import Mapping
from typing import Any

import torch
from torch.nn import functional as F

from synthlens.data.tensors import crop_to, pad_to, working_size
from synthlens.generators.base import Budget, Generator, ema_update
from synthlens.generators.schedulers import NoiseSchedule, ddim_sample
from synthlens.generators.unet import ConditionalUNet
from synthlens.nets.schedule import cosine_lr

_DIFFUSION_KNOBS = ("base_channels", "channel_mults", "num_res_blocks", "attention_levels",
                    "mid_attention", "dropout", "num_train_timesteps", "beta_start", "beta_end",
                    "beta_schedule", "p_uncond", "ema_decay", "warmup",
                    "num_inference_steps", "guidance_scale", "eta")


class DDPM(Generator):
    """Class-conditional pixel-space DDPM (stage ``diffusion``).

    Knobs left ``None`` come from the budget's ``options`` (same name), else the default
    in brackets.

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
        Sampler defaults [50 DDIM steps, eta 0, guidance 1.5]; ``sample()`` overrides each.
    """

    family = "ddpm"
    defaults: Mapping[str, Any] = {
        "base_channels": 64, "channel_mults": (1, 2, 2), "num_res_blocks": 2,
        "attention_levels": (1,), "mid_attention": True, "dropout": 0.1,
        "num_train_timesteps": 1000,
        "beta_start": 1e-4, "beta_end": 0.02, "beta_schedule": "linear", "p_uncond": 0.1,
        "ema_decay": 0.999, "warmup": 200, "num_inference_steps": 50, "guidance_scale": 1.5,
        "eta": 0.0,
    }
    clip_sample = True  # pixel space has a known range

    def __init__(self, base_channels: int | None = None,
                 channel_mults: tuple[int, ...] | list[int] | None = None,
                 num_res_blocks: int | None = None,
                 attention_levels: tuple[int, ...] | list[int] | None = None,
                 mid_attention: bool | None = None, dropout: float | None = None,
                 num_train_timesteps: int | None = None,
                 beta_start: float | None = None, beta_end: float | None = None,
                 beta_schedule: str | None = None, p_uncond: float | None = None,
                 ema_decay: float | None = None, warmup: int | None = None,
                 num_inference_steps: int | None = None, guidance_scale: float | None = None,
                 eta: float | None = None, **extra: Any) -> None:
        params = dict(zip(_DIFFUSION_KNOBS, (
            base_channels, channel_mults, num_res_blocks, attention_levels, mid_attention,
            dropout,
            num_train_timesteps, beta_start, beta_end, beta_schedule, p_uncond, ema_decay,
            warmup, num_inference_steps, guidance_scale, eta), strict=True))
        # JSON round trip (checkpoints) turns tuples into lists: store lists from the start.
        params = {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}
        unknown = sorted(set(extra) - set(self.defaults))
        if unknown:
            raise TypeError(f"{type(self).__name__} got unknown parameters {unknown}")
        super().__init__(**params, **extra)

    def knob(self, name: str) -> Any:
        return self.setting(name, self.defaults[name])

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
    def _check_shape(self) -> None:
        assert self.image_shape is not None
        self.size = self.image_shape[0]
        if self.size != self.image_shape[1] or self.size % 4:
            raise ValueError(f"{self.family} needs square images of a size divisible by 4, "
                             f"got {self.image_shape}")

    def _build(self, budget: Budget) -> None:
        self._check_shape()
        mults = tuple(int(m) for m in self.knob("channel_mults"))
        self.work_size = working_size(self.size, 2 ** (len(mults) - 1))
        self._build_unet(budget)

    def _build_unet(self, budget: Budget) -> None:
        channels, size = self._space()
        mults = tuple(int(m) for m in self.knob("channel_mults"))
        if size % 2 ** (len(mults) - 1):
            raise ValueError(f"{self.family}: a {size}-px diffusion space cannot be halved "
                             f"{len(mults) - 1} times; use fewer channel_mults")
        self.unet = ConditionalUNet(
            channels, channels, self.n_classes, base_channels=int(self.knob("base_channels")),
            channel_mults=mults, num_res_blocks=int(self.knob("num_res_blocks")),
            attention_levels=tuple(int(a) for a in self.knob("attention_levels")),
            mid_attention=bool(self.knob("mid_attention")),
            dropout=float(self.knob("dropout"))).to(self.device)
        self.ema = copy.deepcopy(self.unet).eval()
        for p in self.ema.parameters():
            p.requires_grad_(False)
        self.opt_unet = torch.optim.AdamW(self.unet.parameters(), lr=budget.lr,
                                          weight_decay=0.0)
        self.schedule = NoiseSchedule(int(self.knob("num_train_timesteps")),
                                      float(self.knob("beta_start")),
                                      float(self.knob("beta_end")),
                                      str(self.knob("beta_schedule")))

    def _train_step(self, stage: str, images: torch.Tensor, labels: torch.Tensor,
                    step: int) -> dict[str, float]:
        return self._diffusion_step(images, labels, step)

    def _diffusion_step(self, images: torch.Tensor, labels: torch.Tensor,
                        step: int) -> dict[str, float]:
        assert self.budget is not None
        total = self.budget.stage_steps("diffusion")
        for group in self.opt_unet.param_groups:
            group["lr"] = self.budget.lr * cosine_lr(step, total, int(self.knob("warmup")))
        self.unet.train()
        x0 = self._to_space(images)
        n = x0.shape[0]
        t = torch.randint(0, self.schedule.num_train_timesteps, (n,), device=x0.device)
        noise = torch.randn_like(x0)
        xt = self.schedule.add_noise(x0, noise, t)
        drop = torch.rand(n, device=x0.device) < float(self.knob("p_uncond"))
        y = torch.where(drop, torch.full_like(labels, self.n_classes), labels)
        loss = F.mse_loss(self.unet(xt, t, y).float(), noise)
        self.opt_unet.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.unet.parameters(), 1.0)
        self.opt_unet.step()
        decay = min(float(self.knob("ema_decay")), (1 + step) / (10 + step))
        ema_update(self.ema, self.unet, decay)
        return {"loss": float(loss.detach())}

    def _generate(self, labels: torch.Tensor, generator: torch.Generator,
                  **kwargs: Any) -> torch.Tensor:
        steps = int(kwargs.pop("num_inference_steps", self.knob("num_inference_steps")))
        scale = float(kwargs.pop("guidance_scale", self.knob("guidance_scale")))
        eta = float(kwargs.pop("eta", self.knob("eta")))
        if kwargs:
            raise TypeError(f"{self.family}.sample() got unknown options {sorted(kwargs)}")
        if scale < 0:
            raise ValueError(f"guidance_scale must be >= 0, got {scale}")
        channels, size = self._space()
        x = ddim_sample(self.ema, self.schedule, (len(labels), channels, size, size), labels,
                        null_label=self.n_classes, generator=generator,
                        num_inference_steps=steps, eta=eta, guidance_scale=scale,
                        clip_sample=self.clip_sample, device=self.device)
        return self._from_space(x).clamp(-1, 1)

    def _state(self) -> dict[str, Any]:
        return {"unet": self.unet.state_dict(), "ema": self.ema.state_dict(),
                "opt_unet": self.opt_unet.state_dict()}

    def _load_state(self, state: Mapping[str, Any]) -> None:
        self.unet.load_state_dict(state["unet"])
        self.ema.load_state_dict(state["ema"])
        self.opt_unet.load_state_dict(state["opt_unet"])
