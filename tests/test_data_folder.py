"""load_folder: class sub-folders, the split rule, colour handling and every folder error."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from synthlens.data import load_folder
from synthlens.data.folder import hash_split
from synthlens.errors import InputError


def _save(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def _grey(value: int, size: int = 8) -> np.ndarray:
    return np.full((size, size), value, dtype=np.uint8)


def _make(root: Path, counts: dict[str, int], size: int = 8, ext: str = ".png") -> None:
    """One image per file whose pixel value encodes (class, index), so files can be traced."""
    for c, (name, count) in enumerate(counts.items()):
        for i in range(count):
            _save(root / name / f"img_{i:03d}{ext}", _grey(c * 80 + i, size))


def _raises(path: Path, *fragments: str):
    return pytest.raises(InputError, match=re.escape(str(path)) + ".*" +
                         ".*".join(re.escape(f) for f in fragments))


def test_hash_split_layout(tmp_path):
    _make(tmp_path / "ds", {"normal": 40, "abnormal": 30, "zz": 20})
    data = load_folder(tmp_path / "ds")
    assert data.name == "ds"
    assert data.class_names == ("abnormal", "normal", "zz")  # sorted folder names
    assert data.image_shape == (8, 8)
    assert sum(len(s) for s in data.splits()) == 90
    for split in data.splits():  # every class in every split
        assert (split.class_counts() > 0).all()
    # labels follow the folder: pixel value c*80+i was written for class index c of _make
    folder_of = {0: "normal", 1: "abnormal", 2: "zz"}
    for split in data.splits():
        written_class = split.images[:, 0, 0] // 80
        names = [folder_of[int(c)] for c in written_class]
        assert names == [data.class_names[label] for label in split.labels]
    # deterministic
    again = load_folder(tmp_path / "ds")
    for a, b in zip(data.splits(), again.splits(), strict=True):
        np.testing.assert_array_equal(a.images, b.images)
        np.testing.assert_array_equal(a.labels, b.labels)


def test_hash_split_fractions_and_seed():
    paths = [f"c{c}/img_{i}.png" for c in range(2) for i in range(1000)]
    labels = np.repeat([0, 1], 1000)
    split = hash_split(paths, labels, val_fraction=0.1, test_fraction=0.2, seed=0)
    for label in (0, 1):
        share = np.bincount(split[labels == label], minlength=3) / 1000
        np.testing.assert_allclose(share, [0.7, 0.1, 0.2], atol=0.04)
    other = hash_split(paths, labels, val_fraction=0.1, test_fraction=0.2, seed=1)
    assert (other != split).mean() > 0.2


def test_hash_split_is_stable_when_files_are_added():
    paths = [f"a/{i}.png" for i in range(50)] + [f"b/{i}.png" for i in range(50)]
    labels = np.repeat([0, 1], 50)
    before = hash_split(paths, labels, val_fraction=0.1, test_fraction=0.2, seed=0)
    more = paths + [f"a/new_{i}.png" for i in range(30)]
    after = hash_split(more, np.concatenate([labels, np.zeros(30, int)]), val_fraction=0.1,
                       test_fraction=0.2, seed=0)
    np.testing.assert_array_equal(after[:100], before)


def test_hash_split_fills_an_empty_split_for_small_classes():
    # 3 files can hash into one split; the repair still puts one in each
    for seed in range(20):
        split = hash_split(["x/1.png", "x/2.png", "x/3.png"], np.zeros(3, int),
                           val_fraction=0.1, test_fraction=0.2, seed=seed)
        assert sorted(split.tolist()) == [0, 1, 2]


def test_stable_on_disk_when_a_file_is_added(tmp_path):
    _make(tmp_path, {"a": 30, "b": 30})
    before = load_folder(tmp_path)
    _save(tmp_path / "a" / "zzz_new.png", _grey(255))
    after = load_folder(tmp_path)
    for split_before, split_after in zip(before.splits(), after.splits(), strict=True):
        old = set(split_before.images[:, 0, 0].tolist())
        new = set(split_after.images[:, 0, 0].tolist()) - {255}
        assert old == new


def test_presplit_layout(tmp_path):
    for split, n in (("train", 6), ("val", 3), ("test", 4)):
        _make(tmp_path / split, {"yes": n, "no": n + 1})
    data = load_folder(tmp_path)
    assert data.class_names == ("no", "yes")
    assert [len(s) for s in data.splits()] == [13, 7, 9]
    assert data.val.class_counts().tolist() == [4, 3]


def test_presplit_errors(tmp_path):
    _make(tmp_path / "train", {"a": 3, "b": 3})
    _make(tmp_path / "test", {"a": 3, "b": 3})
    with _raises(tmp_path, "no val", "needs exactly train/, val/ and test/"):
        load_folder(tmp_path)
    _make(tmp_path / "val", {"a": 3})
    with _raises(tmp_path / "val", "split 'val' has no folder for class 'b'"):
        load_folder(tmp_path)


def test_rgb_and_grey_colour_rules(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "mixed"
    for c in ("a", "b"):
        for i in range(3):
            _save(root / c / f"{i}.png", _grey(10 * i))
        _save(root / c / "colour.png", rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    mixed = load_folder(root)
    assert mixed.image_shape == (8, 8, 3)
    grey_rows = [img for s in mixed.splits() for img in s.images if (img[..., 0] == 10).all()]
    assert grey_rows and all((img == 10).all() for img in grey_rows)  # grey broadcast to RGB
    # RGB files with equal channels (an exported X-ray) and an LA file are grey
    root = tmp_path / "greyish"
    for c in ("a", "b"):
        for i in range(3):
            _save(root / c / f"{i}.png", np.repeat(_grey(7 * i)[..., None], 3, axis=2))
        Image.fromarray(np.stack([_grey(9), _grey(255)], axis=-1), "LA").save(root / c / "la.png")
    assert load_folder(root).image_shape == (8, 8)


def test_jpeg_and_nested_folders_and_hidden_files(tmp_path):
    _make(tmp_path, {"a": 4, "b": 4}, ext=".jpg")
    _save(tmp_path / "a" / "patient1" / "x.JPEG", _grey(100))
    (tmp_path / ".DS_Store").write_bytes(b"\0\1junk")
    (tmp_path / "a" / ".DS_Store").write_bytes(b"\0\1junk")
    (tmp_path / "a" / "Thumbs.db").write_bytes(b"junk")
    (tmp_path / ".hidden_dir").mkdir()
    (tmp_path / ".hidden_dir" / "notes.txt").write_text("x")
    (tmp_path / "b" / ".ipynb_checkpoints").mkdir()
    (tmp_path / "b" / ".ipynb_checkpoints" / "notes.txt").write_text("x")
    data = load_folder(tmp_path)
    assert data.class_names == ("a", "b")
    assert sum(len(s) for s in data.splits()) == 9


def test_non_image_file_is_named(tmp_path):
    _make(tmp_path, {"a": 4, "b": 4})
    (tmp_path / "b" / "labels.csv").write_text("x,y\n")
    with _raises(tmp_path / "b" / "labels.csv", "not an image file"):
        load_folder(tmp_path)


def test_unreadable_image_is_named(tmp_path):
    _make(tmp_path, {"a": 4, "b": 4})
    (tmp_path / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not a png")
    with _raises(tmp_path / "a" / "broken.png", "cannot be read as an image"):
        load_folder(tmp_path)


def test_mixed_sizes_name_one_file_of_each(tmp_path):
    _make(tmp_path, {"a": 4, "b": 4})
    _save(tmp_path / "b" / "big.png", _grey(1, size=12))
    with _raises(tmp_path, "images differ in size", "a/img_000.png is 8x8",
                 "b/big.png is 12x12"):
        load_folder(tmp_path)


def test_empty_class_folder(tmp_path):
    _make(tmp_path, {"a": 4})
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / ".DS_Store").write_bytes(b"x")
    with _raises(tmp_path / "b", "class folder is empty"):
        load_folder(tmp_path)


def test_no_class_folders_and_missing_root(tmp_path):
    with _raises(tmp_path, "no class folders"):
        load_folder(tmp_path)
    with _raises(tmp_path / "absent", "folder not found"):
        load_folder(tmp_path / "absent")


def test_top_level_file(tmp_path):
    _make(tmp_path, {"a": 4, "b": 4})
    _save(tmp_path / "stray.png", _grey(3))
    with _raises(tmp_path / "stray.png", "file at the top level"):
        load_folder(tmp_path)


def test_single_class_and_tiny_class(tmp_path):
    _make(tmp_path / "one", {"only": 5})
    with pytest.raises(InputError, match="holds a single class"):
        load_folder(tmp_path / "one")
    _make(tmp_path / "tiny", {"a": 5, "b": 2})
    with _raises(tmp_path / "tiny" / "b", "has 2 image(s); at least 3 are needed"):
        load_folder(tmp_path / "tiny")


def test_sixteen_bit_images_are_refused(tmp_path):
    _make(tmp_path, {"a": 4, "b": 4})
    Image.fromarray(np.full((8, 8), 4000, dtype=np.uint16)).save(tmp_path / "a" / "deep.png")
    with _raises(tmp_path / "a" / "deep.png", "16-bit or float", "not supported"):
        load_folder(tmp_path)


def test_fraction_validation(tmp_path):
    _make(tmp_path, {"a": 4, "b": 4})
    with pytest.raises(InputError, match="val_fraction: must be between 0 and 1"):
        load_folder(tmp_path, val_fraction=0.0)
    with pytest.raises(InputError, match=r"val_fraction \+ test_fraction: must be below 1"):
        load_folder(tmp_path, val_fraction=0.5, test_fraction=0.5)
