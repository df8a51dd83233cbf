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
from synthlens.executor import (
    Executor,
    LocalExecutor,
    Unit,
    make_executor,
    run_units,
    unit_threads,
)
from synthlens.generators import GENERATORS, duplicate_reference, get_generator, noise_reference
from synthlens.generators.base import Budget
from synthlens.hashing import json_sha256
from synthlens.io import read_json, write_json
from synthlens.metrics.base import MetricResult
from synthlens.runfolder import Mode, RunFolder

if TYPE_CHECKING:
    from synthlens.features import FeatureCache
    from synthlens.metrics import RealReference, SpaceScorer
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
    #: The image size (H, W) of each user set that ``resize`` brought to the real size.
    resized_from: dict[str, list[int]] = field(default_factory=dict)


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
    resized_from = {}
    for name, path in settings.synthetic.items():
        images = load_synthetic(given.synthetic.get(name, path), real.class_names, name)
        source = path if name not in given.synthetic else images.source  # arrays: their name
        user_sets[name] = _at_real_size(images, real, settings.resize, source, notify)
        if user_sets[name] is not images:
            resized_from[name] = [int(v) for v in images.image_shape[:2]]
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
                  indexes, resized_from)


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




# ---------------------------------------------------------------------- units
# What the executors run (synthlens.executor): module-level functions of picklable
# arguments that write their stage's outputs into the run folder ``root`` and return facts
# for the driver's manifest. Nothing here reads or writes manifest.json.

#: Where a fitted extractor's state lives in its stage folder.
EXTRACTOR = "extractor.pt"


def train_generator(root: str, stage: str, spec: GeneratorSpec, budget: Budget,
                    counts: np.ndarray, fit_train: ImageSet, *, seed: int, device: str,
                    progress: bool) -> dict[str, Any]:
    """Unit ``generators/<name>``: train one generator (continuing from the checkpoint a
    killed attempt left), save it and write each of its sets to ``sets/<name>/``."""
    folder = Path(root) / stage
    generator = get_generator(spec.family, **spec.params)
    generator.fit(fit_train, budget, device=device, seed=seed, workdir=folder,
                  progress=progress)
    facts: dict[str, Any] = {}
    if generator.resumed_from is not None:
        part, step = generator.resumed_from
        facts["resumed_from"] = {"stage": part, "step": step}
    generator.save(folder / "model.pt")
    for set_name, options in spec.variants():
        images = generator.sample(counts, seed=seed + 1, name=set_name, **options)
        save_imageset(Path(root) / synthetic_copy(set_name), images)
    (folder / "checkpoint.pt").unlink(missing_ok=True)  # model.pt supersedes it
    return facts


def fit_extractor(root: str, stage: str, name: str, options: Mapping[str, Any],
                  fit_train: ImageSet, val: ImageSet, *, seed: int, device: str,
                  progress: bool) -> dict[str, Any]:
    """Unit ``features/<name>``: fit an extractor that learns from the real data."""
    from synthlens.features import get_extractor

    extractor = get_extractor(name, **options)
    extractor.fit(fit_train, val=val, seed=seed, device=device, progress=progress)
    extractor.save(Path(root) / stage / EXTRACTOR)
    return {}


def extractor_class_needs_fit(name: str, options: Mapping[str, Any]) -> bool:
    from synthlens.features import available_extractors, extractor_class

    if name in available_extractors():
        return bool(extractor_class(name).needs_fit)
    return bool(open_extractor(name, options, None).needs_fit)


_OPEN: dict[str, Any] = {}


def _stamp(path: str | None) -> list[int] | None:
    if path is None:
        return None
    info = os.stat(path)
    return [info.st_mtime_ns, info.st_size]


