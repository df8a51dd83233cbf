"""The generality matrix: the smoke pipeline on datasets that vary what real data varies.

Three cases, each a real ``synthlens run`` or ``synthlens evaluate`` (through
``synthlens.cli.main``) on a procedural dataset (:func:`synthlens.data.make_phantoms`)
written to an ``.npz`` in the MedMNIST layout, so the real loader reads it:

=====================  ========  ======  =========================  ==========================
case                   channels  size    classes                    what is scored
=====================  ========  ======  =========================  ==========================
``ordinal-rgb``        RGB       64 px   5 ordinal grades, a grade  ``run``: a cVAE, the
                                         of 24 training images      real-holdout reference,
                                                                    utility (augment)
``imbalanced-6``       grey      28 px   6: one of 85%, five of 20  ``evaluate``: a one-class
                                         training images            set and an all-but-one set,
                                                                    utility (augment)
``binary-128``         grey      128 px  2, balanced                ``evaluate``: a one-class
                                                                    set in the pixels space
=====================  ========  ======  =========================  ==========================

Each asserts that the command exits 0, that every metric in ``results.json`` is a number or
``null`` with its reason in ``details`` (``skipped``, or ``per_class_skipped`` for a class),
that a class with no value is listed as ``null`` (not left out), that the report shows
those values as a dash with the reason and never ``nan`` or ``None``, and (ordinal data)
that quadratic-weighted kappa is scored. The ordinal run's report is opened in Chromium.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from synthlens.cli import main
from synthlens.data import load_npz, make_phantoms, save_real_data
from synthlens.errors import InputError

pytestmark = pytest.mark.slow

# Small efforts: the matrix checks that every stage runs on every shape of data, not values.
EFFORT = {"metrics": {"n_bootstrap": 20, "ms_ssim_pairs": 10, "kid_subsets": 5},
          "utility": {"seeds": [0], "n_bootstrap": 50}}


def _write(tmp: Path, data: Any) -> Path:
    path = tmp / f"{data.name}.npz"
    save_real_data(path, data)
    return path


def _user_set(tmp: Path, name: str, real: Any, keep: np.ndarray, n: int) -> Path:
    """``n`` training images of the classes in ``keep``, as a user's synthetic set."""
    index = np.flatnonzero(np.isin(real.train.labels, keep))[:n]
    path = tmp / f"{name}.npz"
    np.savez(path, images=real.train.images[index], labels=real.train.labels[index],
             class_names=np.array(real.class_names))
    return path


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code = main([*argv, "--device", "cpu", "--quiet"])
    assert code == 0, capsys.readouterr().err[-3000:]


