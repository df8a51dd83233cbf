"""Protocol settings and the training data of each arm (no training here)."""

from __future__ import annotations

from importlib.resources import files

import numpy as np
import pytest
import yaml

from synthlens.data.dataset import ImageSet
from synthlens.data.splits import stratified_indices
from synthlens.errors import InputError
from synthlens.utility.protocols import (
    PROTOCOLS,
    UtilityConfig,
    arm_training_sets,
    baseline_arm,
    low_data_subset,
    protocol_arm,
    synthetic_draw,
)


def _set(n: int, shares=(0.25, 0.75), seed: int = 0, name: str = "s") -> ImageSet:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(shares)), [round(n * s) for s in shares])
    images = rng.integers(0, 255, (len(labels), 8, 8)).astype(np.uint8)
    return ImageSet(images, labels, tuple(f"c{i}" for i in range(len(shares))), split=name)


def test_every_budget_has_a_valid_utility_section():
    budgets = yaml.safe_load((files("synthlens") / "configs" / "budgets.yaml").read_text())
    for name in ("smoke", "demo", "standard", "full"):
        config = UtilityConfig.from_dict(budgets[name]["utility"])
        assert len(config.seeds) >= 2
        assert set(config.resolve_protocols(False)) <= set(PROTOCOLS)
    assert len(UtilityConfig.from_dict(budgets["full"]["utility"]).seeds) == 5
    assert UtilityConfig.from_dict(budgets["full"]["utility"]).classifier.arch == "resnet18"
    # intensity jitter hides the demo phantoms' faint opacity: off where they are used
    for name in ("smoke", "demo"):
        assert UtilityConfig.from_dict(budgets[name]["utility"]).classifier \
            .augment_intensity == 0.0


def test_config_errors_name_the_problem():
    with pytest.raises(InputError, match="unknown key"):
        UtilityConfig.from_dict({"seed": [0]})
    with pytest.raises(InputError, match="classifier"):
        UtilityConfig.from_dict({"classifier": {"epoch": 3}})
    with pytest.raises(InputError, match="unknown protocol"):
        UtilityConfig.from_dict({"protocols": ["tstr"]})
    with pytest.raises(InputError, match="repeat"):
        UtilityConfig(seeds=(1, 1))
    with pytest.raises(InputError, match="low_data_fraction"):
        UtilityConfig(low_data_fraction=1.5)
    with pytest.raises(InputError, match="multi-label"):
        UtilityConfig(task="multilabel").resolve_task(14)
    with pytest.raises(InputError, match="binary"):
        UtilityConfig(task="binary").resolve_task(3)
    with pytest.raises(InputError, match="cross_task_data"):
        UtilityConfig(protocols=("cross_task",)).resolve_protocols(False)


def test_protocol_resolution_and_task_types():
    config = UtilityConfig()
    assert config.resolve_protocols(False) == ("augment", "synthetic_only", "low_data")
    assert config.resolve_protocols(True)[-1] == "cross_task"
    assert UtilityConfig(protocols=("synthetic_only",)).resolve_protocols(True) == \
        ("synthetic_only",)
    assert config.resolve_task(2) == "binary" and config.resolve_task(5) == "multiclass"
    assert UtilityConfig(task="ordinal").resolve_task(5) == "ordinal"
    assert protocol_arm("cross_task_low_data") == "low_data"
    assert baseline_arm("low_data") == "real_low" and baseline_arm("cross_task") == "real"


def test_fixed_steps_equal_the_real_only_schedule():
    config = UtilityConfig.from_dict({"classifier": {"epochs": 3, "batch_size": 64}})
    assert config.train_config(1000).steps == 3 * 16  # ceil(1000 / 64) = 16 per epoch
    assert UtilityConfig(fixed_steps=False).train_config(1000).steps is None


def test_stratified_indices_keep_class_shares():
    labels = np.repeat([0, 1, 2], [100, 300, 600])
    idx = stratified_indices(labels, 100, np.random.default_rng(0))
    assert len(idx) == 100 and len(np.unique(idx)) == 100
    np.testing.assert_array_equal(np.bincount(labels[idx]), [10, 30, 60])
    # the minimum per class holds even where the share rounds to zero
    idx = stratified_indices(np.repeat([0, 1], [3, 997]), 10, np.random.default_rng(0),
                             min_per_class=2)
    assert np.bincount(np.repeat([0, 1], [3, 997])[idx])[0] == 2


def test_low_data_and_synthetic_draws():
    real, synthetic = _set(400), _set(1000, shares=(0.5, 0.5), seed=1, name="syn")
    low = low_data_subset(real, 0.1, seed=0)
    assert len(low) == 40 and np.bincount(low.labels).tolist() == [10, 30]
    np.testing.assert_array_equal(low.images, low_data_subset(real, 0.1, seed=0).images)
    assert not np.array_equal(low.images, low_data_subset(real, 0.1, seed=1).images)
    drawn = synthetic_draw(synthetic, len(real), ratio=1.0, seed=0)
    assert len(drawn) == 400 and np.bincount(drawn.labels).tolist() == [200, 200]
    assert synthetic_draw(synthetic, len(real), ratio=5.0, seed=0) is synthetic

    config = UtilityConfig()
    sizes = {arm: [len(s) for s in arm_training_sets(arm, real, synthetic, config, 0)]
             for arm in ("real", "real_low", "augment", "synthetic_only", "low_data")}
    assert sizes == {"real": [400], "real_low": [40], "augment": [400, 400],
                     "synthetic_only": [400], "low_data": [40, 400]}
    # the three synthetic arms draw the same synthetic images at a given seed
    aug = arm_training_sets("augment", real, synthetic, config, 3)[1]
    tstr = arm_training_sets("synthetic_only", real, synthetic, config, 3)[0]
    np.testing.assert_array_equal(aug.images, tstr.images)
