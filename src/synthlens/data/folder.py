"""Image folders: one sub-folder per class, PNG or JPEG files inside.

Layouts accepted by :func:`load_folder`::

    ROOT/CLASS_A/*.png, ROOT/CLASS_B/*.jpg, ...             split by a hash of each path
    ROOT/train/CLASS_A/..., ROOT/val/CLASS_A/..., ROOT/test/CLASS_A/...   splits as given

Class names are the sorted sub-folder names. Files may sit in nested folders below a class
folder. Hidden files and folders (``.DS_Store``, ``.ipynb_checkpoints``, ...) and the
``Thumbs.db``/``desktop.ini``/``__MACOSX`` clutter of other systems are ignored; any other
file that is not a PNG or JPEG is an error, as is a file at the top level.

Colour: if every image is grey (mode ``L``/``1``, or RGB with equal channels, as many
exported X-rays are) the set is grey ``(N, H, W)``; otherwise every image becomes RGB
``(N, H, W, 3)``. Alpha is dropped. 16-bit and float images are refused rather than
rescaled by a guess.

Split rule (no ``train``/``val``/``test`` folders): each file goes to a split by the SHA-256
of ``"{seed}:{relative/path}"`` mapped to [0, 1): below ``test_fraction`` is test, below
``test_fraction + val_fraction`` is val, the rest is train. A file's split depends on its own
path only, so adding files never moves existing ones, and since the rule runs within each
class folder the split is stratified up to sampling noise. A class whose hash draw leaves a
split empty gets one image moved in (the one whose hash lies nearest that split's interval),
so every class appears in every split; a class folder therefore needs at least 3 images.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from synthlens.data.dataset import SPLITS, ImageSet, RealData
from synthlens.errors import InputError
from synthlens.progress import progress_bar

PathLike = str | os.PathLike[str]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
IGNORED_NAMES = frozenset({"Thumbs.db", "desktop.ini", "__MACOSX"})
_GREY_MODES = frozenset({"1", "L", "LA"})
_REFUSED_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N", "F"})


def _ignored(path: Path) -> bool:
    return path.name.startswith(".") or path.name in IGNORED_NAMES


def _relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def class_folders(root: Path) -> list[Path]:
    """The class sub-folders of ``root``, sorted by name; a stray file is an error."""
    if not root.exists():
        raise InputError(root, "folder not found")
    if not root.is_dir():
        raise InputError(root, "is not a folder")
    folders = []
    for entry in sorted(root.iterdir()):
        if _ignored(entry):
            continue
        if entry.is_dir():
            folders.append(entry)
        else:
            raise InputError(entry, "file at the top level of an image folder; expected one "
                                    "sub-folder per class holding that class's images")
    if not folders:
        raise InputError(root, "no class folders; expected one sub-folder per class holding "
                               "PNG or JPEG images")
    return folders


def image_files(folder: Path) -> list[Path]:
    """Every image file below ``folder`` (recursively), sorted; other files are errors."""
    files = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not _ignored(Path(d)))
        for filename in sorted(filenames):
            file = Path(dirpath) / filename
            if _ignored(file):
                continue
            if file.suffix.lower() not in IMAGE_SUFFIXES:
                raise InputError(file, "not an image file (expected .png, .jpg or .jpeg); "
                                       "remove it from the image folder")
            files.append(file)
    if not files:
        raise InputError(folder, "class folder is empty (no .png, .jpg or .jpeg files)")
    return sorted(files)


def _read_one(file: Path) -> np.ndarray:
    """One image as uint8 (H, W) if grey, else (H, W, 3)."""
    try:
        with Image.open(file) as image:
            image.load()
            mode = image.mode
            if mode in _REFUSED_MODES:
                raise InputError(file, f"image mode {mode} (16-bit or float) is not supported; "
                                       "save 8-bit grey or RGB images")
            if mode in _GREY_MODES:
                return np.asarray(image.convert("L"), dtype=np.uint8)
            rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise InputError(file, f"cannot be read as an image ({err})") from None
    if (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all():
        return np.ascontiguousarray(rgb[..., 0])
    return rgb


def read_images(files: Sequence[Path], root: Path, progress: bool = True) -> np.ndarray:
    """Read ``files`` into one uint8 array: grey (N, H, W) if all are grey, else RGB."""
    arrays = [_read_one(file) for file in progress_bar(
        files, desc=f"reading {root.name}", unit="img",
        disable=not progress or len(files) < 500, leave=False)]
    sizes: dict[tuple[int, int], Path] = {}
    for file, array in zip(files, arrays, strict=True):
        sizes.setdefault(array.shape[:2], file)
    if len(sizes) > 1:
        listed = ", ".join(f"{_relative(file, root)} is {w}x{h}"
                           for (h, w), file in list(sizes.items())[:4])
        raise InputError(root, f"images differ in size: {listed}"
                               + (f" (and {len(sizes) - 4} more sizes)" if len(sizes) > 4
                                  else "") + "; resize them to one size first")
    if all(array.ndim == 2 for array in arrays):
        return np.stack(arrays)
    return np.stack([np.repeat(a[..., None], 3, axis=2) if a.ndim == 2 else a for a in arrays])


def read_class_folders(root: Path, folders: Sequence[Path], class_names: Sequence[str]
                       ) -> tuple[list[Path], np.ndarray]:
    """Files and labels of class folders; ``class_names`` maps folder name to label."""
    files: list[Path] = []
    labels: list[int] = []
    index = {name: i for i, name in enumerate(class_names)}
    for folder in folders:
        found = image_files(folder)
        files.extend(found)
        labels.extend([index[folder.name]] * len(found))
    return files, np.asarray(labels, dtype=np.int64)


def _hash_unit(seed: int, relative: str) -> float:
    """A uniform number in [0, 1) from a path: the split draw of that file."""
    digest = hashlib.sha256(f"{seed}:{relative}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def hash_split(relatives: Sequence[str], labels: np.ndarray, *, val_fraction: float,
               test_fraction: float, seed: int) -> np.ndarray:
    """Split index per file (0 train, 1 val, 2 test) by the documented hash rule."""
    u = np.array([_hash_unit(seed, rel) for rel in relatives])
    bounds = np.array([0.0, test_fraction, test_fraction + val_fraction, 1.0])
    # interval per split: test [0, t), val [t, t+v), train [t+v, 1)
    interval = {2: (bounds[0], bounds[1]), 1: (bounds[1], bounds[2]), 0: (bounds[2], bounds[3])}
    split = np.where(u < bounds[1], 2, np.where(u < bounds[2], 1, 0))
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        for target in (2, 1, 0):
            if (split[members] == target).any():
                continue
            counts = np.bincount(split[members], minlength=3)
            donors = members[counts[split[members]] > 1]
            lo, hi = interval[target]
            distance = np.maximum(lo - u[donors], u[donors] - hi)
            split[donors[int(np.argmin(distance))]] = target
    return split


def load_folder(path: PathLike, *, val_fraction: float = 0.1, test_fraction: float = 0.2,
                seed: int = 0, name: str | None = None, progress: bool = True) -> RealData:
    """Load a labelled image folder (see the module docstring for layouts and split rule).

    Parameters
    ----------
    path:
        The root folder.
    val_fraction, test_fraction:
        Shares of each class that go to val and test when the folder has no
        ``train``/``val``/``test`` sub-folders. Ignored when it has them.
    seed:
        Salt of the path hash: another seed gives another (equally stable) split.
    name:
        The dataset's name; defaults to the folder name.
    progress:
        Show a progress bar on stderr while reading large folders (500 files or more).
    """
    root = Path(path)
    for label, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 < value < 1.0:
            raise InputError(label, f"must be between 0 and 1 (exclusive), got {value}")
    if val_fraction + test_fraction >= 1.0:
        raise InputError("val_fraction + test_fraction",
                         f"must be below 1 to leave images for train, got "
                         f"{val_fraction + test_fraction}")
    folders = class_folders(root)
    names = {folder.name for folder in folders}
    if names & set(SPLITS):
        return _load_presplit(root, folders, name, progress)

    class_names = tuple(folder.name for folder in folders)
    files, labels = read_class_folders(root, folders, class_names)
    small = [(n, int(c)) for n, c in zip(class_names, np.bincount(labels), strict=True) if c < 3]
    if small:
        raise InputError(root / small[0][0], f"class folder has {small[0][1]} image(s); at "
                                             "least 3 are needed to put one in each of "
                                             "train, val and test")
    images = read_images(files, root, progress)
    split = hash_split([_relative(f, root) for f in files], labels, val_fraction=val_fraction,
                       test_fraction=test_fraction, seed=seed)
    sets = [ImageSet(images[split == i], labels[split == i], class_names, split=s,
                     source=str(root)) for i, s in enumerate(SPLITS)]
    return RealData(name or root.resolve().name, *sets, source=str(root))


def _load_presplit(root: Path, folders: Sequence[Path], name: str | None,
                   progress: bool) -> RealData:
    """ROOT/train, ROOT/val, ROOT/test, each with the same class sub-folders."""
    names = [folder.name for folder in folders]
    missing = [s for s in SPLITS if s not in names]
    extra = [n for n in names if n not in SPLITS]
    if missing or extra:
        raise InputError(root, f"has split folder(s) {[n for n in names if n in SPLITS]} "
                               f"but {'no ' + ', '.join(missing) if missing else ''}"
                               f"{' and ' if missing and extra else ''}"
                               f"{'also ' + str(extra) if extra else ''}; a pre-split folder "
                               "needs exactly train/, val/ and test/, each with one "
                               "sub-folder per class")
    per_split = {s: class_folders(root / s) for s in SPLITS}
    class_names = tuple(sorted({f.name for fs in per_split.values() for f in fs}))
    for split, split_folders in per_split.items():
        absent = sorted(set(class_names) - {f.name for f in split_folders})
        if absent:
            raise InputError(root / split, f"split '{split}' has no folder for class "
                                           f"{absent[0]!r}; every split needs every class")
    files, labels, counts = [], [], []
    for split in SPLITS:
        split_files, split_labels = read_class_folders(root, per_split[split], class_names)
        files.extend(split_files)
        labels.append(split_labels)
        counts.append(len(split_files))
    images = read_images(files, root, progress)
    edges = np.cumsum([0, *counts])
    sets = [ImageSet(images[edges[i]:edges[i + 1]], labels[i], class_names, split=s,
                     source=str(root / s)) for i, s in enumerate(SPLITS)]
    return RealData(name or root.resolve().name, *sets, source=str(root))
