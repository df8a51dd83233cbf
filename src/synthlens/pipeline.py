"""The stages wired together: data -> generators -> features -> metrics -> utility ->
results -> analysis -> report, each writing into the run folder and skipped on resume when
its inputs and config did not change. A stage hands its outputs to the next ones as return
values (:class:`Splits`, the sets, :class:`FeatureSpaces`, scores); nothing is left on the
pipeline for a later stage to pick up.

All user input (data files, synthetic sets, config) is read and validated *before* the
run folder is created, so bad input exits with a clear message and leaves nothing behind.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

import synthlens
from synthlens.config import STAGES, GeneratorSpec, RunConfig, resolve_config
from synthlens.data import (
    SPLITS,
    ImageSet,
    RealData,
    holdout_indices,
    load_arrays,
    load_dataset,
    load_imageset,
    load_synthetic,
    save_imageset,
    save_real_data,
    stratified_subsample,
)
from synthlens.data.copies import ImageIndex, copy_indices
from synthlens.data.resize import resize_images
from synthlens.data.synthetic import shape_mismatch
from synthlens.device import resolve_device
from synthlens.errors import InputError, SettingError
from synthlens.generators import GENERATORS, duplicate_reference, get_generator, noise_reference
from synthlens.hashing import json_sha256
from synthlens.io import read_json, write_json
from synthlens.metrics.base import MetricResult
from synthlens.runfolder import Mode, RunFolder

if TYPE_CHECKING:
    from synthlens.features import FeatureCache
    from synthlens.utility import UtilityEvaluator

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


@dataclass(frozen=True)
class Splits:
    """What the data stage hands on: what every generator, feature encoder and utility
    classifier trains on (``fit_train``), the privacy metrics' members (``members``, their
    reference, ``data/train.npz``) and non-members (``holdout``: the ``real-holdout`` set).

    Without declared members (``privacy:``, as for the generators a run trains) the
    training split is cut in two: ``fit_train`` = ``members`` = the training split without
    the holdout, ``holdout`` = the holdout, which no generator sees. With declared members
    (``synthlens evaluate``), ``fit_train`` is the whole training split and ``members`` and
    ``holdout`` are the declared sets."""

    fit_train: ImageSet
    holdout: ImageSet
    members: ImageSet


@dataclass
class FeatureSpaces:
    """What the features stage hands on: the ready extractors by name and the feature cache
    (:meth:`features` extracts a set once and reads it from the cache afterwards)."""

    extractors: dict[str, Any]
    cache: FeatureCache
    device: str
    progress: bool = True

    def features(self, extractor_name: str, images: ImageSet) -> np.ndarray:
        return self.cache.get(self.extractors[extractor_name], images, device=self.device,
                              progress=self.progress)


Scores = dict[str, dict[str, MetricResult]]  # set name -> metric name -> result


@dataclass
class Inputs:
    """Everything read from the user's files, validated, before the run folder exists."""

    config: dict[str, Any]  # the resolved config, as config.yaml holds it
    real: RealData
    user_sets: dict[str, ImageSet]
    cross_task: RealData | None
    settings: RunConfig  # the same config, typed
    #: The declared privacy ``members`` and ``non_members`` (empty: the holdout is used).
    declared: dict[str, ImageSet] = field(default_factory=dict)
    #: The real val and test images by hash (the leak check; :func:`exact_copies`).
    indexes: dict[str, ImageIndex] = field(default_factory=dict)


@dataclass(frozen=True)
class InMemory:
    """Data given as arrays (the Python API) rather than as files.

    ``real``: the real dataset in the layout of a MedMNIST ``.npz`` (``train_images``, ...,
    :func:`~synthlens.data.load_arrays`), or None for the config's ``dataset.source``;
    ``synthetic``: sets by name, each ``{"images": ..., "labels": ...}``
    (:func:`~synthlens.data.load_synthetic`). Both pass the checks a file passes. The run
    folder keeps a copy of each (:data:`REAL_COPY`, :func:`synthetic_copy`) and
    ``config.yaml`` names those copies (absolute paths), so the run can be repeated from its
    folder: ``run(yaml.safe_load(open("RUN/config.yaml")), "elsewhere")``.
    """

    real: Mapping[str, Any] | None = None
    synthetic: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


#: Where a run folder keeps a real dataset that was given in memory.
REAL_COPY = "inputs/real.npz"


def synthetic_copy(name: str) -> str:
    """Where a run folder keeps a synthetic set (every set's samples, not only user sets)."""
    return f"sets/{name}/samples.npz"


