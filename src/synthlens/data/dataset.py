"""The labelled image containers every stage passes around.

:class:`ImageSet` is one split (or one synthetic set): ``uint8`` images shaped ``(N, H, W)``
(grey) or ``(N, H, W, 3)`` (RGB), integer labels shaped ``(N,)`` and the class names.
:class:`RealData` holds the real splits of one dataset.

Both are validated on construction so that a bad array never travels further than the
loader that read it; problems raise :class:`synthlens.errors.InputError` naming the source.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from synthlens.errors import InputError
from synthlens.hashing import array_sha256, digests_sha256

SPLITS = ("train", "val", "test")
#: Task types a dataset may declare (:attr:`RealData.task`); the utility stage's ``task:
#: auto`` follows the declaration (an ordinal dataset is scored with quadratic-weighted kappa).
DATA_TASKS = ("binary", "multiclass", "ordinal")


def validate_images(images: np.ndarray, source: str) -> np.ndarray:
    """Check an image array and return it as ``uint8`` (N, H, W) or (N, H, W, 3).

    Accepts ``(N, H, W, 1)`` (squeezed to grey). Rejects other dtypes rather than guessing a
    value range: float images in [0, 1] and [0, 255] both exist and look alike.
    """
    if not isinstance(images, np.ndarray):
        raise InputError(source, f"images must be a numpy array, got {type(images).__name__}")
    if images.dtype == object:
        raise InputError(source, "images are an object array (ragged or pickled); "
                                 "expected uint8 of one shape")
    if images.dtype.kind == "f" and np.isnan(images).any():
        raise InputError(source, "images contain NaN")
    if images.dtype != np.uint8:
        raise InputError(source, f"images have dtype {images.dtype}, expected uint8 "
                                 "(0-255; convert with np.clip(x, 0, 255).astype(np.uint8))")
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim == 3:
        pass
    elif images.ndim == 4 and images.shape[-1] == 3:
        pass
    else:
        raise InputError(source, f"images have shape {images.shape}, expected (N, H, W) "
                                 "or (N, H, W, 3)")
    if images.shape[0] == 0:
        raise InputError(source, "no images")
    if images.shape[1] < 4 or images.shape[2] < 4:
        raise InputError(source, f"images are {images.shape[1]}x{images.shape[2]} pixels; "
                                 "at least 4x4 is needed")
    return images


def validate_labels(labels: np.ndarray, n_images: int, source: str) -> np.ndarray:
    """Check labels shaped (N,) or (N, 1) and return them as int64 (N,): whole numbers
    (integer, boolean or integral float dtypes), one per image, none negative.

    The one label check: loaders, :class:`ImageSet` and the metrics' entry points call it;
    problems raise :class:`InputError` naming ``source``."""
    labels = np.asarray(labels)
    if labels.dtype == object:
        raise InputError(source, "labels are an object array; expected integers")
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise InputError(source, f"labels have shape {labels.shape}, expected (N,) or (N, 1) "
                                 "(multi-label data is not supported here)")
    if labels.dtype.kind == "f":
        if np.isnan(labels).any():
            raise InputError(source, "labels contain NaN")
        if not np.all(labels == np.round(labels)):
            raise InputError(source, "labels are not whole numbers")
    elif labels.dtype.kind not in "iub":
        raise InputError(source, f"labels have dtype {labels.dtype}, expected integers")
    if labels.shape[0] != n_images:
        raise InputError(source, f"{n_images} images but {labels.shape[0]} labels")
    labels = labels.astype(np.int64)
    if labels.size and labels.min() < 0:
        raise InputError(source, f"negative label {int(labels.min())}")
    return labels


@dataclass(frozen=True, eq=False)
class ImageSet:
    """A labelled set of images: one real split or one synthetic set.

    Parameters
    ----------
    images:
        ``uint8`` array, ``(N, H, W)`` grey or ``(N, H, W, 3)`` RGB.
    labels:
        Integer class per image, ``(N,)`` (``(N, 1)`` is accepted and flattened).
    class_names:
        One name per class; labels index into it.
    split:
        ``"train"``, ``"val"``, ``"test"``, ``"holdout"`` or a synthetic set's name.
    source:
        Where the images came from (a path or ``path:key``), used in error messages.
    """

    images: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    split: str = "train"
    source: str = "<memory>"
    _sha256: list[str] = field(default_factory=list, repr=False, compare=False)

    def __post_init__(self) -> None:
        images = validate_images(self.images, self.source)
        labels = validate_labels(self.labels, images.shape[0], self.source)
        names = tuple(str(name) for name in self.class_names)
        if len(names) == 0:
            raise InputError(self.source, "no class names")
        if labels.max() >= len(names):
            raise InputError(self.source, f"label {int(labels.max())} but only {len(names)} "
                                          f"classes {list(names)}")
        object.__setattr__(self, "images", images)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "class_names", names)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, ...]:
        """Shape of one image: (H, W) or (H, W, 3)."""
        return tuple(self.images.shape[1:])

    @property
    def channels(self) -> int:
        return 3 if self.images.ndim == 4 else 1

    def class_counts(self) -> np.ndarray:
        """Images per class, length ``n_classes`` (zeros included)."""
        return np.bincount(self.labels, minlength=self.n_classes)

    def sha256(self) -> str:
        """SHA-256 over images then labels; cached because arrays are treated as immutable."""
        if not self._sha256:
            self._sha256.append(digests_sha256(array_sha256(self.images),
                                               array_sha256(self.labels)))
        return self._sha256[0]

    def subset(self, index: np.ndarray | Sequence[int], split: str | None = None) -> ImageSet:
        """A new set holding the images at ``index`` (copied, so the parent can be freed)."""
        index = np.asarray(index)
        return ImageSet(self.images[index].copy(), self.labels[index].copy(), self.class_names,
                        split=split or self.split, source=self.source)

    def of_class(self, label: int) -> np.ndarray:
        """Images of one class."""
        return self.images[self.labels == label]

    def require_all_classes(self) -> None:
        """Raise if a class has no image or the set holds a single class."""
        counts = self.class_counts()
        empty = [self.class_names[c] for c in np.flatnonzero(counts == 0)]
        if int((counts > 0).sum()) < 2:
            present = [self.class_names[c] for c in np.flatnonzero(counts > 0)]
            raise InputError(self.source, f"split '{self.split}' holds a single class "
                                          f"{present}; at least two are needed")
        if empty:
            raise InputError(self.source, f"split '{self.split}' has no images of class "
                                          f"{empty[0]!r}" + (f" (and {len(empty) - 1} more)"
                                                             if len(empty) > 1 else ""))


@dataclass(frozen=True, eq=False)
class RealData:
    """The real splits of one dataset.

    ``train`` is what generators may see (after :func:`synthlens.data.splits.reserve_holdout`
    takes its share); ``val`` selects utility models; ``test`` scores them and nothing
    trains on it. ``task`` is the task type the data declare (one of :data:`DATA_TASKS`,
    e.g. ``"ordinal"`` for graded classes), or None when they declare none.
    """

    name: str
    train: ImageSet
    val: ImageSet
    test: ImageSet
    source: str = "<memory>"
    task: str | None = None

    def __post_init__(self) -> None:
        if self.task is not None and self.task not in DATA_TASKS:
            raise InputError(self.source, f"unknown task {self.task!r}; accepted: "
                                          f"{', '.join(DATA_TASKS)}")
        if self.task == "binary" and self.train.n_classes != 2:
            raise InputError(self.source, f"task 'binary' but {self.train.n_classes} classes")
        shapes = {s.split: s.image_shape for s in self.splits()}
        if len(set(shapes.values())) > 1:
            raise InputError(self.source, f"splits have different image shapes {shapes}")
        names = {s.split: s.class_names for s in self.splits()}
        if len(set(names.values())) > 1:
            raise InputError(self.source, f"splits have different class names {names}")
        for split in self.splits():
            split.require_all_classes()

    def splits(self) -> tuple[ImageSet, ImageSet, ImageSet]:
        return (self.train, self.val, self.test)

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.train.class_names

    @property
    def image_shape(self) -> tuple[int, ...]:
        return self.train.image_shape

    def hashes(self) -> dict[str, str]:
        """SHA-256 of every split, for the run manifest."""
        return {s.split: s.sha256() for s in self.splits()}

    def describe(self) -> dict[str, object]:
        """A JSON-ready summary: name, shape, classes and counts per split."""
        return {
            "name": self.name,
            "source": self.source,
            "image_shape": list(self.image_shape),
            "class_names": list(self.class_names),
            "task": self.task,
            "counts": {s.split: s.class_counts().tolist() for s in self.splits()},
            "sha256": self.hashes(),
        }
