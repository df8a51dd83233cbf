"""A user's own synthetic image set, read from an ``.npz`` or a class-folder directory."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from synthlens.data.dataset import ImageSet
from synthlens.data.folder import class_folders, read_class_folders, read_images
from synthlens.data.npz import NpzReader, check_class_names, read_labelled
from synthlens.errors import InputError

PathLike = str | os.PathLike[str]


def load_synthetic(path: PathLike, class_names: Sequence[str], name: str, *,
                   image_shape: tuple[int, ...] | None = None) -> ImageSet:
    """Load a synthetic set that the user brings, labelled with the real data's classes.

    Parameters
    ----------
    path:
        Either an ``.npz`` with ``images`` and ``labels`` (or, so that a MedMNIST-layout file
        can be passed, ``train_images`` and ``train_labels``), or a folder with one sub-folder
        per class whose names are a subset of ``class_names``. An ``.npz`` may carry its own
        ``class_names`` (string array); its labels are then mapped to the real classes by name.
    class_names:
        The real data's class names; labels index into them.
    name:
        The set's name (becomes :attr:`ImageSet.split`).
    image_shape:
        When given, the images must have this shape per image (``(H, W)`` or ``(H, W, 3)``),
        usually the real data's :attr:`RealData.image_shape`.
    """
    path = Path(path)
    class_names = tuple(str(c) for c in class_names)
    check_class_names(class_names, "class_names")
    if path.is_dir():
        images, labels = _from_folder(path, class_names)
    elif path.exists():
        images, labels = _from_npz(path, class_names)
    else:
        raise InputError(path, f"synthetic set '{name}' not found (expected an .npz file or "
                               "a folder of class sub-folders)")
    result = ImageSet(images, labels, class_names, split=name, source=str(path))
    if image_shape is not None and result.image_shape != tuple(image_shape):
        raise InputError(path, f"synthetic images are {_describe(result.image_shape)} but the "
                               f"real images are {_describe(tuple(image_shape))}; they must "
                               "match")
    return result


def _describe(shape: tuple[int, ...]) -> str:
    return f"{shape[0]}x{shape[1]} " + ("RGB" if len(shape) == 3 else "grey")


def _from_npz(path: Path, class_names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    with NpzReader(path) as reader:
        if "images" in reader or "labels" in reader:
            reader.require(["images", "labels"])
            images_key, labels_key = "images", "labels"
        elif "train_images" in reader or "train_labels" in reader:
            reader.require(["train_images", "train_labels"])
            images_key, labels_key = "train_images", "train_labels"
        else:
            reader.require(["images", "labels"], " (or train_images and train_labels)")
            raise AssertionError("unreachable: require raised")
        images, labels = read_labelled(reader, images_key, labels_key)
        if "class_names" in reader:
            own = reader.string_array("class_names")
            unknown = [c for c in own if c not in class_names]
            if unknown:
                raise InputError(reader.source("class_names"),
                                 f"unknown class name(s) {unknown}; the real classes are "
                                 f"{list(class_names)}")
            if int(labels.max()) >= len(own):
                raise InputError(reader.source(labels_key),
                                 f"label {int(labels.max())} but the file names only "
                                 f"{len(own)} classes {list(own)}")
            labels = np.array([class_names.index(c) for c in own], dtype=np.int64)[labels]
        elif int(labels.max()) >= len(class_names):
            raise InputError(reader.source(labels_key),
                             f"label {int(labels.max())} but the real data has only "
                             f"{len(class_names)} classes {list(class_names)}")
    return images, labels


def _from_folder(root: Path, class_names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    folders = class_folders(root)
    unknown = [f.name for f in folders if f.name not in class_names]
    if unknown:
        raise InputError(root, f"unknown class folder(s) {unknown}; sub-folders must be named "
                               f"after the real classes {list(class_names)}")
    files, labels = read_class_folders(root, folders, class_names)
    return read_images(files, root), labels
