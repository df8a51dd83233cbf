"""Discrete VQ-VAE code maps as features, compared by Hamming distance.

The privacy space of the companion study (Xing et al., MICCAI 2023): a VQ-VAE-2 autoencoder
(:class:`synthlens.nets.vqvae2.VQVAE2Net`, the network of the ``vqvae2`` generator family)
trained on the real training split encodes every image into its top and bottom code maps;
two images are as far apart as the share of positions whose codes differ. Only the
autoencoder is trained (codes never use priors), by the same recipe as the generator's
autoencoder stage: Adam, linear warm-up then cosine decay, uniformly drawn minibatches,
bfloat16 autocast on a GPU that supports it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from synthlens.data.dataset import ImageSet
from synthlens.data.tensors import frozen_outputs, pad_to, to_model_range, working_size
from synthlens.device import autocast, resolve_device, seeded_rng
from synthlens.errors import InputError
from synthlens.features.base import Extractor, NotFittedError
from synthlens.hashing import state_dict_sha256
from synthlens.io import atomic_path, read_json
from synthlens.nets.schedule import cosine_lr
from synthlens.nets.vqvae2 import VQVAE2Net
from synthlens.progress import progress_bar

LEVELS = ("both", "top", "bottom")
#: Architecture settings, as the constructor and ``VQVAE2Net`` name them.
ARCHITECTURE = ("channels", "res_channels", "n_res_blocks", "num_codes", "code_dim")
#: Version of the file :meth:`VQVAECodesExtractor.save` writes.
FORMAT_VERSION = 1


class VQVAECodesExtractor(Extractor):
    """VQ-VAE-2 code maps (integers), flattened; ``distance = "hamming"``.

    Parameters
    ----------
    steps, batch_size, lr:
        Autoencoder training (``configs/budgets.yaml`` sets them per budget).
    channels, res_channels, n_res_blocks, num_codes, code_dim:
        VQ-VAE-2 architecture (see :class:`synthlens.nets.vqvae2.VQVAE2Net`).
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
        self._net: VQVAE2Net | None = None
        self._device = "cpu"
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

    @property
    def network(self) -> VQVAE2Net | None:
        """The fitted autoencoder (``None`` before ``fit`` or ``load``)."""
        return self._net

    def _require_fitted(self) -> None:
        if self._net is None:
            raise NotFittedError("the vqvae_codes extractor is not fitted: call fit(train) "
                                 "or load(path) first")

    # ------------------------------------------------------------------ training
    @classmethod
    def check_image_shape(cls, shape: Sequence[int]) -> None:
        """The images the VQ-VAE-2 autoencoder takes: square, the size divisible by 4 (it
        halves twice; the network pads to a multiple of 8 itself)."""
        h, w = int(shape[0]), int(shape[1])
        if h != w or h % 4:
            raise ValueError(f"needs square images whose size is divisible by 4, not {h}×{w}")

    def fit(self, train: ImageSet, *, val: ImageSet | None = None, seed: int = 0,
            device: str = "cpu", progress: bool = True) -> VQVAECodesExtractor:
        """Train the VQ-VAE-2 autoencoder on ``train`` (``val`` is not needed).

        ``steps`` minibatches of ``batch_size`` images drawn uniformly with replacement,
        reflect-padded to a multiple of 8; loss: reconstruction MSE plus the commitment
        losses. Deterministic on the CPU for a given seed; torch's global RNG is left as it
        was."""
        try:
            self.check_image_shape(train.image_shape)
        except ValueError as error:
            raise InputError(train.source, f"vqvae_codes: {error}") from None
        h = train.image_shape[0]
        device = resolve_device(device)
        s = self.settings
        steps, batch_size, lr = s["steps"], s["batch_size"], s["lr"]
        size = working_size(h, 8)
        images = to_model_range(train.images)
        with seeded_rng(device, seed):  # weight init and codebook restarts draw from it
            net = self._network(train.channels).to(device)
            optimiser = torch.optim.Adam(net.parameters(), lr=lr)
            batches = torch.Generator().manual_seed(seed)
            net.train()
            for step in progress_bar(range(steps), desc="vqvae_codes", leave=False,
                                     disable=not progress):
                for group in optimiser.param_groups:
                    group["lr"] = lr * cosine_lr(step, steps, warmup=min(100, steps // 10))
                idx = torch.randint(0, len(images), (batch_size,), generator=batches)
                with autocast(device):
                    loss, _ = net.loss(pad_to(images[idx].to(device), size))
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
        self._set(net.eval(), device, {"train_sha256": train.sha256(), "seed": int(seed),
                                       "image_shape": list(train.image_shape)})
        return self

    def _network(self, in_channels: int) -> VQVAE2Net:
        s = self.settings
        return VQVAE2Net(in_channels, channels=s["channels"], res_channels=s["res_channels"],
                         n_res_blocks=s["n_res_blocks"], num_codes=s["num_codes"],
                         code_dim=s["code_dim"])

    def _set(self, net: VQVAE2Net, device: str, meta: dict[str, Any]) -> None:
        self._net, self._device = net, device
        self._sha256 = state_dict_sha256(net.state_dict())
        top = working_size(meta["image_shape"][0], 8) // 8
        self._meta = {**meta, "top_shape": [top, top]}

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the fitted autoencoder (weights, settings, training data hash) atomically."""
        self._require_fitted()
        assert self._net is not None
        state = {"format_version": FORMAT_VERSION,
                 "settings": {k: self.settings[k] for k in ARCHITECTURE},
                 "meta": {k: v for k, v in self._meta.items() if k != "top_shape"},
                 "state_dict": {k: v.detach().cpu() for k, v in self._net.state_dict().items()}}
        with atomic_path(path) as tmp:
            torch.save(state, tmp)

    def load(self, path: str | os.PathLike[str], device: str = "cpu") -> VQVAECodesExtractor:
        """Restore a saved autoencoder (``weights_only=True``: no code runs from the file).

        Also reads the files earlier versions wrote (a ``vqvae2`` generator file with a
        ``.json`` note beside it), so that run folders made by them resume."""
        path = Path(path)
        if not path.is_file():
            raise InputError(path, "vqvae_codes model file not found")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            settings, meta, weights = _read_state(state, path)
        except InputError:
            raise
        except Exception as error:
            raise InputError(path, f"cannot read the VQ-VAE-2 model: {error}") from error
        self.settings.update({k: int(v) for k, v in settings.items() if v is not None})
        in_channels = 3 if len(meta["image_shape"]) == 3 else 1
        net = self._network(in_channels)
        try:
            net.load_state_dict(weights)
        except RuntimeError as error:
            raise InputError(path, f"VQ-VAE-2 weights do not fit: {error}") from error
        device = resolve_device(device)
        self._set(net.to(device).eval(), device, meta)
        return self

    # ------------------------------------------------------------------ extraction
    def _check_input(self, images: np.ndarray) -> None:
        self._require_fitted()
        self._check_trained_shape(images, self._meta["image_shape"])

    def _prepare(self, device: str) -> None:
        assert self._net is not None
        if self._device != device:
            self._net.to(device)
            self._device = device

    def _extract_batch(self, images: np.ndarray, device: str) -> np.ndarray:
        assert self._net is not None
        size = working_size(images.shape[1], 8)
        rows = frozen_outputs(self._net.eval().code_rows, to_model_range(images), size, device,
                              batch_size=len(images)).numpy()
        n_top = self._meta["top_shape"][0] * self._meta["top_shape"][1]
        return {"top": rows[:, :n_top], "bottom": rows[:, n_top:], "both": rows}[self.levels]


def _read_state(state: Any, path: Path) -> tuple[dict[str, Any], dict[str, Any],
                                                  dict[str, torch.Tensor]]:
    """(architecture settings, meta, autoencoder weights) of a saved extractor, from this
    version's file or from the ``vqvae2`` generator file earlier versions saved."""
    if not isinstance(state, dict):
        raise InputError(path, "not a synthlens vqvae_codes file")
    if state.get("format_version") == FORMAT_VERSION:
        return dict(state["settings"]), dict(state["meta"]), state["state_dict"]
    generator_meta = state.get("meta")
    if isinstance(generator_meta, dict) and generator_meta.get("family") == "vqvae2":
        params = json.loads(generator_meta["params"])
        note = Path(str(path) + ".json")
        meta = {k: v for k, v in (read_json(note) if note.is_file() else {}).items()
                if k in ("train_sha256", "seed")}
        meta["image_shape"] = list(generator_meta["image_shape"])
        return {k: params.get(k) for k in ARCHITECTURE}, meta, state["state"]["net"]
    raise InputError(path, "not a synthlens vqvae_codes file")
