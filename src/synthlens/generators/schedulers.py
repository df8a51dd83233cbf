"""Noise schedules and samplers for the diffusion families (kept apart from the models, as
in diffusers).

- :class:`NoiseSchedule`: the forward process q(x_t | x_0) of DDPM (Ho et al. 2020) with
  ``linear`` betas (Ho et al.: 1e-4 to 0.02), ``scaled_linear`` betas (linear in
  sqrt(beta); what the latent diffusion code calls "linear", used there with
  0.0015 to 0.0195) or the ``cosine`` schedule (Nichol and Dhariwal 2021).
- :func:`ddim_sample`: DDIM (Song et al. 2021) over a subset of the training timesteps,
  with ``eta`` from 0 (deterministic DDIM) to 1 (ancestral DDPM sampling: with all 1,000
  steps and ``eta = 1`` this is Ho et al.'s sampler with sigma^2 = beta-tilde), and
  classifier-free guidance (Ho and Salimans 2022).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

EpsModel = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


class NoiseSchedule:
    """Betas and cumulative alphas of a discrete-time diffusion.

    Parameters
    ----------
    num_train_timesteps:
        T, the number of noise levels the model is trained on.
    beta_start, beta_end:
        First and last beta (ignored by ``cosine``).
    beta_schedule:
        ``linear``, ``scaled_linear`` or ``cosine``.
    """

    def __init__(self, num_train_timesteps: int = 1000, beta_start: float = 1e-4,
                 beta_end: float = 0.02, beta_schedule: str = "linear") -> None:
        t = num_train_timesteps
        if beta_schedule == "linear":
            betas = np.linspace(beta_start, beta_end, t, dtype=np.float64)
        elif beta_schedule == "scaled_linear":
            betas = np.linspace(beta_start ** 0.5, beta_end ** 0.5, t, dtype=np.float64) ** 2
        elif beta_schedule == "cosine":
            steps = np.arange(t + 1, dtype=np.float64) / t
            f = np.cos((steps + 0.008) / 1.008 * math.pi / 2) ** 2
            betas = np.clip(1 - f[1:] / f[:-1], 0, 0.999)
        else:
            raise ValueError(f"beta_schedule must be linear, scaled_linear or cosine, "
                             f"got {beta_schedule!r}")
        self.num_train_timesteps = t
        self.beta_schedule = beta_schedule
        self.betas = torch.from_numpy(betas).float()
        self.alphas_cumprod = torch.from_numpy(np.cumprod(1.0 - betas)).float()

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps."""
        abar = self.alphas_cumprod.to(x0.device)[t].view(-1, *([1] * (x0.dim() - 1)))
        return abar.sqrt() * x0 + (1 - abar).sqrt() * noise

    def inference_timesteps(self, num_inference_steps: int) -> list[int]:
        """Evenly spaced timesteps from T - 1 down ("trailing" spacing, Lin et al. 2024:
        the first step starts from pure noise even with few steps)."""
        n = int(num_inference_steps)
        if not 1 <= n <= self.num_train_timesteps:
            raise ValueError(f"num_inference_steps must be in [1, {self.num_train_timesteps}], "
                             f"got {num_inference_steps}")
        steps = np.round(np.arange(self.num_train_timesteps, 0,
                                   -self.num_train_timesteps / n)).astype(np.int64) - 1
        return [int(s) for s in steps]


def guided_eps(model: EpsModel, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor,
               null_label: int, guidance_scale: float) -> torch.Tensor:
    """Classifier-free guidance: eps_u + s (eps_c - eps_u). ``s = 1`` is the plain
    conditional model (one forward pass), ``s = 0`` the unconditional one, ``s > 1``
    trades variety for fidelity."""
    if guidance_scale == 1.0:
        return model(x, t, labels)
    null = torch.full_like(labels, null_label)
    if guidance_scale == 0.0:
        return model(x, t, null)
    eps = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([labels, null]))
    eps_c, eps_u = eps.chunk(2)
    return eps_u + guidance_scale * (eps_c - eps_u)


@torch.no_grad()
def ddim_sample(model: EpsModel, schedule: NoiseSchedule, shape: tuple[int, ...],
                labels: torch.Tensor, *, null_label: int, generator: torch.Generator,
                num_inference_steps: int = 50, eta: float = 0.0, guidance_scale: float = 1.0,
                clip_sample: bool = True, device: str | torch.device = "cpu") -> torch.Tensor:
    """Draw x_0 by DDIM from x_T ~ N(0, I).

    Noise is drawn from ``generator`` on the CPU, so the same seed gives the same samples
    on any device. ``clip_sample`` clamps the predicted x_0 to [-1, 1] (pixel space only;
    latents have no fixed range).
    """
    abar = schedule.alphas_cumprod
    x = torch.randn(shape, generator=generator).to(device)
    steps = schedule.inference_timesteps(num_inference_steps)
    for i, t in enumerate(steps):
        t_prev = steps[i + 1] if i + 1 < len(steps) else -1
        a_t = float(abar[t])
        a_prev = float(abar[t_prev]) if t_prev >= 0 else 1.0
        tt = torch.full((shape[0],), t, device=device, dtype=torch.long)
        eps = guided_eps(model, x, tt, labels, null_label, guidance_scale).float()
        x0 = (x - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)
        if clip_sample:
            x0 = x0.clamp(-1, 1)
            eps = (x - math.sqrt(a_t) * x0) / math.sqrt(1 - a_t)
        sigma = eta * math.sqrt((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev))
        x = math.sqrt(a_prev) * x0 + math.sqrt(max(0.0, 1 - a_prev - sigma ** 2)) * eps
        if sigma > 0:
            x = x + sigma * torch.randn(shape, generator=generator).to(device)
    return x
