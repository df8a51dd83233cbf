"""SHA-256 digests (torch-free): of JSON-able objects, arrays, files and state dicts.

Every hash synthlens writes comes from here: stage fingerprints in the manifest, feature
cache keys, cached utility arms, input hashes, weights hashes. The byte layouts are frozen:
run folders and caches written by earlier versions are found again only while each
function hashes exactly the bytes it always did.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch


def json_sha256(obj: Any, *, compact: bool = True) -> str:
    """SHA-256 (hex) of ``obj`` as JSON with sorted keys; values JSON cannot hold are
    written as ``str(value)``.

    ``compact`` separators (``","`` and ``":"``) are those of stage fingerprints and feature
    cache keys; ``compact=False`` keeps :func:`json.dumps`' default ``", "`` and ``": "``,
    which the cached utility arms' keys were written with.
    """
    separators = (",", ":") if compact else (", ", ": ")
    text = json.dumps(obj, sort_keys=True, default=str, separators=separators)
    return hashlib.sha256(text.encode()).hexdigest()


def array_sha256(array: np.ndarray) -> str:
    """SHA-256 of an array's dtype, shape and bytes (C order), as hex."""
    digest = hashlib.sha256()
    contiguous = np.ascontiguousarray(array)
    digest.update(f"{contiguous.dtype.str}{contiguous.shape}".encode())
    digest.update(memoryview(contiguous).cast("B"))
    return digest.hexdigest()


def digests_sha256(*digests: str) -> str:
    """SHA-256 of hex digests taken in order (e.g. an image set: images, then labels)."""
    combined = hashlib.sha256()
    for digest in digests:
        combined.update(digest.encode())
    return combined.hexdigest()


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes, memoised on (path, size, mtime) since weights are large."""
    path = Path(path).resolve()
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _FILE_HASHES:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        _FILE_HASHES[key] = digest.hexdigest()
    return _FILE_HASHES[key]


_FILE_HASHES: dict[tuple[str, int, int], str] = {}


def state_dict_sha256(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 of a state dict's names, dtypes, shapes and values (independent of how
    ``torch.save`` lays the file out)."""
    import torch

    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.numpy().tobytes() if tensor.dtype != torch.bfloat16
                      else tensor.view(torch.int16).numpy().tobytes())
    return digest.hexdigest()


def rows_sha256(array: np.ndarray) -> list[str]:
    """SHA-256 of each item along the first axis (each image of an ``(N, H, W[, 3])``
    array), with :func:`array_sha256`'s layout: two items hash alike exactly when their
    dtype, shape and bytes are identical."""
    return [array_sha256(row) for row in array]
