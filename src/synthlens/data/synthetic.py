"""A user's own synthetic image set, read from an ``.npz``, a class-folder directory or
arrays in memory (the Python API), all three through the same checks."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from synthlens.data.dataset import ImageSet
from synthlens.data.folder import class_folders, read_class_folders, read_images
from synthlens.data.npz import (
    ArrayReader,
    NamedArrays,
    NpzReader,
    check_class_names,
    read_labelled,
)
from synthlens.errors import InputError

PathLike = str | os.PathLike[str]


#: What a synthetic set given in memory may be (the Python API's ``synthetic={name: ...}``).
ACCEPTED_ARRAYS = ("an (images, labels) pair or a mapping {'images', 'labels'[, "
                   "'class_names']}: images uint8 (0-255) or float in [0, 1], shaped (N, H, W), "
                   "(N, H, W, 1) or (N, H, W, 3); one integer label per image")


def synthetic_label(name: str) -> str:
    """How messages name a synthetic set given in memory."""
    return f"synthetic[{name!r}]"


def as_named_arrays(value: Any, name: str) -> Mapping[str, Any]:
    """A synthetic set given in memory as the mapping :func:`load_synthetic` reads: an
    ``(images, labels)`` pair becomes ``{"images": ..., "labels": ...}``."""
    if isinstance(value, Mapping):
        return value
    if isinstance(value, tuple | list) and len(value) == 2:
        return {"images": value[0], "labels": value[1]}
    raise InputError(synthetic_label(name), f"got {type(value).__name__}; accepted: a path "
                                            f"(.npz or class folders), {ACCEPTED_ARRAYS}")


def load_synthetic(path: PathLike | Mapping[str, Any], class_names: Sequence[str], name: str,
                   *, image_shape: tuple[int, ...] | None = None) -> ImageSet:
    """Load a synthetic set that the user brings, labelled with the real data's classes.

    Parameters
    ----------
    path:
        Either an ``.npz`` with ``images`` and ``labels`` (or, so that a MedMNIST-layout file
        can be passed, ``train_images`` and ``train_labels``), or a folder with one sub-folder
        per class whose names are a subset of ``class_names``. An ``.npz`` may carry its own
        ``class_names`` (string array); its labels are then mapped to the real classes by name.
        Or the same arrays in memory, as a mapping (``{"images": ..., "labels": ...}``, see
        :func:`as_named_arrays`), checked like the file; their images may also be float in
        [0, 1] (:class:`~synthlens.data.npz.ArrayReader`).
    class_names:
        The real data's class names; labels index into them.
    name:
        The set's name (becomes :attr:`ImageSet.split`).
    image_shape:
        When given, the images must have this shape per image (``(H, W)`` or ``(H, W, 3)``),
        usually the real data's :attr:`RealData.image_shape`.
    """
    class_names = tuple(str(c) for c in class_names)
    check_class_names(class_names, "class_names")
    if isinstance(path, Mapping):
        reader = ArrayReader(path, synthetic_label(name))
        source = reader.label
        images, labels = _from_arrays(reader, class_names)
    else:
        path = Path(path)
        source = str(path)
        if path.is_dir():
            images, labels = _from_folder(path, class_names)
        elif path.exists():
            with NpzReader(path) as npz:
                images, labels = _from_arrays(npz, class_names)
        else:
            raise InputError(path, f"synthetic set '{name}' not found (expected an .npz file "
                                   "or a folder of class sub-folders)")
    result = ImageSet(images, labels, class_names, split=name, source=source)
    if image_shape is not None and result.image_shape != tuple(image_shape):
        raise InputError(source, f"{shape_mismatch(result.image_shape, image_shape)}; they "
                                 "must match")
    return result


def shape_mismatch(synthetic: tuple[int, ...], real: tuple[int, ...]) -> str:
    """``synthetic images are 16x16 grey but the real images are 28x28 grey``."""
    return f"synthetic images are {_describe(synthetic)} but the real images are " \
           f"{_describe(tuple(real))}"


def _describe(shape: tuple[int, ...]) -> str:
    return f"{shape[0]}x{shape[1]} " + ("RGB" if len(shape) == 3 else "grey")


def _from_arrays(reader: NamedArrays, class_names: tuple[str, ...]
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The checks of a synthetic set's arrays, read from a file or from memory."""
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
                             f"label {int(labels.max())} but its class_names name only "
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
