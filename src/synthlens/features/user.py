"""User extractors: any TorchScript or ONNX file by path.

This is how local backbones such as DINOv2 or RAD-DINO come in: export the model once
(``torch.jit.trace(model, example).save("dinov2_vitb14.pt")``) on a machine that has it,
copy the file, and point synthlens at it. Nothing is downloaded; the file's SHA-256 is
recorded next to every number computed with it.

Preprocessing is explicit and recorded: grey is replicated to the model's channels; the
whole image is resized to ``image_size`` (no crop: cropping would cut anatomy);
values become ``(x / 255 - mean) / std``. The model's output is reduced to one row per
image: a 2-D output is kept, a 3-D (N, tokens, D) output gives its first (CLS) token
(``pool="cls"``) or the token mean (``pool="mean"``), a 4-D map its spatial mean.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from synthlens.data.tensors import to_tensor
from synthlens.errors import InputError
from synthlens.features.base import DISTANCES, Extractor
from synthlens.hashing import file_sha256

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: Defaults for well-known backbones (any key can still be overridden).
PRESETS: dict[str, dict[str, Any]] = {
    # DINOv2 (Oquab et al. 2023) ViT-*/14: ImageNet statistics, 224 px (16x16 patches),
    # bicubic, CLS token, compared by cosine similarity as in the DINO papers.
    "dinov2": {"image_size": 224, "mean": IMAGENET_MEAN, "std": IMAGENET_STD,
               "resize_filter": "bicubic", "pool": "cls", "distance": "cosine"},
}

FILTERS = ("bilinear", "bicubic", "area", "nearest")
POOLS = ("auto", "cls", "mean")


class _FileModelExtractor(Extractor):
    """Shared preprocessing and output pooling of TorchScript and ONNX extractors."""

    kind = ""
    default_batch_size = 32

    def __init__(self, path: str | os.PathLike[str], *, id: str | None = None,
                 image_size: int | tuple[int, int] | list[int] | None = None,
                 channels: int = 3, mean: float | tuple[float, ...] | list[float] = 0.0,
                 std: float | tuple[float, ...] | list[float] = 1.0,
                 resize_filter: str = "bilinear", pool: str = "auto",
                 distance: str = "euclidean", preset: str | None = None) -> None:
        if preset is not None:
            if preset not in PRESETS:
                raise InputError(f"{self.kind}.preset", f"unknown preset {preset!r}; choose "
                                                        f"from {sorted(PRESETS)}")
            given = {"image_size": image_size, "mean": mean, "std": std,
                     "resize_filter": resize_filter, "pool": pool, "distance": distance}
            defaults = {"image_size": None, "mean": 0.0, "std": 1.0,
                        "resize_filter": "bilinear", "pool": "auto", "distance": "euclidean"}
            merged = {k: (PRESETS[preset].get(k, v) if given[k] == defaults[k] else given[k])
                      for k, v in given.items()}
            image_size, mean, std = merged["image_size"], merged["mean"], merged["std"]
            resize_filter, pool = merged["resize_filter"], merged["pool"]
            distance = merged["distance"]
        self.preset = preset
        self.path = Path(path).expanduser()
        if not self.path.is_file():
            raise InputError(self.path, f"{self.kind} model file not found (synthlens never "
                                        "downloads weights: export the model to this path)")
        self._sha256 = file_sha256(self.path)
        self._id = id or f"{self.kind}-{self.path.stem}"
        if image_size is None:
            self.image_size: tuple[int, int] | None = None
        elif isinstance(image_size, int | np.integer):
            self.image_size = (int(image_size), int(image_size))
        else:
            self.image_size = (int(image_size[0]), int(image_size[1]))
        if channels not in (1, 3):
            raise InputError(f"{self.kind}.channels", f"must be 1 or 3, got {channels}")
        self.channels = int(channels)
        self.mean = _per_channel(mean, self.channels, f"{self.kind}.mean")
        self.std = _per_channel(std, self.channels, f"{self.kind}.std")
        if any(s <= 0 for s in self.std):
            raise InputError(f"{self.kind}.std", f"must be positive, got {list(self.std)}")
        if resize_filter not in FILTERS:
            raise InputError(f"{self.kind}.resize_filter", f"choose from {FILTERS}, got "
                                                           f"{resize_filter!r}")
        if pool not in POOLS:
            raise InputError(f"{self.kind}.pool", f"choose from {POOLS}, got {pool!r}")
        if distance not in DISTANCES:
            raise InputError(f"{self.kind}.distance", f"choose from {DISTANCES}, got "
                                                      f"{distance!r}")
        self.resize_filter, self.pool = resize_filter, pool
        self.distance = distance  # type: ignore[assignment]
        self._dim: int | None = None

    @property
    def id(self) -> str:
        return self._id

    @property
    def weights_sha256(self) -> str:
        return self._sha256

    @property
    def dim(self) -> int | None:
        return self._dim

    @property
    def preprocessing(self) -> dict[str, Any]:
        return {
            "input": "uint8 [0, 255]",
            "channels": ("grey replicated to RGB" if self.channels == 3
                         else "one channel (grey)"),
            "resize": None if self.image_size is None else {
                "size": list(self.image_size),
                "filter": f"{self.resize_filter}, whole image (no crop), half-pixel centres"
                          + (", antialiased when downsampling"
                             if self.resize_filter in ("bilinear", "bicubic") else ""),
            },
            "value_range": f"(x / 255 - mean) / std, mean={list(self.mean)}, "
                           f"std={list(self.std)}",
            "output": {"auto": "2-D output as is; (N, tokens, D): first (CLS) token; "
                               "(N, C, H, W): spatial mean",
                       "cls": "first (CLS) token", "mean": "mean over tokens / positions"
                       }[self.pool],
            "file": self.path.name,
            "preset": self.preset,
        }

    def _check_input(self, images: np.ndarray) -> None:
        if images.ndim == 4 and self.channels == 1:
            raise InputError(self._id, "the model takes one channel but the images are RGB")

    def _preprocess(self, images: np.ndarray, device: str) -> torch.Tensor:
        x = to_tensor(images, device).div_(255.0)
        if self.image_size is not None and tuple(x.shape[2:]) != self.image_size:
            if self.resize_filter in ("bilinear", "bicubic"):
                x = F.interpolate(x, size=self.image_size, mode=self.resize_filter,
                                  align_corners=False, antialias=True)
            else:
                x = F.interpolate(x, size=self.image_size, mode=self.resize_filter)
        if x.shape[1] != self.channels:
            x = x.expand(-1, self.channels, -1, -1)
        mean = torch.tensor(self.mean, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, -1, 1, 1)
        return ((x - mean) / std).contiguous()

    def _pool(self, out: Any) -> torch.Tensor:
        if isinstance(out, (tuple, list)):
            out = out[0]
        elif isinstance(out, dict):
            out = next(iter(out.values()))
        out = torch.as_tensor(out).float()
        if out.ndim == 2:
            pooled = out
        elif out.ndim == 3:  # (N, tokens, D)
            pooled = out.mean(dim=1) if self.pool == "mean" else out[:, 0]
        elif out.ndim == 4:  # (N, C, H, W)
            if self.pool == "cls":
                raise InputError(self._id, "pool='cls' needs a (N, tokens, D) output, got a "
                                           f"feature map {tuple(out.shape)}")
            pooled = out.mean(dim=(2, 3))
        else:
            raise InputError(self._id, f"model output has shape {tuple(out.shape)}; expected "
                                       "(N, D), (N, tokens, D) or (N, C, H, W)")
        self._dim = int(pooled.shape[1])
        return pooled.cpu()


class TorchScriptExtractor(_FileModelExtractor):
    """A TorchScript file (``torch.jit.save``) as a feature extractor.

    Parameters
    ----------
    path:
        The ``.pt`` file. Options as documented in the module: ``id``, ``image_size``,
        ``channels``, ``mean``, ``std``, ``resize_filter``, ``pool``, ``distance``,
        ``preset`` (``"dinov2"``).
    """

    name = "torchscript"
    kind = "torchscript"

    def __init__(self, path: str | os.PathLike[str], **options: Any) -> None:
        super().__init__(path, **options)
        self._model: torch.jit.ScriptModule | None = None

    def _prepare(self, device: str) -> None:
        if self._model is None:
            try:
                self._model = torch.jit.load(str(self.path), map_location="cpu").eval()
            except Exception as error:
                raise InputError(self.path, f"cannot load as TorchScript: {error}") from error
        self._model.to(device)

    def _extract_batch(self, images: np.ndarray, device: str) -> torch.Tensor:
        assert self._model is not None
        return self._pool(self._model(self._preprocess(images, device)))


class OnnxExtractor(_FileModelExtractor):
    """An ONNX file run with onnxruntime (an optional dependency: ``pip install
    onnxruntime``). The model's first input takes the preprocessed (N, C, H, W) float32
    batch; its first output is pooled as for TorchScript."""

    name = "onnx"
    kind = "onnx"

    def __init__(self, path: str | os.PathLike[str], **options: Any) -> None:
        try:
            import onnxruntime  # noqa: F401
        except ImportError as error:
            raise InputError("onnx", "onnxruntime is not installed; install it with "
                                     "`pip install onnxruntime` to use ONNX extractors, or "
                                     "export the model to TorchScript instead") from error
        super().__init__(path, **options)
        self._session: Any = None
        self._session_device: str | None = None

    def _prepare(self, device: str) -> None:
        import onnxruntime

        if self._session is None or self._session_device != device:
            providers = ["CPUExecutionProvider"]
            if device.startswith("cuda") and \
                    "CUDAExecutionProvider" in onnxruntime.get_available_providers():
                providers.insert(0, "CUDAExecutionProvider")
            try:
                self._session = onnxruntime.InferenceSession(str(self.path),
                                                             providers=providers)
            except Exception as error:
                raise InputError(self.path, f"cannot load as ONNX: {error}") from error
            self._session_device = device

    def _extract_batch(self, images: np.ndarray, device: str) -> torch.Tensor:
        x = self._preprocess(images, "cpu").numpy().astype(np.float32, copy=False)
        name = self._session.get_inputs()[0].name
        return self._pool(self._session.run(None, {name: x})[0])


def _per_channel(value: float | tuple[float, ...] | list[float], channels: int,
                 source: str) -> tuple[float, ...]:
    values = (float(value),) if isinstance(value, int | float) else tuple(float(v) for v in value)
    if len(values) == 1:
        return values * channels
    if len(values) != channels:
        raise InputError(source, f"needs 1 or {channels} values, got {len(values)}")
    return values
