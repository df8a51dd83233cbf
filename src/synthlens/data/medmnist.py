"""MedMNIST datasets by name: the official ``.npz``, checked by its published MD5, cached.

The cache folder is ``cache_dir`` when given, else ``$SYNTHLENS_CACHE/medmnist``, else
``~/.cache/synthlens/medmnist``. A cached file with the right MD5 is used as is (no network).
Otherwise the file is downloaded from zenodo into a temporary file beside its cache path,
its MD5 checked, and only then renamed into place. Without a network, the error names the
URL and the cache path so that the user can fetch the file elsewhere and place it there.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from pathlib import Path

from synthlens.data.dataset import RealData
from synthlens.data.medmnist_info import MEDMNIST, SIZES, MedMNISTInfo
from synthlens.data.npz import load_npz
from synthlens.errors import InputError
from synthlens.io import atomic_path
from synthlens.progress import progress_bar

PathLike = str | os.PathLike[str]

DOWNLOAD_TIMEOUT_S = 60.0
_CHUNK = 1 << 20


def cache_root() -> Path:
    """synthlens's cache folder: ``$SYNTHLENS_CACHE`` or ``~/.cache/synthlens``."""
    env = os.environ.get("SYNTHLENS_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "synthlens"


def medmnist_info(name: str) -> MedMNISTInfo:
    """The table entry of a MedMNIST 2D dataset; unknown names list the known ones."""
    key = name.strip().lower()
    if key not in MEDMNIST:
        raise InputError(name, f"not a MedMNIST 2D dataset; known: {', '.join(MEDMNIST)}")
    return MEDMNIST[key]


def file_md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _download(url: str, target: Path, expected_md5: str, progress: bool) -> None:
    """Stream ``url`` into ``target`` atomically; the MD5 must match before the rename."""
    hint = (f"download it elsewhere from {url} and place it at {target} "
            "(or pass another cache_dir), then run again")
    try:
        with atomic_path(target) as tmp:
            digest = hashlib.md5(usedforsecurity=False)
            with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response, \
                    open(tmp, "wb") as out:
                total = int(response.headers.get("Content-Length") or 0) or None
                with progress_bar(total=total, unit="B", unit_scale=True, desc=target.name,
                                  disable=not progress, leave=False) as bar:
                    while chunk := response.read(_CHUNK):
                        out.write(chunk)
                        digest.update(chunk)
                        bar.update(len(chunk))
            if digest.hexdigest() != expected_md5:
                # raising inside atomic_path deletes the temporary file
                raise InputError(url, f"downloaded file has MD5 {digest.hexdigest()}, "
                                      f"expected {expected_md5}; it was deleted. "
                                      f"Try again, or {hint}")
    except InputError:
        raise
    except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
        reason = getattr(err, "reason", None) or err
        raise InputError(url, f"download failed ({reason}); no network? {hint}") from None


def medmnist_path(name: str, size: int = 28, cache_dir: PathLike | None = None) -> Path:
    """Where the cached file of ``name`` at ``size`` lives (whether or not it exists)."""
    info = medmnist_info(name)
    folder = Path(cache_dir) if cache_dir is not None else cache_root() / "medmnist"
    return folder.expanduser() / info.file_name(size)


def load_medmnist(name: str, size: int = 28, cache_dir: PathLike | None = None,
                  download: bool = True, *, progress: bool = True) -> RealData:
    """Load a MedMNIST 2D dataset by name, from the cache or downloaded once.

    Parameters
    ----------
    name:
        ``pathmnist``, ``dermamnist``, ``octmnist``, ``pneumoniamnist``, ``retinamnist``,
        ``breastmnist``, ``bloodmnist``, ``tissuemnist``, ``organamnist``, ``organcmnist``
        or ``organsmnist`` (``chestmnist`` is multi-label and refused).
    size:
        28, 64, 128 or 224 pixels.
    cache_dir:
        Folder of the ``.npz`` files (default: see the module docstring).
    download:
        Fetch a missing or damaged file; ``False`` only reads the cache.
    progress:
        Show a download progress bar on stderr.
    """
    info = medmnist_info(name)
    if info.multi_label:
        raise InputError(name, f"{info.name} is a multi-label dataset ({info.task}); "
                               "multi-label data is not supported yet")
    if size not in SIZES:
        raise InputError(f"{name} size", f"MedMNIST comes in sizes {list(SIZES)}, got {size}")
    path = medmnist_path(info.name, size, cache_dir)
    url, md5 = info.url(size), info.md5[size]
    if path.exists():
        found = file_md5(path)
        if found != md5:
            if not download:
                raise InputError(path, f"cached file has MD5 {found}, expected {md5} "
                                       "(damaged or a different version); delete it, or allow "
                                       f"the download, or place the file from {url} there")
            path.unlink()  # damaged: never load it, even if the download below fails
            _download(url, path, md5, progress)
    elif download:
        _download(url, path, md5, progress)
    else:
        raise InputError(path, f"not in the cache and download is off; download {url} and "
                               "place it at this path")
    return load_npz(path, name=info.name if size == 28 else f"{info.name}_{size}")
