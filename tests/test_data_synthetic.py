"""load_synthetic: a user's synthetic set from an .npz or class folders, with its errors."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from synthlens.data import load_synthetic
from synthlens.errors import InputError

NAMES = ("normal", "pneumonia")


def _raises(path: Path, *fragments: str):
    return pytest.raises(InputError, match=re.escape(str(path)) + ".*" +
                         ".*".join(re.escape(f) for f in fragments))


def _images(n: int = 6, size: int = 8) -> np.ndarray:
    return np.arange(n * size * size, dtype=np.int64).reshape(n, size, size).astype(np.uint8)


def test_npz_with_images_and_labels(tmp_path):
    path = tmp_path / "vae.npz"
    np.savez(path, images=_images()[..., None], labels=np.array([0, 1, 0, 1, 1, 1]))
    s = load_synthetic(path, NAMES, "vae", image_shape=(8, 8))
    assert s.split == "vae" and s.class_names == NAMES and s.source == str(path)
    assert s.images.shape == (6, 8, 8) and s.labels.tolist() == [0, 1, 0, 1, 1, 1]


def test_npz_in_medmnist_layout_uses_train(tmp_path, shared_data):
    s = load_synthetic(shared_data("pneumoniamnist.npz"), NAMES, "copy")
    assert len(s) == 4708 and s.split == "copy"
    assert s.class_counts().tolist() == [1214, 3494]


def test_npz_class_names_are_mapped_by_name(tmp_path):
    path = tmp_path / "flipped.npz"
    np.savez(path, images=_images(3), labels=np.array([0, 0, 1]),
             class_names=np.array(["pneumonia", "normal"]))
    assert load_synthetic(path, NAMES, "x").labels.tolist() == [1, 1, 0]
    np.savez(path, images=_images(3), labels=np.array([0, 0, 1]),
             class_names=np.array(["pneumonia", "covid"]))
    with _raises(path, "class_names", "unknown class name(s) ['covid']"):
        load_synthetic(path, NAMES, "x")


def test_npz_errors(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, images=_images(3))
    with _raises(path, "missing key labels"):
        load_synthetic(path, NAMES, "x")
    np.savez(path, pictures=_images(3))
    with _raises(path, "missing keys images, labels (or train_images and train_labels)"):
        load_synthetic(path, NAMES, "x")
    np.savez(path, images=_images(3), labels=np.array([0, 1, 2]))
    with _raises(path, "labels", "label 2 but the real data has only 2 classes"):
        load_synthetic(path, NAMES, "x")
    np.savez(path, images=_images(3), labels=np.array([0, 1]))
    with _raises(path, "labels", "3 images but 2 labels"):
        load_synthetic(path, NAMES, "x")
    np.savez(path, images=_images(3).astype(np.float64) / 255, labels=np.array([0, 1, 1]))
    with _raises(path, "images", "dtype float64, expected uint8"):
        load_synthetic(path, NAMES, "x")
    np.savez(path, images=np.array([_images(1)[0], None], dtype=object), labels=np.array([0, 1]))
    with _raises(path, "images", "pickled/object array"):
        load_synthetic(path, NAMES, "x")


def test_shape_must_match_real(tmp_path):
    path = tmp_path / "big.npz"
    np.savez(path, images=_images(2, size=16), labels=np.array([0, 1]))
    with _raises(path, "synthetic images are 16x16 grey but the real images are 28x28 grey"):
        load_synthetic(path, NAMES, "x", image_shape=(28, 28))


def test_folder(tmp_path):
    for name, n in (("pneumonia", 3), ("normal", 2)):
        (tmp_path / name).mkdir()
        for i in range(n):
            Image.fromarray(np.full((8, 8), 10 * i, np.uint8)).save(tmp_path / name / f"{i}.png")
    (tmp_path / "normal" / ".DS_Store").write_bytes(b"x")
    s = load_synthetic(tmp_path, NAMES, "gan")
    assert s.split == "gan" and s.class_counts().tolist() == [2, 3]
    assert s.images.shape == (5, 8, 8)


def test_folder_subset_of_classes_and_unknown_folders(tmp_path):
    (tmp_path / "pneumonia").mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "pneumonia" / "a.png")
    s = load_synthetic(tmp_path, NAMES, "one_class")
    assert s.class_counts().tolist() == [0, 1]
    (tmp_path / "Normal").mkdir()
    (tmp_path / "covid").mkdir()
    with _raises(tmp_path, "unknown class folder(s) ['Normal', 'covid']",
                 "named after the real classes ['normal', 'pneumonia']"):
        load_synthetic(tmp_path, NAMES, "x")


def test_missing_path(tmp_path):
    with _raises(tmp_path / "none.npz", "synthetic set 'ddpm' not found"):
        load_synthetic(tmp_path / "none.npz", NAMES, "ddpm")
