"""The utility stage: train every protocol's classifier and score it against real-only.

:class:`UtilityEvaluator` holds one real dataset and its settings; the real-only arms are
trained once (lazily) and shared by every synthetic set. The pipeline calls
:meth:`~UtilityEvaluator.baseline_results` for the ``real-only`` entry and
:meth:`~UtilityEvaluator.evaluate_set` once per synthetic set, writing each set's results
as it goes; :func:`evaluate_utility` does all of it in one call.

With ``cache_dir`` every trained arm (one classifier at one seed) leaves an ``.npz`` of its
test-split outputs (and cross-task features), keyed by a hash of everything that decides
it (data hashes, seed, classifier settings, protocol settings). A rerun, or a run killed
midway, reuses them and trains only what is missing.

Metric names: ``utility.<protocol>.<score>`` (mean over seeds, on the real test split, or
on the cross-task dataset's test split) and ``utility.<protocol>.gain_<score>`` (mean
paired difference from the real-only arm, in percentage points). All are "higher is
better".
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from torch.nn import functional as F

from synthlens.data.dataset import ImageSet, RealData
from synthlens.data.tensors import to_images, to_tensor
from synthlens.errors import InputError
from synthlens.hashing import json_sha256
from synthlens.io import read_json, read_npz, write_json, write_npz
from synthlens.metrics.base import MetricResult
from synthlens.nets.classifiers import train_classifier
from synthlens.progress import progress_bar
from synthlens.stats import percentile_ci
from synthlens.utility.protocols import (
    CROSS_TASK_SOURCES,
    UtilityConfig,
    arm_training_sets,
    baseline_arm,
    protocol_arm,
)
from synthlens.utility.scores import TaskType, compute_scores, per_class_scores, score_names
from synthlens.utility.stats import (
    bootstrap_weights,
    mean_over_seeds,
    seed_draws,
    wilcoxon_note,
    wilcoxon_p,
)

BASELINE_NAME = "real-only"
#: Bump when a change alters what a cached arm holds or how it is trained.
CACHE_VERSION = 1
_REAL_ARMS = ("real", "real_low")
#: A bootstrap interval needs at least this many finite replicates (else it is ``None``).
MIN_CI_REPLICATES = 10


@dataclass
class ArmRun:
    """One trained classifier's outputs: class probabilities on the real test split and,
    when a cross-task dataset is set, its penultimate features there."""

    arm: str
    seed: int
    test_proba: np.ndarray
    n_train: dict[str, int]
    val_auroc: float
    cross_train: np.ndarray | None = None
    cross_test: np.ndarray | None = None
    seconds: float = 0.0
    cached: bool = False
    #: test-split scores of the cross-task linear model, once fitted
    cross_scores: np.ndarray | None = None


def match_images(images: np.ndarray, image_shape: tuple[int, ...]) -> np.ndarray:
    """Convert a cross-task dataset's images to the main dataset's channels and size:
    RGB -> grey by luminance (ITU-R 601), grey -> RGB by repetition, bilinear
    (anti-aliased) resizing."""
    rgb_wanted = len(image_shape) == 3
    if images.ndim == 4 and not rgb_wanted:
        grey = images.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        images = np.clip(np.rint(grey), 0, 255).astype(np.uint8)
    elif images.ndim == 3 and rgb_wanted:
        images = np.repeat(images[..., None], 3, axis=-1)
    if tuple(images.shape[1:3]) != tuple(image_shape[:2]):
        x = F.interpolate(to_tensor(images), size=tuple(image_shape[:2]), mode="bilinear",
                          align_corners=False, antialias=True)
        images = to_images(x)
    return images


def _check_set(real: RealData, name: str, synthetic: ImageSet) -> None:
    if not isinstance(synthetic, ImageSet):
        raise InputError(f"synthetic set {name!r}", f"expected an ImageSet, got "
                                                    f"{type(synthetic).__name__}")
    if synthetic.class_names != real.class_names:
        raise InputError(synthetic.source, f"synthetic set {name!r} has classes "
                                           f"{list(synthetic.class_names)}, the real data "
                                           f"{list(real.class_names)}")
    if synthetic.image_shape != real.image_shape:
        raise InputError(synthetic.source, f"synthetic set {name!r} has images shaped "
                                           f"{synthetic.image_shape}, the real data "
                                           f"{real.image_shape}")
    if len(synthetic) < 2:
        raise InputError(synthetic.source, f"synthetic set {name!r} has {len(synthetic)} "
                                           "image(s); a classifier needs at least 2")


class UtilityEvaluator:
    """Utility of synthetic sets for one real dataset.

    Parameters
    ----------
    real:
        The real data. ``real.train`` is the part generators were fitted on (the harness
        has already removed its holdout share); ``real.val`` selects models, ``real.test``
        scores them and nothing trains on it.
    config:
        :class:`UtilityConfig` (or a budget's ``utility:`` mapping).
    cross_task_data:
        A second labelled dataset for the cross-task protocols: a linear model is fitted
        on its train split and scored on its test split.
    device:
        ``"cpu"`` or ``"cuda"``; CPU runs are bit-for-bit reproducible for given seeds.
    seed:
        Seed of the bootstrap over test images (training seeds are ``config.seeds``).
    cache_dir:
        Folder for per-arm outputs, so that a rerun trains only what is missing.
    """

    def __init__(self, real: RealData, *, config: UtilityConfig | Mapping[str, Any] | None
                 = None, cross_task_data: RealData | None = None, device: str = "cpu",
                 seed: int = 0, progress: bool = True,
                 cache_dir: str | Path | None = None) -> None:
        if not isinstance(real, RealData):
            raise TypeError(f"real must be RealData, got {type(real).__name__}")
        if config is None or isinstance(config, Mapping):
            config = UtilityConfig.from_dict(dict(config or {}))
        self.real = real
        self.config = config
        self.cross_task_data = cross_task_data
        self.device = device
        self.seed = int(seed)
        self.progress = progress
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self.protocols = config.resolve_protocols(cross_task_data is not None)
        self.task: TaskType = config.resolve_task(real.train.n_classes, declared=real.task)
        self.train_config = config.train_config(len(real.train))
        self._cross_images: tuple[np.ndarray, np.ndarray] | None = None
        self.cross_task: TaskType | None = None
        if cross_task_data is not None and any(p in CROSS_TASK_SOURCES for p in self.protocols):
            if not isinstance(cross_task_data, RealData):
                raise TypeError("cross_task_data must be RealData, got "
                                f"{type(cross_task_data).__name__}")
            self._cross_images = (match_images(cross_task_data.train.images, real.image_shape),
                                  match_images(cross_task_data.test.images, real.image_shape))
            self.cross_task = UtilityConfig(task="auto").resolve_task(
                cross_task_data.train.n_classes, declared=cross_task_data.task)
        self._baseline_runs: dict[tuple[str, int], ArmRun] = {}
        self._weights: dict[str, np.ndarray] = {}
        #: Wall-clock and CPU (all threads) seconds spent training and predicting, per
        #: (set name, arm, seed); cache hits are 0.
        self.timings: dict[tuple[str, str, int], float] = {}
        self.cpu_timings: dict[tuple[str, str, int], float] = {}

    # ------------------------------------------------------------------ training arms
    def _arm_key(self, arm: str, seed: int, synthetic: ImageSet | None) -> str:
        spec: dict[str, Any] = {
            "version": CACHE_VERSION, "arm": arm, "seed": seed,
            "real": self.real.hashes(), "classifier": self.train_config.to_dict(),
            "synthetic": None if synthetic is None else synthetic.sha256(),
        }
        if arm in ("real_low", "low_data"):
            spec["low_data_fraction"] = self.config.low_data_fraction
        if arm not in _REAL_ARMS:
            spec["augment_ratio"] = self.config.augment_ratio
        if self._cross_images is not None:
            spec["cross"] = self.cross_task_data.hashes()  # type: ignore[union-attr]
        return json_sha256(spec, compact=False)[:32]

    def _load_cached(self, path: Path, arm: str, seed: int) -> ArmRun | None:
        if not path.exists():
            return None
        data = read_npz(path)
        meta = json.loads(str(data["meta"]))
        if self._cross_images is not None and "cross_train" not in data:
            return None
        return ArmRun(arm, seed, data["test_proba"], meta["n_train"], meta["val_auroc"],
                      data.get("cross_train"), data.get("cross_test"), 0.0, cached=True)

    def _run_arm(self, name: str, arm: str, seed: int, synthetic: ImageSet | None) -> ArmRun:
        path = None
        if self.cache_dir is not None:
            path = self.cache_dir / f"{arm}-{seed}-{self._arm_key(arm, seed, synthetic)}.npz"
            cached = self._load_cached(path, arm, seed)
            if cached is not None:
                self.timings[(name, arm, seed)] = self.cpu_timings[(name, arm, seed)] = 0.0
                return cached
        sets = arm_training_sets(arm, self.real.train, synthetic, self.config, seed)
        start, cpu_start = time.perf_counter(), time.process_time()
        clf = train_classifier(sets, self.real.val, config=self.train_config, seed=seed,
                               device=self.device, progress=self.progress,
                               desc=f"{name} {arm} seed {seed}")
        test_proba = clf.predict_proba(self.real.test.images)
        cross_train = cross_test = None
        if self._cross_images is not None:
            cross_train, cross_test = (clf.embed(x) for x in self._cross_images)
        seconds = time.perf_counter() - start
        self.timings[(name, arm, seed)] = seconds
        self.cpu_timings[(name, arm, seed)] = time.process_time() - cpu_start
        n_real = 0 if arm == "synthetic_only" else len(sets[0])  # real data come first
        n_train = {"real": n_real, "synthetic": sum(len(s) for s in sets) - n_real}
        run = ArmRun(arm, seed, test_proba, n_train,
                     max(h["val_auroc"] for h in clf.history), cross_train, cross_test,
                     seconds)
        if path is not None:
            arrays = {"test_proba": test_proba,
                      "meta": np.array(json.dumps({"n_train": n_train,
                                                   "val_auroc": run.val_auroc,
                                                   "seconds": seconds}))}
            if cross_train is not None and cross_test is not None:
                arrays.update(cross_train=cross_train, cross_test=cross_test)
            write_npz(path, **arrays)
        return run

    def _baseline_run(self, arm: str, seed: int) -> ArmRun:
        if (arm, seed) not in self._baseline_runs:
            self._baseline_runs[(arm, seed)] = self._run_arm(BASELINE_NAME, arm, seed, None)
        return self._baseline_runs[(arm, seed)]

    # ------------------------------------------------------------------ scoring
    def _eval_target(self, protocol: str) -> tuple[np.ndarray, tuple[str, ...], TaskType, str]:
        """Labels, class names, task type and split name a protocol is scored on."""
        if protocol in CROSS_TASK_SOURCES:
            data = self.cross_task_data
            assert data is not None and self.cross_task is not None
            return data.test.labels, data.class_names, self.cross_task, f"{data.name}/test"
        return self.real.test.labels, self.real.class_names, self.task, \
            f"{self.real.name}/test"

    def _weights_for(self, split: str, n: int) -> np.ndarray | None:
        if self.config.n_bootstrap == 0:
            return None
        if split not in self._weights:
            self._weights[split] = bootstrap_weights(n, self.config.n_bootstrap, self.seed)
        return self._weights[split]

    def _linear_scores(self, run: ArmRun) -> np.ndarray:
        """Test-split scores of the linear model fitted on a run's cross-task features."""
        if run.cross_scores is None:
            from sklearn.linear_model import LogisticRegression
            from sklearn.pipeline import make_pipeline
            from sklearn.preprocessing import StandardScaler
            from sklearn.svm import LinearSVC

            assert self.cross_task_data is not None
            assert run.cross_train is not None and run.cross_test is not None
            if self.config.cross_task_model == "logistic":
                model = LogisticRegression(class_weight="balanced", max_iter=5000)
            else:
                model = LinearSVC(class_weight="balanced", max_iter=20000,
                                  random_state=run.seed)
            pipe = make_pipeline(StandardScaler(), model)
            pipe.fit(run.cross_train.astype(np.float64), self.cross_task_data.train.labels)
            test = run.cross_test.astype(np.float64)
            if self.config.cross_task_model == "logistic":
                scores = pipe.predict_proba(test)
            else:
                decision = pipe.decision_function(test)
                scores = np.stack([-decision, decision], axis=1) if decision.ndim == 1 \
                    else decision
            run.cross_scores = scores
        return run.cross_scores

    def _protocol_scores(self, protocol: str, runs: list[ArmRun]) -> list[np.ndarray]:
        if protocol in CROSS_TASK_SOURCES:
            return [self._linear_scores(run) for run in runs]
        return [run.test_proba for run in runs]

    def _summaries(self, protocol: str, per_seed: list[np.ndarray]
                   ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray | None],
                              dict[str, np.ndarray]]:
        """Per-seed scores ``(S,)``, bootstrap replicates ``(S, B)`` and per-class values
        ``(S, K)`` of one arm under one protocol."""
        labels, _, task, split = self._eval_target(protocol)
        weights = self._weights_for(split, len(labels))
        points = [compute_scores(labels, s, task) for s in per_seed]
        values = {k: np.array([p[k][0] for p in points]) for k in score_names(task)}
        boots: dict[str, np.ndarray | None] = dict.fromkeys(values)
        if weights is not None:
            reps = [compute_scores(labels, s, task, weights) for s in per_seed]
            boots = {k: np.stack([r[k] for r in reps]) for k in values}
        classes = [per_class_scores(labels, s) for s in per_seed]
        per_class = {k: np.stack([c[k] for c in classes]) for k in ("recall", "f1", "auroc")}
        return values, boots, per_class

    def _details(self, protocol: str, runs: list[ArmRun], arm: str) -> dict[str, Any]:
        labels, _, task, split = self._eval_target(protocol)
        details: dict[str, Any] = {
            "protocol": protocol, "arm": arm, "task": task, "eval_split": split,
            "n_eval": len(labels), "seeds": list(self.config.seeds),
            "n_seeds": len(self.config.seeds), "n_train": runs[0].n_train,
            "val_auroc_per_seed": [round(float(r.val_auroc), 6) for r in runs],
            "classifier": self.train_config.to_dict(),
        }
        if protocol in CROSS_TASK_SOURCES:
            assert self.cross_task_data is not None
            details["cross_task_dataset"] = self.cross_task_data.name
            details["cross_task_model"] = self.config.cross_task_model
            details["feature_source"] = arm
        return details

    def _ci_method(self) -> str:
        return (f"{self.config.ci_level:.0%} percentile two-level bootstrap "
                f"({self.config.n_bootstrap} replicates): seeds drawn with replacement, then "
                "test images (the same draws for both arms), mean over the drawn seeds; "
                "details.ci_test_images resamples test images only")

    def _cis(self, replicates: np.ndarray | None
             ) -> tuple[tuple[float, float] | None, tuple[float, float] | None]:
        """(two-level CI, test-images-only CI) of the mean over seeds."""
        if replicates is None:
            return None, None
        draws = seed_draws(replicates.shape[0], replicates.shape[1], self.seed)
        level = self.config.ci_level
        return (percentile_ci(mean_over_seeds(replicates, draws), level,
                              min_finite=MIN_CI_REPLICATES),
                percentile_ci(mean_over_seeds(replicates), level, min_finite=MIN_CI_REPLICATES))

    @staticmethod
    def _per_class(score: str, class_names: tuple[str, ...], per_class: dict[str, np.ndarray],
                   scale: float = 1.0) -> dict[str, float] | None:
        source = {"balanced_accuracy": "recall", "f1_macro": "f1", "auroc": "auroc"}.get(score)
        if source is None or (score == "auroc" and len(class_names) == 2):
            return None
        means = per_class[source].mean(axis=0) * scale
        return {c: float(v) for c, v in zip(class_names, means, strict=True)}

    def _score_results(self, protocol: str, runs: list[ArmRun], arm: str,
                       summary: tuple[dict[str, np.ndarray], dict[str, np.ndarray | None],
                                      dict[str, np.ndarray]]) -> dict[str, MetricResult]:
        values, boots, per_class = summary
        _, class_names, _, _ = self._eval_target(protocol)
        base_details = self._details(protocol, runs, arm)
        out = {}
        for score, per_seed in values.items():
            ci, ci_images = self._cis(boots[score])
            details = {**base_details, "per_seed": [float(v) for v in per_seed],
                       "std": float(per_seed.std(ddof=1)) if len(per_seed) > 1 else 0.0,
                       "ci_method": self._ci_method(),
                       "ci_test_images": None if ci_images is None else list(ci_images)}
            if arm in _REAL_ARMS:
                details["baseline_for"] = protocol
            name = f"utility.{protocol}.{score}"
            out[name] = MetricResult(name, float(per_seed.mean()), "higher", ci,
                                     self._per_class(score, class_names, per_class), None,
                                     details)
        return out

    def _gain_results(self, protocol: str, runs: list[ArmRun],
                      summary: tuple[dict[str, np.ndarray], dict[str, np.ndarray | None],
                                     dict[str, np.ndarray]],
                      base: tuple[dict[str, np.ndarray], dict[str, np.ndarray | None],
                                  dict[str, np.ndarray]]) -> dict[str, MetricResult]:
        values, boots, per_class = summary
        b_values, b_boots, b_per_class = base
        _, class_names, _, _ = self._eval_target(protocol)
        n = len(self.config.seeds)
        out = {}
        diff_class = {k: per_class[k] - b_per_class[k] for k in per_class}
        for score in values:
            diffs = 100.0 * (values[score] - b_values[score])
            boot, b_boot = boots[score], b_boots[score]
            ci, ci_images = self._cis(None if boot is None or b_boot is None
                                      else 100.0 * (boot - b_boot))
            details = {
                "protocol": protocol, "arm": protocol_arm(protocol),
                "baseline": BASELINE_NAME, "baseline_arm": baseline_arm(protocol),
                "unit": "percentage points", "per_seed": [float(d) for d in diffs],
                "std": float(diffs.std(ddof=1)) if n > 1 else 0.0,
                "n_seeds": n, "seeds": list(self.config.seeds),
                "wilcoxon_p": wilcoxon_p(diffs), "wilcoxon_note": wilcoxon_note(n),
                "value_synthetic": float(values[score].mean()),
                "value_baseline": float(b_values[score].mean()),
                "ci_method": self._ci_method() + "; of the paired difference",
                "ci_test_images": None if ci_images is None else list(ci_images),
            }
            if protocol in CROSS_TASK_SOURCES:
                assert self.cross_task_data is not None
                details["cross_task_dataset"] = self.cross_task_data.name
                details["cross_task_model"] = self.config.cross_task_model
            name = f"utility.{protocol}.gain_{score}"
            out[name] = MetricResult(name, float(diffs.mean()), "higher", ci,
                                     self._per_class(score, class_names, diff_class, 100.0),
                                     None, details)
        return out

    # ------------------------------------------------------------------ public API
    def fingerprint(self) -> dict[str, Any]:
        """What the real-only arms depend on: data hashes and every setting."""
        return {"version": CACHE_VERSION, "real": self.real.hashes(),
                "config": self.config.to_dict(), "protocols": list(self.protocols),
                "task": self.task, "train_config": self.train_config.to_dict(),
                "cross": None if self._cross_images is None
                else self.cross_task_data.hashes()}  # type: ignore[union-attr]

    def baseline(self) -> Baseline:
        """The real-only arms and their results, as a :class:`Baseline` that can be saved
        and handed to :meth:`from_baseline` later (trains the arms on first use)."""
        results = self.baseline_results()
        return Baseline(self.fingerprint(), self.config, self.protocols,
                        dict(self._baseline_runs), results)

    def use_baseline(self, baseline: Baseline) -> None:
        """Reuse a saved baseline's real-only arms instead of training them again; raises
        ``ValueError`` if it was made for other data or settings."""
        mine, theirs = self.fingerprint(), baseline.fingerprint
        if mine != theirs:
            differ = sorted(k for k in mine if mine.get(k) != theirs.get(k))
            raise ValueError(f"the utility baseline was made for other {differ}; train a "
                             "new one")
        self._baseline_runs.update(baseline.runs)

    def baseline_results(self) -> dict[str, MetricResult]:
        """The ``real-only`` entry: for each protocol, the score of the real-only arm it is
        compared against (trains the real-only arms on first use)."""
        out: dict[str, MetricResult] = {}
        for protocol in self.protocols:
            arm = baseline_arm(protocol)
            runs = [self._baseline_run(arm, s) for s in self.config.seeds]
            summary = self._summaries(protocol, self._protocol_scores(protocol, runs))
            out.update(self._score_results(protocol, runs, arm, summary))
        return out

    def evaluate_set(self, name: str, synthetic: ImageSet, *,
                     protocols: list[str] | tuple[str, ...] | None = None
                     ) -> dict[str, MetricResult]:
        """Scores and gains of one synthetic set under every protocol (or the subset of
        them named in ``protocols``)."""
        if protocols is None:
            protocols = self.protocols
        unknown = [p for p in protocols if p not in self.protocols]
        if unknown:
            raise InputError("utility protocols", f"protocol {unknown[0]!r} is not among "
                                                  f"this evaluator's {list(self.protocols)}")
        if name == BASELINE_NAME:
            raise InputError(f"synthetic set {name!r}", f"the name {BASELINE_NAME!r} is "
                                                        "reserved for the real-only baseline")
        _check_set(self.real, name, synthetic)
        arms = list(dict.fromkeys(protocol_arm(p) for p in protocols))
        counts = synthetic.class_counts()
        missing = [self.real.class_names[c] for c in np.flatnonzero(counts == 0)]
        runs: dict[str, list[ArmRun]] = {}
        jobs = [(arm, s) for arm in arms for s in self.config.seeds]
        bar = progress_bar(jobs, desc=f"utility {name}", disable=not self.progress, leave=False)
        for arm, seed in bar:
            runs.setdefault(arm, []).append(self._run_arm(name, arm, seed, synthetic))
        bar.close()
        out: dict[str, MetricResult] = {}
        for protocol in protocols:
            arm, b_arm = protocol_arm(protocol), baseline_arm(protocol)
            base_runs = [self._baseline_run(b_arm, s) for s in self.config.seeds]
            summary = self._summaries(protocol, self._protocol_scores(protocol, runs[arm]))
            base = self._summaries(protocol, self._protocol_scores(protocol, base_runs))
            results = self._score_results(protocol, runs[arm], arm, summary)
            results.update(self._gain_results(protocol, runs[arm], summary, base))
            if missing:
                for result in results.values():
                    result.details["warning"] = (
                        f"the synthetic set has no images of {len(missing)} of "
                        f"{len(self.real.class_names)} classes ({', '.join(missing)})"
                        + (": a classifier trained on it alone never sees them"
                           if arm == "synthetic_only" else ""))
            wanted = round(self.config.augment_ratio * len(self.real.train))
            if len(synthetic) < wanted:
                for result in results.values():
                    result.details["synthetic_ratio_effective"] = (
                        len(synthetic) / len(self.real.train))
            out.update(results)
        return out


