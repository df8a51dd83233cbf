"""The utility stage end to end at the `smoke` budget: sanity controls, reproducibility,
caching, cross-task features, task types and input errors."""

from __future__ import annotations

import json
from importlib.resources import files

import numpy as np
import pytest
import yaml

from synthlens.data.dataset import ImageSet, RealData
from synthlens.data.demo import make_demo
from synthlens.data.splits import reserve_holdout
from synthlens.errors import InputError
from synthlens.nets.classifiers import train_classifier
from synthlens.utility.evaluate import (
    BASELINE_NAME,
    UtilityEvaluator,
    evaluate_utility,
    match_images,
)
from synthlens.utility.protocols import UtilityConfig
from synthlens.utility.scores import score_names


def smoke(**overrides) -> dict:
    budgets = yaml.safe_load((files("synthlens") / "configs" / "budgets.yaml").read_text())
    return {**budgets["smoke"]["utility"], **overrides}


@pytest.fixture(scope="module")
def demo_split():
    data = make_demo()
    fit, holdout = reserve_holdout(data.train, 0.25, seed=0)
    return RealData("demo", fit, data.val, data.test, source=data.source), holdout


@pytest.fixture(scope="module")
def controls(demo_split):
    """The three sanity controls of the issue, at the smoke budget on the demo data."""
    real, holdout = demo_split
    rng = np.random.default_rng(0)
    copy = ImageSet(real.train.images, real.train.labels, real.class_names, split="copy")
    shuffled = ImageSet(real.train.images, rng.permutation(real.train.labels),
                        real.class_names, split="shuffled")
    # Two seeds, whatever the smoke budget says: the controls pair seeds.
    ev = UtilityEvaluator(real, config=smoke(protocols=["augment", "synthetic_only"],
                                             seeds=[0, 1]), progress=False)
    return {BASELINE_NAME: ev.baseline_results(),
            "copy": ev.evaluate_set("copy", copy, protocols=["augment"]),
            "shuffled": ev.evaluate_set("shuffled", shuffled),
            "real-holdout": ev.evaluate_set("real-holdout", holdout,
                                            protocols=["synthetic_only"])}


def test_result_names_and_json(controls):
    assert set(controls) == {BASELINE_NAME, "copy", "shuffled", "real-holdout"}
    scores = score_names("binary")
    expected = {f"utility.{p}.{s}" for p in ("augment", "synthetic_only") for s in scores}
    assert set(controls[BASELINE_NAME]) == expected
    gains = {f"utility.{p}.gain_{s}" for p in ("augment", "synthetic_only") for s in scores}
    assert set(controls["shuffled"]) == expected | gains
    assert set(controls["copy"]) == {n for n in expected | gains if ".augment." in n}
    for results in controls.values():
        for name, result in results.items():
            assert result.name == name and result.direction == "higher"
            assert len(result.details["per_seed"]) == 2
            entry = json.loads(json.dumps(result.to_json(), allow_nan=False))
            assert entry["ci"][0] <= entry["ci"][1]
    gain = controls["copy"]["utility.augment.gain_auroc"]
    assert "0.5" in gain.details["wilcoxon_note"]  # 2 seeds: smallest p is 0.5
    assert gain.details["unit"] == "percentage points"
    assert gain.value == pytest.approx(np.mean(gain.details["per_seed"]))
    ba = controls[BASELINE_NAME]["utility.augment.balanced_accuracy"]
    assert set(ba.per_class) == {"normal", "pneumonia"}
    assert ba.value == pytest.approx(np.mean(list(ba.per_class.values())))


def test_copy_of_real_train_gives_no_gain(controls):
    copy = controls["copy"]
    # augment sees each image twice as often per step: same data, same compute
    gain = copy["utility.augment.gain_auroc"]
    assert gain.ci[0] <= 0.0 <= gain.ci[1]
    assert abs(gain.value) < 8.0  # smoke-budget seed noise is ~5 pp; shuffled: -14 pp
    assert gain.details["wilcoxon_p"] >= 0.05


def test_label_shuffled_images_give_no_gain(controls):
    gain = controls["shuffled"]["utility.augment.gain_auroc"]
    assert gain.value < 0.0 and gain.ci[0] < 0.0
    assert gain.value < controls["copy"]["utility.augment.gain_auroc"].value
    # trained on shuffled labels alone, the classifier is near chance
    assert controls["shuffled"]["utility.synthetic_only.auroc"].value < 0.65


