"""Procedural labelled datasets of any shape, for tests that vary what real data varies.

:func:`make_phantoms` draws a small dataset of grey or RGB images of any size with any
number of classes, class counts and (optionally) ordered grades: the generality matrix of
the tests (``tests/test_generality.py``) runs the pipeline over a few of them. Unlike the
demo's chest X-ray phantoms (:mod:`synthlens.data.demo`) these images model no anatomy; they
are meant to be quick to make and easy to learn.

Every image is a smooth random background (two plane waves, a random exposure, pixel noise)
with one soft-edged "lesion", a bright disc whose place or size carries the class:

- nominal classes (``ordinal=False``): the disc sits at one of ``n_classes`` places on a
  circle around the centre (class ``c`` at angle ``2 pi c / n_classes``, with a random
  jitter), so the classes differ in where the disc is;
- ordinal grades (``ordinal=True``): the disc sits near the centre and grows with the grade
  (radius from 0.12 to 0.42 of the half-side, with jitter of about a fifth of the step),
  so neighbouring grades overlap a little and distant grades do not. The dataset declares
  its task as ``"ordinal"`` (:attr:`RealData.task`), which the utility stage reads.

RGB images are the grey image tinted by a per-image random pink stain, the disc shifted
towards purple: colour varies from image to image but carries no class. Generation is vectorised
NumPy (a few hundred images at 128 px in well under a second) and depends only on the
arguments.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from synthlens.data.dataset import SPLITS, ImageSet, RealData
from synthlens.errors import InputError

PHANTOMS_VERSION = 1  # bump when the images change
#: Val and test images per class, as shares of the class's training images (at least
#: ``MIN_EVAL`` each, so every class is in every split).
EVAL_SHARES = {"val": 0.15, "test": 0.3}
MIN_EVAL = 3
_CHUNK_PIXELS = 1 << 18


def split_counts(train_counts: Sequence[int]) -> dict[str, list[int]]:
    """Images per class in each split for ``train_counts`` training images per class."""
    out = {"train": [int(n) for n in train_counts]}
    for split, share in EVAL_SHARES.items():
        out[split] = [max(MIN_EVAL, round(share * n)) for n in train_counts]
    return out


def _render(rng: np.random.Generator, labels: np.ndarray, size: int, channels: int,
            n_classes: int, ordinal: bool) -> np.ndarray:
    n = labels.shape[0]
    axis = (np.arange(size, dtype=np.float32) + 0.5) / size * 2.0 - 1.0
    x, y = axis[None, None, :], axis[None, :, None]

    def col(values: np.ndarray) -> np.ndarray:
        return values.astype(np.float32)[:, None, None]

    # background: two plane waves and an exposure offset
    back = 0.35 + col(rng.uniform(-0.08, 0.08, n))
    for _ in range(2):
        fx, fy = col(rng.normal(0, 3.0, n)), col(rng.normal(0, 3.0, n))
        back = back + 0.06 * np.cos(fx * x + fy * y + col(rng.uniform(0, 2 * np.pi, n)))
    # the lesion: place (nominal) or size (ordinal) carries the class
    if ordinal:
        grade = labels / max(n_classes - 1, 1)
        radius = 0.12 + 0.3 * grade + rng.normal(0, 0.06 / max(n_classes - 1, 1), n)
        cx, cy = rng.normal(0, 0.05, n), rng.normal(0, 0.05, n)
    else:
        angle = 2 * np.pi * labels / n_classes + rng.normal(0, 0.25 / n_classes, n)
        reach = rng.uniform(0.42, 0.55, n)
        cx, cy = reach * np.cos(angle), reach * np.sin(angle)
        radius = rng.uniform(0.16, 0.24, n)
    dist = np.sqrt((x - col(cx)) ** 2 + (y - col(cy)) ** 2)
    edge = 2.0 / size
    disc = 0.5 * (1.0 + np.tanh((col(np.clip(radius, 0.05, None)) - dist) / edge))
    strength = col(rng.uniform(0.3, 0.45, n))
    noise = rng.standard_normal((n, size, size), dtype=np.float32) * 0.03
    if channels == 1:
        image = back + strength * disc + noise
        return image
    # RGB: the grey image tinted by a per-image stain, the disc shifted towards purple
    grey = back + strength * disc
    stain = (np.array([1.0, 0.72, 0.88]) + rng.normal(0, 0.04, (n, 3))).astype(np.float32)
    purple = np.array([-0.05, -0.2, 0.1], np.float32)
    image = grey[..., None] * stain[:, None, None, :] + disc[..., None] * purple
    return image + noise[..., None]


def make_phantoms(size: int = 28, channels: int = 1, n_classes: int = 2,
                  counts: int | Sequence[int] = 100, *, ordinal: bool = False,
                  seed: int = 0, class_names: Sequence[str] | None = None,
                  name: str | None = None) -> RealData:
    """A small procedural labelled dataset (see the module docstring).

    Parameters
    ----------
    size:
        Image side in pixels, 8 to 512.
    channels:
        1 (grey, ``(N, H, W)``) or 3 (RGB, ``(N, H, W, 3)``).
    n_classes:
        Number of classes, at least 2.
    counts:
        Training images per class: one number (balanced) or one per class (e.g.
        ``[850, 30, 30, 30, 30, 30]`` for one class of 85% and five of 30 images). Val and
        test hold 15% and 30% of each class's count, at least 3 images each
        (:func:`split_counts`).
    ordinal:
        Graded classes (the disc grows with the grade); the data declare ``task="ordinal"``.
    seed:
        Another seed gives other images; the same arguments always give the same images.
    class_names:
        One name per class [``grade0``, ... for ordinal data, ``class0``, ... otherwise].
    name:
        The dataset's name [``phantoms-{size}px-{channels}ch-{n_classes}cls``].
    """
    if not isinstance(size, int | np.integer) or not 8 <= int(size) <= 512:
        raise InputError("phantoms size", f"must be a whole number of pixels from 8 to 512, "
                                          f"got {size!r}")
    if channels not in (1, 3):
        raise InputError("phantoms channels", f"must be 1 (grey) or 3 (RGB), got {channels!r}")
    if not isinstance(n_classes, int | np.integer) or n_classes < 2:
        raise InputError("phantoms n_classes", f"must be at least 2, got {n_classes!r}")
    per_class = [int(counts)] * n_classes if isinstance(counts, int | np.integer) \
        else [int(n) for n in counts]
    if len(per_class) != n_classes or min(per_class) < 2:
        raise InputError("phantoms counts", f"expected {n_classes} training counts of at least "
                                            f"2 images, got {counts!r}")
    names = tuple(class_names) if class_names is not None else tuple(
        f"{'grade' if ordinal else 'class'}{c}" for c in range(n_classes))
    if len(names) != n_classes:
        raise InputError("phantoms class_names", f"expected {n_classes} names, got {names}")
    size = int(size)
    source = (f"<phantoms v{PHANTOMS_VERSION} size={size} channels={channels} "
              f"counts={per_class} ordinal={ordinal} seed={seed}>")
    sets = []
    for index, (split, per) in enumerate(split_counts(per_class).items()):
        assert split == SPLITS[index]
        rng = np.random.default_rng([int(seed), index, size, channels, n_classes, int(ordinal)])
        labels = rng.permutation(np.repeat(np.arange(n_classes), per))
        images = np.empty((labels.size, size, size) + ((3,) if channels == 3 else ()),
                          np.uint8)
        chunk = max(8, _CHUNK_PIXELS // (size * size))
        for start in range(0, labels.size, chunk):
            part = _render(rng, labels[start:start + chunk], size, channels, n_classes, ordinal)
            images[start:start + chunk] = np.clip(np.rint(part * 255.0), 0, 255)
        sets.append(ImageSet(images, labels, names, split=split, source=source))
    return RealData(name or f"phantoms-{size}px-{channels}ch-{n_classes}cls", *sets,
                    source=source, task="ordinal" if ordinal else None)
