"""load_npz (MedMNIST layout), its validation errors, and the ImageSet npz round trip."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np
import pytest

from synthlens.data import ImageSet, load_imageset, load_npz, save_imageset
from synthlens.errors import InputError


def _arrays(n=(30, 10, 12), size=8, rgb=False, classes=2, label_shape="column", seed=0):
    rng = np.random.default_rng(seed)
    out = {}
    for split, count in zip(("train", "val", "test"), n, strict=True):
        shape = (count, size, size, 3) if rgb else (count, size, size)
        out[f"{split}_images"] = rng.integers(0, 256, shape, dtype=np.uint8)
        labels = np.arange(count) % classes
        out[f"{split}_labels"] = (labels[:, None] if label_shape == "column"
                                  else labels).astype(np.uint8)
    return out


def _write(tmp_path: Path, name: str = "data.npz", **arrays) -> Path:
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


def _raises(path: Path, *fragments: str):
    """Context: an InputError whose message names ``path`` and every fragment."""
    return pytest.raises(InputError, match=re.escape(str(path)) + ".*" +
                         ".*".join(re.escape(f) for f in fragments))


def test_loads_grey_with_column_labels(tmp_path):
    arrays = _arrays()
    data = load_npz(_write(tmp_path, **arrays))
    assert data.name == "data"
    assert [len(s) for s in data.splits()] == [30, 10, 12]
    assert data.class_names == ("0", "1")
    assert data.image_shape == (8, 8)
    assert data.train.labels.dtype == np.int64 and data.train.labels.shape == (30,)
    np.testing.assert_array_equal(data.test.images, arrays["test_images"])
    np.testing.assert_array_equal(data.val.labels, arrays["val_labels"][:, 0])


def test_loads_rgb_flat_labels_and_squeezes_single_channel(tmp_path):
    rgb = load_npz(_write(tmp_path, "rgb.npz", **_arrays(rgb=True, label_shape="flat")))
    assert rgb.image_shape == (8, 8, 3) and rgb.train.channels == 3
    arrays = _arrays(classes=3)
    arrays = {k: v[..., None] if k.endswith("images") else v for k, v in arrays.items()}
    grey = load_npz(_write(tmp_path, "grey.npz", **arrays))
    assert grey.image_shape == (8, 8) and grey.class_names == ("0", "1", "2")


def test_class_names_key_wins(tmp_path):
    path = _write(tmp_path, "pneumoniamnist.npz", **_arrays(),
                  class_names=np.array(["cat", "dog"]))
    assert load_npz(path).class_names == ("cat", "dog")


def test_medmnist_file_name_gives_official_class_names(tmp_path):
    assert load_npz(_write(tmp_path, "breastmnist_64.npz", **_arrays())).class_names == (
        "malignant", "normal, benign")
    # a table entry with another class count is not applied
    data = load_npz(_write(tmp_path, "bloodmnist.npz", **_arrays(classes=2)))
    assert data.class_names == ("0", "1")


def test_pneumoniamnist_real_file(shared_data):
    data = load_npz(shared_data("pneumoniamnist.npz"))
    assert [len(s) for s in data.splits()] == [4708, 524, 624]
    assert data.class_names == ("normal", "pneumonia")
    assert data.image_shape == (28, 28)
    assert data.name == "pneumoniamnist"


def test_mednist_small_class_names_from_key(shared_data):
    data = load_npz(shared_data("mednist_small.npz"))
    assert data.class_names == ("AbdomenCT", "BreastMRI", "CXR", "ChestCT", "Hand", "HeadCT")
    assert data.image_shape == (64, 64)
    assert [len(s) for s in data.splits()] == [2400, 300, 600]


def test_missing_file_and_folder(tmp_path):
    with _raises(tmp_path / "nope.npz", "file not found"):
        load_npz(tmp_path / "nope.npz")
    with _raises(tmp_path, "is a folder"):
        load_npz(tmp_path)


def test_corrupt_and_non_npz_files(tmp_path):
    text = tmp_path / "notes.npz"
    text.write_text("not an archive")
    with _raises(text, "not a readable .npz file"):
        load_npz(text)
    good = _write(tmp_path, "good.npz", **_arrays())
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with _raises(truncated, "not a readable .npz file"):
        load_npz(truncated)
    single = tmp_path / "single.npy"
    np.save(single, np.zeros(3))
    with _raises(single, "single .npy array"):
        load_npz(single)


def test_pickled_object_arrays_are_refused(tmp_path):
    arrays = _arrays()
    arrays["train_labels"] = np.array([1, "a", None] * 10, dtype=object)
    path = _write(tmp_path, "obj.npz", **arrays)
    with _raises(path, "train_labels", "pickled/object array", "allow_pickle is never enabled"):
        load_npz(path)
    pickle_file = tmp_path / "pickle.npz"
    pickle_file.write_bytes(pickle.dumps({"train_images": [1, 2]}))
    with _raises(pickle_file, "holds pickled data", "allow_pickle is never enabled"):
        load_npz(pickle_file)


def test_missing_keys_are_listed(tmp_path):
    arrays = _arrays()
    del arrays["val_labels"], arrays["test_images"]
    path = _write(tmp_path, **arrays)
    with _raises(path, "missing keys", "val_labels, test_images", "the file has"):
        load_npz(path)


def test_count_mismatch_names_the_key(tmp_path):
    arrays = _arrays()
    arrays["val_labels"] = arrays["val_labels"][:-1]
    path = _write(tmp_path, **arrays)
    with _raises(path, "val_labels", "10 images but 9 labels"):
        load_npz(path)


def test_wrong_dtype_and_nan(tmp_path):
    arrays = _arrays()
    arrays["train_images"] = arrays["train_images"].astype(np.float32)
    path = _write(tmp_path, "float.npz", **arrays)
    with _raises(path, "train_images", "dtype float32, expected uint8"):
        load_npz(path)
    arrays["train_images"][0, 0, 0] = np.nan
    path = _write(tmp_path, "nan.npz", **arrays)
    with _raises(path, "train_images", "NaN"):
        load_npz(path)
    arrays = _arrays()
    arrays["test_labels"] = arrays["test_labels"].astype(np.float64)
    arrays["test_labels"][3] = np.nan
    path = _write(tmp_path, "nanlabels.npz", **arrays)
    with _raises(path, "test_labels", "NaN"):
        load_npz(path)
    arrays = _arrays()
    arrays["val_labels"] = np.array(["a"] * 10)
    path = _write(tmp_path, "strlabels.npz", **arrays)
    with _raises(path, "val_labels", "expected integers"):
        load_npz(path)


def test_single_class_split(tmp_path):
    arrays = _arrays()
    arrays["val_labels"][:] = 1
    path = _write(tmp_path, **arrays)
    with _raises(path, "val_labels", "split 'val' holds a single class '1'"):
        load_npz(path)


def test_class_with_no_images(tmp_path):
    arrays = _arrays(classes=3)
    arrays["test_labels"][arrays["test_labels"] == 1] = 0
    path = _write(tmp_path, **arrays)
    with _raises(path, "test_labels", "split 'test' has no images of class '1'"):
        load_npz(path)
    # a class_names key longer than the labels leaves a class empty everywhere
    path = _write(tmp_path, "names.npz", **_arrays(), class_names=np.array(["a", "b", "c"]))
    with _raises(path, "train_labels", "no images of class 'c'"):
        load_npz(path)


def test_splits_with_different_shapes(tmp_path):
    arrays = _arrays()
    arrays["test_images"] = np.zeros((12, 16, 16), dtype=np.uint8)
    path = _write(tmp_path, **arrays)
    with _raises(path, "train images are 8x8 grey but test images are 16x16 grey"):
        load_npz(path)
    arrays = _arrays()
    arrays["val_images"] = np.zeros((10, 8, 8, 3), dtype=np.uint8)
    path = _write(tmp_path, "rgbmix.npz", **arrays)
    with _raises(path, "val images are 8x8 RGB"):
        load_npz(path)


def test_bad_image_shape_and_multilabel(tmp_path):
    arrays = _arrays()
    arrays["train_images"] = np.zeros((30, 8, 8, 2), dtype=np.uint8)
    path = _write(tmp_path, **arrays)
    with _raises(path, "train_images", "expected (N, H, W)"):
        load_npz(path)
    arrays = _arrays()
    arrays["train_labels"] = np.zeros((30, 14), dtype=np.uint8)
    path = _write(tmp_path, "multi.npz", **arrays)
    with _raises(path, "train_labels", "multi-label data is not supported"):
        load_npz(path)


def test_bad_class_names_key(tmp_path):
    path = _write(tmp_path, "ints.npz", **_arrays(), class_names=np.array([0, 1]))
    with _raises(path, "class_names", "expected strings"):
        load_npz(path)
    path = _write(tmp_path, "dup.npz", **_arrays(), class_names=np.array(["a", "a"]))
    with _raises(path, "class_names", "duplicate class name"):
        load_npz(path)
    path = _write(tmp_path, "short.npz", **_arrays(classes=3), class_names=np.array(["a", "b"]))
    with _raises(path, "train_labels", "label 2 but only 2 class names"):
        load_npz(path)


def test_imageset_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    original = ImageSet(rng.integers(0, 256, (9, 6, 6, 3), dtype=np.uint8),
                        np.arange(9) % 3, ("a", "b", "c"), split="vae")
    path = tmp_path / "sets" / "vae.npz"
    save_imageset(path, original)
    loaded = load_imageset(path)
    np.testing.assert_array_equal(loaded.images, original.images)
    np.testing.assert_array_equal(loaded.labels, original.labels)
    assert loaded.class_names == ("a", "b", "c")
    assert loaded.split == "vae"
    assert loaded.sha256() == original.sha256()
    assert load_imageset(path, split="other").split == "other"
    with np.load(path, allow_pickle=False) as raw:  # nothing in it needs unpickling
        assert raw["class_names"].dtype.kind == "U"


def test_load_imageset_errors(tmp_path):
    path = _write(tmp_path, "partial.npz", images=np.zeros((3, 5, 5), np.uint8))
    with _raises(path, "missing keys labels, class_names"):
        load_imageset(path)
