"""The stages wired together: data -> generators -> features -> metrics -> utility ->
analysis -> report, each writing into the run folder and skipped on resume when its
inputs and config did not change.

All user input (data files, synthetic sets, config) is read and validated *before* the
run folder is created, so bad input exits with a clear message and leaves nothing behind.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import synthlens
from synthlens.config import STAGES, GeneratorSpec, RunConfig, resolve_config
from synthlens.data import (
    ImageSet,
    RealData,
    holdout_indices,
    load_dataset,
    load_imageset,
    load_synthetic,
    save_imageset,
)
from synthlens.errors import InputError, SettingError
from synthlens.generators import GENERATORS, get_generator, noise_reference, resolve_device
from synthlens.io import read_json, write_json
from synthlens.metrics.base import MetricResult
from synthlens.runfolder import Mode, RunFolder, fingerprint

log = logging.getLogger("synthlens")

SCHEMA_VERSION = "1.0"


@dataclass
class SetEntry:
    """One set to score: its images and where it came from."""

    name: str
    kind: str  # "generated" | "user" | "reference"
    images: ImageSet
    generator: str | None = None
    sample_options: Mapping[str, Any] | None = None
    files: dict[str, str] | None = None


@dataclass
class Inputs:
    """Everything read from the user's files, validated, before the run folder exists."""

    config: dict[str, Any]  # the resolved config, as config.yaml holds it
    real: RealData
    user_sets: dict[str, ImageSet]
    cross_task: RealData | None
    settings: RunConfig  # the same config, typed


def load_inputs(config: Mapping[str, Any]) -> Inputs:
    """Check the config (a :class:`RunConfig`, or its resolved dict form) and read and
    validate the dataset, the user's synthetic sets and the extractors' weights; also
    check that every generator family and extractor takes the data's image size."""
    settings = RunConfig.from_resolved(config)
    dataset = settings.dataset
    real = load_dataset(dataset.source, size=dataset.size, cache_dir=dataset.cache_dir,
                        download=dataset.download, seed=settings.seed)
    _check_image_shape(settings, real)
    user_sets = {}
    for name, path in settings.synthetic.items():
        images = load_synthetic(path, real.class_names, name)
        if images.image_shape != real.image_shape:
            raise InputError(path, f"images are {images.image_shape} but the real data "
                                   f"({real.source}) is {real.image_shape}")
        user_sets[name] = images
    from synthlens.features import get_extractor

    for name in settings.features.extractors:
        get_extractor(name, **settings.extractor_options(name))  # weights found, options valid
    cross = settings.utility.cross_task_dataset
    cross_task = load_dataset(cross, seed=settings.seed) if cross else None
    return Inputs(settings.to_dict(), real, user_sets, cross_task, settings)


def _check_image_shape(settings: RunConfig, real: RealData) -> None:
    """Every generator family and extractor takes the real data's images."""
    from synthlens.features import available_extractors, extractor_class

    checks = [(f"generators[{i}]", GENERATORS[spec.family])
              for i, spec in enumerate(settings.generators)]
    checks += [(f"features.extractors[{j}]", extractor_class(name))
               for j, name in enumerate(settings.features.extractors)
               if name in available_extractors()]
    for key, declared in checks:
        try:
            declared.check_image_shape(real.image_shape)
        except ValueError as error:
            raise SettingError(key, f"{error} (the images of {real.name})",
                               file=settings.source) from None


def sample_counts(train: ImageSet, fraction: float) -> np.ndarray:
    """Images to draw per class: the real training split's counts, scaled."""
    return np.maximum(1, np.round(train.class_counts() * fraction)).astype(np.int64)


def _fixed(predicted: np.ndarray | None) -> Callable[[np.ndarray], np.ndarray] | None:
    """A classifier stand-in that returns predictions already made for the same images."""
    if predicted is None:
        return None
    return lambda _images: predicted