def _entries(results: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    out = [(s, m, e) for s, entry in results["sets"].items()
           for m, e in entry["metrics"].items()]
    return out + [("real-vs-real", m, e) for m, e in results["floors"].items()]


def check_results(out: Path) -> dict[str, Any]:
    """Every value a number or null with a reason; per-class tables list every class."""
    results = json.loads((out / "results.json").read_text())
    classes = results["dataset"]["class_names"]
    for set_name, metric, entry in _entries(results):
        where = f"{set_name} {metric}"
        details = entry.get("details") or {}
        value = entry["value"]
        if value is None:
            assert details.get("skipped"), f"{where}: null without details.skipped"
        else:
            assert isinstance(value, int | float) and math.isfinite(value), where
        per_class = entry.get("per_class")
        if per_class is None:
            continue
        skipped = details.get("per_class_skipped") or {}
        for name, v in per_class.items():
            assert name in classes, where
            if v is None:
                assert skipped.get(name), f"{where}: per-class {name} null without a reason"
            else:
                assert isinstance(v, int | float) and math.isfinite(v), (where, name)
        assert set(skipped) == {c for c, v in per_class.items() if v is None}, where
    return results


def check_report(out: Path, results: dict[str, Any]) -> str:
    """No nan/None on the page; null per-class values shown as a dash, with their reasons."""
    page = (out / "report.html").read_text(encoding="utf-8")
    text = re.sub(r'src="data:[^"]+"', "", page)
    text = re.sub(r"<style>.*?</style>", "", text, flags=re.S)
    assert not re.findall(r"\b(?:nan|NaN|None)\b", text)
    section = text.split('<section id="per-class"', 1)[1].split("</section>", 1)[0]
    if any((e.get("details") or {}).get("per_class_skipped")
           for s, _, e in _entries(results) if s in results["sets"]):
        assert '<td class="na" title="' in section
        assert "Per-class values not computed" in section
    return text


def _null_classes(results: dict[str, Any], set_name: str, metric: str) -> dict[str, str]:
    entry = results["sets"][set_name]["metrics"][metric]
    return (entry.get("details") or {}).get("per_class_skipped") or {}


# ------------------------------------------------------------------ the dataset generator
def test_phantoms_shapes_counts_and_determinism() -> None:
    data = make_phantoms(64, 3, 5, [40, 30, 20, 10, 6], ordinal=True, seed=2)
    assert data.image_shape == (64, 64, 3) and data.task == "ordinal"
    assert data.class_names == ("grade0", "grade1", "grade2", "grade3", "grade4")
    assert data.train.class_counts().tolist() == [40, 30, 20, 10, 6]
    assert data.val.class_counts().tolist() == [6, 4, 3, 3, 3]
    assert data.test.class_counts().tolist() == [12, 9, 6, 3, 3]
    assert make_phantoms(64, 3, 5, [40, 30, 20, 10, 6], ordinal=True, seed=2).hashes() \
        == data.hashes()
    grey = make_phantoms(28, seed=2)
    assert grey.image_shape == (28, 28) and grey.task is None
    assert grey.class_names == ("class0", "class1")
    for bad in ({"size": 4}, {"channels": 2}, {"n_classes": 1}, {"counts": [5, 1]}):
        with pytest.raises(InputError):
            make_phantoms(**bad)  # type: ignore[arg-type]


def test_phantom_classes_are_learnable_and_grades_ordered() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import cohen_kappa_score

    def fit(data: Any) -> np.ndarray:
        flat = data.train.images.reshape(len(data.train), -1) / 255.0
        model = LogisticRegression(C=0.1, max_iter=300).fit(flat, data.train.labels)
        return model.predict(data.test.images.reshape(len(data.test), -1) / 255.0)

    # raw-pixel logistic regression, the weakest of learners: the class shows
    nominal = make_phantoms(20, 3, 6, 40, seed=0)
    assert (fit(nominal) == nominal.test.labels).mean() > 0.9
    graded = make_phantoms(20, 1, 5, 60, ordinal=True, seed=0)
    predicted = fit(graded)
    assert 0.5 < (predicted == graded.test.labels).mean() < 0.95  # neighbours overlap ...
    assert cohen_kappa_score(graded.test.labels, predicted, weights="quadratic") > 0.8
    wrong = predicted != graded.test.labels  # ... so mistakes go to a neighbouring grade
    assert np.mean(np.abs(predicted - graded.test.labels)[wrong] == 1) > 0.7


def test_declared_task_round_trips_and_medmnist_names_declare_it(tmp_path: Path) -> None:
    data = make_phantoms(16, 1, 3, 10, ordinal=True)
    path = _write(tmp_path, data)
    assert load_npz(path).task == "ordinal"
    arrays = dict(np.load(path))
    del arrays["task"]
    np.savez(tmp_path / "retinamnist.npz", **arrays)  # a MedMNIST name: its table's task
    assert load_npz(tmp_path / "retinamnist.npz").task == "ordinal"
    np.savez(tmp_path / "plain.npz", **arrays)
    assert load_npz(tmp_path / "plain.npz").task is None
    np.savez(tmp_path / "bad.npz", **arrays, task=np.array("graded"))
    with pytest.raises(InputError, match=r"bad\.npz:task: unknown task 'graded'"):
        load_npz(tmp_path / "bad.npz")


# ------------------------------------------------------------------ the matrix
@pytest.fixture(scope="module")
def ordinal_rgb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``synthlens run``: RGB 64 px, five ordinal grades, grade 4 of 24 training images."""
    tmp = tmp_path_factory.mktemp("ordinal_rgb")
    real = _write(tmp, make_phantoms(64, 3, 5, [120, 90, 60, 40, 24], ordinal=True, seed=3))
    config = {"name": "ordinal-rgb", "dataset": {"source": real.name},
              "generators": [{"family": "cvae"}], "references": ["real-holdout"],
              "features": {"extractors": ["domain"]}, "metrics": {"names": "all"},
              "utility": {"protocols": ["augment"]}, "budget_overrides": EFFORT}
    (tmp / "run.yaml").write_text(yaml.safe_dump(config))
    out = tmp / "run"
    code = main(["run", str(tmp / "run.yaml"), "--budget", "smoke", "--out", str(out),
                 "--device", "cpu", "--quiet"])
    assert code == 0
    return out


def test_ordinal_rgb_run_with_a_rare_grade(ordinal_rgb: Path) -> None:
    results = check_results(ordinal_rgb)
    assert results["dataset"]["task"] == "ordinal"
    for set_name in ("cvae", "real-holdout", "real-only"):
        qwk = results["sets"][set_name]["metrics"]["utility.augment.qwk"]["value"]
        assert isinstance(qwk, float) and -1 <= qwk <= 1, set_name
    assert "utility.augment.gain_qwk" in results["sets"]["cvae"]["metrics"]
    # the rare grade (2 synthetic images at the smoke budget's 10%) is null, with a reason
    rare = _null_classes(results, "cvae", "precision")
    assert "grade4" in rare and "below the minimum" in rare["grade4"]
    per_class = results["sets"]["cvae"]["metrics"]["precision"]["per_class"]
    assert list(per_class) == list(results["dataset"]["class_names"])
    assert any(isinstance(v, float) for v in per_class.values())
    text = check_report(ordinal_rgb, results)
    assert "QWK" in text or "qwk" in text


def test_ordinal_rgb_report_renders_in_chromium(ordinal_rgb: Path, tmp_path: Path) -> None:
    from test_report_browser import check_report_in_browser

    check_report_in_browser(ordinal_rgb / "report.html", tmp_path)


def test_imbalanced_six_classes_one_class_and_all_but_one_sets(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    real_data = make_phantoms(28, 1, 6, [567, 20, 20, 20, 20, 20], seed=1)
    real = _write(tmp_path, real_data)
    one = _user_set(tmp_path, "one", real_data, np.array([0]), 60)
    but = _user_set(tmp_path, "allbutone", real_data, np.arange(5), 300)
    out = tmp_path / "run"
    _cli(["evaluate", "--real", str(real), "--synthetic", f"one={one}",
          f"allbutone={but}", "--budget", "smoke", "--protocols", "augment",
          "--out", str(out)], capsys)
    results = check_results(out)
    missing = _null_classes(results, "one", "fid")
    assert sorted(missing) == [f"class{c}" for c in range(1, 6)]
    assert set(missing.values()) == {"no synthetic images of this class"}
    assert "class5" in _null_classes(results, "allbutone", "coverage")
    assert "class5" in _null_classes(results, "allbutone", "copy_rate")
    # the rare classes leave 2 holdout images each: below the k-NN minimum in real-holdout
    assert "class1" in _null_classes(results, "real-holdout", "precision")
    for s in ("one", "allbutone"):
        assert isinstance(results["sets"][s]["metrics"]["utility.augment.auroc"]["value"],
                          float)
    warning = results["sets"]["one"]["metrics"]["utility.augment.auroc"]["details"]["warning"]
    assert "no images of 5 of 6 classes" in warning
    text = check_report(out, results)
    assert "no synthetic images of this class" in text
    assert "Read with care" in text and "no images of 5 of 6 classes" in text


def test_binary_128px_one_class_set_in_the_pixels_space(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    real_data = make_phantoms(128, 1, 2, 60, seed=4)
    real = _write(tmp_path, real_data)
    one = _user_set(tmp_path, "one", real_data, np.array([1]), 40)
    out = tmp_path / "run"
    _cli(["evaluate", "--real", str(real), "--synthetic", f"one={one}", "--budget", "smoke",
          "--extractors", "pixels", "--protocols", "none", "--out", str(out)], capsys)
    results = check_results(out)
    assert results["dataset"]["image_shape"] == [128, 128]
    assert _null_classes(results, "one", "fid") == {"class0": "no synthetic images of this class"}
    assert not any(m.startswith("utility.") for m in results["sets"]["one"]["metrics"])
    check_report(out, results)