def evaluate_utility(real: RealData, synthetic_sets: Mapping[str, ImageSet], *,
                     protocols: list[str] | tuple[str, ...] | None = None,
                     config: UtilityConfig | Mapping[str, Any] | None = None,
                     device: str = "cpu", seed: int = 0, progress: bool = True,
                     cross_task_data: RealData | None = None,
                     cache_dir: str | Path | None = None
                     ) -> dict[str, dict[str, MetricResult]]:
    """Utility of every synthetic set, plus the real-only baseline under ``"real-only"``.

    ``protocols`` (when given) overrides ``config.protocols``. Returns
    ``{set name: {metric name: MetricResult}}``; see :class:`UtilityEvaluator` for the
    arguments and the module docstring for the metric names.
    """
    if config is None or isinstance(config, Mapping):
        config = UtilityConfig.from_dict(dict(config or {}))
    if protocols is not None:
        config = replace(config, protocols=tuple(protocols))
    evaluator = UtilityEvaluator(real, config=config, cross_task_data=cross_task_data,
                                 device=device, seed=seed, progress=progress,
                                 cache_dir=cache_dir)
    for name in synthetic_sets:
        if name == BASELINE_NAME:
            raise InputError(f"synthetic set {name!r}", f"the name {BASELINE_NAME!r} is "
                                                        "reserved for the real-only baseline")
    out = {BASELINE_NAME: evaluator.baseline_results()}
    for name, synthetic in synthetic_sets.items():
        out[name] = evaluator.evaluate_set(name, synthetic)
    return out