def open_extractor(name: str, options: Mapping[str, Any], state: str | None) -> Any:
    """An extractor ready to extract: built from its name and options and, for one that
    learns, loaded from ``state`` (its unit's ``extractor.pt``). Kept per process, so a
    worker that scores many sets builds each extractor once."""
    from synthlens.features import get_extractor

    key = json_sha256({"name": name, "options": dict(options), "state": state,
                       "stamp": _stamp(state)})
    if key not in _OPEN:
        extractor = get_extractor(name, **options)
        if state is not None:
            extractor.load(state)
        while len(_OPEN) >= 8:
            _OPEN.pop(next(iter(_OPEN)))
        _OPEN[key] = extractor
    return _OPEN[key]


@dataclass(frozen=True)
class SpaceTask:
    """What a metrics unit of one feature space needs (picklable): every extractor of the
    run as (name, options, state) (the label-consistency judge may be another space's),
    the reference's settings and the scorer's."""

    space: str
    extractors: list[tuple[str, dict[str, Any], str | None]]
    k: int
    distance: str
    feature_space: dict[str, Any]
    neighbourhood: str
    primary: bool
    feature_metrics: list[str]
    image_metrics: list[str]
    class_names: Sequence[str]
    seed: int
    effort: dict[str, Any]
    cache_dir: str
    device: str

    def scorer(self, reference: RealReference | None, judge: Any = None) -> SpaceScorer:
        from synthlens.metrics import SpaceScorer

        return SpaceScorer(reference, space=self.space,  # type: ignore[arg-type]
                           primary=self.primary, feature_metrics=self.feature_metrics,
                           image_metrics=self.image_metrics, judge=judge,
                           class_names=self.class_names, seed=self.seed, **self.effort)


_REFERENCE: dict[str, RealReference] = {}


def score_space(root: str, stage: str, task: SpaceTask, fit_train: ImageSet,
                holdout: ImageSet, images: ImageSet | None, *, set_name: str | None = None,
                is_holdout: bool = False, exact_copy_of: np.ndarray | None = None,
                progress: bool = False) -> dict[str, Any]:
    """Unit ``metrics/<space>/<set>``: one set's metrics in one feature space (``images``
    None: the real-vs-real floor), features read from the cache or extracted into it. The
    fitted real reference is kept for the next unit of the same space in this process."""
    from synthlens.features import FeatureCache
    from synthlens.metrics import RealReference, label_judge, write_audit_csv

    extractors = {name: open_extractor(name, options, state)
                  for name, options, state in task.extractors}
    cache = FeatureCache(task.cache_dir)

    def features(x: ImageSet) -> np.ndarray:
        return cache.get(extractors[task.space], x, device=task.device, progress=progress)

    key = json_sha256({"task": repr(task), "stamps": [_stamp(s) for _, _, s in task.extractors],
                       "train": fit_train.sha256(), "holdout": holdout.sha256()})
    if key not in _REFERENCE:
        _REFERENCE.clear()  # one space at a time: the units of a space come together
        _REFERENCE[key] = RealReference(
            task.k, task.distance, feature_space=task.feature_space, device=task.device,
            neighbourhood=task.neighbourhood).fit(
            features(fit_train), fit_train.labels, holdout=features(holdout),
            holdout_labels=holdout.labels, class_names=task.class_names)
    scorer = task.scorer(_REFERENCE[key], judge=label_judge(extractors.values()))
    path = Path(root) / stage / "metrics.json"
    if images is None:
        write_json(path, {n: r.to_json() for n, r in scorer.floor().items()})
    else:
        scored = scorer.score(features(images), images.labels, images.images,
                              is_holdout=is_holdout, exact_copy_of=exact_copy_of)
        if scored.audit is not None:
            write_audit_csv(Path(root) / "metrics" / "audit" / f"{set_name}.csv",
                            scored.audit, task.class_names)
        write_json(path, {n: r.to_json() for n, r in scored.results.items()})
    return {"extractions": cache.extractions}


