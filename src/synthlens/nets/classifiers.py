"""Image classifiers and the one training loop every classifier synthlens trains uses.

The same loop trains the utility classifiers (real, real + synthetic, synthetic only), the
in-domain feature encoder and the label-consistency judge, so that they differ only in
the data they see. Model selection uses the real validation split only.

Two architectures are registered in :data:`ARCHITECTURES`:

- ``small_cnn``: three conv stages (``width``, ``2 * width``, ``4 * width`` channels), the
  fast CPU default;
- ``resnet18``: the ResNet-18 of the MedMNIST v2 benchmark (Yang et al. 2023), written
  without torchvision. For images up to 64 px it uses their small-image stem (3x3 conv,
  stride 1, no max-pool); above, the ImageNet stem (7x7 conv, stride 2, max-pool).
  ``width=64`` is the published model.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from synthlens.data.augment import random_intensity, random_shift
from synthlens.data.dataset import ImageSet
from synthlens.data.tensors import to_model_range
from synthlens.device import seeded_rng
from synthlens.errors import SettingError
from synthlens.progress import progress_bar
from synthlens.settings import build, check_names
from synthlens.stats import macro_auroc


def _conv_bn_relu(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class SmallCNN(nn.Module):
    """A fast CPU classifier: three conv stages (``convs_per_block`` x conv-BN-ReLU) with
    2x2 max-pooling between them, global average pooling, dropout, a linear head.

    ``embed`` returns the penultimate features (``width * 4`` values per image), which the
    in-domain feature extractor and the cross-task protocol use.
    """

    def __init__(self, in_channels: int, n_classes: int, width: int = 32,
                 convs_per_block: int = 2, dropout: float = 0.2) -> None:
        super().__init__()
        if convs_per_block < 1:
            raise ValueError(f"convs_per_block must be at least 1, got {convs_per_block}")

        def block(cin: int, cout: int) -> nn.Sequential:
            layers = _conv_bn_relu(cin, cout)
            for _ in range(convs_per_block - 1):
                layers += _conv_bn_relu(cout, cout)
            return nn.Sequential(*layers)

        self.blocks = nn.ModuleList([
            block(in_channels, width), block(width, width * 2), block(width * 2, width * 4),
        ])
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(width * 4, n_classes)
        self.embedding_dim = width * 4

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i < len(self.blocks) - 1:
                x = F.max_pool2d(x, 2)
        return x.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.embed(x)))


class BasicBlock(nn.Module):
    """The two-conv residual block of ResNet-18/34 (He et al. 2016)."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x), inplace=True)


class ResNet18(nn.Module):
    """ResNet-18 as in the MedMNIST v2 benchmark (four stages of two basic blocks).

    ``stem="small"`` (3x3 conv, stride 1, no max-pool) is the benchmark's model for 28 px
    images; ``stem="imagenet"`` (7x7 conv, stride 2, 3x3 max-pool) the torchvision one for
    large images (:func:`train_classifier` picks ``small`` up to 64 px).
    ``embed`` returns the ``8 * width`` pooled features before the linear head.
    """

    def __init__(self, in_channels: int, n_classes: int, width: int = 64,
                 stem: str = "small") -> None:
        super().__init__()
        if stem == "small":
            self.stem = nn.Sequential(*_conv_bn_relu(in_channels, width))
        elif stem == "imagenet":
            self.stem = nn.Sequential(
                nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False),
                nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                nn.MaxPool2d(3, stride=2, padding=1))
        else:
            raise ValueError(f"stem must be 'small' or 'imagenet', got {stem!r}")
        stages, cin = [], width
        for i, planes in enumerate((width, 2 * width, 4 * width, 8 * width)):
            stride = 1 if i == 0 else 2
            stages.append(nn.Sequential(BasicBlock(cin, planes, stride),
                                        BasicBlock(planes, planes, 1)))
            cin = planes
        self.stages = nn.Sequential(*stages)
        self.head = nn.Linear(8 * width, n_classes)
        self.embedding_dim = 8 * width

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x)).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


ARCHITECTURES: dict[str, type[nn.Module]] = {"small_cnn": SmallCNN, "resnet18": ResNet18}