#: The real splits every set is checked against for exact copies (they would inflate
#: utility: val selects the utility classifiers, test scores them).
LEAK_SPLITS = ("val", "test")


def load_inputs(config: Mapping[str, Any], given: InMemory | None = None,
                on_stage: Callable[[str], None] | None = None) -> Inputs:
    """Check the config (a :class:`RunConfig`, or its resolved dict form) and read and
    validate the dataset, the user's synthetic sets (from files, or from ``given`` arrays;
    resampled to the real size when
    ``resize`` says so; checked for exact copies of the real val and test images, refused
    for them when ``strict``), the declared privacy members and the extractors' weights;
    also check that every generator family and extractor takes the data's image size."""
    given = given or InMemory()
    settings = RunConfig.from_resolved(config)
    notify = on_stage or (lambda message: log.info(message))
    dataset = settings.dataset
    if given.real is not None:
        real = load_arrays(given.real, name="real", label="real")
    else:
        real = load_dataset(dataset.source, size=dataset.size, cache_dir=dataset.cache_dir,
                            download=dataset.download, seed=settings.seed)
    _check_image_shape(settings, real)
    user_sets = {}
    for name, path in settings.synthetic.items():
        images = load_synthetic(given.synthetic.get(name, path), real.class_names, name)
        source = path if name not in given.synthetic else images.source  # arrays: their name
        user_sets[name] = _at_real_size(images, real, settings.resize, source, notify)
    declared = _declared_sets(settings, real)
    indexes = {split: ImageIndex(getattr(real, split).images) for split in LEAK_SPLITS}
    for name, images in user_sets.items():
        _check_leaks(name, settings.synthetic[name], images, indexes, settings.strict)
    from synthlens.features import get_extractor

    for name in settings.features.extractors:
        get_extractor(name, **settings.extractor_options(name))  # weights found, options valid
    cross = settings.utility.cross_task_dataset
    cross_task = load_dataset(cross, seed=settings.seed) if cross else None
    return Inputs(settings.to_dict(), real, user_sets, cross_task, settings, declared,
                  indexes)


def _at_real_size(images: ImageSet, real: RealData, resize: str, path: str,
                  notify: Callable[[str], None]) -> ImageSet:
    """A user's set at the real image size: as it is, resampled (``resize``), or refused."""
    if images.image_shape == real.image_shape:
        return images
    problem = shape_mismatch(images.image_shape, real.image_shape)
    if images.images.ndim != real.train.images.ndim:
        raise InputError(path, f"{problem}; grey and RGB are not converted (resizing "
                               "changes only the size)")
    if resize == "none":
        raise InputError(path, f"{problem}; to resample the set to the real size pass "
                               "--resize area or --resize lanczos (config: resize)")
    resized = resize_images(images.images, real.image_shape[:2], resize)
    notify(f"resized set {images.split} from {images.image_shape[0]}x{images.image_shape[1]} "
           f"to {real.image_shape[0]}x{real.image_shape[1]} ({resize})")
    return ImageSet(resized, images.labels, images.class_names, split=images.split,
                    source=images.source)


def _declared_sets(settings: RunConfig, real: RealData) -> dict[str, ImageSet]:
    """The declared privacy members and non-members (a real split, or a labelled set read
    from a path like a user's synthetic set; it must have the real image size)."""
    if not settings.privacy.declared:
        return {}
    out = {}
    for key in ("members", "non_members"):
        value = getattr(settings.privacy, key)
        if value in SPLITS:
            out[key] = getattr(real, value)
            continue
        if not Path(value).exists():
            raise InputError(value, f"privacy.{key} (--{key.replace('_', '-')}): neither a "
                                    f"split name ({', '.join(SPLITS)}) nor a file or folder")
        images = load_synthetic(value, real.class_names, key)
        if images.image_shape != real.image_shape:
            raise InputError(value, f"privacy.{key}: images are {images.image_shape} but the "
                                    f"real data ({real.source}) is {real.image_shape}")
        out[key] = images
    return out


def exact_copies(images: ImageSet, indexes: Mapping[str, ImageIndex]) -> dict[str, np.ndarray]:
    """Per real image collection of ``indexes``: for each image of ``images``, the index of
    a byte-identical image in it, −1 when none."""
    return {name: index.find(images.images) for name, index in indexes.items()}


