"""make_demo: determinism, sizes, anatomy, and a class signal that is real but not trivial."""

from __future__ import annotations

import time

import numpy as np
import pytest
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from synthlens.data import make_demo
from synthlens.data.demo import _demo_arrays
from synthlens.errors import InputError


@pytest.fixture(scope="module")
def demo28():
    return make_demo(28, seed=0)


def test_generation_is_fast_at_28px():
    _demo_arrays.cache_clear()
    start = time.perf_counter()
    make_demo(28, seed=123)
    assert time.perf_counter() - start < 2.0


def test_splits_classes_and_balance(demo28):
    assert demo28.name == "demo"
    assert demo28.class_names == ("normal", "pneumonia")
    assert demo28.image_shape == (28, 28)
    assert [len(s) for s in demo28.splits()] == [2000, 300, 600]
    for split in demo28.splits():
        counts = split.class_counts()
        assert counts[1] / counts[0] == pytest.approx(1.5)
        assert split.images.dtype == np.uint8
        assert (np.diff(split.labels) < 0).any()  # shuffled, not sorted by class


def test_deterministic_and_seeded(demo28):
    again = make_demo(28, seed=0)
    assert again.hashes() == demo28.hashes()
    other = make_demo(28, seed=1)
    assert other.hashes()["train"] != demo28.hashes()["train"]
    # splits are different images, not copies of each other
    assert demo28.train.images[:300].tobytes() != demo28.val.images.tobytes()


def test_returned_arrays_are_private_copies(demo28):
    first = make_demo(28, seed=0)
    first.train.images[:] = 0
    assert make_demo(28, seed=0).hashes() == demo28.hashes()


def test_64px_same_patients(demo28):
    big = make_demo(64, seed=0)
    assert big.name == "demo64" and big.image_shape == (64, 64)
    np.testing.assert_array_equal(big.train.labels, demo28.train.labels)
    # the same anatomy at two resolutions: 64 px shrunk to 28 px matches its own 28 px image
    # far better than the next patient's
    shrunk = np.stack([np.asarray(Image.fromarray(im).resize((28, 28), Image.BOX), float)
                       for im in big.test.images[:100]])
    small = demo28.test.images[:100].astype(float)
    same = np.abs(shrunk - small).mean()
    other = np.abs(shrunk - np.roll(small, 1, axis=0)).mean()
    assert same < 0.6 * other


def test_looks_like_a_chest(demo28):
    mean = demo28.train.images.astype(float).mean(axis=0)
    lungs = (mean[8:16, 5:9].mean() + mean[8:16, 19:23].mean()) / 2
    spine = mean[4:14, 13:15].mean()
    corners = mean[:2, :2].mean()
    below_diaphragm = mean[26:, 10:18].mean()
    assert lungs < spine - 40  # dark air in the lung fields, bright mediastinum
    assert corners < lungs  # no body above the shoulders
    assert below_diaphragm > lungs + 40


def test_opacity_sits_in_the_lungs(demo28):
    train = demo28.train
    diff = (train.images[train.labels == 1].astype(float).mean(0)
            - train.images[train.labels == 0].astype(float).mean(0))
    lung_fields = np.r_[diff[6:20, 4:10].ravel(), diff[6:20, 18:24].ravel()]
    assert lung_fields.mean() > 3.0  # pneumonia images are brighter in the lung fields
    assert abs(diff[:, 13:15].mean()) < lung_fields.mean() / 2  # spine unaffected


def test_pixel_logistic_regression_is_good_but_not_perfect(demo28):
    def flat(split):
        return split.images.reshape(len(split), -1) / 255.0

    model = LogisticRegression(C=0.1, max_iter=500).fit(flat(demo28.train), demo28.train.labels)
    auroc = roc_auc_score(demo28.test.labels, model.predict_proba(flat(demo28.test))[:, 1])
    # measured 0.85 on seed 0 (a small CNN reaches about 0.92): subtle, not trivial
    assert 0.7 < auroc < 0.93


def test_size_validation():
    with pytest.raises(InputError, match="demo size: must be a whole number of pixels from 16"):
        make_demo(8)
    with pytest.raises(InputError, match="demo size"):
        make_demo(28.5)  # type: ignore[arg-type]