def build_classifier(arch: str, in_channels: int, n_classes: int, **kwargs: Any) -> nn.Module:
    """Instantiate a registered architecture by name."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown classifier {arch!r}; choose from {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[arch](in_channels, n_classes, **kwargs)


@dataclass(frozen=True)
class TrainConfig:
    """How a classifier is trained; part of the run config (budgets set these numbers).

    ``steps`` (when set) fixes the number of optimiser steps regardless of the training set
    size, so that arms trained on more or less data get the same compute; ``epochs`` then
    only sets how many times the validation split is scored for model selection.
    ``convs_per_block`` applies to ``small_cnn`` only; ``width`` is ``resnet18``'s base
    width (64 is the published model). ``augment_shift`` (pixels) and
    ``augment_intensity`` (relative contrast and brightness jitter) are label-preserving
    training augmentations.
    """

    arch: str = "small_cnn"
    epochs: int = 10
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-4
    width: int = 32
    convs_per_block: int = 2
    class_weighting: bool = True
    augment_shift: int = 2
    augment_intensity: float = 0.0
    steps: int | None = None
    channels_last: bool = True

    def __post_init__(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise SettingError("arch", f"unknown classifier {self.arch!r}",
                               sorted(ARCHITECTURES))
        for name in ("epochs", "batch_size", "width", "convs_per_block"):
            if int(getattr(self, name)) < 1:
                raise SettingError(name, f"classifier {name} must be at least 1, got "
                                         f"{getattr(self, name)!r}")
        if self.batch_size < 2:
            raise SettingError("batch_size", "classifier batch_size must be at least 2 "
                                             "(BatchNorm)")
        if self.steps is not None and self.steps < 1:
            raise SettingError("steps", f"classifier steps must be at least 1, got "
                                        f"{self.steps!r}")
        if not 0.0 <= self.augment_intensity < 1.0:
            raise SettingError("augment_intensity", f"classifier augment_intensity must lie "
                                                    f"in [0, 1), got "
                                                    f"{self.augment_intensity!r}")
        if not self.lr > 0:
            raise SettingError("lr", f"classifier lr must be positive, got {self.lr!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Build from a budget's ``classifier`` mapping; unknown keys and values of the
        wrong type raise :class:`~synthlens.errors.SettingError` (a ``ValueError``)."""
        check_names(values, [f.name for f in fields(cls)], "classifier setting")
        return build(cls, values, what="classifier setting")

    def model_kwargs(self, image_shape: tuple[int, ...] = (28, 28)) -> dict[str, Any]:
        """Constructor arguments of ``arch`` for images of ``image_shape`` ((H, W[, 3]))."""
        kwargs: dict[str, Any] = {"width": self.width}
        if self.arch == "small_cnn":
            kwargs["convs_per_block"] = self.convs_per_block
        elif self.arch == "resnet18":
            kwargs["stem"] = "small" if min(image_shape[:2]) <= 64 else "imagenet"
        return kwargs


