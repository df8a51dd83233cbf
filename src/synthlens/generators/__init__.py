"""Generators: one interface (fit / sample / save / load) for every family, plus the
non-learned reference sets. ``GENERATORS`` maps a config's ``family`` to its class.

Families: ``cvae`` (baseline), ``dcgan`` (baseline GAN), ``stylegan2``, ``vqvae2``, ``ldm``
(latent diffusion), ``ddpm`` (pixel diffusion); see docs/generators.md.
"""

from __future__ import annotations

import os

import torch

from synthlens.config import REFERENCE_SETS
from synthlens.generators.base import Budget, Generator
from synthlens.generators.cvae import ConditionalVAE
from synthlens.generators.dcgan import DCGAN
from synthlens.generators.ddpm import DDPM
from synthlens.generators.latent_diffusion import LatentDiffusion
from synthlens.generators.references import duplicate_reference, noise_reference
from synthlens.generators.stylegan2 import StyleGAN2, truncation_sweep
from synthlens.generators.vqvae2 import VQVAE2

GENERATORS: dict[str, type[Generator]] = {
    cls.family: cls
    for cls in (ConditionalVAE, DCGAN, StyleGAN2, VQVAE2, LatentDiffusion, DDPM)
}

#: Families the harness computes itself instead of training.
REFERENCES = REFERENCE_SETS


def get_generator(family: str, **params: object) -> Generator:
    """Instantiate a generator family by name with its parameters."""
    if family not in GENERATORS:
        known = sorted(GENERATORS) + list(REFERENCES)
        raise ValueError(f"unknown generator family {family!r}; choose from {known}")
    return GENERATORS[family](**params)


def load_generator(path: str | os.PathLike[str], device: str = "cpu") -> Generator:
    """Load a saved generator of any family (the family is read from the file)."""
    meta = torch.load(path, map_location="cpu", weights_only=True)["meta"]
    if meta["family"] not in GENERATORS:
        raise ValueError(f"{path} holds an unknown generator family {meta['family']!r}")
    return GENERATORS[meta["family"]].load(path, device=device)


__all__ = [
    "DCGAN",
    "DDPM",
    "GENERATORS",
    "REFERENCES",
    "VQVAE2",
    "Budget",
    "ConditionalVAE",
    "Generator",
    "LatentDiffusion",
    "StyleGAN2",
    "duplicate_reference",
    "get_generator",
    "load_generator",
    "noise_reference",
    "truncation_sweep",
]
