"""synthlens.utility: what a synthetic set does for a real downstream classifier.

Protocols (``augment``, ``synthetic_only``, ``low_data``, ``cross_task``) train the same
classifier with the same seeds with and without the synthetic set and score both on the
real test split; see ``docs/utility.md``.
"""

from synthlens.nets.classifiers import (
    ARCHITECTURES,
    ResNet18,
    SmallCNN,
    TrainConfig,
    TrainedClassifier,
    train_classifier,
)
from synthlens.utility.evaluate import (
    BASELINE_NAME,
    Baseline,
    UtilityEvaluator,
    evaluate_set,
    evaluate_utility,
    real_only_baseline,
)
from synthlens.utility.protocols import PROTOCOLS, UtilityConfig

__all__ = [
    "ARCHITECTURES",
    "BASELINE_NAME",
    "PROTOCOLS",
    "Baseline",
    "ResNet18",
    "SmallCNN",
    "TrainConfig",
    "TrainedClassifier",
    "UtilityConfig",
    "UtilityEvaluator",
    "evaluate_set",
    "evaluate_utility",
    "real_only_baseline",
    "train_classifier",
]