class Pipeline:
    """One run: resolved config + validated inputs + run folder."""

    def __init__(self, inputs: Inputs, run: RunFolder, *, progress: bool = True,
                 on_stage: Callable[[str], None] | None = None) -> None:
        self.inputs = inputs
        self.config = inputs.config
        self.run = run
        self.progress = progress
        self.on_stage = on_stage or (lambda message: log.info(message))
        self.settings = inputs.settings
        self.seed = int(self.config["seed"])
        self.device = resolve_device(self.config["device"])
        self.budget = self.config["budget_settings"]
        self.sets: dict[str, SetEntry] = {}

    # ----------------------------------------------------------------- stage: data
    def prepare_data(self) -> None:
        real = self.inputs.real
        index = holdout_indices(real.train, self.config["holdout_fraction"], self.seed)
        mask = np.zeros(len(real.train), dtype=bool)
        mask[index] = True
        self.fit_train = real.train.subset(np.flatnonzero(~mask), split="train")
        self.holdout = real.train.subset(index, split="holdout")
        key = fingerprint({"data": real.hashes(), "holdout": self.config["holdout_fraction"],
                           "seed": self.seed})
        if self.run.is_done("data", key):
            return
        with self.run.stage("data", key) as folder:
            summary = real.describe()
            summary["holdout"] = {"fraction": self.config["holdout_fraction"],
                                  "n": len(self.holdout), "seed": self.seed,
                                  "counts": self.holdout.class_counts().tolist()}
            summary["fit_train_counts"] = self.fit_train.class_counts().tolist()
            write_json(folder / "summary.json", summary)
            np.save(folder / "holdout_indices.npy", index)  # small; rewritten whole
            save_imageset(folder / "train.npz", self.fit_train)
            save_imageset(folder / "holdout.npz", self.holdout)

    # ----------------------------------------------------------------- stage: generators
    def generate(self) -> None:
        """Train every configured generator and collect every set to score.

        Each set's images end up in ``sets/<name>/samples.npz`` (the report's grids read
        them); a generator's model, checkpoints and training curves stay in
        ``generators/<name>/``.
        """
        counts = sample_counts(self.inputs.real.train,
                               self.settings.budget_settings.sample_fraction)
        for spec in self.settings.generators:
            self._train_generator(spec, counts)
        for ref in self.config["references"]:
            if ref == "real-holdout":
                entry = SetEntry(ref, "reference", self.holdout, "real-holdout")
            else:
                images = noise_reference(self.fit_train, counts, seed=self.seed, name=ref)
                entry = SetEntry(ref, "reference", images, "noise")
            self._add_set(entry)
        for name, images in self.inputs.user_sets.items():
            self._add_set(SetEntry(name, "user", images))

    def _add_set(self, entry: SetEntry, curves: str | None = None) -> None:
        path = self.run.path("sets", entry.name, "samples.npz")
        if entry.kind != "generated":  # generated sets were written by their stage
            save_imageset(path, entry.images)
        entry.files = {"samples": f"sets/{entry.name}/samples.npz"}
        if curves:
            entry.files["curves"] = curves
        self.sets[entry.name] = entry

    def _train_generator(self, spec: GeneratorSpec, counts: np.ndarray) -> None:
        family, name = spec.family, spec.name
        budget = self.settings.budget_settings.generator_budget(family)
        variants = spec.variants()
        stage = f"generators/{name}"
        key = fingerprint({"spec": spec.to_dict(), "budget": budget.to_dict(),
                           "seed": self.seed, "train": self.fit_train.sha256(),
                           "counts": counts.tolist()})
        if not self.run.is_done(stage, key):
            self.on_stage(f"training generator {name} ({family})")
            with self.run.stage(stage, key) as folder:
                generator = get_generator(family, **spec.params)
                generator.fit(self.fit_train, budget, device=self.device, seed=self.seed,
                              workdir=folder, progress=self.progress)
                if generator.resumed_from is not None:
                    part, step = generator.resumed_from
                    self.on_stage(f"generator {name} continued from its checkpoint "
                                  f"({part} step {step})")
                    self.run.manifest["stages"][stage]["resumed_from"] = {"stage": part,
                                                                          "step": step}
                generator.save(folder / "model.pt")
                for set_name, options in variants:
                    images = generator.sample(counts, seed=self.seed + 1, name=set_name,
                                              **options)
                    save_imageset(self.run.path("sets", set_name, "samples.npz"), images)
                (folder / "checkpoint.pt").unlink(missing_ok=True)  # model.pt supersedes it
        for set_name, options in variants:
            images = load_imageset(self.run.path("sets", set_name, "samples.npz"),
                                   split=set_name)
            self._add_set(SetEntry(set_name, "generated", images, family, options),
                          curves=f"{stage}/curves.json")

    # ----------------------------------------------------------------- stage: features
    def extract_features(self) -> None:
        from synthlens.features import FeatureCache, get_extractor

        cache_dir = self.config["features"].get("cache_dir")
        self.cache = FeatureCache(cache_dir or self.run.path("features", "cache"))
        self.extractors = {}
        for name in self.settings.features.extractors:
            options = self.settings.extractor_options(name)
            extractor = get_extractor(name, **options)
            if extractor.needs_fit:
                stage = f"features/{name}"
                state = self.run.path(stage, "extractor.pt")
                key = fingerprint({"extractor": name, "options": options, "seed": self.seed,
                                   "train": self.fit_train.sha256()})
                if self.run.is_done(stage, key) and state.exists():
                    extractor.load(state)
                else:
                    self.on_stage(f"fitting feature extractor {name}")
                    with self.run.stage(stage, key):
                        extractor.fit(self.fit_train, val=self.inputs.real.val, seed=self.seed,
                                      device=self.device, progress=self.progress)
                        extractor.save(state)
            self.extractors[name] = extractor

    def features(self, extractor_name: str, images: ImageSet) -> np.ndarray:
        return self.cache.get(self.extractors[extractor_name], images, device=self.device,
                              progress=self.progress)

    # ----------------------------------------------------------------- stage: metrics
    def _metric_names(self, distance: str) -> tuple[list[str], list[str]]:
        """(feature-space metrics, image metrics) requested by the config (its names were
        checked against the registry by resolve_config)."""
        from synthlens.metrics import FEATURE_METRICS, IMAGE_METRICS, default_feature_metrics

        metrics = self.settings.metrics
        if metrics.all:
            return list(default_feature_metrics(distance)), list(IMAGE_METRICS)
        return ([n for n in metrics.names if n in FEATURE_METRICS],
                [n for n in metrics.names if n in IMAGE_METRICS])

    def _judge(self) -> Any:
        """The label-consistency judge: the in-domain encoder's classifier when there is one
        (it is trained on the real training split), else None (metric skipped)."""
        for extractor in self.extractors.values():
            classifier = getattr(extractor, "classifier", None)
            if classifier is not None:
                return classifier.predict
        return None

    def score(self) -> dict[str, dict[str, MetricResult]]:
        from synthlens.metrics import (
            RealReference,
            audit_table,
            evaluate_features,
            evaluate_images,
            metric_spec,
            real_floor,
            variety_scores,
            write_audit_csv,
        )

        k = int(self.config["metrics"]["k"])
        primary = self.config["features"]["primary"]
        results: dict[str, dict[str, MetricResult]] = {name: {} for name in self.sets}
        self.floors: dict[str, MetricResult] = {}
        class_names = self.fit_train.class_names
        for extractor_name, extractor in self.extractors.items():
            suffix = "" if extractor_name == primary else f"@{extractor_name}"
            space = extractor.describe()
            feature_names, image_names = self._metric_names(extractor.distance)
            reference = RealReference(k, extractor.distance, feature_space=space,
                                      device=self.device).fit(
                self.features(extractor_name, self.fit_train), self.fit_train.labels,
                holdout=self.features(extractor_name, self.holdout),
                holdout_labels=self.holdout.labels, class_names=class_names)
            effort = {"n_bootstrap": 200, "kid_subsets": 100, "ms_ssim_pairs": 200,
                      **self.budget.get("metrics", {})}
            base = {"names": feature_names, "k": k, "space": space, "seed": self.seed,
                    "effort": effort,
                    "train": self.fit_train.sha256(), "holdout": self.holdout.sha256()}
            stage = f"metrics/{extractor_name}/real-vs-real"
            path = self.run.path(stage, "metrics.json")
            if not self.run.is_done(stage, fingerprint(base)):
                with self.run.stage(stage, fingerprint(base)):
                    floor = real_floor(reference, metrics=feature_names, seed=self.seed,
                                       n_bootstrap=effort["n_bootstrap"],
                                       kid_subsets=effort["kid_subsets"])
                    write_json(path, {n: r.to_json() for n, r in floor.items()})
            for metric, value in read_json(path).items():
                self.floors[metric + suffix] = MetricResult.from_json(metric + suffix, value)

            for set_name, entry in self.sets.items():
                images = entry.images
                stage = f"metrics/{extractor_name}/{set_name}"
                key = fingerprint({**base, "set": images.sha256(),
                                   "images": image_names if not suffix else []})
                path = self.run.path(stage, "metrics.json")
                if not self.run.is_done(stage, key):
                    with self.run.stage(stage, key):
                        features = self.features(extractor_name, images)
                        # The holdout cannot be its own non-member set: score the
                        # real-holdout reference without the privacy metrics that need one.
                        ref = (reference.with_holdout(None) if set_name == "real-holdout"
                               else reference)
                        wanted = [n for n in feature_names if set_name != "real-holdout"
                                  or "holdout" not in metric_spec(n).needs]
                        nb = ref.compare(features, images.labels)
                        scored = evaluate_features(
                            ref, features, images.labels, metrics=wanted,
                            class_names=class_names, seed=self.seed, neighbourhoods=nb,
                            n_bootstrap=effort["n_bootstrap"],
                            kid_subsets=effort["kid_subsets"])
                        if not suffix:
                            # Predict once: label consistency and the audit share them.
                            judge = self._judge()
                            predicted = None if judge is None else judge(images.images)
                            scored.update(evaluate_images(
                                images.images, images.labels, metrics=image_names,
                                classifier=_fixed(predicted),
                                class_names=class_names, seed=self.seed,
                                n_bootstrap=effort["n_bootstrap"],
                                ms_ssim_pairs=effort["ms_ssim_pairs"]))
                            table = audit_table(ref, nb, images.labels, predicted=predicted)
                            write_audit_csv(self.run.path("metrics", "audit", f"{set_name}.csv"),
                                            table, class_names)
                        write_json(path, {n: r.to_json() for n, r in scored.items()})
                for metric, value in read_json(path).items():
                    results[set_name][metric + suffix] = MetricResult.from_json(metric + suffix,
                                                                                value)
        sizes = {name: r["mean_image_kb"] for name, r in results.items() if "mean_image_kb" in r}
        if len(sizes) >= 2:
            for name, result in variety_scores(sizes).items():
                results[name]["variety"] = result
        return results

    # ----------------------------------------------------------------- stage: utility
    def utility(self) -> dict[str, dict[str, MetricResult]]:
        from synthlens.utility import BASELINE_NAME, UtilityConfig, UtilityEvaluator

        real = self.inputs.real
        settings = dict(self.budget.get("utility", {}))
        if self.config["utility"]["protocols"] is not None:
            settings["protocols"] = list(self.config["utility"]["protocols"])
        # Utility classifiers train on what the generators saw: train minus the holdout.
        fit_real = RealData(real.name, self.fit_train, real.val, real.test, source=real.source)
        evaluator = UtilityEvaluator(fit_real, config=UtilityConfig.from_dict(settings),
                                     cross_task_data=self.inputs.cross_task,
                                     device=self.device, seed=self.seed,
                                     progress=self.progress,
                                     cache_dir=self.run.path("utility", "arms"))
        base = evaluator.fingerprint()
        jobs = [(BASELINE_NAME, None), *((n, e.images) for n, e in self.sets.items())]
        results: dict[str, dict[str, MetricResult]] = {}
        for set_name, images in jobs:
            stage = f"utility/{set_name}"
            key = fingerprint({**base, "set": None if images is None else images.sha256()})
            path = self.run.path(stage, "utility.json")
            if not self.run.is_done(stage, key):
                self.on_stage(f"utility of {set_name}")
                with self.run.stage(stage, key):
                    scored = (evaluator.baseline_results() if images is None
                              else evaluator.evaluate_set(set_name, images))
                    write_json(path, {n: r.to_json() for n, r in scored.items()})
            results[set_name] = {n: MetricResult.from_json(n, v)
                                 for n, v in read_json(path).items()}
        return results

    # ----------------------------------------------------------------- results + report
    def assemble(self, metrics: Mapping[str, Mapping[str, MetricResult]],
                 utility: Mapping[str, Mapping[str, MetricResult]]) -> dict[str, Any]:
        sets: dict[str, Any] = {}
        for name, entry in self.sets.items():
            merged = {**metrics.get(name, {}), **utility.get(name, {})}
            sets[name] = {
                "kind": entry.kind,
                "generator": entry.generator,
                "sample_options": dict(entry.sample_options or {}),
                "n_images": len(entry.images),
                "class_counts": entry.images.class_counts().tolist(),
                "sha256": entry.images.sha256(),
                "files": dict(entry.files or {}),
                "metrics": {m: r.to_json() for m, r in sorted(merged.items())},
            }
        sets["real-only"] = {
            "kind": "baseline", "generator": None, "sample_options": {},
            "n_images": len(self.fit_train),
            "class_counts": self.fit_train.class_counts().tolist(),
            "sha256": self.fit_train.sha256(),
            "metrics": {m: r.to_json() for m, r in sorted(utility.get("real-only", {}).items())},
        }
        return {
            "schema_version": SCHEMA_VERSION,
            "synthlens_version": synthlens.__version__,
            "dataset": self.inputs.real.describe(),
            "config": {k: self.config[k] for k in ("name", "budget", "seed", "device")},
            "sets": sets,
            "floors": {m: r.to_json() for m, r in sorted(self.floors.items())},
        }

    def execute(self, stop_after: str | None = None) -> dict[str, Any] | None:
        """Run the stages in order; ``stop_after`` ends the run early after that stage
        (``data``, ``generate``, ``features`` or ``score``) so that, e.g., generators can
        be trained now and scored later with ``--resume``. Returns None when stopped."""
        _check_stage(stop_after)
        for name, stage in (("data", self.prepare_data), ("generate", self.generate),
                            ("features", self.extract_features)):
            stage()
            if stop_after == name:
                return None
        metrics = self.score()
        if stop_after == "score":
            return None
        utility = self.utility() if self.config["utility"]["protocols"] != [] else {}
        results = self.assemble(metrics, utility)
        from synthlens.analysis import analyse

        results["analysis"] = analyse(results, seed=self.seed)
        write_json(self.run.path("results.json"), results)
        from synthlens.report import build_report

        self.on_stage("writing the report")
        build_report(self.run.root, progress=self.progress)
        return results


