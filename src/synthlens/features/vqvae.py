"""Discrete VQ-VAE code maps as features, compared by Hamming distance.

The privacy space of the companion study (Xing et al., MICCAI 2023): a VQ-VAE-2 trained on
the real training split encodes every image into its top and bottom code maps; two images
are as far apart as the share of positions whose codes differ. Only the autoencoder is
trained here (the generator's PixelCNN priors get a single token step at the smallest
size, since codes never use them); the architecture and its quantiser are those of
:mod:`synthlens.generators.vqvae2`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from synthlens.data.dataset import ImageSet
from synthlens.errors import InputError
from synthlens.features.base import Extractor, NotFittedError, state_dict_sha256
from synthlens.io import read_json, write_json

LEVELS = ("both", "top", "bottom")


class VQVAECodesExtractor(Extractor):
    """VQ-VAE-2 code maps (integers), flattened; ``distance = "hamming"``.

    Parameters
    ----------
    steps, batch_size, lr:
        Autoencoder training (``configs/budgets.yaml`` sets them per budget).
    channels, res_channels, n_res_blocks, num_codes, code_dim:
        VQ-VAE-2 architecture (see :class:`synthlens.generators.vqvae2.VQVAE2`).
    levels:
        ``"both"`` (top then bottom map, the default), ``"top"`` or ``"bottom"``.
    """

    name = "vqvae_codes"
    distance = "hamming"
    needs_fit = True
    default_batch_size = 256
    output_dtype = np.int32

    def __init__(self, steps: int = 2000, batch_size: int = 64, lr: float = 3e-4,
                 channels: int = 64, res_channels: int = 32, n_res_blocks: int = 2,
                 num_codes: int = 512, code_dim: int = 64, levels: str = "both") -> None:
        if levels not in LEVELS:
            raise InputError("vqvae_codes.levels", f"choose from {LEVELS}, got {levels!r}")
        self.settings = {"steps": int(steps), "batch_size": int(batch_size), "lr": float(lr),
                         "channels": int(channels), "res_channels": int(res_channels),
                         "n_res_blocks": int(n_res_blocks), "num_codes": int(num_codes),
                         "code_dim": int(code_dim)}
        self.levels = levels
        self._model: Any = None
        self._sha256: str | None = None
        self._meta: dict[str, Any] = {}

    # ------------------------------------------------------------------ identity
    @property
    def id(self) -> str:
        s = self.settings
        return f"vqvae2-codes-{self.levels}-k{s['num_codes']}-c{s['channels']}"

    @property
    def weights_sha256(self) -> str:
        self._require_fitted()
        assert self._sha256 is not None
        return self._sha256

    @property
    def dim(self) -> int | None:
        if not self._meta:
            return None
        h, w = self._meta["top_shape"]
        top, bottom = h * w, 4 * h * w
        return {"both": top + bottom, "top": top, "bottom": bottom}[self.levels]

    @property
    def preprocessing(self) -> dict[str, Any]:
        return {
            "input": "uint8 [0, 255]",
            "channels": "as in the training split",
            "resize": None,
            "padding": "reflect-padded to a multiple of 8 (28 -> 32), as the generator does",
            "value_range": "x / 127.5 - 1 -> [-1, 1]",
            "output": {"both": "top code map then bottom code map, flattened row-major",
                       "top": "top code map, flattened row-major",
                       "bottom": "bottom code map, flattened row-major"}[self.levels],
        }

    @property
    def training(self) -> dict[str, Any]:
        return {**self.settings, **{k: v for k, v in self._meta.items() if k != "top_shape"}}

    def _require_fitted(self) -> None:
        if self._model is None:
            raise NotFittedError("the vqvae_codes extractor is not fitted: call fit(train) "
                                 "or load(path) first")

    # ------------------------------------------------------------------ training
    def _generator(self) -> Any:
        from synthlens.generators.vqvae2 import VQVAE2

        s = self.settings
        # Codes never use the priors: build them at the smallest size.
        return VQVAE2(channels=s["channels"], res_channels=s["res_channels"],
                      n_res_blocks=s["n_res_blocks"], num_codes=s["num_codes"],
                      code_dim=s["code_dim"], prior_channels=8, prior_layers=1,
                      prior_layers_bottom=1, prior_kernel=3)

    @classmethod
    def check_image_shape(cls, shape: Sequence[int]) -> None:
        """The images the VQ-VAE-2 generator takes (it is that autoencoder)."""
        from synthlens.generators.vqvae2 import VQVAE2

        VQVAE2.check_image_shape(shape)

    def fit(self, train: ImageSet, *, val: ImageSet | None = None, seed: int = 0,
            device: str = "cpu", progress: bool = True) -> VQVAECodesExtractor:
        """Train the VQ-VAE-2 autoencoder on ``train`` (``val`` is not needed)."""
        from synthlens.generators.base import Budget

        try:
            self.check_image_shape(train.image_shape)
        except ValueError as error:
            raise InputError(train.source, f"vqvae_codes: {error}") from None
        s = self.settings
        budget = Budget(steps=s["steps"], batch_size=s["batch_size"], lr=s["lr"],
                        checkpoint_every=s["steps"], log_every=max(1, s["steps"] // 20),
                        stage_fractions={"top_prior": 0.0, "bottom_prior": 0.0},
                        options={"stage_batch_sizes": {"top_prior": 2, "bottom_prior": 2}})
        model = self._generator().fit(train, budget, device=device, seed=seed,
                                      progress=progress)
        self._set(model, {"train_sha256": train.sha256(), "seed": int(seed)})
        return self

    def _set(self, model: Any, meta: dict[str, Any]) -> None:
        self._model = model
        self._sha256 = state_dict_sha256(model.net.state_dict())
        top = model.work_size // 8
        self._meta = {**meta, "image_shape": list(model.image_shape), "top_shape": [top, top]}

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the fitted VQ-VAE-2 (the generator's file format) atomically."""
        self._require_fitted()
        self._model.save(path)
        write_json(str(path) + ".json", {k: v for k, v in self._meta.items()
                                         if k in ("train_sha256", "seed")})

    def load(self, path: str | os.PathLike[str], device: str = "cpu") -> VQVAECodesExtractor:
        """Restore a saved model (``weights_only=True``)."""
        from synthlens.generators.vqvae2 import VQVAE2

        path = Path(path)
        if not path.is_file():
            raise InputError(path, "vqvae_codes model file not found")
        try:
            model = VQVAE2.load(path, device=device)
        except Exception as error:
            raise InputError(path, f"cannot read the VQ-VAE-2 model: {error}") from error
        params = model.params
        for key in ("channels", "res_channels", "n_res_blocks", "num_codes", "code_dim"):
            if params.get(key) is not None:
                self.settings[key] = int(params[key])
        note = Path(str(path) + ".json")
        meta = read_json(note) if note.is_file() else {}
        self._set(model, {k: v for k, v in meta.items() if k in ("train_sha256", "seed")})
        return self

    # ------------------------------------------------------------------ extraction
    def _check_input(self, images: np.ndarray) -> None:
        self._require_fitted()
        self._check_trained_shape(images, self._meta["image_shape"])

    def _prepare(self, device: str) -> None:
        if self._model.device != device:
            self._model.net.to(device)
            self._model.device = device

    def _extract_batch(self, images: np.ndarray, device: str) -> np.ndarray:
        top, bottom = self._model.encode_codes(images, batch_size=len(images))
        parts = {"top": [top], "bottom": [bottom], "both": [top, bottom]}[self.levels]
        return np.concatenate([p.reshape(len(images), -1) for p in parts], axis=1)