def _check_leaks(name: str, path: str, images: ImageSet, indexes: Mapping[str, ImageIndex],
                 strict: bool) -> None:
    """Flag (log) or, when ``strict``, refuse a user set holding exact copies of real val
    or test images."""
    found = {split: copy_indices(rows) for split, rows in exact_copies(images, indexes).items()}
    leaked = {split: rows for split, rows in found.items() if rows}
    if not leaked:
        return
    text = " and ".join(f"{len(rows)} exact cop{'y' if len(rows) == 1 else 'ies'} of real "
                        f"{split} images (rows {_some(rows)})" for split, rows in leaked.items())
    if strict:
        raise InputError(path, f"synthetic set {name!r} holds {text}; they would inflate its "
                               "utility (refused by --strict / strict: true)")
    log.warning(f"warning: synthetic set {name!r} ({path}) holds {text}; they inflate its "
                "utility; flagged in results.json and the report (--strict refuses such a "
                "set)")


def _some(rows: Sequence[int], n: int = 5) -> str:
    return ", ".join(map(str, rows[:n])) + (f", ... ({len(rows) - n} more)"
                                            if len(rows) > n else "")


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
        self._copies: dict[str, dict[str, np.ndarray]] = {}
        self._indexes = dict(self.inputs.indexes)  # + the members, on first use

    def copies(self, splits: Splits, images: ImageSet) -> dict[str, np.ndarray]:
        """:func:`exact_copies` of a set in the members (``data/train.npz``, the audit's
        reference) and the real val and test splits, computed once per set."""
        if "members" not in self._indexes:
            self._indexes["members"] = ImageIndex(splits.members.images)
        key = images.sha256()
        if key not in self._copies:
            order = ("members", *LEAK_SPLITS)
            self._copies[key] = exact_copies(images, {n: self._indexes[n] for n in order})
        return self._copies[key]

    # ----------------------------------------------------------------- stage: data
    def prepare_data(self) -> Splits:
        if self.settings.privacy.declared:
            return self._declared_data()
        real = self.inputs.real
        index = holdout_indices(real.train, self.config["holdout_fraction"], self.seed)
        mask = np.zeros(len(real.train), dtype=bool)
        mask[index] = True
        fit_train = real.train.subset(np.flatnonzero(~mask), split="train")
        splits = Splits(fit_train=fit_train, holdout=real.train.subset(index, split="holdout"),
                        members=fit_train)
        key = json_sha256({"data": real.hashes(), "holdout": self.config["holdout_fraction"],
                           "seed": self.seed})
        if self.run.is_done("data", key):
            return splits
        with self.run.stage("data", key) as folder:
            summary = real.describe()
            summary["holdout"] = {"fraction": self.config["holdout_fraction"],
                                  "n": len(splits.holdout), "seed": self.seed,
                                  "counts": splits.holdout.class_counts().tolist()}
            summary["fit_train_counts"] = splits.fit_train.class_counts().tolist()
            write_json(folder / "summary.json", summary)
            np.save(folder / "holdout_indices.npy", index)  # small; rewritten whole
            save_imageset(folder / "train.npz", splits.fit_train)
            save_imageset(folder / "holdout.npz", splits.holdout)
        return splits

    def _declared_data(self) -> Splits:
        """The data stage with declared members and non-members (``privacy:``)."""
        real, privacy = self.inputs.real, self.settings.privacy
        members = self.inputs.declared["members"]
        given = self.inputs.declared["non_members"]
        holdout = ImageSet(given.images, given.labels, given.class_names, split="holdout",
                           source=given.source)
        splits = Splits(fit_train=real.train, holdout=holdout, members=members)
        key = json_sha256({"data": real.hashes(), "members": members.sha256(),
                           "non_members": holdout.sha256(),
                           "declared": [privacy.members, privacy.non_members]})
        if self.run.is_done("data", key):
            return splits
        with self.run.stage("data", key) as folder:
            summary = real.describe()
            summary["members"] = {"declared": privacy.members, "n": len(members),
                                  "counts": members.class_counts().tolist()}
            summary["holdout"] = {"declared": privacy.non_members, "n": len(holdout),
                                  "counts": holdout.class_counts().tolist()}
            summary["fit_train_counts"] = real.train.class_counts().tolist()
            write_json(folder / "summary.json", summary)
            save_imageset(folder / "train.npz", members)  # the audit's reference
            save_imageset(folder / "holdout.npz", holdout)
        return splits

    # ----------------------------------------------------------------- stage: generators
    def generate(self, splits: Splits) -> dict[str, SetEntry]:
        """Train every configured generator; return every set to score, by name.

        Each set's images end up in ``sets/<name>/samples.npz`` (the report's grids read
        them); a generator's model, checkpoints and training curves stay in
        ``generators/<name>/``.
        """
        counts = sample_counts(self.inputs.real.train,
                               self.settings.budget_settings.sample_fraction)
        entries: list[SetEntry] = []
        for spec in self.settings.generators:
            entries += self._train_generator(spec, counts, splits.fit_train)
        for ref in self.config["references"]:
            if ref == "real-holdout":
                entry = SetEntry(ref, "reference", splits.holdout, "real-holdout")
            elif ref == "real-duplicate":  # what a generator replaying its members draws
                images = duplicate_reference(splits.members, counts, seed=self.seed, name=ref)
                entry = SetEntry(ref, "reference", images, "real-duplicate")
            else:
                images = noise_reference(splits.fit_train, counts, seed=self.seed, name=ref)
                entry = SetEntry(ref, "reference", images, "noise")
            entries.append(self._filed(entry))
        for name, images in self.inputs.user_sets.items():
            entries.append(self._filed(SetEntry(name, "user", images)))
        return {entry.name: entry for entry in entries}

    def _filed(self, entry: SetEntry, curves: str | None = None) -> SetEntry:
        """``entry`` with its files named (and its samples written, unless a generator
        stage wrote them)."""
        path = self.run.path(synthetic_copy(entry.name))
        if entry.kind != "generated":  # generated sets were written by their stage
            save_imageset(path, entry.images)
        entry.files = {"samples": synthetic_copy(entry.name)}
        if curves:
            entry.files["curves"] = curves
        return entry

    def _train_generator(self, spec: GeneratorSpec, counts: np.ndarray,
                         fit_train: ImageSet) -> list[SetEntry]:
        family, name = spec.family, spec.name
        budget = self.settings.budget_settings.generator_budget(family)
        variants = spec.variants()
        stage = f"generators/{name}"
        key = json_sha256({"spec": spec.to_dict(), "budget": budget.to_dict(),
                           "seed": self.seed, "train": fit_train.sha256(),
                           "counts": counts.tolist()})
        if not self.run.is_done(stage, key):
            self.on_stage(f"training generator {name} ({family})")
            with self.run.stage(stage, key) as folder:
                generator = get_generator(family, **spec.params)
                generator.fit(fit_train, budget, device=self.device, seed=self.seed,
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
        return [self._filed(SetEntry(set_name, "generated",
                                     load_imageset(self.run.path("sets", set_name,
                                                                 "samples.npz"), split=set_name),
                                     family, options), curves=f"{stage}/curves.json")
                for set_name, options in variants]

    # ----------------------------------------------------------------- stage: features
    def extract_features(self, splits: Splits) -> FeatureSpaces:
        from synthlens.features import FeatureCache, get_extractor

        cache_dir = self.config["features"].get("cache_dir")
        spaces = FeatureSpaces({}, FeatureCache(cache_dir or self.run.path("features", "cache")),
                               self.device, self.progress)
        for name in self.settings.features.extractors:
            options = self.settings.extractor_options(name)
            extractor = get_extractor(name, **options)
            if extractor.needs_fit:
                stage = f"features/{name}"
                state = self.run.path(stage, "extractor.pt")
                key = json_sha256({"extractor": name, "options": options, "seed": self.seed,
                                   "train": splits.fit_train.sha256()})
                if self.run.is_done(stage, key) and state.exists():
                    extractor.load(state)
                else:
                    self.on_stage(f"fitting feature extractor {name}")
                    with self.run.stage(stage, key):
                        extractor.fit(splits.fit_train, val=self.inputs.real.val,
                                      seed=self.seed, device=self.device,
                                      progress=self.progress)
                        extractor.save(state)
            spaces.extractors[name] = extractor
        return spaces

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

    def score(self, splits: Splits, sets: Mapping[str, SetEntry], spaces: FeatureSpaces
              ) -> tuple[Scores, dict[str, MetricResult]]:
        """Every set's metrics in every feature space (each set and space a resumable stage),
        and the real-vs-real floors; what is scored how is
        :class:`~synthlens.metrics.SpaceScorer`'s policy."""
        from synthlens.metrics import (
            RealReference,
            SpaceScorer,
            label_judge,
            run_metrics,
            write_audit_csv,
        )

        k = int(self.config["metrics"]["k"])
        primary = self.config["features"]["primary"]
        results: Scores = {name: {} for name in sets}
        floors: dict[str, MetricResult] = {}
        class_names = splits.members.class_names
        for extractor_name, extractor in spaces.extractors.items():
            space = extractor.describe()
            n_subsample = self.settings.features.subsample.get(extractor_name)
            if n_subsample is not None:
                space["subsample"] = {"images_per_set": n_subsample, "seed": self.seed}
            rule = self.settings.metrics.neighbourhood
            if rule != "closed":  # the default rule is not written, so old runs still match
                space["neighbourhood"] = rule

            def drawn(images: ImageSet, n: int | None = n_subsample) -> ImageSet:
                return images if n is None else stratified_subsample(images, n, self.seed)

            members, holdout = drawn(splits.members), drawn(splits.holdout)
            feature_names, image_names = self._metric_names(extractor.distance)
            reference = RealReference(k, extractor.distance, feature_space=space,
                                      device=self.device, neighbourhood=rule).fit(
                spaces.features(extractor_name, members), members.labels,
                holdout=spaces.features(extractor_name, holdout),
                holdout_labels=holdout.labels, class_names=class_names)
            scorer = SpaceScorer(reference, space=extractor_name,
                                 primary=extractor_name == primary,
                                 feature_metrics=feature_names, image_metrics=image_names,
                                 judge=label_judge(spaces.extractors.values()),
                                 class_names=class_names, seed=self.seed,
                                 **self.budget.get("metrics", {}))
            base = {"names": feature_names, "k": k, "space": space, "seed": self.seed,
                    "effort": scorer.effort,
                    "train": members.sha256(), "holdout": holdout.sha256()}
            stage = f"metrics/{extractor_name}/real-vs-real"
            path = self.run.path(stage, "metrics.json")
            if not self.run.is_done(stage, json_sha256(base)):
                with self.run.stage(stage, json_sha256(base)):
                    write_json(path, {n: r.to_json() for n, r in scorer.floor().items()})
            floors.update(scorer.named(read_json(path)))

            for set_name, entry in sets.items():
                images = drawn(entry.images)
                stage = f"metrics/{extractor_name}/{set_name}"
                key = json_sha256({**base, "set": images.sha256(),
                                   "images": scorer.image_metrics})
                path = self.run.path(stage, "metrics.json")
                if not self.run.is_done(stage, key):
                    with self.run.stage(stage, key):
                        scored = scorer.score(spaces.features(extractor_name, images),
                                              images.labels, images.images,
                                              is_holdout=entry.generator == "real-holdout",
                                              exact_copy_of=self.copies(splits, images)
                                              ["members"])
                        if scored.audit is not None:
                            write_audit_csv(self.run.path("metrics", "audit", f"{set_name}.csv"),
                                            scored.audit, class_names)
                        write_json(path, {n: r.to_json() for n, r in scored.results.items()})
                results[set_name].update(scorer.named(read_json(path)))
        for set_name, extra in run_metrics(results).items():
            results[set_name].update(extra)
        return results, floors

    # ----------------------------------------------------------------- stage: utility
    def utility(self, splits: Splits, sets: Mapping[str, SetEntry]) -> Scores:
        from synthlens.utility import BASELINE_NAME

        evaluator = utility_evaluator(self.inputs, splits.fit_train,
                                      cache_dir=self.run.path(*UTILITY_ARMS),
                                      device=self.device, progress=self.progress)
        base = evaluator.fingerprint()
        jobs = [(BASELINE_NAME, None), *((n, e.images) for n, e in sets.items())]
        results: Scores = {}
        for set_name, images in jobs:
            stage = f"utility/{set_name}"
            key = json_sha256({**base, "set": None if images is None else images.sha256()})
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

    # ----------------------------------------------------------------- stage: results
    def assemble(self, splits: Splits, sets: Mapping[str, SetEntry], metrics: Scores,
                 floors: Mapping[str, MetricResult], utility: Scores) -> dict[str, Any]:
        """``results.json`` without its analysis: every set's scores and the floors."""
        out: dict[str, Any] = {}
        for name, entry in sets.items():
            merged = {**metrics.get(name, {}), **utility.get(name, {})}
            copies = self.copies(splits, entry.images)
            out[name] = {
                "kind": entry.kind,
                "generator": entry.generator,
                "sample_options": dict(entry.sample_options or {}),
                "n_images": len(entry.images),
                "class_counts": entry.images.class_counts().tolist(),
                "sha256": entry.images.sha256(),
                "files": dict(entry.files or {}),
                "exact_copies": {n: len(copy_indices(rows)) for n, rows in copies.items()},
                "metrics": {m: r.to_json() for m, r in sorted(merged.items())},
            }
        out["real-only"] = {
            "kind": "baseline", "generator": None, "sample_options": {},
            "n_images": len(splits.fit_train),
            "class_counts": splits.fit_train.class_counts().tolist(),
            "sha256": splits.fit_train.sha256(),
            "metrics": {m: r.to_json() for m, r in sorted(utility.get("real-only", {}).items())},
        }
        from synthlens.gates import check_gates, parse_gates

        results = {
            "schema_version": SCHEMA_VERSION,
            "synthlens_version": synthlens.__version__,
            "dataset": self.inputs.real.describe(),
            "config": {k: self.config[k]
                       for k in ("name", "budget", "seed", "device", "resize", "strict")},
            "privacy": self._privacy_record(splits),
            "sets": out,
            "floors": {m: r.to_json() for m, r in sorted(floors.items())},
        }
        gates = parse_gates(self.settings.gates, source="gates")
        results["gates"] = [o.to_json() for o in check_gates(gates, results)]
        return results

    def _privacy_record(self, splits: Splits) -> dict[str, Any]:
        """``results.json``'s ``privacy``: who the members and non-members were."""
        privacy = self.settings.privacy
        overlap = len(copy_indices(self.copies(splits, splits.holdout)["members"]))
        warning = None
        if privacy.declared:
            warning = (f"The members ({privacy.members}) and non-members "
                       f"({privacy.non_members}) are separate sets of real images, not a "
                       "random split of one: where they differ in distribution (another "
                       "site, scanner, period or selection), membership inference (MIA "
                       "AUROC), the DCR ratio and the memorisation threshold read that shift "
                       "as leakage or hide leakage behind it. The real-holdout row (the "
                       "non-members scored as a set) shows how far the non-members sit from "
                       "the members.")
        if overlap:
            verb = "image is an exact copy" if overlap == 1 else "images are exact copies"
            warning = ((warning + " ") if warning else "") + (
                f"{overlap} non-member {verb} of member images: they sit at distance 0 "
                "from the members and read as leakage.")
        return {"declared": privacy.declared,
                "members": privacy.members or "train-minus-holdout",
                "non_members": privacy.non_members or "holdout",
                "n_members": len(splits.members), "n_non_members": len(splits.holdout),
                "overlap": overlap, "warning": warning}

    def write_results(self, splits: Splits, sets: Mapping[str, SetEntry], metrics: Scores,
                      floors: Mapping[str, MetricResult], utility: Scores) -> dict[str, Any]:
        """Stage ``results``: assemble and write ``results.json`` (without the analysis).

        Returns the results as written, i.e. as every reader of the file sees them. The file
        is rewritten only when its contents change, so a finished analysis stays valid.
        """
        path = self.run.path(RESULTS)
        with self.run.failure("results", path):
            results = _as_written(self.assemble(splits, sets, metrics, floors, utility))
            key = json_sha256(results)
        if self.run.is_done("results", key) and path.exists():
            return results
        with self.run.stage("results", key, output=path, folder=False):
            if not path.exists() or _without_analysis(read_json(path)) != results:
                write_json(path, results)
        return results

    # ----------------------------------------------------------------- stage: analysis
    def write_analysis(self, results: dict[str, Any]) -> dict[str, Any]:
        """Stage ``analysis``: the correlation analysis of ``results``, computed once per run
        and stored as the ``analysis`` section of ``results.json``; returns the whole file."""
        from synthlens.analysis import analyse

        path = self.run.path(RESULTS)
        key = json_sha256({"results": results, "seed": self.seed})
        with self.run.failure("analysis", path):
            stored = read_json(path)
        if self.run.is_done("analysis", key) and "analysis" in stored:
            return stored
        with self.run.stage("analysis", key, output=path, folder=False):
            stored = {**results, "analysis": analyse(results, seed=self.seed)}
            write_json(path, stored)
        return stored

    # ----------------------------------------------------------------- stage: report
    def write_report(self, results: dict[str, Any]) -> Path:
        """Stage ``report``: ``report.html``, ``results.csv`` and ``report/`` rendered from
        the run folder (:func:`synthlens.report.build_report`; it recomputes nothing)."""
        from synthlens.report import build_report

        page = self.run.path("report.html")
        key = json_sha256({"results": results,
                           "config": self.run.path("config.yaml").read_text(encoding="utf-8")})
        if self.run.is_done("report", key) and page.exists():
            return page
        self.on_stage("writing the report")
        with self.run.stage("report", key, output=page):
            build_report(self.run.root, progress=self.progress)
        return page

    # ----------------------------------------------------------------- all stages
    def execute(self, stop_after: str | None = None) -> dict[str, Any] | None:
        """Run the stages in order; ``stop_after`` ends the run early after that stage
        (``data``, ``generate``, ``features`` or ``score``) so that, e.g., generators can
        be trained now and scored later with ``--resume``. Returns None when stopped, else
        the contents of ``results.json``."""
        _check_stage(stop_after)
        splits = self.prepare_data()
        if stop_after == "data":
            return None
        sets = self.generate(splits)
        if stop_after == "generate":
            return None
        spaces = self.extract_features(splits)
        if stop_after == "features":
            return None
        try:
            metrics, floors = self.score(splits, sets, spaces)
        finally:  # how much feature extraction this invocation did (0: all cached)
            self.run.record_run(feature_extractions=spaces.cache.extractions)
        if stop_after == "score":
            return None
        utility = self.utility(splits, sets) if self.config["utility"]["protocols"] != [] else {}
        results = self.write_results(splits, sets, metrics, floors, utility)
        results = self.write_analysis(results)
        self.write_report(results)
        return results


RESULTS = "results.json"
#: Where the utility stage caches every trained arm (content-addressed ``.npz`` files).
UTILITY_ARMS = ("utility", "arms")


def utility_evaluator(inputs: Inputs, fit_train: ImageSet, *,
                      cache_dir: str | os.PathLike[str] | None, device: str,
                      progress: bool = True) -> UtilityEvaluator:
    """The utility stage's evaluator for a run's inputs: its classifiers train on
    ``fit_train``, what the generators saw (the training split minus the holdout)."""
    from synthlens.utility import UtilityConfig, UtilityEvaluator

    real, config = inputs.real, inputs.config
    settings = dict(config["budget_settings"].get("utility", {}))
    if config["utility"]["protocols"] is not None:
        settings["protocols"] = list(config["utility"]["protocols"])
    fit_real = RealData(real.name, fit_train, real.val, real.test, source=real.source,
                        task=real.task)
    return UtilityEvaluator(fit_real, config=UtilityConfig.from_dict(settings),
                            cross_task_data=inputs.cross_task, device=device,
                            seed=int(config["seed"]), progress=progress, cache_dir=cache_dir)


def _as_written(results: dict[str, Any]) -> dict[str, Any]:
    """``results`` as a reader of ``results.json`` gets them: plain JSON types, keys sorted
    (the analysis depends on the order of the sets, so it is computed on this form)."""
    return json.loads(json.dumps(results, sort_keys=True, allow_nan=False))


def _without_analysis(results: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in results.items() if k != "analysis"}


def _check_stage(stop_after: str | None) -> None:
    if stop_after is not None and stop_after not in STAGES:
        raise InputError("stop_after", f"unknown stage {stop_after!r}; choose from "
                                       f"{', '.join(STAGES)}")


def run(config: Mapping[str, Any], out: str | os.PathLike[str], *, mode: Mode = "new",
        progress: bool = True, on_stage: Callable[[str], None] | None = None,
        stop_after: str | None = None, redo: Sequence[str] = (),
        given: InMemory | None = None) -> Path:
    """Run the whole pipeline for a resolved config (or up to ``stop_after``, one of
    ``STAGES``; ``mode="resume"`` continues later, rerunning the finished stages named in
    ``redo``, e.g. ``generators/ldm``); ``given``: data passed as arrays (:class:`InMemory`).
    Returns the run folder."""
    _check_stage(stop_after)  # before anything is written
    inputs = load_inputs(config, given, on_stage=on_stage)
    folder = RunFolder(out, mode, redo=redo)
    try:
        folder.write_config(inputs.config)
        if given is not None and given.real is not None:
            save_real_data(folder.path(REAL_COPY), inputs.real)
        folder.record_inputs(**{f"real.{k}": v for k, v in inputs.real.hashes().items()},
                             **{f"synthetic.{k}": v.sha256()
                                for k, v in inputs.user_sets.items()},
                             **{f"privacy.{k}": v.sha256() for k, v in inputs.declared.items()})
        folder.record_seeds(seed=inputs.config["seed"])
        pipeline = Pipeline(inputs, folder, progress=progress, on_stage=on_stage)
        results = pipeline.execute(stop_after)
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
         on_stage: Callable[[str], None] | None = None, fail_if: Sequence[str] = ()) -> Path:
    """The main job on the built-in phantom data (``fail_if``: gates, as ``--fail-if``)."""
    from synthlens.config import packaged_config

    config = resolve_config(packaged_config("demo"), source="demo", budget=budget, seed=seed,
                            device=device, fail_if=fail_if)
    return run(config, out, mode=mode, progress=progress, on_stage=on_stage)


