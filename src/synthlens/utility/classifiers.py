"""Image classifiers and the one training loop every real-trained model in synthlens uses.

The same loop trains the utility classifiers (real, real + synthetic, synthetic only), the
in-domain feature encoder and the label-consistency judge, so that they differ only in
the data they see. Model selection uses the real validation split only.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from synthlens.data.dataset import ImageSet


def images_to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N,H,W) or (N,H,W,3) -> float32 (N,C,H,W) in [-1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(images))
    x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
    return x.float().div_(127.5).sub_(1.0)


class SmallCNN(nn.Module):
    """A fast CPU classifier: three conv blocks (conv-BN-ReLU x2, pool), global pooling.

    ``embed`` returns the penultimate features (``width * 4`` values per image), which the
    in-domain feature extractor and the cross-task protocol use.
    """

    def __init__(self, in_channels: int, n_classes: int, width: int = 32) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
                nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
            )

        self.blocks = nn.ModuleList([
            block(in_channels, width), block(width, width * 2), block(width * 2, width * 4),
        ])
        self.dropout = nn.Dropout(0.2)
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


ARCHITECTURES: dict[str, type[nn.Module]] = {"small_cnn": SmallCNN}


def build_classifier(arch: str, in_channels: int, n_classes: int, **kwargs: Any) -> nn.Module:
    """Instantiate a registered architecture by name."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown classifier {arch!r}; choose from {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[arch](in_channels, n_classes, **kwargs)


@dataclass(frozen=True)
class TrainConfig:
    """How a classifier is trained; part of the run config (budgets set these numbers)."""

    arch: str = "small_cnn"
    epochs: int = 10
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-4
    width: int = 32
    class_weighting: bool = True
    augment_shift: int = 2

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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
        for start in range(0, len(images), batch_size):
            x = images_to_tensor(images[start:start + batch_size]).to(self.device)
            out = self.model.embed(x) if fn == "embed" else self.model(x).softmax(dim=1)
            outputs.append(out.float().cpu().numpy())
        return np.concatenate(outputs) if outputs else np.zeros((0, self.n_classes), np.float32)

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities, (N, n_classes)."""
        return self._batched(images, "proba")

    def predict(self, images: np.ndarray) -> np.ndarray:
        return self.predict_proba(images).argmax(axis=1)

    def embed(self, images: np.ndarray) -> np.ndarray:
        """Penultimate features, (N, embedding_dim)."""
        return self._batched(images, "embed")


def _random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate the batch by up to ``max_shift`` pixels (reflect padding): cheap and
    label-preserving for medical images, unlike flips, which swap laterality."""
    if max_shift <= 0:
        return x
    h, w = x.shape[2:]
    padded = F.pad(x, (max_shift,) * 4, mode="reflect")
    dy, dx = torch.randint(0, 2 * max_shift + 1, (2,), generator=generator).tolist()
    return padded[:, :, dy:dy + h, dx:dx + w]


def _val_score(model: nn.Module, val: ImageSet, n_classes: int, device: str) -> float:
    """AUROC on the validation split (macro one-vs-rest for multi-class): threshold-free,
    so model selection is not driven by class balance."""
    from sklearn.metrics import roc_auc_score

    probs = TrainedClassifier(model, n_classes, TrainConfig(), [], device).predict_proba(
        val.images)
    if n_classes == 2:
        return float(roc_auc_score(val.labels, probs[:, 1]))
    return float(roc_auc_score(val.labels, probs, multi_class="ovr", average="macro",
                               labels=list(range(n_classes))))


def train_classifier(train: ImageSet | Sequence[ImageSet], val: ImageSet, *,
                     config: TrainConfig | None = None, seed: int = 0, device: str = "cpu",
                     progress: bool = True, desc: str = "classifier") -> TrainedClassifier:
    """Train ``config.arch`` on one or more labelled sets; keep the epoch with the best
    validation AUROC.

    Several training sets (real + synthetic) are concatenated; class weights (inverse
    frequency of the combined training labels) counter imbalance. Deterministic on CPU
    for a given seed.
    """
    config = config or TrainConfig()
    sets = [train] if isinstance(train, ImageSet) else list(train)
    images = np.concatenate([s.images for s in sets])
    labels = np.concatenate([s.labels for s in sets])
    n_classes = val.n_classes
    in_channels = 1 if images.ndim == 3 else 3

    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = build_classifier(config.arch, in_channels, n_classes, width=config.width).to(device)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr,
                                  weight_decay=config.weight_decay)
    steps_per_epoch = max(1, int(np.ceil(len(images) / config.batch_size)))
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=config.lr, total_steps=config.epochs * steps_per_epoch)
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    weight = None
    if config.class_weighting:
        weight = torch.tensor(len(labels) / (n_classes * np.maximum(counts, 1)),
                              dtype=torch.float32, device=device)

    x_all = images_to_tensor(images)
    y_all = torch.from_numpy(labels)
    best_score, best_state, history = -np.inf, None, []
    bar = tqdm(range(config.epochs), desc=desc, disable=not progress, leave=False)
    for epoch in bar:
        model.train()
        order = torch.randperm(len(images), generator=generator)
        total = 0.0
        for start in range(0, len(order), config.batch_size):
            idx = order[start:start + config.batch_size]
            if len(idx) < 2:  # BatchNorm needs two samples
                continue
            x = _random_shift(x_all[idx], config.augment_shift, generator).to(device)
            loss = F.cross_entropy(model(x), y_all[idx].to(device), weight=weight)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            scheduler.step()
            total += float(loss.detach()) * len(idx)
        model.eval()
        score = _val_score(model, val, n_classes, device)
        history.append({"epoch": epoch, "train_loss": total / len(images), "val_auroc": score})
        bar.set_postfix(loss=f"{total / len(images):.3f}", val_auroc=f"{score:.3f}")
        if score > best_score:
            best_score, best_state = score, copy.deepcopy(model.state_dict())
    if best_state is not None:
        model.load_state_dict(best_state)
    return TrainedClassifier(model.eval(), n_classes, config, history, device)
