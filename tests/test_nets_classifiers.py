"""The classifiers and the shared training loop (synthlens.nets.classifiers): shapes, the
published ResNet-18 size, determinism, the fixed-step schedule, model selection by AUROC
and learning a separable task."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from synthlens.data.dataset import ImageSet
from synthlens.nets.classifiers import (
    ARCHITECTURES,
    ResNet18,
    SmallCNN,
    TrainConfig,
    build_classifier,
    train_classifier,
)


def _blobs(n: int, seed: int, size: int = 16, rgb: bool = False) -> ImageSet:
    """Class 1 has a bright square in the centre, class 0 does not: easily separable."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    images = rng.integers(0, 90, (n, size, size)).astype(np.uint8)
    c = size // 2
    images[labels == 1, c - 3:c + 3, c - 3:c + 3] += 120
    if rgb:
        images = np.repeat(images[..., None], 3, axis=-1)
    return ImageSet(images, labels, ("a", "b"), split=f"s{seed}")


def test_resnet18_has_the_published_parameter_count():
    # torchvision's resnet18 (ImageNet, 1000 classes) has 11,689,512 parameters
    model = ResNet18(3, 1000, width=64, stem="imagenet")
    assert sum(p.numel() for p in model.parameters()) == 11_689_512
    small = ResNet18(1, 2)  # the MedMNIST 28 px model: 3x3 stem conv, no max-pool
    x = torch.zeros(2, 1, 28, 28)
    assert small(x).shape == (2, 2)
    assert small.embed(x).shape == (2, 512) and small.embedding_dim == 512
    with pytest.raises(ValueError, match="stem"):
        ResNet18(1, 2, stem="other")


def test_small_cnn_shapes_and_registry():
    assert set(ARCHITECTURES) == {"small_cnn", "resnet18"}
    model = build_classifier("small_cnn", 3, 5, width=8, convs_per_block=1)
    assert isinstance(model, SmallCNN)
    x = torch.zeros(4, 3, 28, 28)
    assert model(x).shape == (4, 5) and model.embed(x).shape == (4, 32)
    convs = sum(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    assert convs == 3
    with pytest.raises(ValueError, match="unknown classifier"):
        build_classifier("vgg", 1, 2)


def test_train_config_validation():
    assert TrainConfig.from_dict({"width": 8}).width == 8
    with pytest.raises(ValueError, match="unknown classifier setting"):
        TrainConfig.from_dict({"widht": 8})
    with pytest.raises(ValueError, match="epochs"):
        TrainConfig(epochs=0)
    with pytest.raises(ValueError, match="unknown classifier"):
        TrainConfig(arch="vgg")


def test_training_is_deterministic_and_leaves_global_rng_alone():
    train, val = _blobs(96, 0), _blobs(40, 1)
    config = TrainConfig(epochs=2, batch_size=32, width=4)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = train_classifier(train, val, config=config, seed=7, progress=False)
    assert torch.equal(torch.get_rng_state(), before)
    b = train_classifier(train, val, config=config, seed=7, progress=False)
    c = train_classifier(train, val, config=config, seed=8, progress=False)
    pa, pb, pc = (m.predict_proba(val.images) for m in (a, b, c))
    np.testing.assert_array_equal(pa, pb)
    assert not np.array_equal(pa, pc)
    np.testing.assert_allclose(pa.sum(axis=1), 1.0, rtol=1e-5)


def test_fixed_steps_schedule_and_model_selection():
    train, val = _blobs(100, 0), _blobs(40, 1)
    config = TrainConfig(epochs=3, batch_size=16, width=4, steps=20)
    clf = train_classifier([train, train], val, config=config, seed=0, progress=False)
    # the validation split is scored `epochs` times, the last at the final step
    assert [h["step"] for h in clf.history] == [7, 13, 20]
    assert clf.embed(val.images).shape == (40, 16)
    assert clf.predict(val.images).shape == (40,)


def test_learns_a_separable_task_rgb_and_resnet():
    train, val = _blobs(128, 0, rgb=True), _blobs(64, 1, rgb=True)
    clf = train_classifier(train, val, config=TrainConfig(epochs=3, batch_size=32, width=8,
                                                          lr=5e-3),
                           seed=0, progress=False)
    assert max(h["val_auroc"] for h in clf.history) > 0.95
    resnet = train_classifier(_blobs(32, 0), _blobs(16, 1),
                              config=TrainConfig(arch="resnet18", epochs=1, batch_size=16,
                                                 width=4), seed=0, progress=False)
    assert resnet.embed(_blobs(16, 1).images).shape == (16, 32)


def test_model_selection_scores_the_kept_model_by_auroc_and_needs_every_class():
    from sklearn.metrics import roc_auc_score

    train, val = _blobs(64, 0), _blobs(40, 1)
    clf = train_classifier(train, val, config=TrainConfig(epochs=3, batch_size=16, width=4),
                           seed=0, progress=False)
    best = max(h["val_auroc"] for h in clf.history)
    # the kept checkpoint is the best one, and its score is scikit-learn's AUROC
    assert best == pytest.approx(
        roc_auc_score(val.labels, clf.predict_proba(val.images)[:, 1]), abs=1e-12)
    one_class = ImageSet(val.images[val.labels == 0], val.labels[val.labels == 0], ("a", "b"))
    with pytest.raises(ValueError, match="every class"):
        train_classifier(train, one_class, config=TrainConfig(epochs=1, batch_size=16, width=4),
                         seed=0, progress=False)