def _check_stage(stop_after: str | None) -> None:
    if stop_after is not None and stop_after not in STAGES:
        raise InputError("stop_after", f"unknown stage {stop_after!r}; choose from "
                                       f"{', '.join(STAGES)}")


def run(config: Mapping[str, Any], out: str | os.PathLike[str], *, mode: Mode = "new",
        progress: bool = True, on_stage: Callable[[str], None] | None = None,
        stop_after: str | None = None, redo: Sequence[str] = ()) -> Path:
    """Run the whole pipeline for a resolved config (or up to ``stop_after``, one of
    ``STAGES``; ``mode="resume"`` continues later, rerunning the finished stages named in
    ``redo``, e.g. ``generators/ldm``); returns the run folder."""
    _check_stage(stop_after)  # before anything is written
    inputs = load_inputs(config)
    folder = RunFolder(out, mode, redo=redo)
    try:
        folder.write_config(inputs.config)
        folder.record_inputs(**{f"real.{k}": v for k, v in inputs.real.hashes().items()},
                             **{f"synthetic.{k}": v.sha256()
                                for k, v in inputs.user_sets.items()})
        folder.record_seeds(seed=inputs.config["seed"])
        pipeline = Pipeline(inputs, folder, progress=progress, on_stage=on_stage)
        results = pipeline.execute(stop_after)
        # How much feature extraction this invocation did (0 when everything was cached).
        cache = getattr(pipeline, "cache", None)
        folder.manifest["runs"][-1]["feature_extractions"] = cache.extractions if cache else 0
    except KeyboardInterrupt:
        folder.finish("interrupted")
        raise
    except BaseException:
        folder.finish("failed")
        raise
    folder.finish("complete" if results is not None else "stopped")
    return folder.root


