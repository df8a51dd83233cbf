"""Reading and writing labelled images as ``.npz`` archives.

:func:`load_npz` reads the MedMNIST layout (``train_images``, ``train_labels``, ``val_*``,
``test_*``) into :class:`RealData`. :func:`save_imageset` and :func:`load_imageset` round-trip
one :class:`ImageSet` (a synthetic set, a holdout) through a run folder.

Pickles are never loaded (``allow_pickle=False`` everywhere): an ``.npz`` from a stranger
must not be able to run code. Every problem raises :class:`InputError` naming the file, the
key where there is one, and what is wrong.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from synthlens.data.dataset import (
    DATA_TASKS,
    SPLITS,
    ImageSet,
    RealData,
    validate_images,
    validate_labels,
)
from synthlens.data.medmnist_info import medmnist_info_for_file
from synthlens.errors import InputError
from synthlens.io import write_npz

PathLike = str | os.PathLike[str]


class NamedArrays:
    """Named arrays read key by key, every failure an :class:`InputError` naming the key.

    The one interface the validating loaders (:func:`load_npz`,
    :func:`~synthlens.data.load_synthetic`) read through, so an ``.npz`` file
    (:class:`NpzReader`) and arrays in memory (:class:`ArrayReader`) pass the same checks.
    """

    keys: tuple[str, ...] = ()
    label: str = "<arrays>"  # names the arrays in messages: a path, ``synthetic['mine']``
    holds = "the file has"  # how a message introduces the keys that are there

    def __enter__(self) -> NamedArrays:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def __contains__(self, key: str) -> bool:
        return key in self.keys

    def source(self, key: str) -> str:
        return f"{self.label}:{key}"

    def require(self, keys: Sequence[str], why: str = "") -> None:
        """Raise naming every missing key (and the keys that are there)."""
        missing = [key for key in keys if key not in self.keys]
        if missing:
            raise InputError(self.label, f"missing key{'s' if len(missing) > 1 else ''} "
                                         f"{', '.join(missing)}{why}; "
                                         f"{self.holds} {', '.join(self.keys) or 'no arrays'}")

    def array(self, key: str) -> np.ndarray:
        raise NotImplementedError

    def string_array(self, key: str) -> tuple[str, ...]:
        """A 1-D array of unique, non-empty strings (class names)."""
        values = self.array(key)
        if values.dtype.kind not in "US":
            raise InputError(self.source(key), f"has dtype {values.dtype}, expected strings "
                                               "(a unicode array such as np.array(['a', 'b']))")
        if values.ndim != 1:
            raise InputError(self.source(key), f"has shape {values.shape}, expected one name "
                                               "per class (1-D)")
        names = tuple(v.decode() if isinstance(v, bytes) else str(v) for v in values.tolist())
        check_class_names(names, self.source(key))
        return names


class ArrayReader(NamedArrays):
    """Arrays in memory (``{"images": ..., "labels": ...}``, or the ``.npz`` layouts' keys)
    read like an ``.npz``; ``label`` names them in messages (``synthetic['mine']``).

    Image arrays (keys ending in ``images``) may also be float in [0, 1]: they are
    quantised to ``uint8`` as ``round(255 x)``, then checked like a file's."""

    holds = "the arrays given are"

    def __init__(self, arrays: Mapping[str, Any], label: str) -> None:
        self.label = label
        if not isinstance(arrays, Mapping):
            raise InputError(label, f"expected a mapping of named arrays, got "
                                    f"{type(arrays).__name__}")
        self._arrays = {str(k): v for k, v in arrays.items()}
        self.keys = tuple(self._arrays)

    def array(self, key: str) -> np.ndarray:
        value = self._arrays[key]
        try:
            array = np.asarray(value)
        except (ValueError, TypeError) as err:  # ragged nested lists
            raise InputError(self.source(key), f"is not an array ({err})") from None
        if key.endswith("images"):
            array = quantise_images(array, self.source(key))
        return array


def quantise_images(images: np.ndarray, source: str) -> np.ndarray:
    """In-memory images as stored: ``uint8`` as they are, float in [0, 1] as
    ``round(255 x)`` (any other dtype, or floats outside [0, 1], raise)."""
    if images.dtype == np.uint8:
        return images
    if images.dtype.kind != "f":
        raise InputError(source, f"images have dtype {images.dtype}; accepted: uint8 (0-255) "
                                 "or float in [0, 1], shaped (N, H, W), (N, H, W, 1) or "
                                 "(N, H, W, 3)")
    if not np.isfinite(images).all():
        raise InputError(source, "images contain NaN or infinite values")
    if images.size and (images.min() < 0 or images.max() > 1):
        raise InputError(source, f"float images must lie in [0, 1], these span "
                                 f"[{float(images.min()):g}, {float(images.max()):g}]; "
                                 "pass 0-255 values as uint8")
    return np.round(images * 255.0).astype(np.uint8)


class NpzReader(NamedArrays):
    """Key-by-key access to an ``.npz`` that turns every failure into :class:`InputError`.

    Arrays are read lazily, so that the keys of a large archive that are not needed (for
    example MedMNIST's file lists) cost nothing.
    """

    def __init__(self, path: PathLike) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise InputError(self.path, "file not found")
        if self.path.is_dir():
            raise InputError(self.path, "is a folder, expected an .npz file")
        with open(self.path, "rb") as handle:
            magic = handle.read(6)
        # np.load reports anything it does not recognise as "pickled data": tell them apart
        if magic.startswith(b"\x93NUMPY"):
            raise InputError(self.path, "is a single .npy array, expected an .npz archive "
                                        "with named arrays (np.savez)")
        if magic[:1] == b"\x80":
            raise InputError(self.path, "holds pickled data; synthlens refuses pickled or "
                                        "object arrays (allow_pickle is never enabled)")
        if not magic.startswith(b"PK"):
            raise InputError(self.path, "not a readable .npz file (it is not a zip archive)")
        try:
            data = np.load(self.path, allow_pickle=False)
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
            raise InputError(self.path, f"not a readable .npz file ({err})") from None
        self._data = data
        self.label = str(self.path)
        self.keys = tuple(data.files)

    def __exit__(self, *exc: object) -> None:
        self._data.close()

    def array(self, key: str) -> np.ndarray:
        try:
            return self._data[key]
        except ValueError as err:
            if "allow_pickle" in str(err) or "pickle" in str(err):
                raise InputError(self.source(key), "is a pickled/object array; synthlens "
                                                   "refuses pickled or object arrays "
                                                   "(allow_pickle is never enabled); save "
                                                   "plain numeric or string arrays") from None
            raise InputError(self.source(key), f"cannot be read ({err})") from None
        except (OSError, EOFError, zipfile.BadZipFile) as err:
            raise InputError(self.source(key), f"cannot be read, the file may be truncated "
                                               f"({err})") from None


def check_class_names(names: Sequence[str], source: str) -> None:
    if not names:
        raise InputError(source, "no class names")
    if any(not name.strip() for name in names):
        raise InputError(source, f"empty class name in {list(names)}")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise InputError(source, f"duplicate class name(s) {duplicates}")


def read_labelled(reader: NamedArrays, images_key: str,
                  labels_key: str) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels of one pair of keys, validated with the key in every message."""
    images = validate_images(reader.array(images_key), reader.source(images_key))
    labels = validate_labels(reader.array(labels_key), images.shape[0],
                             reader.source(labels_key))
    return images, labels


def check_splits(splits: dict[str, tuple[np.ndarray, np.ndarray]], class_names: Sequence[str],
                 source: str, where: dict[str, str]) -> None:
    """Same image shape in every split; every class in every split; at least two classes.

    ``where[split]`` names the labels of a split in messages (a key or a folder).
    """
    shapes = {split: images.shape[1:] for split, (images, _) in splits.items()}
    first = next(iter(shapes))
    for split, shape in shapes.items():
        if shape != shapes[first]:
            raise InputError(source, f"splits have different image shapes: {first} images are "
                                     f"{_shape_text(shapes[first])} but {split} images are "
                                     f"{_shape_text(shape)}")
    for split, (_, labels) in splits.items():
        if int(labels.max()) >= len(class_names):
            raise InputError(where[split], f"label {int(labels.max())} but only "
                                           f"{len(class_names)} class names {list(class_names)}")
        counts = np.bincount(labels, minlength=len(class_names))
        present = np.flatnonzero(counts)
        if present.size < 2:
            raise InputError(where[split], f"split '{split}' holds a single class "
                                           f"{class_names[int(present[0])]!r}; at least two "
                                           "classes are needed")
        empty = [class_names[c] for c in np.flatnonzero(counts == 0)]
        if empty:
            raise InputError(where[split], f"split '{split}' has no images of class "
                                           f"{empty[0]!r}" + (f" (nor of {empty[1:]})"
                                                              if len(empty) > 1 else ""))


def _shape_text(shape: tuple[int, ...]) -> str:
    text = f"{shape[0]}x{shape[1]}"
    return text + (" RGB" if len(shape) == 3 else " grey")


def load_npz(path: PathLike, *, name: str | None = None) -> RealData:
    """Load a dataset stored in the MedMNIST ``.npz`` layout.

    Parameters
    ----------
    path:
        An ``.npz`` with ``train_images``, ``train_labels``, ``val_images``, ``val_labels``,
        ``test_images`` and ``test_labels``. Images are ``uint8``, ``(N, H, W)``,
        ``(N, H, W, 1)`` or ``(N, H, W, 3)``, of any size; labels are integers, ``(N,)`` or
        ``(N, 1)``. Other keys are ignored.
    name:
        The dataset's name; defaults to the file name without ``.npz``.

    Class names come from a ``class_names`` key (a string array) when the file has one, else
    from the MedMNIST table when the file carries an official MedMNIST name (for example
    ``pneumoniamnist.npz`` or ``pneumoniamnist_64.npz``), else they are ``"0"``, ``"1"``, ...
    The task type (:attr:`RealData.task`) comes likewise from a ``task`` key (a string:
    ``binary``, ``multiclass`` or ``ordinal``), else from the MedMNIST table
    (``retinamnist`` is ordinal), else none is declared.

    Raises
    ------
    InputError
        The file is missing, not an ``.npz`` or holds pickled arrays; a key is missing; images
        and labels differ in count; an array has the wrong dtype, shape or a NaN; splits
        differ in image shape; a split holds a single class or misses a class.
    """
    path = Path(path)
    with NpzReader(path) as reader:
        return read_real_data(reader, name or path.name.removesuffix(".npz"),
                              medmnist_info_for_file(path.name))


def load_arrays(arrays: Mapping[str, Any], *, name: str = "arrays",
                label: str = "real") -> RealData:
    """A dataset given in memory in the layout of :func:`load_npz` (``train_images``,
    ``train_labels``, ``val_*``, ``test_*``, optionally ``class_names`` and ``task``; e.g.
    ``dict(np.load(path))``), checked exactly as that file would be; images may also be
    float in [0, 1] (:class:`ArrayReader`). ``label`` names the arrays in messages."""
    return read_real_data(ArrayReader(arrays, label), name, None)


def read_real_data(reader: NamedArrays, name: str, info: Any = None) -> RealData:
    """The MedMNIST layout read through ``reader`` and checked; ``info`` (a MedMNIST table
    entry, or None) names the classes when the arrays carry no ``class_names``."""
    keys = [f"{split}_{kind}" for split in SPLITS for kind in ("images", "labels")]
    reader.require(keys, " (expected the MedMNIST layout train_/val_/test_ images and "
                         "labels)")
    splits = {split: read_labelled(reader, f"{split}_images", f"{split}_labels")
              for split in SPLITS}
    n_classes = 1 + max(int(labels.max()) for _, labels in splits.values())
    if "class_names" in reader:
        class_names = reader.string_array("class_names")
    elif info is not None and len(info.class_names) == n_classes:
        class_names = info.class_names
    else:
        class_names = tuple(str(c) for c in range(n_classes))
    check_splits(splits, class_names, reader.label,
                 {split: reader.source(f"{split}_labels") for split in SPLITS})
    sets = {split: ImageSet(images, labels, class_names, split=split, source=reader.label)
            for split, (images, labels) in splits.items()}
    task = read_task(reader) if "task" in reader else medmnist_task(info)
    if task == "binary" and len(class_names) != 2:
        raise InputError(reader.source("task"), f"is 'binary' but the data have "
                                                f"{len(class_names)} classes")
    return RealData(name, sets["train"], sets["val"], sets["test"], source=reader.label,
                    task=task)


def read_task(reader: NamedArrays) -> str:
    """The ``task`` key: one string of :data:`DATA_TASKS`."""
    value = reader.array("task")
    if value.dtype.kind not in "US" or value.ndim != 0:
        raise InputError(reader.source("task"), f"expected one string (np.array('ordinal')), "
                                                f"got dtype {value.dtype}, shape {value.shape}")
    task = str(value.item().decode() if isinstance(value.item(), bytes) else value.item())
    if task not in DATA_TASKS:
        raise InputError(reader.source("task"), f"unknown task {task!r}; accepted: "
                                                f"{', '.join(DATA_TASKS)}")
    return task


def medmnist_task(info: Any) -> str | None:
    """The task a MedMNIST table entry declares (``ordinal-regression`` is ``ordinal``)."""
    if info is None:
        return None
    if info.task == "ordinal-regression":
        return "ordinal"
    return {"binary-class": "binary", "multi-class": "multiclass"}.get(info.task)


def save_real_data(path: PathLike, data: RealData) -> None:
    """Write a :class:`RealData` atomically in the layout :func:`load_npz` reads (with its
    ``class_names`` and declared ``task``), so that a dataset given in memory can be read
    again from a file."""
    arrays: dict[str, np.ndarray] = {"class_names": np.array(data.class_names, dtype=str)}
    if data.task is not None:
        arrays["task"] = np.array(data.task)
    for key, split in zip(SPLITS, data.splits(), strict=True):
        arrays[f"{key}_images"] = split.images
        arrays[f"{key}_labels"] = split.labels
    write_npz(path, **arrays)


def save_imageset(path: PathLike, images: ImageSet) -> None:
    """Write one :class:`ImageSet` atomically as ``.npz`` (images, labels, class names, split).

    The arrays are plain ``uint8``/``int64``/unicode, so :func:`load_imageset` reads them back
    without unpickling anything.
    """
    write_npz(path, images=images.images, labels=images.labels,
              class_names=np.array(images.class_names, dtype=str),
              split=np.array(images.split, dtype=str))


def load_imageset(path: PathLike, *, split: str | None = None) -> ImageSet:
    """Read an :class:`ImageSet` written by :func:`save_imageset`.

    ``split`` overrides the stored split name.
    """
    path = Path(path)
    with NpzReader(path) as reader:
        reader.require(["images", "labels", "class_names"])
        images, labels = read_labelled(reader, "images", "labels")
        class_names = reader.string_array("class_names")
        if split is None:
            split = str(reader.array("split")) if "split" in reader else path.stem
    return ImageSet(images, labels, class_names, split=split, source=str(path))
