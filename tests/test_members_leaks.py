"""Who was a member (``evaluate --members/--non-members``), exact copies of real images
(leaks of val and test, copies of the members) and ``--resize``: each through the real
``synthlens evaluate`` on a tiny dataset, in the pixel space, privacy metrics only, no
utility (issue 14, points 4 and 5)."""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from synthlens.cli import main
from synthlens.config import packaged_config, resolve_config
from synthlens.data import make_demo
from synthlens.data.resize import resize_images
from synthlens.errors import SettingError
from synthlens.io import read_json

PRIVACY = ["copy_rate", "memorisation_rate", "mia_auc", "dcr_ratio"]
SIZES = {"train": 300, "val": 100, "test": 100}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A 300/100/100 subset of the demo phantoms as an .npz, and its arrays."""
    demo = make_demo()
    rng = np.random.default_rng(1)
    arrays: dict[str, Any] = {"class_names": np.array(demo.class_names)}
    for split, n in SIZES.items():
        part = getattr(demo, split)
        index = np.sort(rng.permutation(len(part))[:n])
        arrays[f"{split}_images"] = part.images[index]
        arrays[f"{split}_labels"] = part.labels[index]
    path = tmp_path_factory.mktemp("tiny") / "real.npz"
    np.savez(path, **arrays)
    return {"path": path, "arrays": arrays, "others": make_demo(seed=1).train}


def _evaluate(real: Path, synthetic: Path, out: Path, *extra: str) -> int:
    return main(["evaluate", "--real", str(real), "--synthetic", f"mine={synthetic}",
                 "--out", str(out), "--budget", "smoke", "--protocols", "--extractors",
                 "pixels", "--metrics", *PRIVACY, "--device", "cpu", "--quiet", *extra])


def _audit(run: Path, name: str = "mine") -> list[dict[str, str]]:
    with open(run / "metrics" / "audit" / f"{name}.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_declared_members_flag_every_planted_copy(tiny: dict[str, Any], tmp_path: Path) -> None:
    """100 training images planted among 200 unseen ones: with the whole train split as the
    members, every planted copy is a copy in the audit (naming its training image), and
    membership inference and the memorisation rate see them."""
    arrays = tiny["arrays"]
    rng = np.random.default_rng(2)
    planted = rng.permutation(SIZES["train"])[:100]
    order = rng.permutation(300)  # planted copies spread over the set
    images = np.r_[arrays["train_images"][planted], tiny["others"].images[:200]][order]
    labels = np.r_[arrays["train_labels"][planted], tiny["others"].labels[:200]][order]
    synthetic = tmp_path / "mine.npz"
    np.savez(synthetic, images=images, labels=labels)
    run = tmp_path / "run"
    assert _evaluate(tiny["path"], synthetic, run, "--members", "train",
                     "--non-members", "val") == 0

    source = np.full(300, -1)
    source[np.argsort(order)[:100]] = planted  # row of the set -> planted training image
    rows = _audit(run)
    assert [int(r["exact_copy_of"]) for r in rows] == source.tolist()
    for row in rows:
        if int(row["exact_copy_of"]) >= 0:
            assert row["category"] == "copy" and float(row["distance"]) == 0.0
            assert int(row["nearest_train_index"]) == int(row["exact_copy_of"]) or \
                np.array_equal(arrays["train_images"][int(row["nearest_train_index"])],
                               arrays["train_images"][int(row["exact_copy_of"])])

    results = read_json(run / "results.json")
    assert results["privacy"] == {
        "declared": True, "members": "train", "non_members": "val",
        "n_members": SIZES["train"], "n_non_members": SIZES["val"], "overlap": 0,
        "warning": results["privacy"]["warning"]}
    assert "distribution" in results["privacy"]["warning"]
    mine = results["sets"]["mine"]
    assert mine["exact_copies"] == {"members": 100, "val": 0, "test": 0}
    metrics = mine["metrics"]
    assert metrics["memorisation_rate"]["value"] >= 100 / 300
    # 1/3 of the members sit at distance 0 from the set: AUROC about 0.5 + 1/6
    assert metrics["mia_auc"]["value"] > 0.6 and metrics["mia_auc"]["ci"][0] > 0.5
    # the non-members are the val split, scored as the real-holdout set
    assert results["sets"]["real-holdout"]["exact_copies"]["val"] == SIZES["val"]
    assert results["sets"]["real-holdout"]["n_images"] == SIZES["val"]
    ids = {f["id"] for f in results["analysis"]["findings"]}
    assert "exact_copies_mine" in ids and "leak_mine" not in ids
    page = (run / "report.html").read_text(encoding="utf-8")
    assert 'data-members="train" data-non-members="val"' in page
    assert "membership-warning" in page


def test_a_set_of_test_images_is_flagged_and_refused_under_strict(
        tiny: dict[str, Any], tmp_path: Path, caplog: pytest.LogCaptureFixture,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Test images at twice the size, brought back by --resize area (exact: 2x2 blocks of
    one value), members from a file: flagged in results.json, the findings, the report and
    on the console; --strict refuses the set before the run folder exists."""
    arrays = tiny["arrays"]
    leaked = np.repeat(np.repeat(arrays["test_images"][:40], 2, axis=1), 2, axis=2)
    others = resize_images(tiny["others"].images[:60], (56, 56), "lanczos")
    synthetic = tmp_path / "mine.npz"
    np.savez(synthetic, images=np.r_[leaked, others],
             labels=np.r_[arrays["test_labels"][:40], tiny["others"].labels[:60]])
    members = tmp_path / "members.npz"
    np.savez(members, images=arrays["train_images"], labels=arrays["train_labels"],
             class_names=arrays["class_names"])
    run = tmp_path / "run"
    with caplog.at_level(logging.WARNING, logger="synthlens"):
        assert _evaluate(tiny["path"], synthetic, run, "--resize", "area",
                         "--members", str(members)) == 0
    assert any("40 exact copies of real test images" in r.getMessage() for r in caplog.records)
    results = read_json(run / "results.json")
    assert results["config"]["resize"] == "area" and results["config"]["strict"] is False
    assert results["privacy"]["members"] == str(members)
    assert results["privacy"]["non_members"] == "val"
    assert results["sets"]["mine"]["exact_copies"] == {"members": 0, "val": 0, "test": 40}
    assert results["sets"]["mine"]["resized_from"] == [56, 56]
    assert all(entry["resized_from"] is None for name, entry in results["sets"].items()
               if name not in ("mine", "real-only"))
    assert "resized_from" not in results["sets"]["real-only"]
    finding = next(f for f in results["analysis"]["findings"] if f["id"] == "leak_mine")
    assert finding["level"] == "warning" and "40 of the real test images" in finding["text"]
    assert finding["text"] in capsys.readouterr().out  # the closing console lines
    assert "40 of the real test images" in (run / "report.html").read_text(encoding="utf-8")

    refused = tmp_path / "strict"
    assert _evaluate(tiny["path"], synthetic, refused, "--resize", "area", "--strict") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "mine.npz" in err and "test images" in err
    assert "strict" in err and not refused.exists()