def test_synthetic_only_on_real_holdout_approaches_the_baseline(controls):
    base = controls[BASELINE_NAME]["utility.synthetic_only.auroc"].value
    tstr = controls["real-holdout"]["utility.synthetic_only.auroc"].value
    assert tstr > base - 0.08
    assert tstr > controls["shuffled"]["utility.synthetic_only.auroc"].value + 0.1


@pytest.fixture(scope="module")
def small_real():
    data = make_demo()
    train = data.train.subset(np.arange(0, 2000, 4))
    return RealData("demo-small", train, data.val, data.test, source=data.source)


def _tiny(**overrides) -> dict:
    return smoke(classifier={"epochs": 1, "batch_size": 64, "width": 4}, n_bootstrap=50,
                 **overrides)


def test_same_seed_reproduces_and_another_seed_changes(small_real):
    synthetic = {"s": small_real.train}
    run = [evaluate_utility(small_real, synthetic, config=_tiny(seeds=[5]),
                            protocols=["low_data"], progress=False) for _ in range(2)]
    other = evaluate_utility(small_real, synthetic, config=_tiny(seeds=[6]),
                             protocols=["low_data"], progress=False)
    # synthetic-only on an exact copy of real train (ratio 1) trains on the very same data
    copy = evaluate_utility(small_real, synthetic, config=_tiny(seeds=[5]),
                            protocols=["synthetic_only"], progress=False)
    assert copy["s"]["utility.synthetic_only.auroc"].details["per_seed"] == \
        copy[BASELINE_NAME]["utility.synthetic_only.auroc"].details["per_seed"]
    assert copy["s"]["utility.synthetic_only.gain_auroc"].ci == (0.0, 0.0)
    first = {k: v.to_json() for k, v in run[0]["s"].items()}
    assert first == {k: v.to_json() for k, v in run[1]["s"].items()}
    assert run[0]["s"]["utility.low_data.auroc"].value != \
        other["s"]["utility.low_data.auroc"].value
    # low_data uses 10 % of real train, stratified, in both arms
    details = run[0]["s"]["utility.low_data.auroc"].details
    assert details["n_train"] == {"real": 50, "synthetic": 500}


def test_cache_resumes_without_training(small_real, tmp_path):
    config = _tiny(seeds=[0], protocols=["synthetic_only"])
    first = UtilityEvaluator(small_real, config=config, progress=False, cache_dir=tmp_path)
    a = first.evaluate_set("s", small_real.train)
    assert all(t > 0 for t in first.timings.values())
    second = UtilityEvaluator(small_real, config=config, progress=False, cache_dir=tmp_path)
    b = second.evaluate_set("s", small_real.train)
    assert set(second.timings.values()) == {0.0}
    assert {k: v.to_json() for k, v in a.items()} == {k: v.to_json() for k, v in b.items()}
    # another ratio is another experiment: not served from the cache
    third = UtilityEvaluator(small_real, config={**config, "augment_ratio": 0.5},
                             progress=False, cache_dir=tmp_path)
    third.evaluate_set("s", small_real.train)
    assert third.timings[("s", "synthetic_only", 0)] > 0


def test_cross_task_features_feed_a_linear_model(small_real):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    other = make_demo(size=16, seed=3)  # another cohort at another size: resized to 28 px
    cross = RealData("other", other.train.subset(np.arange(0, 2000, 5)), other.val,
                     other.test, source=other.source)
    ev = UtilityEvaluator(small_real, config=_tiny(seeds=[0], protocols=["augment"]),
                          cross_task_data=cross, progress=False)
    assert ev.protocols == ("augment", "cross_task")
    results = ev.baseline_results()
    # the same classifier retrained by hand, then the same linear model by hand
    clf = train_classifier(small_real.train, small_real.val, config=ev.train_config, seed=0,
                           progress=False)
    resized = match_images(cross.train.images, (28, 28))
    assert resized.shape == (400, 28, 28)
    model = make_pipeline(StandardScaler(), LogisticRegression(class_weight="balanced",
                                                               max_iter=5000))
    model.fit(clf.embed(resized).astype(np.float64), cross.train.labels)
    proba = model.predict_proba(clf.embed(match_images(cross.test.images, (28, 28)))
                                .astype(np.float64))
    assert results["utility.cross_task.auroc"].value == pytest.approx(
        roc_auc_score(cross.test.labels, proba[:, 1]), abs=1e-9)
    gains = ev.evaluate_set("s", small_real.train)
    assert gains["utility.cross_task.gain_accuracy"].details["cross_task_dataset"] == "other"


