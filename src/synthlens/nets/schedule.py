"""The learning-rate schedule of the generator and autoencoder trainings."""

from __future__ import annotations

import math


def cosine_lr(step: int, total: int, warmup: int = 0) -> float:
    """Learning-rate multiplier: linear warm-up then cosine decay to 10%."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