def test_resize_none_names_the_option_and_resize_grows_and_shrinks(
        tiny: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from synthlens.pipeline import load_inputs

    arrays = tiny["arrays"]
    small = tmp_path / "small.npz"
    np.savez(small, images=arrays["train_images"][:20, ::2, ::2],
             labels=arrays["train_labels"][:20])
    out = tmp_path / "run"
    assert _evaluate(tiny["path"], small, out) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "small.npz" in err and "are 14x14 grey" in err
    assert "--resize area or --resize lanczos" in err and not out.exists()

    raw = {**packaged_config("evaluate"), "dataset": {"source": str(tiny["path"])},
           "synthetic": {"small": str(small)}, "resize": "lanczos"}
    inputs = load_inputs(resolve_config(raw, budget="smoke"))
    grown = inputs.user_sets["small"]
    assert grown.image_shape == (28, 28) and len(grown) == 20
    assert inputs.resized_from == {"small": [14, 14]}

    # area: the mean of each 2x2 block (of equal halves: exact); lanczos keeps a flat image
    blocks = np.array([[[0, 10, 200, 201], [20, 30, 202, 203]]], dtype=np.uint8)
    assert resize_images(blocks, (1, 2), "area").tolist() == [[[15, 202]]]
    flat = np.full((2, 8, 8, 3), 77, dtype=np.uint8)
    assert (resize_images(flat, (3, 5), "lanczos") == 77).all()
    assert resize_images(flat, (16, 12), "area").shape == (2, 16, 12, 3)


def test_member_declarations_are_checked_at_the_door(tiny: dict[str, Any], tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    synthetic = tmp_path / "mine.npz"
    np.savez(synthetic, images=tiny["arrays"]["val_images"][:5],
             labels=tiny["arrays"]["val_labels"][:5])
    for extra, expected in ((["--members", str(tmp_path / "nowhere.npz")], "nowhere.npz"),
                            (["--members", "val"], "--non-members"),
                            (["--non-members", "train"], "--non-members"),
                            (["--resize", "area", "--members", "holdout"], "holdout")):
        out = tmp_path / "run"
        assert _evaluate(tiny["path"], synthetic, out, *extra) == 2, extra
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and expected in err, (extra, err)
        assert not out.exists()
    with pytest.raises(SettingError, match=r"privacy\.members.*trains generators"):
        resolve_config({"privacy": {"members": "train", "non_members": "val"}})
    with pytest.raises(SettingError, match=r"privacy\.members: missing"):
        resolve_config({"generators": [], "privacy": {"non_members": "val"}})
    with pytest.raises(SettingError, match=r"resize.*accepted: none, area, lanczos"):
        resolve_config({"resize": "bicubic"})
