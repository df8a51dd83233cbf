"""load_medmnist: cache, MD5 check, atomic download and offline errors, all without network."""

from __future__ import annotations

import hashlib
import io
import re
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from synthlens.data import MEDMNIST, load_medmnist, medmnist_path
from synthlens.errors import InputError

URL_28 = "https://zenodo.org/records/10519652/files/breastmnist.npz?download=1"


class _Response(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.headers = {"Content-Length": str(len(data))}


@pytest.fixture
def no_network(monkeypatch):
    """urlopen fails like a machine without network, and counts the attempts."""
    calls = []

    def offline(url, timeout=None):
        calls.append((url, timeout))
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    return calls


def _serve(monkeypatch, data: bytes) -> list:
    calls = []

    def serve(url, timeout=None):
        calls.append((url, timeout))
        return _Response(data)

    monkeypatch.setattr(urllib.request, "urlopen", serve)
    return calls


def _fake_breastmnist(tmp_path: Path, monkeypatch) -> bytes:
    """A small MedMNIST-layout file, registered as the official breastmnist 28 px MD5."""
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 20), ("val", 6), ("test", 8)):
        arrays[f"{split}_images"] = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % 2)[:, None].astype(np.uint8)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    data = buffer.getvalue()
    monkeypatch.setitem(MEDMNIST["breastmnist"].md5, 28, hashlib.md5(data).hexdigest())
    return data


def test_table_covers_the_2d_datasets():
    expected = {"pathmnist", "chestmnist", "dermamnist", "octmnist", "pneumoniamnist",
                "retinamnist", "breastmnist", "bloodmnist", "tissuemnist", "organamnist",
                "organcmnist", "organsmnist"}
    assert set(MEDMNIST) == expected
    for info in MEDMNIST.values():
        assert set(info.md5) == {28, 64, 128, 224}
        assert all(re.fullmatch(r"[0-9a-f]{32}", md5) for md5 in info.md5.values())
        assert len(set(info.md5.values())) == 4
        assert info.url(64).endswith(f"/{info.name}_64.npz?download=1")
    assert MEDMNIST["pneumoniamnist"].class_names == ("normal", "pneumonia")
    assert MEDMNIST["pneumoniamnist"].md5[28] == "28209eda62fecd6e6a2d98b1501bb15f"
    assert MEDMNIST["breastmnist"].url(28) == URL_28


def test_cached_official_file_loads_without_network(tmp_path, shared_data, no_network):
    source = shared_data("pneumoniamnist.npz")
    shutil.copy(source, tmp_path / "pneumoniamnist.npz")
    data = load_medmnist("pneumoniamnist", cache_dir=tmp_path)
    assert [len(s) for s in data.splits()] == [4708, 524, 624]
    assert data.class_names == ("normal", "pneumonia")
    assert data.name == "pneumoniamnist"
    assert no_network == []


def test_default_cache_dir_from_environment(tmp_path, monkeypatch, no_network):
    monkeypatch.setenv("SYNTHLENS_CACHE", str(tmp_path / "cache"))
    assert medmnist_path("PneumoniaMNIST", 64) == tmp_path / "cache/medmnist/pneumoniamnist_64.npz"
    monkeypatch.delenv("SYNTHLENS_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert medmnist_path("bloodmnist") == tmp_path / "home/.cache/synthlens/medmnist/bloodmnist.npz"


def test_download_is_checked_and_written_atomically(tmp_path, monkeypatch):
    data = _fake_breastmnist(tmp_path, monkeypatch)
    calls = _serve(monkeypatch, data)
    loaded = load_medmnist("breastmnist", cache_dir=tmp_path / "c", progress=False)
    assert calls == [(URL_28, pytest.approx(60.0))]
    assert (tmp_path / "c" / "breastmnist.npz").read_bytes() == data
    assert loaded.class_names == ("malignant", "normal, benign")
    assert [len(s) for s in loaded.splits()] == [20, 6, 8]
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["breastmnist.npz"]
    # second call: served from the cache
    load_medmnist("breastmnist", cache_dir=tmp_path / "c", progress=False)
    assert len(calls) == 1


def test_md5_mismatch_on_download_deletes_the_file(tmp_path, monkeypatch):
    _fake_breastmnist(tmp_path, monkeypatch)
    _serve(monkeypatch, b"PK\x03\x04 an html error page, not the dataset")
    with pytest.raises(InputError, match=re.escape(URL_28) + ".*MD5 .* expected .*deleted"):
        load_medmnist("breastmnist", cache_dir=tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []  # neither the file nor a temporary left behind


def test_damaged_cache_file(tmp_path, monkeypatch, no_network):
    _fake_breastmnist(tmp_path, monkeypatch)
    cached = tmp_path / "breastmnist.npz"
    cached.write_bytes(b"partial download")
    with pytest.raises(InputError, match=re.escape(str(cached)) + ": cached file has MD5 "
                       ".* expected .*delete it"):
        load_medmnist("breastmnist", cache_dir=tmp_path, download=False)
    assert cached.exists() and no_network == []
    # with download allowed, the damaged file is removed even though the download fails
    with pytest.raises(InputError, match="download failed"):
        load_medmnist("breastmnist", cache_dir=tmp_path, progress=False)
    assert not cached.exists()


def test_offline_error_names_url_and_cache_path(tmp_path, no_network):
    target = tmp_path / "breastmnist_128.npz"
    with pytest.raises(InputError) as info:
        load_medmnist("breastmnist", size=128, cache_dir=tmp_path, progress=False)
    message = str(info.value)
    assert message.startswith(
        "https://zenodo.org/records/10519652/files/breastmnist_128.npz?download=1: ")
    assert "download failed" in message and "Temporary failure" in message
    assert f"place it at {target}" in message
    assert no_network and no_network[0][1] is not None  # a timeout is always set
    assert list(tmp_path.iterdir()) == []


def test_download_off_and_absent(tmp_path, no_network):
    with pytest.raises(InputError, match=re.escape(str(tmp_path / "octmnist_64.npz")) +
                       ": not in the cache and download is off; download https://zenodo"):
        load_medmnist("octmnist", size=64, cache_dir=tmp_path, download=False)
    assert no_network == []


def test_refused_names_and_sizes(tmp_path, no_network):
    with pytest.raises(InputError, match=r"chestmnist: .*multi-label data is not supported yet"):
        load_medmnist("chestmnist", cache_dir=tmp_path)
    with pytest.raises(InputError, match="cifar10: not a MedMNIST 2D dataset; known: "
                                         "pathmnist, chestmnist"):
        load_medmnist("cifar10", cache_dir=tmp_path)
    with pytest.raises(InputError, match=r"sizes \[28, 64, 128, 224\], got 32"):
        load_medmnist("pathmnist", size=32, cache_dir=tmp_path)
    assert no_network == []
