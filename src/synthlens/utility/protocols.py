"""What each utility protocol trains on, and the settings that control it.

A protocol compares two *arms* trained with the same seeds: the arm that sees the
synthetic set and the real-only arm it is measured against.

================================  =========================================  ==============
protocol                          synthetic arm trains on                    baseline arm
================================  =========================================  ==============
``augment``                       real train + synthetic (``augment_ratio``)  real train
``synthetic_only`` (TSTR)         synthetic only                              real train
``low_data``                      ``low_data_fraction`` of real train         that same
                                  (stratified) + synthetic                    fraction
``cross_task``                    the ``augment`` classifier's penultimate    real train's
                                  features, fed to a linear model fitted on   classifier
                                  a second labelled dataset
``cross_task_synthetic_only``     as above, ``synthetic_only`` classifier     real train
``cross_task_low_data``           as above, ``low_data`` classifier           low fraction
================================  =========================================  ==============

The synthetic share is ``augment_ratio`` synthetic images per real training image (1.0:
as many synthetic as real images), drawn per seed and stratified by the synthetic set's own
class mix; a smaller set is used whole. ``synthetic_only`` and ``low_data`` use the same
draw, so the three protocols see the same synthetic images at a given seed.

By default (``fixed_steps``) every arm takes the same number of optimiser steps, that of
``classifier.epochs`` passes over the real training split. Otherwise adding a copy of the
training data would "help" only by doubling the training time, and the 10 % low-data arm
would be under-trained.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import numpy as np

from synthlens.data.dataset import ImageSet
from synthlens.data.splits import stratified_indices
from synthlens.errors import InputError, SettingError
from synthlens.nets.classifiers import TrainConfig
from synthlens.settings import check_names
from synthlens.utility.scores import TaskType

#: Protocols that train a classifier on (part of) the synthetic set.
TRAINING_PROTOCOLS: tuple[str, ...] = ("augment", "synthetic_only", "low_data")
#: Cross-task protocols: which trained classifier provides the features.
CROSS_TASK_SOURCES: dict[str, str] = {
    "cross_task": "augment",
    "cross_task_synthetic_only": "synthetic_only",
    "cross_task_low_data": "low_data",
}
PROTOCOLS: tuple[str, ...] = (*TRAINING_PROTOCOLS, *CROSS_TASK_SOURCES)
#: The real-only arm each training protocol is compared against.
BASELINE_ARM: dict[str, str] = {"augment": "real", "synthetic_only": "real",
                                "low_data": "real_low"}
TASKS: tuple[str, ...] = ("auto", "binary", "multiclass", "ordinal", "multilabel")
CROSS_TASK_MODELS: tuple[str, ...] = ("logistic", "linear_svm")
_SOURCE = "utility config"


def protocol_arm(protocol: str) -> str:
    """The arm (``augment``, ``synthetic_only``, ``low_data``) a protocol scores."""
    return CROSS_TASK_SOURCES.get(protocol, protocol)


def baseline_arm(protocol: str) -> str:
    """The real-only arm (``real`` or ``real_low``) a protocol is compared against."""
    return BASELINE_ARM[protocol_arm(protocol)]


def default_classifier() -> TrainConfig:
    """The utility classifier when a budget names none (the `standard` budget's): the small
    CNN at width 16, tuned on PneumoniaMNIST for 2 CPU cores (see docs/benchmarks.md)."""
    return TrainConfig(arch="small_cnn", epochs=6, batch_size=64, width=16, convs_per_block=2,
                       lr=4e-3, augment_intensity=0.2)


@dataclass(frozen=True)
class UtilityConfig:
    """Settings of the utility stage; a budget's ``utility:`` mapping via :meth:`from_dict`.

    Parameters
    ----------
    seeds:
        Training seeds; every protocol and its real-only baseline use the same ones.
    classifier:
        The classifier and its training schedule (see :class:`TrainConfig`).
    protocols:
        Protocols to run; ``None`` runs ``augment``, ``synthetic_only`` and ``low_data``.
        ``cross_task`` is added whenever a cross-task dataset is given.
    augment_ratio:
        Synthetic images per real training image in ``augment`` (1.0 = 1:1); also caps the
        synthetic images of ``synthetic_only`` and ``low_data``.
    low_data_fraction:
        Share of the real training split kept by ``low_data`` (stratified, at least
        ``min(2, class size)`` per class).
    task:
        ``auto`` (the task the dataset declares, :attr:`~synthlens.data.RealData.task`, such
        as ``ordinal`` for RetinaMNIST; else binary for two classes, multi-class for more),
        ``binary``, ``multiclass``,
        ``ordinal`` (adds quadratic-weighted kappa) or ``multilabel`` (not supported: an
        error that says so).
    cross_task_model:
        ``logistic`` (logistic regression) or ``linear_svm``, fitted on standardised
        features with balanced class weights.
    n_bootstrap, ci_level:
        Bootstrap replicates over test images and the level of the percentile intervals.
    fixed_steps:
        Give every arm the optimiser steps of ``classifier.epochs`` passes over the real
        training split (see the module docstring).
    """

    seeds: tuple[int, ...] = (0, 1, 2)
    classifier: TrainConfig = field(default_factory=default_classifier)
    protocols: tuple[str, ...] | None = None
    augment_ratio: float = 1.0
    low_data_fraction: float = 0.1
    task: str = "auto"
    cross_task_model: str = "logistic"
    n_bootstrap: int = 1000
    ci_level: float = 0.95
    fixed_steps: bool = True

    def __post_init__(self) -> None:
        seeds = tuple(int(s) for s in self.seeds)
        if not seeds:
            raise SettingError("seeds", "is empty; give at least one training seed")
        if len(set(seeds)) != len(seeds):
            raise SettingError("seeds", f"{list(seeds)} repeat a seed")
        object.__setattr__(self, "seeds", seeds)
        if self.protocols is not None:
            protocols = tuple(str(p) for p in self.protocols)
            for j, protocol in enumerate(protocols):
                if protocol not in PROTOCOLS:
                    raise SettingError(f"protocols[{j}]", f"unknown protocol {protocol!r}",
                                       PROTOCOLS)
            if not protocols:
                raise SettingError("protocols", "is empty")
            object.__setattr__(self, "protocols", tuple(dict.fromkeys(protocols)))
        if not (math.isfinite(self.augment_ratio) and self.augment_ratio > 0):
            raise SettingError("augment_ratio", f"must be a positive number, got "
                                                f"{self.augment_ratio!r}")
        if not 0 < self.low_data_fraction < 1:
            raise SettingError("low_data_fraction", f"must lie in (0, 1), got "
                                                    f"{self.low_data_fraction!r}")
        if self.task not in TASKS:
            raise SettingError("task", f"unknown task {self.task!r}", TASKS)
        if self.cross_task_model not in CROSS_TASK_MODELS:
            raise SettingError("cross_task_model", f"unknown cross_task_model "
                                                   f"{self.cross_task_model!r}",
                               CROSS_TASK_MODELS)
        if int(self.n_bootstrap) < 0:
            raise SettingError("n_bootstrap", f"must be >= 0, got {self.n_bootstrap!r}")
        if not 0 < self.ci_level < 1:
            raise SettingError("ci_level", f"must lie in (0, 1), got {self.ci_level!r}")

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> UtilityConfig:
        """Build from a budget's ``utility:`` mapping (``classifier`` is a nested mapping).

        Keys left out keep their defaults; classifier keys left out keep those of
        :func:`default_classifier`.
        """
        values = dict(values or {})
        check_names(values, [f.name for f in fields(cls)], "key of the utility settings")
        classifier = values.pop("classifier", None)
        if classifier is not None:
            if not isinstance(classifier, dict):
                raise SettingError("classifier", "must be a mapping of settings")
            base = default_classifier().to_dict()
            try:
                values["classifier"] = TrainConfig.from_dict({**base, **classifier})
            except SettingError as err:
                raise err.within("classifier") from None
        for key in ("seeds", "protocols"):
            if values.get(key) is not None:
                if isinstance(values[key], str | bytes) or not hasattr(values[key], "__iter__"):
                    raise SettingError(key, f"must be a list, got {values[key]!r}")
                values[key] = tuple(values[key])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["seeds"] = list(self.seeds)
        out["protocols"] = None if self.protocols is None else list(self.protocols)
        return out

    def resolve_protocols(self, has_cross_task_data: bool) -> tuple[str, ...]:
        """The protocols to run.

        ``None`` means ``augment``, ``synthetic_only`` and ``low_data``. Whenever a
        cross-task dataset is given, ``cross_task`` is added (if ``augment`` runs), so that
        budgets need not know whether a run has one; naming a cross-task protocol without
        its data is an error.
        """
        protocols = self.protocols or TRAINING_PROTOCOLS
        missing = [p for p in protocols if p in CROSS_TASK_SOURCES]
        if missing and not has_cross_task_data:
            raise InputError(_SOURCE, f"protocol {missing[0]!r} needs a second labelled "
                                      "dataset (cross_task_data), and none was given")
        if has_cross_task_data and "augment" in protocols and "cross_task" not in protocols:
            protocols = (*protocols, "cross_task")
        return tuple(protocols)

    def resolve_task(self, n_classes: int, declared: str | None = None) -> TaskType:
        """The task type for data with ``n_classes`` classes; ``auto`` follows the task the
        data declare (``declared``), if any."""
        if self.task == "multilabel":
            raise InputError(_SOURCE, "task 'multilabel': multi-label data (ChestMNIST-style) "
                                      "is not supported by the utility protocols: synthlens "
                                      "image sets hold one class label per image (the loaders "
                                      "reject label vectors), so there is no multi-label "
                                      "training or mean-AUROC scoring to run")
        if self.task == "binary" and n_classes != 2:
            raise InputError(_SOURCE, f"task 'binary' but the data have {n_classes} classes")
        if self.task == "ordinal":
            return "ordinal"
        if self.task == "auto" and declared in ("ordinal", "multiclass"):
            return declared  # type: ignore[return-value]
        if self.task == "auto":
            return "binary" if n_classes == 2 else "multiclass"
        return "binary" if n_classes == 2 else "multiclass"

    def train_config(self, n_real_train: int) -> TrainConfig:
        """The classifier settings every arm uses (the step count fixed, if asked)."""
        if not self.fixed_steps:
            return self.classifier
        steps = self.classifier.epochs * max(1, math.ceil(n_real_train /
                                                          self.classifier.batch_size))
        return replace(self.classifier, steps=steps)


# Stream ids keep the subsampling draws of different purposes independent of each other.
_LOW_STREAM, _SYNTHETIC_STREAM = 1, 2


def low_data_subset(train: ImageSet, fraction: float, seed: int) -> ImageSet:
    """The ``fraction`` of the real training split used by ``low_data`` at ``seed``."""
    rng = np.random.default_rng([seed, _LOW_STREAM])
    index = stratified_indices(train.labels, round(fraction * len(train)), rng,
                               min_per_class=2)
    return train.subset(index, split=f"{train.split}[low {fraction:g}]")


def synthetic_draw(synthetic: ImageSet, n_real_train: int, ratio: float,
                   seed: int) -> ImageSet:
    """The synthetic images a training arm uses at ``seed``: ``ratio * n_real_train`` of
    them (stratified by the set's class mix), or all of them if the set is smaller."""
    wanted = round(ratio * n_real_train)
    if wanted >= len(synthetic):
        return synthetic
    rng = np.random.default_rng([seed, _SYNTHETIC_STREAM])
    index = stratified_indices(synthetic.labels, wanted, rng, min_per_class=1)
    return synthetic.subset(index)


def arm_training_sets(arm: str, real_train: ImageSet, synthetic: ImageSet | None,
                      config: UtilityConfig, seed: int) -> list[ImageSet]:
    """The training sets of one arm at one seed."""
    if arm == "real":
        return [real_train]
    if arm == "real_low":
        return [low_data_subset(real_train, config.low_data_fraction, seed)]
    if synthetic is None:
        raise ValueError(f"arm {arm!r} needs a synthetic set")
    drawn = synthetic_draw(synthetic, len(real_train), config.augment_ratio, seed)
    if arm == "augment":
        return [real_train, drawn]
    if arm == "synthetic_only":
        return [drawn]
    if arm == "low_data":
        return [low_data_subset(real_train, config.low_data_fraction, seed), drawn]
    raise ValueError(f"unknown arm {arm!r}")
