"""load_dataset: the spec dispatcher over demo, .npz, folders and MedMNIST names."""

from __future__ import annotations

import shutil
import urllib.error
import urllib.request

import numpy as np
import pytest
from PIL import Image

from synthlens.data import load as load_module
from synthlens.data import load_dataset
from synthlens.errors import InputError


def test_demo_specs(monkeypatch):
    calls = []
    monkeypatch.setattr(load_module, "make_demo", lambda size, seed: calls.append((size, seed)))
    load_dataset("demo")
    load_dataset("DEMO64", seed=3)
    load_dataset("demo", size=64)
    load_dataset("demo64", size=64)
    assert calls == [(28, 0), (64, 3), (64, 0), (64, 0)]
    with pytest.raises(InputError, match="demo64: names size 64 but size=28 was also given"):
        load_dataset("demo64", size=28)


def test_demo_really_loads():
    data = load_dataset("demo")
    assert data.name == "demo" and data.image_shape == (28, 28)


def test_name_wins_over_a_folder_called_demo(tmp_path, monkeypatch):
    (tmp_path / "demo").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(load_module, "make_demo", lambda size, seed: "demo data")
    assert load_dataset("demo") == "demo data"
    with pytest.raises(InputError, match="no class folders"):
        load_dataset("./demo")


def test_npz_path(shared_data):
    data = load_dataset(str(shared_data("breastmnist.npz")))
    assert data.name == "breastmnist" and [len(s) for s in data.splits()] == [546, 78, 156]
    with pytest.raises(InputError, match="size=64 applies to 'demo' and MedMNIST names only"):
        load_dataset(shared_data("breastmnist.npz"), size=64)


def test_folder_path(tmp_path):
    for c in ("a", "b"):
        for i in range(5):
            (tmp_path / c).mkdir(exist_ok=True)
            Image.fromarray(np.full((6, 6), i, np.uint8)).save(tmp_path / c / f"{i}.png")
    data = load_dataset(tmp_path, seed=2)
    assert data.class_names == ("a", "b") and sum(len(s) for s in data.splits()) == 10


def test_medmnist_names(tmp_path, monkeypatch, shared_data):
    shutil.copy(shared_data("pneumoniamnist.npz"), tmp_path / "pneumoniamnist.npz")

    def offline(url, timeout=None):
        raise urllib.error.URLError("offline")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    data = load_dataset("PneumoniaMNIST", cache_dir=tmp_path)
    assert len(data.train) == 4708
    assert load_dataset("pneumoniamnist@28", cache_dir=tmp_path).hashes() == data.hashes()
    with pytest.raises(InputError, match=r"pneumoniamnist_64\.npz"):
        load_dataset("pneumoniamnist@64", cache_dir=tmp_path, download=False)
    with pytest.raises(InputError, match="names size 64 but size=128"):
        load_dataset("pneumoniamnist@64", size=128, cache_dir=tmp_path)


def test_unknown_specs(tmp_path):
    with pytest.raises(InputError, match="cifar: unknown dataset; expected 'demo' .*demo64.*"
                                         r"\.npz.*folder.*pneumoniamnist.*NAME@SIZE"):
        load_dataset("cifar")
    with pytest.raises(InputError, match="fakemnist: unknown dataset"):
        load_dataset("fakemnist")
    with pytest.raises(InputError, match=r"missing\.npz: file or folder not found"):
        load_dataset("missing.npz")
    with pytest.raises(InputError, match="file or folder not found"):
        load_dataset(str(tmp_path / "nothing"))
    other = tmp_path / "data.csv"
    other.write_text("x")
    with pytest.raises(InputError, match=r"data\.csv: is a file but not an \.npz"):
        load_dataset(other)