def evaluate(real: str | Mapping[str, Any], synthetic: Mapping[str, Any],
             out: str | os.PathLike[str], *, budget: str = "demo", seed: int = 0,
             device: str = "auto", mode: Mode = "new", extractors: list[str] | None = None,
             metrics: list[str] | None = None, protocols: list[str] | None = None,
             members: str | None = None, non_members: str | None = None,
             resize: str | None = None, strict: bool | None = None,
             progress: bool = True, on_stage: Callable[[str], None] | None = None,
             fail_if: Sequence[str] = ()) -> Path:
    """Score synthetic sets the user brings (no generator training; ``fail_if``: gates).

    ``real`` is a dataset spec (as ``--real``) or arrays in the layout of a MedMNIST
    ``.npz``; each synthetic set a path (as ``--synthetic``) or ``{"images", "labels"}``
    arrays (:class:`InMemory` says where the run folder keeps arrays). ``members`` and
    ``non_members`` (config ``privacy.members``, ``privacy.non_members``: a split name or a
    path) replace ``configs/evaluate.yaml``'s ``train`` and ``val``; ``resize`` (``none``,
    ``area``, ``lanczos``) and ``strict`` set the config keys of those names. None keeps
    the default."""
    from synthlens.config import packaged_config

    in_memory = {name: value for name, value in synthetic.items()
                 if not isinstance(value, str | os.PathLike)}
    given = InMemory(None if isinstance(real, str | os.PathLike) else real, in_memory)
    copies = Path(out).resolve()  # where the run folder will keep the arrays
    raw = packaged_config("evaluate")
    raw["dataset"] = {**raw.get("dataset", {}), "source": str(copies / REAL_COPY)
                      if given.real is not None else os.fspath(real)}
    raw["synthetic"] = {name: str(copies / synthetic_copy(name)) if name in in_memory
                        else os.fspath(value) for name, value in synthetic.items()}
    for key, value in (("members", members), ("non_members", non_members)):
        if value is not None:
            raw["privacy"] = {**raw.get("privacy", {}), key: os.fspath(value)}
    if resize is not None:
        raw["resize"] = resize
    if strict is not None:
        raw["strict"] = strict
    if extractors:
        raw["features"] = {"extractors": extractors, "primary": extractors[0]}
    if metrics:
        raw.setdefault("metrics", {})["names"] = metrics
    if protocols is not None:
        raw.setdefault("utility", {})["protocols"] = protocols
    try:
        config = resolve_config(raw, source="evaluate", budget=budget, seed=seed,
                                device=device, fail_if=fail_if)
    except SettingError as error:  # name the command-line option the value came from
        for prefix, option in _EVALUATE_OPTIONS.items():
            if error.key == prefix or error.key.startswith((f"{prefix}[", f"{prefix}.")):
                raise InputError(option, error.detail) from None
        raise
    return run(config, out, mode=mode, progress=progress, on_stage=on_stage,
               given=given if given.real is not None or in_memory else None)


#: Config keys that ``evaluate`` fills from its command-line options.
_EVALUATE_OPTIONS = {"metrics.names": "--metrics", "features.extractors": "--extractors",
                     "features.primary": "--extractors", "utility.protocols": "--protocols",
                     "synthetic": "--synthetic", "privacy.members": "--members",
                     "privacy.non_members": "--non-members", "resize": "--resize",
                     "strict": "--strict"}


def rebuild_report(run_dir: str | os.PathLike[str]) -> Path:
    """Re-render report.html, results.csv and the figures of a finished run from its
    folder: the stored results and analysis, nothing recomputed; returns the page."""
    from synthlens.report import build_report

    run_dir = Path(run_dir)
    if not (run_dir / RESULTS).exists():
        raise InputError(run_dir, "holds no results.json; is it a finished synthlens run?")
    return build_report(run_dir)
