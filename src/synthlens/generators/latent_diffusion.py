"""Latent diffusion (Rombach et al. 2022, "High-Resolution Image Synthesis with Latent
Diffusion Models"), class-conditional with classifier-free guidance.

Stage ``autoencoder`` trains a first-stage autoencoder on the real split (VQ-regularised
by default, as the study's VQ-f8 model, or KL-regularised), downsampling by
``2 ** (len(ae_channel_mults) - 1)`` (f4 by default: a 28×28 image, padded to 32, becomes
an 8×8 latent; f8 would leave 4×4). Stage ``diffusion`` freezes it and trains the
class-conditional UNet of :class:`~synthlens.generators.ddpm.DDPM` on its latents, scaled
to unit variance (the paper's ``scale_factor``), with the study's schedule: 1,000 steps,
betas 0.0015 to 0.0195 linear in sqrt(beta) (what the LDM code calls ``linear``).
Sampling: DDIM with classifier-free guidance in latent space, then the decoder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, cast

import torch

from synthlens.data.dataset import ImageSet
from synthlens.data.tensors import crop_to, frozen_outputs, pad_to, to_model_range, working_size
from synthlens.errors import SettingError
from synthlens.generators.autoencoder import KLAutoencoder, VQAutoencoder
from synthlens.generators.base import Budget
from synthlens.generators.ddpm import DDPM, DDPMKnobs
from synthlens.nets.schedule import cosine_lr


@dataclass(frozen=True)
class LDMKnobs(DDPMKnobs):
    """Knobs of :class:`LatentDiffusion`: those of :class:`DDPMKnobs`, with the study's
    schedule (1,000 steps, betas 0.0015 to 0.0195 ``scaled_linear``) and a UNet sized for
    the latent (``channel_mults`` (1, 2), ``dropout`` 0) as defaults, plus the first stage.

    Parameters
    ----------
    first_stage:
        ``vq`` [default] or ``kl`` autoencoder.
    latent_channels:
        Channels of the latent [4].
    ae_base_channels, ae_channel_mults, ae_num_res_blocks:
        Autoencoder width [64], levels [(1, 2, 2): f4] and blocks per level [1].
    ae_num_codes:
        Codebook size of the VQ autoencoder [512].
    kl_weight:
        KL weight of the KL autoencoder [1e-6, as the paper].
    ae_lr:
        Autoencoder learning rate [None: ``budget.lr``].
    """

    channel_mults: tuple[int, ...] = (1, 2)
    dropout: float = 0.0
    beta_start: float = 0.0015
    beta_end: float = 0.0195
    beta_schedule: Literal["linear", "scaled_linear", "cosine"] = "scaled_linear"
    first_stage: Literal["vq", "kl"] = "vq"
    latent_channels: int = 4
    ae_base_channels: int = 64
    ae_channel_mults: tuple[int, ...] = (1, 2, 2)
    ae_num_res_blocks: int = 1
    ae_num_codes: int = 512
    kl_weight: float = 1e-6
    ae_lr: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.ae_channel_mults:
            raise SettingError("ae_channel_mults", "is empty; give one multiplier per level")


class LatentDiffusion(DDPM):
    """Class-conditional LDM; knobs: :class:`LDMKnobs` (each left out comes from the
    budget's ``options``, else its default)."""

    family = "ldm"
    Knobs = LDMKnobs
    checkpointed = (*DDPM.checkpointed, "autoencoder", "opt_ae", "scale_factor")
    clip_sample = False  # latents have no fixed range

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.scale_factor = 1.0

    @property
    def knobs(self) -> LDMKnobs:
        return cast(LDMKnobs, super().knobs)

    def stages(self) -> list[str]:
        return ["autoencoder", "diffusion"]

    def _space(self) -> tuple[int, int]:
        return self.latent_channels, self.work_size // self.factor

    def _to_space(self, images: torch.Tensor) -> torch.Tensor:
        # ``images`` are rows of _stage_inputs: the frozen encoder's output, computed once
        return self.autoencoder.latent(images) * self.scale_factor

    def _stage_inputs(self, stage: str, images: torch.Tensor) -> torch.Tensor:
        # The first stage is frozen while the UNet trains: encode the split once per stage
        # (a KL posterior is drawn from in each step, as before) instead of every batch.
        if stage != "diffusion":
            return images
        return frozen_outputs(self.autoencoder.encode_params, images, self.work_size,
                              self.device)

    def _from_space(self, z: torch.Tensor) -> torch.Tensor:
        return crop_to(self.autoencoder.decode(z / self.scale_factor), self.size)

    def _build(self, budget: Budget) -> None:
        assert self.image_shape is not None
        self.size = self.image_shape[0]
        knobs = self.knobs
        mults = knobs.ae_channel_mults
        self.factor = 2 ** (len(mults) - 1)
        unet_levels = len(knobs.channel_mults)
        self.work_size = working_size(self.size, self.factor * 2 ** (unet_levels - 1))
        self.latent_channels = knobs.latent_channels
        common = dict(base_channels=knobs.ae_base_channels, channel_mults=mults,
                      num_res_blocks=knobs.ae_num_res_blocks)
        if knobs.first_stage == "vq":
            self.autoencoder: KLAutoencoder | VQAutoencoder = VQAutoencoder(
                self.channels, self.latent_channels, num_codes=knobs.ae_num_codes, **common)
        else:
            self.autoencoder = KLAutoencoder(self.channels, self.latent_channels,
                                             kl_weight=knobs.kl_weight, **common)
        self.autoencoder.to(self.device)
        self._ae_lr = knobs.ae_lr if knobs.ae_lr is not None else budget.lr
        self.opt_ae = torch.optim.Adam(self.autoencoder.parameters(), lr=self._ae_lr,
                                       betas=(0.5, 0.9))
        self._build_unet(budget)
        self.scale_factor = 1.0

    def _begin_stage(self, stage: str, train: ImageSet) -> None:
        if stage != "diffusion":
            self.autoencoder.train()
            return
        self.autoencoder.eval()
        for p in self.autoencoder.parameters():
            p.requires_grad_(False)
        # Unit-variance latents (the paper's scale_factor), from the posterior means of a
        # fixed subset: no random draws, so a resumed run gets the same factor.
        x = pad_to(to_model_range(train.images[:512]).to(self.device), self.work_size)
        with torch.no_grad():
            z = self.autoencoder.encode(x, sample=False)
        self.scale_factor = float(1.0 / z.float().std().clamp_min(1e-6))

    def _train_step(self, stage: str, images: torch.Tensor, labels: torch.Tensor,
                    step: int) -> dict[str, float]:
        if stage == "diffusion":
            return self._diffusion_step(images, labels, step)
        assert self.budget is not None
        total = self.budget.stage_steps("autoencoder")
        for group in self.opt_ae.param_groups:
            group["lr"] = self._ae_lr * cosine_lr(step, total, warmup=min(100, total // 10))
        self.autoencoder.train()
        loss, logs = self._parallel(self.autoencoder, self.autoencoder.loss)(
            pad_to(images, self.work_size))
        self.opt_ae.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_ae.step()
        return {"loss": float(loss.detach()), **logs}

    def _generate(self, labels: torch.Tensor, generator: torch.Generator,
                  knobs: DDPMKnobs) -> torch.Tensor:
        self.autoencoder.eval()
        return super()._generate(labels, generator, knobs)

    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        """First-stage reconstruction of model-range images (for diagnostics)."""
        self.autoencoder.eval()
        with torch.no_grad():
            z = self.autoencoder.encode(pad_to(images, self.work_size), sample=False)
            return crop_to(self.autoencoder.decode(z), self.size)
