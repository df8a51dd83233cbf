"""The one home of every hash: the bytes each digest covers are frozen, since run folders
(stage fingerprints), feature caches and cached utility arms are found again by them.
The pinned digests were computed by the code that wrote existing run folders."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import torch

from synthlens.data.dataset import ImageSet
from synthlens.hashing import array_sha256, file_sha256, json_sha256, state_dict_sha256

OBJ = {"data": {"train": "ab", "val": "cd"}, "holdout": 0.1, "seed": 0, "k": [5, 3],
       "name": "ldm", "none": None}


def test_json_sha256_is_the_stage_fingerprint_and_the_arm_key() -> None:
    # runfolder.fingerprint and features.base._json_sha256 of the first version
    assert json_sha256(OBJ) == ("6fa63a52b5e1d3c5a9da282af00372bdff12e58528a3963af285dd8006bb"
                                "0851")
    # the utility arm cache key: json.dumps' default separators
    assert json_sha256(OBJ, compact=False)[:32] == "b1f5acbbe4e2ed62b12c19dc73de87df"
    assert json_sha256(OBJ, compact=False) == hashlib.sha256(
        json.dumps(OBJ, sort_keys=True).encode()).hexdigest()
    assert json_sha256({"b": [1, 2], "a": 1}) == json_sha256({"a": 1, "b": [1, 2]})
    assert json_sha256({"a": 1}) != json_sha256({"a": 2})


def test_array_set_and_state_dict_digests_are_unchanged() -> None:
    images = (np.arange(2 * 4 * 5) * 7 % 256).astype(np.uint8).reshape(2, 4, 5)
    assert array_sha256(images) == ("53d3e2bda740025584a783bc4ddfc934cc0e9a7f49dd6df27455ad884"
                                    "5de44ae")
    assert array_sha256(np.asfortranarray(images)) == array_sha256(images)  # C order bytes
    assert ImageSet(images, np.array([0, 1]), ("x", "y")).sha256() == (
        "cfa593b8f0caafa6881e1ac782b72b8464f68888c163d03027f185ae4e1e8bee")
    state = {"w": torch.arange(6, dtype=torch.float32).reshape(2, 3),
             "b16": torch.arange(4, dtype=torch.bfloat16), "n": torch.tensor(3)}
    assert state_dict_sha256(state) == ("17d666ba502baa09edda6f876be4e74488a900348a5daaaf1714"
                                        "ffb18256d906")


def test_file_sha256_is_the_digest_of_the_bytes(tmp_path) -> None:
    path = tmp_path / "weights.bin"
    path.write_bytes(b"synthlens" * 1000)
    assert file_sha256(path) == hashlib.sha256(b"synthlens" * 1000).hexdigest()
