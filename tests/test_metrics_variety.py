"""Variety metrics: Vendi, mean-image size and its normalisation, MS-SSIM diversity."""

from __future__ import annotations

import io
import json
import math
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from synthlens.metrics import RealReference, evaluate_features, evaluate_images, variety_scores
from synthlens.metrics.base import MetricResult
from synthlens.metrics.ssim import default_scales, ms_ssim
from synthlens.metrics.variety import mean_image, png_kb, vendi_score, write_mean_images


def vendi_by_definition(x: np.ndarray) -> float:
    """exp of the Shannon entropy of the eigenvalues of K/n, K the cosine-similarity matrix."""
    k = np.array([[a @ b / (np.linalg.norm(a) * np.linalg.norm(b)) for b in x] for a in x])
    lam = np.linalg.eigvalsh(k / len(x))
    lam = lam[lam > 1e-12]
    return float(np.exp(-(lam * np.log(lam)).sum()))


def test_vendi_against_definition_and_dual_form():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((7, 5))  # n > d: the dual d×d form is used
    assert vendi_score(x) == pytest.approx(vendi_by_definition(x), rel=1e-10)
    y = rng.standard_normal((4, 9))  # n <= d: the n×n form
    assert vendi_score(y) == pytest.approx(vendi_by_definition(y), rel=1e-10)
    # More rows than one block: the blockwise dual form, input left untouched.
    big = rng.standard_normal((5000, 3))
    before = big.copy()
    unit = big / np.linalg.norm(big, axis=1, keepdims=True)
    lam = np.linalg.eigvalsh(unit.T @ unit / len(big))
    assert vendi_score(big) == pytest.approx(float(np.exp(-(lam * np.log(lam)).sum())), rel=1e-10)
    assert np.array_equal(big, before)
    # Hand cases: identical rows -> 1; orthogonal rows -> n.
    assert vendi_score(np.ones((5, 3))) == pytest.approx(1.0)
    assert vendi_score(np.eye(4)) == pytest.approx(4.0)


def test_mean_image_is_mean_of_class_means_and_png_size():
    images = np.zeros((4, 6, 6), dtype=np.uint8)
    images[0] = 200  # class 0: one bright and one dark image -> mean 100
    images[2:] = 50  # class 1: two images of 50 -> mean 50
    labels = np.array([0, 0, 1, 1])
    overall, per_class = mean_image(images, labels)
    assert (per_class[0] == 100).all() and (per_class[1] == 50).all()
    assert (overall == 75).all()  # not the plain mean (87.5): each class weighs the same
    buf = io.BytesIO()
    Image.fromarray(overall).save(buf, format="PNG")
    assert png_kb(overall) == buf.tell() / 1024


def test_mean_image_kb_ranks_varied_sets_smaller_and_variety_normalises():
    rng = np.random.default_rng(1)
    base = rng.integers(0, 256, (64, 64), dtype=np.uint8)
    collapsed = np.repeat(base[None], 50, axis=0)  # one image: its mean is sharp
    varied = rng.integers(0, 256, (50, 64, 64), dtype=np.uint8)  # mean is flat grey
    middle = np.concatenate([collapsed[:10], varied[:40]])
    sizes = {name: evaluate_images(x, metrics=["mean_image_kb"])["mean_image_kb"]
             for name, x in [("collapsed", collapsed), ("varied", varied), ("middle", middle)]}
    assert sizes["varied"].value < sizes["middle"].value < sizes["collapsed"].value
    variety = variety_scores(sizes)
    assert variety["collapsed"].value == 0.0 and variety["varied"].value == 1.0
    lo, hi = sizes["varied"].value, sizes["collapsed"].value
    assert variety["middle"].value == pytest.approx(1 - (sizes["middle"].value - lo) / (hi - lo))
    with pytest.warns(RuntimeWarning, match="two sets"):
        single = variety_scores({"only": 3.0})
    assert math.isnan(single["only"].value)
    json.dumps(single["only"].to_json(), allow_nan=False)  # NaN details become null


