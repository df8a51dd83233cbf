"""Where torch code runs, at what precision and from which random state: one device
resolver, the mixed-precision policy of the training loops, and a seeded random state that
leaves the caller's untouched."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

from synthlens.errors import InputError


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``; ``cpu``, ``cuda`` and
    ``cuda:N`` pass through. Anything else, or a GPU asked for where torch sees none,
    raises :class:`InputError` (source ``device``)."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise InputError("device", f"must be cpu, cuda or auto, got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("device", "cuda was asked for but torch sees no GPU")
    return device


def autocast(device: str, enabled: bool = True) -> contextlib.AbstractContextManager[Any]:
    """Mixed precision for training: bfloat16 autocast on a GPU that supports it (no loss
    scaling needed), full precision elsewhere (CPU runs stay bit-reproducible)."""
    if enabled and device.startswith("cuda") and torch.cuda.is_available() \
            and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def full_precision(x: torch.Tensor) -> contextlib.AbstractContextManager[Any]:
    """Turn autocast off for numerically sensitive code (codebook distances, R1)."""
    return torch.autocast(device_type=x.device.type, enabled=False)


@contextlib.contextmanager
def seeded_rng(device: str, seed: int) -> Iterator[None]:
    """Run the block with torch's global RNG (CPU, and ``device``'s GPU) seeded with
    ``seed``, and restore the caller's RNG state afterwards."""
    dev = torch.device(device)
    devices = ([dev.index if dev.index is not None else torch.cuda.current_device()]
               if dev.type == "cuda" else [])
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield
