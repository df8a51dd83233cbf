"""One entry point from a dataset spec (a config value or CLI argument) to :class:`RealData`."""

from __future__ import annotations

import os
import re
from pathlib import Path

from synthlens.data.dataset import RealData
from synthlens.data.demo import make_demo
from synthlens.data.folder import load_folder
from synthlens.data.medmnist import load_medmnist
from synthlens.data.medmnist_info import MEDMNIST, SIZES
from synthlens.data.npz import load_npz
from synthlens.errors import InputError

PathLike = str | os.PathLike[str]

ACCEPTED = ("'demo' (28 px) or 'demo64', a path to an .npz file in the MedMNIST layout, a "
            "path to an image folder with one sub-folder per class, or a MedMNIST name "
            f"({', '.join(n for n, i in MEDMNIST.items() if not i.multi_label)}) optionally "
            f"with a size as NAME@SIZE, size one of {list(SIZES)}")

_DEMO = re.compile(r"demo(\d+)?")
_MEDMNIST = re.compile(r"([a-z]+mnist)(?:@(\d+))?")


def _pick_size(spec: str, from_spec: int | None, size: int | None, default: int) -> int:
    if from_spec is not None and size is not None and from_spec != size:
        raise InputError(spec, f"names size {from_spec} but size={size} was also given")
    return from_spec if from_spec is not None else size if size is not None else default


def load_dataset(spec: str | PathLike, *, size: int | None = None,
                 cache_dir: PathLike | None = None, download: bool = True,
                 seed: int = 0) -> RealData:
    """Load real data from a spec.

    Parameters
    ----------
    spec:
        ``"demo"``, ``"demo64"``, a path to an ``.npz`` (:func:`load_npz`), a path to an
        image folder (:func:`load_folder`), or a MedMNIST name such as ``"pneumoniamnist"``
        or ``"pneumoniamnist@64"`` (:func:`load_medmnist`). Names win over paths: a folder
        called ``demo`` is ``"./demo"``.
    size:
        Image size for ``demo`` and MedMNIST names (default 28); must agree with a size in
        the spec. Files and folders have the size they have, so it is refused for them.
    cache_dir, download:
        Passed to :func:`load_medmnist`.
    seed:
        Seed of the demo data and of a folder's split.
    """
    text = os.fspath(spec).strip()
    key = text.lower()
    # names first: a run folder called "demo" in the working directory must not shadow the
    # built-in data; write "./demo" for such a folder
    if match := _DEMO.fullmatch(key):
        from_spec = int(match.group(1)) if match.group(1) else None
        return make_demo(_pick_size(text, from_spec, size, 28), seed=seed)
    if (match := _MEDMNIST.fullmatch(key)) and match.group(1) in MEDMNIST:
        from_spec = int(match.group(2)) if match.group(2) else None
        return load_medmnist(match.group(1), _pick_size(text, from_spec, size, 28),
                             cache_dir=cache_dir, download=download)
    path = Path(text).expanduser()
    if text and path.exists():
        if size is not None:
            raise InputError(text, f"size={size} applies to 'demo' and MedMNIST names only; "
                                   "a file or folder is used at the size it has")
        if path.is_dir():
            return load_folder(path, seed=seed)
        if path.suffix.lower() == ".npz":
            return load_npz(path)
        raise InputError(path, "is a file but not an .npz; expected " + ACCEPTED)
    if key.endswith(".npz") or "/" in text or os.sep in text:
        raise InputError(text, "file or folder not found")
    raise InputError(text or "<empty>", "unknown dataset; expected " + ACCEPTED)