def test_write_mean_images(tmp_path):
    images = np.zeros((4, 6, 6), dtype=np.uint8)
    images[0] = 200
    images[2:] = 50
    paths = write_mean_images(tmp_path, images, np.array([0, 0, 1, 1]), ["a", "b"])
    assert set(paths) == {"all", "a", "b"}
    assert (np.asarray(Image.open(paths["a"])) == 100).all()
    assert paths["all"].stat().st_size / 1024 == pytest.approx(
        png_kb(mean_image(images, np.array([0, 0, 1, 1]))[0]))


def test_variety_per_class():
    a = MetricResult("mean_image_kb", 2.0, "lower", per_class={"x": 1.0, "y": 4.0})
    b = MetricResult("mean_image_kb", 4.0, "lower", per_class={"x": 3.0, "y": 2.0})
    out = variety_scores({"a": a, "b": b})
    assert out["a"].per_class == {"x": 1.0, "y": 0.0}
    assert out["b"].per_class == {"x": 0.0, "y": 1.0}


def test_ms_ssim_matches_torchmetrics():
    from torch.nn.functional import avg_pool2d
    from torchmetrics.functional.image import multiscale_structural_similarity_index_measure

    rng = np.random.default_rng(2)
    # Smooth random images (average-pooled noise) at 176 px: all five scales fit.
    noise = torch.tensor(rng.uniform(0, 255, (2, 1, 704, 704)))
    x = avg_pool2d(noise, 4)
    y = (x + torch.tensor(rng.normal(0, 15, x.shape))).clamp(0, 255)
    expected = multiscale_structural_similarity_index_measure(
        y, x, data_range=255.0, normalize="relu", reduction="none")
    ours = ms_ssim(y[:, 0].numpy(), x[:, 0].numpy())
    # torchmetrics raises to float32 weights: agreement to float32 precision
    np.testing.assert_allclose(ours, expected.numpy(), rtol=1e-7)
    assert default_scales(176, 176) == 5 and default_scales(28, 28) == 2
    assert ms_ssim(x[:1, 0].numpy(), x[:1, 0].numpy())[0] == pytest.approx(1.0)


def test_ms_ssim_diversity_lower_for_collapsed_sets():
    rng = np.random.default_rng(3)
    varied = rng.integers(0, 256, (30, 28, 28), dtype=np.uint8)
    collapsed = np.repeat(varied[:1], 30, axis=0)
    labels = np.repeat([0, 1], 15)
    v = evaluate_images(varied, labels, metrics=["ms_ssim_diversity"], ms_ssim_pairs=40,
                        n_bootstrap=20)["ms_ssim_diversity"]
    c = evaluate_images(collapsed, labels, metrics=["ms_ssim_diversity"],
                        ms_ssim_pairs=40)["ms_ssim_diversity"]
    assert c.value == pytest.approx(1.0) and v.value < 0.5
    assert set(v.per_class) == {"0", "1"}


def test_recall_coverage_vendi_per_class():
    rng = np.random.default_rng(4)
    real = np.r_[rng.standard_normal((150, 6)), rng.standard_normal((150, 6)) + 4]
    real_labels = np.repeat([0, 1], 150)
    syn = np.r_[rng.standard_normal((100, 6)), rng.standard_normal((100, 6)) * 0.2 + 4]
    syn_labels = np.repeat([0, 1], 100)
    ref = RealReference(k=5).fit(real, real_labels, class_names=["a", "b"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out = evaluate_features(ref, syn, syn_labels, metrics=["recall", "coverage", "vendi"],
                                n_bootstrap=0)
    # class b is collapsed to a fifth of its spread: lower recall and coverage than class a
    assert out["recall"].per_class["b"] < out["recall"].per_class["a"]
    assert out["coverage"].per_class["b"] < out["coverage"].per_class["a"]
    sub = ref.compare(syn[:100])
    assert out["vendi"].per_class["a"] == pytest.approx(vendi_score(syn[:100]))
    assert sub.n == 100