def demo(out: str | os.PathLike[str], *, budget: str = "demo", seed: int = 0,
         device: str = "auto", mode: Mode = "new", progress: bool = True,
         on_stage: Callable[[str], None] | None = None) -> Path:
    """The main job on the built-in phantom data."""
    from synthlens.config import packaged_config

    config = resolve_config(packaged_config("demo"), source="demo", budget=budget, seed=seed,
                            device=device)
    return run(config, out, mode=mode, progress=progress, on_stage=on_stage)


def evaluate(real: str, synthetic: Mapping[str, str], out: str | os.PathLike[str], *,
             budget: str = "demo", seed: int = 0, device: str = "auto", mode: Mode = "new",
             extractors: list[str] | None = None, metrics: list[str] | None = None,
             protocols: list[str] | None = None, progress: bool = True,
             on_stage: Callable[[str], None] | None = None) -> Path:
    """Score synthetic sets the user brings (no generator training)."""
    from synthlens.config import packaged_config

    raw = packaged_config("evaluate")
    raw["dataset"] = {**raw.get("dataset", {}), "source": real}
    raw["synthetic"] = dict(synthetic)
    if extractors:
        raw["features"] = {"extractors": extractors, "primary": extractors[0]}
    if metrics:
        raw.setdefault("metrics", {})["names"] = metrics
    if protocols is not None:
        raw.setdefault("utility", {})["protocols"] = protocols
    try:
        config = resolve_config(raw, source="evaluate", budget=budget, seed=seed,
                                device=device)
    except SettingError as error:  # name the command-line option the value came from
        for prefix, option in _EVALUATE_OPTIONS.items():
            if error.key == prefix or error.key.startswith((f"{prefix}[", f"{prefix}.")):
                raise InputError(option, error.detail) from None
        raise
    return run(config, out, mode=mode, progress=progress, on_stage=on_stage)


#: Config keys that ``evaluate`` fills from its command-line options.
_EVALUATE_OPTIONS = {"metrics.names": "--metrics", "features.extractors": "--extractors",
                     "features.primary": "--extractors", "utility.protocols": "--protocols",
                     "synthetic": "--synthetic"}


def rebuild_report(run_dir: str | os.PathLike[str]) -> Path:
    """Rebuild report.html, results.csv and the figures from a finished run folder."""
    from synthlens.report import build_report

    run_dir = Path(run_dir)
    if not (run_dir / "results.json").exists():
        raise InputError(run_dir, "holds no results.json; is it a finished synthlens run?")
    return build_report(run_dir)