class TrainedClassifier:
    """A fitted classifier with numpy-in, numpy-out helpers (evaluation mode, batched)."""

    def __init__(self, model: nn.Module, n_classes: int, config: TrainConfig,
                 history: list[dict[str, float]], device: str = "cpu") -> None:
        self.model = model.eval()
        self.n_classes = n_classes
        self.config = config
        self.history = history
        self.device = device

    @torch.inference_mode()
    def _batched(self, images: np.ndarray, fn: str, batch_size: int = 512) -> np.ndarray:
        outputs = []
        memory_format = (torch.channels_last if self.config.channels_last
                         else torch.contiguous_format)
        for start in range(0, len(images), batch_size):
            x = to_model_range(images[start:start + batch_size]).to(
                self.device, memory_format=memory_format)
            out = self.model.embed(x) if fn == "embed" else self.model(x).softmax(dim=1)
            outputs.append(out.float().cpu().numpy())
        if outputs:
            return np.concatenate(outputs)
        width = self.model.embedding_dim if fn == "embed" else self.n_classes
        return np.zeros((0, width), np.float32)

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities, (N, n_classes)."""
        return self._batched(images, "proba")

    def predict(self, images: np.ndarray) -> np.ndarray:
        return self.predict_proba(images).argmax(axis=1)

    def embed(self, images: np.ndarray) -> np.ndarray:
        """Penultimate features, (N, embedding_dim)."""
        return self._batched(images, "embed")


def _val_score(classifier: TrainedClassifier, val: ImageSet) -> float:
    """AUROC on the validation split (macro one-vs-rest for multi-class): threshold-free,
    so model selection is not driven by class balance."""
    score = float(macro_auroc(val.labels, classifier.predict_proba(val.images))[0])
    if not np.isfinite(score):
        raise ValueError("the validation split needs images of every class to score AUROC")
    return score


def train_classifier(train: ImageSet | Sequence[ImageSet], val: ImageSet, *,
                     config: TrainConfig | None = None, seed: int = 0, device: str = "cpu",
                     progress: bool = True, desc: str = "classifier") -> TrainedClassifier:
    """Train ``config.arch`` on one or more labelled sets; keep the checkpoint with the best
    validation AUROC.

    Several training sets (real + synthetic) are concatenated; class weights (inverse
    frequency of the combined training labels) counter imbalance. The run takes
    ``config.steps`` optimiser steps when set, else ``config.epochs`` passes over the data;
    the validation split is scored ``config.epochs`` times, evenly spaced. Deterministic on
    CPU for a given seed; the global torch RNG state is left as it was.
    """
    config = config or TrainConfig()
    sets = [train] if isinstance(train, ImageSet) else list(train)
    if not sets:
        raise ValueError("train_classifier needs at least one training set")
    images = np.concatenate([s.images for s in sets])
    labels = np.concatenate([s.labels for s in sets])
    if len(images) < 2:
        raise ValueError(f"train_classifier needs at least 2 training images, got {len(images)}")
    n_classes = val.n_classes
    in_channels = 1 if images.ndim == 3 else 3
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format

    steps_per_epoch = max(1, math.ceil(len(images) / config.batch_size))
    total_steps = config.steps or config.epochs * steps_per_epoch
    n_evals = min(config.epochs, total_steps)
    eval_at = {round(total_steps * (k + 1) / n_evals) for k in range(n_evals)}

    with seeded_rng(device, seed):  # weight init and dropout use the (forked) global RNG
        generator = torch.Generator().manual_seed(seed)
        model = build_classifier(config.arch, in_channels, n_classes,
                                 **config.model_kwargs(images.shape[1:]))
        model = model.to(device, memory_format=memory_format)
        optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr,
                                      weight_decay=config.weight_decay)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=config.lr,
                                                        total_steps=total_steps)
        counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
        weight = None
        if config.class_weighting:
            weight = torch.tensor(len(labels) / (n_classes * np.maximum(counts, 1)),
                                  dtype=torch.float32, device=device)

        x_all = torch.from_numpy(np.ascontiguousarray(images))  # uint8; converted per batch
        y_all = torch.from_numpy(labels)
        classifier = TrainedClassifier(model, n_classes, config, [], device)
        best_score, best_state = -np.inf, None
        order = torch.zeros(0, dtype=torch.long)
        position, running, seen = 0, 0.0, 0
        bar = progress_bar(range(1, total_steps + 1), desc=desc, disable=not progress, leave=False)
        model.train()
        for step in bar:
            if position + config.batch_size > len(order):
                # a fresh permutation; the short tail of the last one is dropped, so that
                # every batch is full (BatchNorm needs two samples and steady statistics)
                order = torch.randperm(len(images), generator=generator)
                position = 0
            idx = order[position:position + config.batch_size]
            position += len(idx)
            x = to_model_range(x_all[idx].numpy())
            x = random_shift(x, config.augment_shift, generator)
            x = random_intensity(x, config.augment_intensity, generator)
            x = x.to(device, memory_format=memory_format)
            loss = F.cross_entropy(model(x), y_all[idx].to(device), weight=weight)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            scheduler.step()
            running += float(loss.detach()) * len(idx)
            seen += len(idx)
            if step in eval_at:
                model.eval()
                score = _val_score(classifier, val)
                classifier.history.append({"step": step, "epoch": step / steps_per_epoch,
                                           "train_loss": running / max(seen, 1),
                                           "val_auroc": score})
                bar.set_postfix(loss=f"{running / max(seen, 1):.3f}", val_auroc=f"{score:.3f}")
                running, seen = 0.0, 0
                if score > best_score:
                    best_score, best_state = score, copy.deepcopy(model.state_dict())
                model.train()
        bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return classifier