@dataclass
class Baseline:
    """The real-only arms of one real dataset and settings: per-seed test predictions (and
    cross-task features) that every synthetic set's gain is paired with, plus their
    results (the ``real-only`` entry)."""

    fingerprint: dict[str, Any]
    config: UtilityConfig
    protocols: tuple[str, ...]
    runs: dict[tuple[str, int], ArmRun]
    results: dict[str, MetricResult]

    FILES = ("baseline.json", "baseline.npz")

    def metrics(self) -> dict[str, MetricResult]:
        """The ``real-only`` entry of ``results.json``."""
        return dict(self.results)

    def save(self, folder: str | Path) -> None:
        """Write ``baseline.npz`` (arrays) then ``baseline.json`` (settings, results),
        each atomically."""
        folder = Path(folder)
        arrays: dict[str, np.ndarray] = {}
        runs = []
        for (arm, seed), run in sorted(self.runs.items()):
            arrays[f"{arm}__{seed}__test_proba"] = run.test_proba
            if run.cross_train is not None and run.cross_test is not None:
                arrays[f"{arm}__{seed}__cross_train"] = run.cross_train
                arrays[f"{arm}__{seed}__cross_test"] = run.cross_test
            runs.append({"arm": arm, "seed": seed, "n_train": run.n_train,
                         "val_auroc": run.val_auroc, "seconds": run.seconds})
        write_npz(folder / "baseline.npz", **arrays)
        write_json(folder / "baseline.json", {
            "fingerprint": self.fingerprint, "config": self.config.to_dict(),
            "protocols": list(self.protocols), "runs": runs,
            "metrics": {name: r.to_json() for name, r in self.results.items()}})

    @classmethod
    def load(cls, folder: str | Path) -> Baseline:
        folder = Path(folder)
        meta = read_json(folder / "baseline.json")
        arrays = read_npz(folder / "baseline.npz")
        runs = {}
        for entry in meta["runs"]:
            arm, seed = entry["arm"], int(entry["seed"])
            prefix = f"{arm}__{seed}__"
            runs[(arm, seed)] = ArmRun(arm, seed, arrays[prefix + "test_proba"],
                                       entry["n_train"], entry["val_auroc"],
                                       arrays.get(prefix + "cross_train"),
                                       arrays.get(prefix + "cross_test"),
                                       entry["seconds"], cached=True)
        results = {name: MetricResult.from_json(name, value)
                   for name, value in meta["metrics"].items()}
        return cls(meta["fingerprint"], UtilityConfig.from_dict(meta["config"]),
                   tuple(meta["protocols"]), runs, results)