def utility_of(root: str, stage: str, fit_real: RealData, options: Mapping[str, Any],
               set_name: str, images: ImageSet | None) -> dict[str, Any]:
    """Unit ``utility/<set>``: train one set's utility arms (``images`` None: the
    real-only baseline, whose arms the other units read from ``utility/arms/``)."""
    evaluator = evaluator_of(fit_real, options)
    scored = (evaluator.baseline_results() if images is None
              else evaluator.evaluate_set(set_name, images))
    write_json(Path(root) / stage / "utility.json", {n: r.to_json() for n, r in scored.items()})
    return {}


def _driver_device(device: str, executor: Executor) -> str:
    """The device the units use. On a Ray cluster an explicit ``cuda`` is the workers'
    (the driver, e.g. a CPU head node, need not see a GPU)."""
    if executor.name == "ray" and device == "cuda":
        return device
    return resolve_device(device)


class Pipeline:
    """One run: resolved config + validated inputs + run folder.

    The driver of the run: it decides which units (:mod:`synthlens.executor`) a stage
    needs, hands them to ``executor`` and alone writes the manifest; the units compute.
    """

    def __init__(self, inputs: Inputs, run: RunFolder, *, progress: bool = True,
                 on_stage: Callable[[str], None] | None = None,
                 executor: Executor | None = None) -> None:
        self.inputs = inputs
        self.config = inputs.config
        self.run = run
        self.progress = progress
        self.on_stage = on_stage or (lambda message: log.info(message))
        self.settings = inputs.settings
        self.seed = int(self.config["seed"])
        self.threads = self.settings.threads
        self.executor = executor or LocalExecutor(1, self.threads)
        self.device = _driver_device(self.config["device"], self.executor)
        self.budget = self.config["budget_settings"]
        self._copies: dict[str, dict[str, np.ndarray]] = {}
        self._indexes = dict(self.inputs.indexes)  # + the members, on first use
        #: Sets whose features the units of this invocation extracted (0: all cached).
        self.extractions = 0

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

    # ----------------------------------------------------------------- units
    def fingerprint(self, payload: Mapping[str, Any]) -> str:
        """A unit's fingerprint: ``payload`` and, when not the default 1, the thread count
        (on a CPU a number can depend on how a computation is split between threads)."""
        return json_sha256(payload if self.threads == 1 else {**payload,
                                                              "threads": self.threads})

    def unit(self, stage: str, key: str, fn: Callable[..., dict[str, Any] | None],
             *args: Any, message: str | None = None,
             done: Callable[[dict[str, Any]], None] | None = None, **kwargs: Any) -> Unit:
        """A unit of this run: its threads, and a GPU when the run computes on CUDA."""
        return Unit(stage, key, fn, args, kwargs, threads=self.threads,
                    gpu=self.device.startswith("cuda"), message=message, done=done)

    def run_units(self, units: Sequence[Unit]) -> None:
        """Run independent units on the executor; record each in the manifest."""
        def begin(unit: Unit) -> None:
            if unit.message:
                self.on_stage(unit.message)
            self.run.begin(unit.stage, unit.key, threads=unit.threads)

        def end(unit: Unit, facts: dict[str, Any]) -> None:
            self.extractions += int(facts.pop("extractions", 0))
            if unit.done is not None:
                unit.done(facts)
            self.run.end(unit.stage, **facts)

        def fail(unit: Unit, error: BaseException) -> None:
            staged = self.run.fail(unit.stage, error)
            if staged is not None:
                raise staged from error
            if isinstance(error, Exception):
                raise error

        run_units(units, self.executor, begin=begin, end=end, fail=fail)

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
    def _counts(self) -> np.ndarray:
        return sample_counts(self.inputs.real.train,
                             self.settings.budget_settings.sample_fraction)

    def generator_units(self, splits: Splits) -> list[Unit]:
        """One unit per configured generator not yet trained: train it, keep its model in
        ``generators/<name>/`` and write its sets to ``sets/<name>/samples.npz``."""
        counts = self._counts()
        units = []
        for spec in self.settings.generators:
            budget = self.settings.budget_settings.generator_budget(spec.family)
            stage = f"generators/{spec.name}"
            key = self.fingerprint({"spec": spec.to_dict(), "budget": budget.to_dict(),
                                    "seed": self.seed, "train": splits.fit_train.sha256(),
                                    "counts": counts.tolist()})
            if self.run.is_done(stage, key):
                continue

            def done(facts: dict[str, Any], name: str = spec.name) -> None:
                if "resumed_from" in facts:
                    where = facts["resumed_from"]
                    self.on_stage(f"generator {name} continued from its checkpoint "
                                  f"({where['stage']} step {where['step']})")

            units.append(self.unit(stage, key, train_generator, str(self.run.root), stage,
                                   spec, budget, counts, splits.fit_train, seed=self.seed,
                                   device=self.device, progress=self.progress,
                                   message=f"training generator {spec.name} ({spec.family})",
                                   done=done))
        return units

    def generate(self, splits: Splits) -> dict[str, SetEntry]:
        """Every set to score, by name: the trained generators' (their units have run),
        the reference sets and the user's.

        Each set's images end up in ``sets/<name>/samples.npz`` (the report's grids read
        them); a generator's model, checkpoints and training curves stay in
        ``generators/<name>/``.
        """
        counts = self._counts()
        entries: list[SetEntry] = []
        for spec in self.settings.generators:
            for set_name, options in spec.variants():
                images = load_imageset(self.run.path(synthetic_copy(set_name)), split=set_name)
                entries.append(self._filed(SetEntry(set_name, "generated", images, spec.family,
                                                    options),
                                           curves=f"generators/{spec.name}/curves.json"))
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
        unit wrote them)."""
        path = self.run.path(synthetic_copy(entry.name))
        if entry.kind != "generated":  # generated sets were written by their unit
            save_imageset(path, entry.images)
        entry.files = {"samples": synthetic_copy(entry.name)}
        if curves:
            entry.files["curves"] = curves
        return entry

    # ----------------------------------------------------------------- stage: features
    def _extractor_plan(self, splits: Splits) -> list[tuple[str, dict[str, Any], str | None,
                                                            str | None]]:
        """(name, options, stage, fingerprint) of every extractor; stage and fingerprint
        are None for one that needs no fit."""
        plan = []
        for name in self.settings.features.extractors:
            options = self.settings.extractor_options(name)
            stage = key = None
            if extractor_class_needs_fit(name, options):
                stage = f"features/{name}"
                key = self.fingerprint({"extractor": name, "options": options,
                                        "seed": self.seed, "train": splits.fit_train.sha256()})
            plan.append((name, options, stage, key))
        return plan

    def extractor_units(self, splits: Splits) -> list[Unit]:
        """One unit per extractor that learns from the real data and is not yet fitted."""
        units = []
        for name, options, stage, key in self._extractor_plan(splits):
            if stage is None or key is None or (
                    self.run.is_done(stage, key) and self.run.path(stage, EXTRACTOR).exists()):
                continue
            units.append(self.unit(stage, key, fit_extractor, str(self.run.root), stage, name,
                                   options, splits.fit_train, self.inputs.real.val,
                                   seed=self.seed, device=self.device,
                                   progress=self.progress,
                                   message=f"fitting feature extractor {name}"))
        return units

    def extract_features(self, splits: Splits) -> FeatureSpaces:
        """The ready extractors (fitted ones read from ``features/<name>/``, where their
        units left them) and the feature cache."""
        from synthlens.features import FeatureCache

        spaces = FeatureSpaces({}, FeatureCache(self._cache_dir()), self.device, self.progress)
        for name, options, stage, _ in self._extractor_plan(splits):
            spaces.extractors[name] = open_extractor(
                name, options, None if stage is None else str(self.run.path(stage, EXTRACTOR)))
        return spaces

    def _cache_dir(self) -> str:
        return str(self.config["features"].get("cache_dir")
                   or self.run.path("features", "cache"))

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

    def metric_units(self, splits: Splits, sets: Mapping[str, SetEntry], spaces: FeatureSpaces
                     ) -> tuple[list[Unit], list[Unit], Callable[[], tuple[
                         Scores, dict[str, MetricResult]]]]:
        """Every set's metrics in every feature space (each set and space a unit) and the
        real-vs-real floors; what is scored how is :class:`~synthlens.metrics.SpaceScorer`'s
        policy. Returns the floor units, the set units (run after the floors, which
        extract the reference's features into the cache) and a function that reads every
        result once they ran."""
        from synthlens.metrics import run_metrics

        k = int(self.config["metrics"]["k"])
        primary = self.config["features"]["primary"]
        class_names = list(splits.members.class_names)
        extractors = [(name, options, None if stage is None
                       else str(self.run.path(stage, EXTRACTOR)))
                      for name, options, stage, _ in self._extractor_plan(splits)]
        floor_units: list[Unit] = []
        set_units: list[Unit] = []
        reads: list[tuple[str | None, Path, SpaceScorer]] = []
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
            task = SpaceTask(space=extractor_name, extractors=extractors, k=k,
                             distance=extractor.distance, feature_space=space,
                             neighbourhood=rule, primary=extractor_name == primary,
                             feature_metrics=feature_names, image_metrics=image_names,
                             class_names=class_names, seed=self.seed,
                             effort=dict(self.budget.get("metrics", {})),
                             cache_dir=self._cache_dir(), device=self.device)
            scorer = task.scorer(None)  # names and effort only; no reference fitted here
            base = {"names": feature_names, "k": k, "space": space, "seed": self.seed,
                    "effort": scorer.effort,
                    "train": members.sha256(), "holdout": holdout.sha256()}
            stage = f"metrics/{extractor_name}/real-vs-real"
            key = self.fingerprint(base)
            if not self.run.is_done(stage, key):
                floor_units.append(self.unit(stage, key, score_space, str(self.run.root),
                                             stage, task, members, holdout, None,
                                             progress=self.progress))
            reads.append((None, self.run.path(stage, "metrics.json"), scorer))
            for set_name, entry in sets.items():
                images = drawn(entry.images)
                stage = f"metrics/{extractor_name}/{set_name}"
                key = self.fingerprint({**base, "set": images.sha256(),
                                        "images": scorer.image_metrics})
                if not self.run.is_done(stage, key):
                    set_units.append(self.unit(
                        stage, key, score_space, str(self.run.root), stage, task, members,
                        holdout, images, set_name=set_name,
                        is_holdout=entry.generator == "real-holdout",
                        exact_copy_of=self.copies(splits, images)["members"],
                        progress=self.progress))
                reads.append((set_name, self.run.path(stage, "metrics.json"), scorer))

        def collect() -> tuple[Scores, dict[str, MetricResult]]:
            results: Scores = {name: {} for name in sets}
            floors: dict[str, MetricResult] = {}
            for set_name, path, scorer in reads:
                named = scorer.named(read_json(path))
                (floors if set_name is None else results[set_name]).update(named)
            for set_name, extra in run_metrics(results).items():
                results[set_name].update(extra)
            return results, floors

        return floor_units, set_units, collect

    # ----------------------------------------------------------------- stage: utility
    def utility_units(self, splits: Splits, sets: Mapping[str, SetEntry]
                      ) -> tuple[list[Unit], list[Unit], Callable[[], Scores]]:
        """The real-only baseline's unit, every set's unit (run after the baseline, whose
        arms they read from ``utility/arms/``) and a function that reads the results."""
        from synthlens.utility import BASELINE_NAME

        fit_real, options = utility_inputs(self.inputs, splits.fit_train,
                                           cache_dir=self.run.path(*UTILITY_ARMS),
                                           device=self.device, progress=self.progress)
        base = evaluator_of(fit_real, options).fingerprint()
        jobs = [(BASELINE_NAME, None), *((n, e.images) for n, e in sets.items())]
        units: list[Unit] = []
        paths: dict[str, Path] = {}
        for set_name, images in jobs:
            stage = f"utility/{set_name}"
            key = self.fingerprint({**base, "set": None if images is None
                                    else images.sha256()})
            paths[set_name] = self.run.path(stage, "utility.json")
            if not self.run.is_done(stage, key):
                units.append(self.unit(stage, key, utility_of, str(self.run.root), stage,
                                       fit_real, options, set_name, images,
                                       message=f"utility of {set_name}"))
        baseline = [u for u in units if u.stage == f"utility/{BASELINE_NAME}"]

        def collect() -> Scores:
            return {name: {n: MetricResult.from_json(n, v) for n, v in read_json(path).items()}
                    for name, path in paths.items()}

        return baseline, [u for u in units if u not in baseline], collect

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
                "resized_from": self.inputs.resized_from.get(name),
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
        the contents of ``results.json``.

        The units run in three waves, each handed to the executor at once: the generators
        and the extractor fits; the real-vs-real floors and the real-only utility arms; every
        set's metrics and utility. The results, the analysis and the report follow here."""
        _check_stage(stop_after)
        splits = self.prepare_data()
        if stop_after == "data":
            return None
        first = self.generator_units(splits)
        if stop_after != "generate":
            first += self.extractor_units(splits)
        self.run_units(first)
        sets = self.generate(splits)
        if stop_after == "generate":
            return None
        spaces = self.extract_features(splits)
        if stop_after == "features":
            return None
        floor_units, set_units, collect_metrics = self.metric_units(splits, sets, spaces)
        with_utility = stop_after != "score" and self.config["utility"]["protocols"] != []
        baseline, utility_units, collect_utility = (
            self.utility_units(splits, sets) if with_utility else ([], [], dict))
        try:
            self.run_units([*floor_units, *baseline])
            self.run_units([*set_units, *utility_units])
        finally:  # how much feature extraction this invocation did (0: all cached)
            self.run.record_run(feature_extractions=self.extractions)
        metrics, floors = collect_metrics()
        if stop_after == "score":
            return None
        utility = collect_utility()
        results = self.write_results(splits, sets, metrics, floors, utility)
        results = self.write_analysis(results)
        self.write_report(results)
        return results


RESULTS = "results.json"
#: Where the utility stage caches every trained arm (content-addressed ``.npz`` files).
UTILITY_ARMS = ("utility", "arms")


def utility_inputs(inputs: Inputs, fit_train: ImageSet, *,
                   cache_dir: str | os.PathLike[str] | None, device: str,
                   progress: bool = True) -> tuple[RealData, dict[str, Any]]:
    """What the utility stage's evaluator is built from, for a run's inputs (picklable, so
    a unit can build it elsewhere): the real data its classifiers train on (``fit_train``,
    what the generators saw: the training split minus the holdout) and its options."""
    real, config = inputs.real, inputs.config
    settings = dict(config["budget_settings"].get("utility", {}))
    if config["utility"]["protocols"] is not None:
        settings["protocols"] = list(config["utility"]["protocols"])
    fit_real = RealData(real.name, fit_train, real.val, real.test, source=real.source,
                        task=real.task)
    return fit_real, {"config": settings, "cross_task_data": inputs.cross_task,
                      "device": device, "seed": int(config["seed"]), "progress": progress,
                      "cache_dir": None if cache_dir is None else str(cache_dir)}


def evaluator_of(fit_real: RealData, options: Mapping[str, Any]) -> UtilityEvaluator:
    """The evaluator :func:`utility_inputs` describes."""
    from synthlens.utility import UtilityConfig, UtilityEvaluator

    return UtilityEvaluator(fit_real, **{**options, "config": UtilityConfig.from_dict(
        dict(options["config"]))})


def utility_evaluator(inputs: Inputs, fit_train: ImageSet, *,
                      cache_dir: str | os.PathLike[str] | None, device: str,
                      progress: bool = True) -> UtilityEvaluator:
    """The utility stage's evaluator for a run's inputs (:func:`utility_inputs`)."""
    return evaluator_of(*utility_inputs(inputs, fit_train, cache_dir=cache_dir,
                                        device=device, progress=progress))


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
    settings = inputs.settings
    executor = make_executor(settings.executor, jobs=settings.jobs, threads=settings.threads,
                             ray_address=settings.ray_address,
                             device=resolve_device(settings.device)
                             if settings.executor == "local" else settings.device)
    try:
        folder = RunFolder(out, mode, redo=redo)
    except BaseException:
        executor.close()
        raise
    try:
        folder.record_run(**executor.describe(), threads=settings.threads)
        folder.write_config(inputs.config)
        if given is not None and given.real is not None:
            save_real_data(folder.path(REAL_COPY), inputs.real)
        folder.record_inputs(**{f"real.{k}": v for k, v in inputs.real.hashes().items()},
                             **{f"synthetic.{k}": v.sha256()
                                for k, v in inputs.user_sets.items()},
                             **{f"privacy.{k}": v.sha256() for k, v in inputs.declared.items()})
        folder.record_seeds(seed=inputs.config["seed"])
        pipeline = Pipeline(inputs, folder, progress=progress, on_stage=on_stage,
                            executor=executor)
        with unit_threads(settings.threads):  # the driver's own work, and inline units
            results = pipeline.execute(stop_after)
    except KeyboardInterrupt:
        folder.finish("interrupted")
        raise
    except BaseException:
        folder.finish("failed")
        raise
    finally:
        executor.close()
        _OPEN.clear()  # the extractors and reference that inline units kept
        _REFERENCE.clear()
    folder.finish("complete" if results is not None else "stopped")
    return folder.root


def demo(out: str | os.PathLike[str], *, budget: str = "demo", seed: int = 0,
         device: str = "auto", mode: Mode = "new", progress: bool = True,
         on_stage: Callable[[str], None] | None = None, fail_if: Sequence[str] = (),
         **execution: Any) -> Path:
    """The main job on the built-in phantom data (``fail_if``: gates, as ``--fail-if``;
    ``execution``: ``threads``, ``executor``, ``jobs``, ``ray_address``)."""
    from synthlens.config import packaged_config

    config = resolve_config(packaged_config("demo"), source="demo", budget=budget, seed=seed,
                            device=device, fail_if=fail_if, **execution)
    return run(config, out, mode=mode, progress=progress, on_stage=on_stage)


def evaluate(real: str | Mapping[str, Any], synthetic: Mapping[str, Any],
             out: str | os.PathLike[str], *, budget: str = "demo", seed: int = 0,
             device: str = "auto", mode: Mode = "new", extractors: list[str] | None = None,
             metrics: list[str] | None = None, protocols: list[str] | None = None,
             members: str | None = None, non_members: str | None = None,
             resize: str | None = None, strict: bool | None = None,
             progress: bool = True, on_stage: Callable[[str], None] | None = None,
             fail_if: Sequence[str] = (), **execution: Any) -> Path:
    """Score synthetic sets the user brings (no generator training; ``fail_if``: gates;
    ``execution``: ``threads``, ``executor``, ``jobs``, ``ray_address``).

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
                                device=device, fail_if=fail_if, **execution)
    except SettingError as error:  # name the command-line option the value came from
        for prefix, option in EVALUATE_OPTIONS.items():
            if error.key == prefix or error.key.startswith((f"{prefix}[", f"{prefix}.")):
                raise InputError(option, error.detail) from None
        raise
    return run(config, out, mode=mode, progress=progress, on_stage=on_stage,
               given=given if given.real is not None or in_memory else None)


#: Config keys that ``evaluate`` fills from its command-line options (a bad value is named
#: by its option; :func:`synthlens.evaluate` names the keyword argument instead).
EVALUATE_OPTIONS = {"metrics.names": "--metrics", "features.extractors": "--extractors",
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
