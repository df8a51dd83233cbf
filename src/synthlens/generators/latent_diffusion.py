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

from collections.abc import Mapping
from typing import Any

import torch

from synthlens.data.dataset import ImageSet
from synthlens.data.tensors import crop_to, frozen_outputs, pad_to, to_model_range, working_size
from synthlens.generators.autoencoder import KLAutoencoder, VQAutoencoder
from synthlens.generators.base import Budget
from synthlens.generators.ddpm import DDPM
from synthlens.nets.schedule import cosine_lr

_AE_KNOBS = ("first_stage", "latent_channels", "ae_base_channels", "ae_channel_mults",
             "ae_num_res_blocks", "ae_num_codes", "kl_weight", "ae_lr")


class LatentDiffusion(DDPM):
    """Class-conditional LDM. Besides the knobs of :class:`DDPM` (whose defaults here
    are the study's schedule and a UNet sized for the latent), knobs left ``None`` come
    from the budget's ``options``, else the default in brackets.

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
        Autoencoder learning rate [``budget.lr``].
    """

    family = "ldm"
    defaults: Mapping[str, Any] = {
        **DDPM.defaults, "beta_start": 0.0015, "beta_end": 0.0195,
        "beta_schedule": "scaled_linear", "channel_mults": (1, 2), "attention_levels": (1,),
        "dropout": 0.0, "first_stage": "vq", "latent_channels": 4, "ae_base_channels": 64,
        "ae_channel_mults": (1, 2, 2), "ae_num_res_blocks": 1, "ae_num_codes": 512,
        "kl_weight": 1e-6, "ae_lr": None,
    }
    clip_sample = False  # latents have no fixed range

    def __init__(self, first_stage: str | None = None, latent_channels: int | None = None,
                 ae_base_channels: int | None = None,
                 ae_channel_mults: tuple[int, ...] | list[int] | None = None,
                 ae_num_res_blocks: int | None = None, ae_num_codes: int | None = None,
                 kl_weight: float | None = None, ae_lr: float | None = None,
                 **diffusion: Any) -> None:
        ae = dict(zip(_AE_KNOBS, (first_stage, latent_channels, ae_base_channels,
                                  ae_channel_mults, ae_num_res_blocks, ae_num_codes, kl_weight,
                                  ae_lr), strict=True))
        ae = {k: list(v) if isinstance(v, tuple) else v for k, v in ae.items()}
        super().__init__(**diffusion, **ae)
        self.scale_factor = 1.0

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
        self._check_shape()
        mults = tuple(int(m) for m in self.knob("ae_channel_mults"))
        self.factor = 2 ** (len(mults) - 1)
        unet_levels = len(tuple(self.knob("channel_mults")))
        self.work_size = working_size(self.size, self.factor * 2 ** (unet_levels - 1))
        self.latent_channels = int(self.knob("latent_channels"))
        kind = str(self.knob("first_stage"))
        common = dict(base_channels=int(self.knob("ae_base_channels")), channel_mults=mults,
                      num_res_blocks=int(self.knob("ae_num_res_blocks")))
        if kind == "vq":
            self.autoencoder: KLAutoencoder | VQAutoencoder = VQAutoencoder(
                self.channels, self.latent_channels, num_codes=int(self.knob("ae_num_codes")),
                **common)
        elif kind == "kl":
            self.autoencoder = KLAutoencoder(self.channels, self.latent_channels,
                                             kl_weight=float(self.knob("kl_weight")), **common)
        else:
            raise ValueError(f"first_stage must be 'vq' or 'kl', got {kind!r}")
        self.autoencoder.to(self.device)
        ae_lr = self.knob("ae_lr")
        self._ae_lr = float(ae_lr) if ae_lr is not None else budget.lr
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
        loss, logs = self.autoencoder.loss(pad_to(images, self.work_size))
        self.opt_ae.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_ae.step()
        return {"loss": float(loss.detach()), **logs}

    def _generate(self, labels: torch.Tensor, generator: torch.Generator,
                  **kwargs: Any) -> torch.Tensor:
        self.autoencoder.eval()
        return super()._generate(labels, generator, **kwargs)

    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        """First-stage reconstruction of model-range images (for diagnostics)."""
        self.autoencoder.eval()
        with torch.no_grad():
            z = self.autoencoder.encode(pad_to(images, self.work_size), sample=False)
            return crop_to(self.autoencoder.decode(z), self.size)

    def _state(self) -> dict[str, Any]:
        return {**super()._state(), "autoencoder": self.autoencoder.state_dict(),
                "opt_ae": self.opt_ae.state_dict(),
                "scale_factor": torch.tensor(self.scale_factor, dtype=torch.float64)}

    def _load_state(self, state: Mapping[str, Any]) -> None:
        super()._load_state(state)
        self.autoencoder.load_state_dict(state["autoencoder"])
        self.opt_ae.load_state_dict(state["opt_ae"])
        self.scale_factor = float(state["scale_factor"])