def _config_with(config: UtilityConfig | Mapping[str, Any] | None,
                 protocols: list[str] | tuple[str, ...] | None) -> UtilityConfig:
    if config is None or isinstance(config, Mapping):
        config = UtilityConfig.from_dict(dict(config or {}))
    if protocols is not None:
        config = replace(config, protocols=tuple(protocols))
    return config


def real_only_baseline(train: ImageSet, val: ImageSet, test: ImageSet, *,
                       config: UtilityConfig | Mapping[str, Any] | None = None,
                       protocols: list[str] | tuple[str, ...] | None = None,
                       device: str = "cpu", progress: bool = True,
                       cross_task: RealData | None = None, seed: int = 0,
                       cache_dir: str | Path | None = None, name: str = "real") -> Baseline:
    """Train the real-only arms once (``train`` is real train minus the holdout)."""
    real = RealData(name, train, val, test, source=train.source)
    evaluator = UtilityEvaluator(real, config=_config_with(config, protocols),
                                 cross_task_data=cross_task, device=device, seed=seed,
                                 progress=progress, cache_dir=cache_dir)
    return evaluator.baseline()


def evaluate_set(synthetic: ImageSet, baseline: Baseline, train: ImageSet, val: ImageSet,
                 test: ImageSet, *, config: UtilityConfig | Mapping[str, Any] | None = None,
                 protocols: list[str] | tuple[str, ...] | None = None,
                 device: str = "cpu", progress: bool = True,
                 cross_task: RealData | None = None, seed: int = 0,
                 cache_dir: str | Path | None = None, name: str = "real",
                 set_name: str | None = None) -> dict[str, MetricResult]:
    """Scores and gains of one synthetic set against a saved :class:`Baseline`, which must
    come from the same data and settings (else ``ValueError``)."""
    real = RealData(name, train, val, test, source=train.source)
    evaluator = UtilityEvaluator(real, config=_config_with(config, protocols),
                                 cross_task_data=cross_task, device=device, seed=seed,
                                 progress=progress, cache_dir=cache_dir)
    evaluator.use_baseline(baseline)
    return evaluator.evaluate_set(set_name or synthetic.split, synthetic)