def _three_classes(n: int, seed: int, split: str) -> ImageSet:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    images = rng.integers(0, 60, (n, 16, 16)).astype(np.uint8)
    images += (labels * 70).astype(np.uint8)[:, None, None]  # brightness grows with grade
    return ImageSet(images, labels, ("low", "mid", "high"), split=split)


def test_ordinal_multiclass_adds_kappa_and_per_class_auroc():
    real = RealData("grades", _three_classes(120, 0, "train"), _three_classes(60, 1, "val"),
                    _three_classes(60, 2, "test"))
    config = smoke(seeds=[0, 1], task="ordinal", protocols=["synthetic_only"], n_bootstrap=50,
                   classifier={"epochs": 6, "batch_size": 32, "width": 4, "lr": 0.01})
    res = evaluate_utility(real, {"s": _three_classes(120, 3, "s")}, config=config,
                           progress=False)
    assert "utility.synthetic_only.qwk" in res["s"]
    assert "utility.synthetic_only.gain_qwk" in res["s"]
    assert set(res["s"]["utility.synthetic_only.auroc"].per_class) == {"low", "mid", "high"}
    assert res[BASELINE_NAME]["utility.synthetic_only.auroc"].value > 0.9


def test_input_errors(small_real):
    config = _tiny(seeds=[0])
    with pytest.raises(InputError, match="multi-label"):
        UtilityEvaluator(small_real, config={**config, "task": "multilabel"})
    with pytest.raises(InputError, match="cross_task_data"):
        UtilityEvaluator(small_real, config={**config, "protocols": ["cross_task"]})
    ev = UtilityEvaluator(small_real, config=config, progress=False)
    wrong_classes = ImageSet(small_real.train.images[:10], np.arange(10) % 2, ("a", "b"))
    with pytest.raises(InputError, match="classes"):
        ev.evaluate_set("x", wrong_classes)
    wrong_shape = ImageSet(np.zeros((10, 16, 16), np.uint8), np.arange(10) % 2,
                           small_real.class_names)
    with pytest.raises(InputError, match="shaped"):
        ev.evaluate_set("x", wrong_shape)
    with pytest.raises(InputError, match="reserved"):
        ev.evaluate_set(BASELINE_NAME, small_real.train)
    with pytest.raises(InputError, match="unknown key"):
        UtilityConfig.from_dict({"ratio": 1})


def test_saved_baseline_pairs_with_later_sets(small_real, tmp_path):
    """The pipeline's path: train the real-only arms, save them, load them in a later
    process, score a set: same numbers as one evaluator doing everything."""
    from synthlens.utility import Baseline, evaluate_set, real_only_baseline

    config = _tiny(seeds=[0, 1], protocols=["augment"])
    synthetic = ImageSet(small_real.train.images[::-1].copy(),
                         small_real.train.labels[::-1].copy(), small_real.class_names,
                         split="flipped-order")
    baseline = real_only_baseline(small_real.train, small_real.val, small_real.test,
                                  config=config, progress=False)
    baseline.save(tmp_path)
    loaded = Baseline.load(tmp_path)
    assert {k: v.to_json() for k, v in loaded.metrics().items()} == \
        {k: v.to_json() for k, v in baseline.metrics().items()}
    scored = evaluate_set(synthetic, loaded, small_real.train, small_real.val,
                          small_real.test, config=config, progress=False)
    ev = UtilityEvaluator(RealData("real", small_real.train, small_real.val,
                                   small_real.test), config=config, progress=False)
    direct = ev.evaluate_set("flipped-order", synthetic)
    assert {k: v.to_json() for k, v in scored.items()} == \
        {k: v.to_json() for k, v in direct.items()}
    with pytest.raises(ValueError, match="other"):
        evaluate_set(synthetic, loaded, small_real.train, small_real.val, small_real.test,
                     config={**config, "seeds": [0, 2]}, progress=False)
