"""An in-domain encoder: the penultimate layer of a classifier trained on the real
training split.

For data far from ImageNet (grey 28x28 X-rays, ultrasound), an encoder that has seen the
modality can separate what ImageNet networks lump together. It is trained once per run
(the same training loop as the utility classifiers, model selection on the real
validation split), saved in the run folder, and identified by the SHA-256 of its fitted
weights, so two runs share cached features only when their encoders are identical.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from synthlens.data.dataset import ImageSet
from synthlens.errors import InputError
from synthlens.features.base import Extractor, NotFittedError
from synthlens.hashing import state_dict_sha256
from synthlens.io import atomic_path
from synthlens.nets.classifiers import (
    TrainConfig,
    TrainedClassifier,
    build_classifier,
    train_classifier,
)

FORMAT_VERSION = 1


class DomainExtractor(Extractor):
    """Penultimate features of a classifier trained on the real training split.

    Parameters
    ----------
    epochs, width, arch, batch_size, lr:
        Training settings (``configs/budgets.yaml`` sets epochs and width per budget);
        the embedding has ``width * 4`` values for ``small_cnn``, ``width * 8`` for
        ``resnet18``.
    val_fraction:
        Share of ``train`` held out for model selection when ``fit`` gets no ``val``.
    classifier:
        Any other :class:`~synthlens.nets.classifiers.TrainConfig` setting
        (``convs_per_block``, ``augment_shift``, ``steps``...).
    """

    name = "domain"
    distance = "euclidean"
    needs_fit = True
    default_batch_size = 512

    def __init__(self, epochs: int = 10, width: int = 32, arch: str = "small_cnn",
                 batch_size: int = 128, lr: float = 2e-3, val_fraction: float = 0.15,
                 **classifier: Any) -> None:
        settings = {"arch": arch, "epochs": int(epochs), "batch_size": int(batch_size),
                    "lr": float(lr), "width": int(width), **classifier}
        self.config = _config(settings)
        if not 0.0 < val_fraction < 1.0:
            raise InputError("domain.val_fraction", f"must be in (0, 1), got {val_fraction}")
        self.val_fraction = float(val_fraction)
        self._classifier: TrainedClassifier | None = None
        self._meta: dict[str, Any] = {}
        self._sha256: str | None = None

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        """The constructor's own options and every other classifier setting."""
        from dataclasses import fields

        own = ("epochs", "width", "arch", "batch_size", "lr", "val_fraction")
        return (*own, *(f.name for f in fields(TrainConfig) if f.name not in own))

    # ------------------------------------------------------------------ identity
    @property
    def id(self) -> str:
        return f"domain-{self.config.arch}-w{self.config.width}-penultimate"

    @property
    def weights_sha256(self) -> str:
        """SHA-256 of the fitted weights."""
        self._require_fitted()
        assert self._sha256 is not None
        return self._sha256

    @property
    def dim(self) -> int:
        if self._classifier is not None:
            return int(self._classifier.model.embedding_dim)
        model = build_classifier(self.config.arch, 1, 2, **self.config.model_kwargs())
        return int(model.embedding_dim)

    @property
    def preprocessing(self) -> dict[str, Any]:
        return {
            "input": "uint8 [0, 255]",
            "channels": "as in the training split",
            "resize": None,
            "value_range": "x / 127.5 - 1 -> [-1, 1]",
            "output": "global average of the last convolution block (penultimate layer), "
                      "standardised per feature with the real training split's mean and std",
        }

    @property
    def training(self) -> dict[str, Any]:
        return {**self.config.to_dict(), **self._meta}

    @property
    def fitted(self) -> bool:
        return self._classifier is not None

    def _require_fitted(self) -> None:
        if self._classifier is None:
            raise NotFittedError("the domain extractor is not fitted: call fit(train) or "
                                 "load(path) first")

    # ------------------------------------------------------------------ training
    def fit(self, train: ImageSet, *, val: ImageSet | None = None, seed: int = 0,
            device: str = "cpu", progress: bool = True) -> DomainExtractor:
        """Train the encoder on ``train``; pick the epoch with the best AUROC on ``val``
        (or on a stratified ``val_fraction`` of ``train`` when ``val`` is None)."""
        train.require_all_classes()
        if val is None:
            train, val = _stratified_split(train, self.val_fraction, seed)
        classifier = train_classifier(train, val, config=self.config, seed=seed,
                                      device=device, progress=progress, desc="domain encoder")
        # Standardise each feature with the real training split's statistics: distances
        # (and FID) are then in units of the real data's spread, not of an arbitrary
        # activation scale that differs between trainings.
        embedded = classifier.embed(train.images).astype(np.float64)
        self._set(classifier, {"train_sha256": train.sha256(), "seed": int(seed),
                               "image_shape": list(train.image_shape),
                               "n_classes": int(val.n_classes),
                               "feature_mean": embedded.mean(axis=0).tolist(),
                               "feature_std": np.maximum(embedded.std(axis=0), 1e-6).tolist()})
        return self

    @property
    def classifier(self) -> TrainedClassifier | None:
        """The fitted classifier behind the encoder (trained on the real training split);
        the pipeline uses it as the label-consistency judge."""
        return self._classifier

    def _set(self, classifier: TrainedClassifier, meta: dict[str, Any]) -> None:
        self._classifier = classifier
        self._meta = meta
        self._sha256 = state_dict_sha256(classifier.model.state_dict())

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the fitted encoder (weights and settings) atomically."""
        self._require_fitted()
        assert self._classifier is not None
        state = {
            "format_version": FORMAT_VERSION,
            "config": self.config.to_dict(),
            "meta": self._meta,
            "history": self._classifier.history,
            "state_dict": {k: v.detach().cpu() for k, v in
                           self._classifier.model.state_dict().items()},
        }
        with atomic_path(path) as tmp:
            torch.save(state, tmp)

    def load(self, path: str | os.PathLike[str], device: str = "cpu") -> DomainExtractor:
        """Restore a saved encoder (``weights_only=True``: no code runs from the file)."""
        path = Path(path)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError as error:
            raise InputError(path, "domain encoder file not found") from error
        except Exception as error:
            raise InputError(path, f"cannot read the domain encoder: {error}") from error
        if not isinstance(state, dict) or state.get("format_version") != FORMAT_VERSION:
            raise InputError(path, "not a synthlens domain encoder file")
        self.config = _config(state["config"])
        meta = dict(state["meta"])
        in_channels = 3 if len(meta["image_shape"]) == 3 else 1
        model = build_classifier(self.config.arch, in_channels, meta["n_classes"],
                                 **self.config.model_kwargs(tuple(meta["image_shape"])))
        try:
            model.load_state_dict(state["state_dict"])
        except RuntimeError as error:
            raise InputError(path, f"domain encoder weights do not fit: {error}") from error
        if self.config.channels_last:
            model = model.to(memory_format=torch.channels_last)
        classifier = TrainedClassifier(model, meta["n_classes"], self.config,
                                       list(state["history"]), device)
        self._set(classifier, meta)
        return self

    # ------------------------------------------------------------------ extraction
    def _check_input(self, images: np.ndarray) -> None:
        self._require_fitted()
        self._check_trained_shape(images, self._meta["image_shape"])

    def _prepare(self, device: str) -> None:
        assert self._classifier is not None
        if self._classifier.device != device:
            self._classifier.model.to(device)
            self._classifier.device = device

    def _extract_batch(self, images: np.ndarray, device: str) -> np.ndarray:
        assert self._classifier is not None
        features = self._classifier.embed(images)
        if "feature_mean" in self._meta:
            mean = np.asarray(self._meta["feature_mean"], dtype=np.float32)
            std = np.asarray(self._meta["feature_std"], dtype=np.float32)
            features = (features - mean) / std
        return features


def _config(settings: dict[str, Any]) -> TrainConfig:
    try:
        return TrainConfig.from_dict(dict(settings))
    except (TypeError, ValueError) as error:
        raise InputError("features.domain", str(error)) from error


def _stratified_split(data: ImageSet, fraction: float, seed: int) -> tuple[ImageSet, ImageSet]:
    rng = np.random.default_rng(seed)
    held: list[np.ndarray] = []
    for label in range(data.n_classes):
        index = np.flatnonzero(data.labels == label)
        take = max(1, round(len(index) * fraction)) if len(index) > 1 else 0
        held.append(rng.permutation(index)[:take])
    val_index = np.sort(np.concatenate(held))
    keep = np.setdiff1d(np.arange(len(data)), val_index)
    return data.subset(keep, split="train"), data.subset(val_index, split="val")
