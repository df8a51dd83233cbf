"""Privacy metrics: planted copies, membership inference, authenticity, audit table."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from synthlens.metrics import (
    RealReference,
    audit_table,
    evaluate_features,
    read_audit_csv,
    real_floor,
    write_audit_csv,
)
from synthlens.metrics.privacy import authentic, memorised

PRIVACY = ["copy_rate", "privacy", "dcr_ratio", "memorisation_rate", "mia_auc", "authenticity"]


def mixture(rng, n, d=16, centres=None):
    """A Gaussian mixture: enough structure for neighbourhoods to mean something."""
    if centres is None:
        centres = np.random.default_rng(123).standard_normal((6, d)) * 3
    return centres[rng.integers(0, len(centres), n)] + rng.standard_normal((n, d))


@pytest.fixture(scope="module")
def planted():
    rng = np.random.default_rng(7)
    train, holdout, fresh = mixture(rng, 400), mixture(rng, 400), mixture(rng, 1000)
    clean = mixture(rng, 1000)
    copied = clean.copy()
    planted_idx = rng.choice(1000, 50, replace=False)  # 5% of the synthetic images
    sources = rng.choice(400, 50, replace=False)
    copied[planted_idx] = train[sources] + 0.01 * rng.standard_normal((50, 16))
    ref = RealReference(k=5).fit(train, holdout=holdout)
    return ref, clean, copied, planted_idx, fresh


def run(ref, x, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return evaluate_features(ref, x, metrics=PRIVACY, n_bootstrap=100, **kw)


def test_planted_copies_are_found_and_fresh_images_are_not(planted):
    ref, _, copied, planted_idx, fresh = planted
    nb = ref.compare(copied)
    flags, _ = memorised(nb.to_real.distances[:, 0], ref.holdout_neighbours_.distances[:, 0])
    assert flags[planted_idx].mean() >= 0.95
    fresh_rate = run(ref, fresh)["memorisation_rate"].value
    assert fresh_rate <= 0.02
    assert flags[planted_idx].all()
    out = run(ref, copied)
    assert out["memorisation_rate"].value >= 0.05 * 0.95
    assert out["dcr_ratio"].details["p05_dcr_synthetic"] < out["dcr_ratio"].details[
        "p05_dcr_holdout"]


def test_mia_auc_near_half_without_copies_and_above_with_them(planted):
    ref, clean, copied, _, _ = planted
    no_copies = run(ref, clean)["mia_auc"]
    with_copies = run(ref, copied)["mia_auc"]
    assert abs(no_copies.value - 0.5) < 0.05
    assert no_copies.ci[0] < 0.5 < no_copies.ci[1]
    assert with_copies.value > 0.54 and with_copies.ci[0] > 0.5


def test_copy_rate_real_vs_real_floor_is_large(planted):
    # Reverse-nearest-neighbour effect: genuine unseen images are often closer to some training
    # image than that image's own nearest neighbour, so the floor is far above 0.
    ref, _, _, _, fresh = planted
    floor = run(ref, fresh)["copy_rate"].value
    assert floor > 0.2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        split = real_floor(ref, metrics=["copy_rate", "mia_auc", "memorisation_rate"],
                           n_bootstrap=0)
    assert split["copy_rate"].value > 0.2
    assert abs(split["mia_auc"].value - 0.5) < 0.1
    assert split["copy_rate"].details["floor"]
    assert split["copy_rate"].details["n"] == 200


def test_authenticity_indexes_real_space_not_synthetic_space():
    # Real points 0, 1, 10, 11, 30: nearest-real distances 1, 1, 1, 1, 19.
    real = np.array([[0.0], [1.0], [10.0], [11.0], [30.0]])
    # 30.5 is 0.5 from real 30 (< 19: not authentic); 100 is 70 from real 30 (authentic).
    syn = np.array([[30.5], [100.0], [100.5], [101.0], [101.5], [102.0], [102.5]])
    ref = RealReference(k=1).fit(real)
    nb = ref.compare(syn)
    ours = authentic(nb, ref)
    assert ours.tolist() == [False, True, True, True, True, True, True]
    # The published estimator mixes index spaces: real_to_real[real_to_synth_args] compares a
    # real point's distance with the nearest-real distance of the *real point numbered like*
    # its nearest synthetic sample. It answers differently here.
    real_to_real = ref.nn1_ ** 0.5
    real_to_synth = nb.real_to_synthetic.distances[:, 0]
    args = nb.real_to_synthetic.indices[:, 0]
    mixed = np.mean(real_to_real[args] < real_to_synth)
    assert mixed == pytest.approx(0.8)
    assert ours.mean() != pytest.approx(mixed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        from synthlens.metrics.context import EvaluationContext
        from synthlens.metrics.privacy import Authenticity

        ctx = EvaluationContext(reference=ref, features=syn)
        result = Authenticity(n_bootstrap=0).compute(ctx)
    assert np.isnan(result.value) and "at least" in result.details["skipped"]  # small-N guard


def test_privacy_sets_on_code_maps_with_hamming():
    rng = np.random.default_rng(3)
    train = rng.integers(0, 8, (60, 4, 4))
    syn = rng.integers(0, 8, (40, 4, 4))
    syn[:10] = train[:10]  # exact copies of code maps
    ref = RealReference(k=3, distance="hamming").fit(train)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out = evaluate_features(ref, syn, n_bootstrap=0)
    assert "fid" not in out and "copy_rate" in out
    nb = ref.compare(syn)
    assert nb.copy[:10].all()
    flat_t, flat_s = train.reshape(60, -1), syn.reshape(40, -1)
    d = (flat_s[:, None, :] != flat_t[None, :, :]).sum(-1)
    dt = (flat_t[:, None, :] != flat_t[None, :, :]).sum(-1) + np.eye(60, dtype=int) * 99
    nn1 = dt.min(1)
    expected = ((d < nn1) | (d == 0)).any(1)
    assert np.array_equal(nb.copy, expected)
    assert out["copy_rate"].value == pytest.approx(expected.mean())
    with pytest.raises(Exception, match="not defined for hamming"):
        evaluate_features(ref, syn, metrics=["fid"])


def test_audit_table_and_csv(planted, tmp_path):
    ref, _, copied, planted_idx, _ = planted
    nb = ref.compare(copied)
    labels = np.zeros(len(copied), dtype=np.int64)
    table = audit_table(ref, nb, labels, predicted=labels)
    assert len(table) == len(copied)
    closest = np.argsort(table["distance"])[:50]
    assert set(closest) == set(planted_idx)  # the closest pairs are the planted copies
    assert (table["category"][planted_idx] == "copy").all()
    np.testing.assert_allclose(table["distance"], nb.to_real.distances[:, 0])
    assert (table["holdout_dcr_quantile"][planted_idx] == 0).all()
    path = tmp_path / "audit.csv"
    write_audit_csv(path, table, class_names=["normal"])
    rows = read_audit_csv(path)
    assert len(rows) == len(copied) and rows[0]["label"] == "normal"
    assert float(rows[3]["distance"]) == pytest.approx(table["distance"][3])


@pytest.mark.shared_data
def test_real_vs_real_floor_on_pneumoniamnist(shared_data):
    data = np.load(shared_data("pneumoniamnist.npz"))
    x = data["train_images"].reshape(len(data["train_images"]), -1).astype(np.float32) / 255
    labels = data["train_labels"][:, 0].astype(np.int64)
    order = np.random.default_rng(0).permutation(len(x))
    train, hold = order[:1500], order[1500:2100]
    ref = RealReference(k=5).fit(x[train], labels[train], holdout=x[hold],
                                 holdout_labels=labels[hold])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        floor = real_floor(ref, metrics=["copy_rate", "memorisation_rate", "mia_auc"],
                           n_bootstrap=0)
    # genuine unseen chest X-rays: many "copies" by the study's test, almost no memorisation
    assert floor["copy_rate"].value > 0.3
    assert floor["memorisation_rate"].value <= 0.03
    assert abs(floor["mia_auc"].value - 0.5) < 0.07
