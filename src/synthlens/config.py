"""Run configuration: a YAML file (or dict) resolved against defaults and a named budget,
and checked in full before anything runs.

A config says *what* to compare; the budget (``configs/budgets.yaml``) says *how long*
each stage trains. :func:`resolve_config` fills the defaults, expands the budget (with the
config's ``budget_overrides`` merged over it) and returns a typed :class:`RunConfig`; its
:meth:`RunConfig.to_dict` is what the run folder's ``config.yaml`` holds, so a run can be
repeated from that file alone (:meth:`RunConfig.from_resolved` reads it back).

Every key is checked against what the code declares, not against a list kept here: the
sections below are dataclasses; a generator's ``params``, its budget ``options`` and its
``sample`` knobs against the family's knob dataclass (``Generator.Knobs``), the budget's
keys against :class:`~synthlens.generators.Budget`, image sizes against the family's
``size_multiple``, metric names against the metric registry, extractor names and options
against each extractor's constructor, protocols and classifier settings against
:class:`~synthlens.utility.UtilityConfig`. The first problem raises
:class:`~synthlens.errors.SettingError`, naming the file, the key path and the accepted
values (the CLI prints it as one line and exits 2), before a run folder exists.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from synthlens.data.dataset import SPLITS
from synthlens.data.resize import RESIZE_METHODS
from synthlens.errors import InputError, SettingError, key_parts
from synthlens.settings import INTERNAL, build, check_names, names, plain, setting_fields

if TYPE_CHECKING:
    from synthlens.generators.base import Budget
    from synthlens.utility.protocols import UtilityConfig

#: The non-learned reference sets the harness computes itself (never correlated; every score
#: is read against them): unseen real images, training images replayed, and noise.
REFERENCE_SETS = ("real-holdout", "real-duplicate", "noise")

# Stages a run can stop after (`synthlens run --stop-after`); utility and report follow.
STAGES = ("data", "generate", "features", "score")
DEVICES = ("auto", "cpu", "cuda")
#: The settings of where and how the units run (never part of what a run computes,
#: except ``threads``).
EXECUTION = ("threads", "executor", "jobs", "ray_address")


def load_budgets() -> dict[str, Any]:
    text = resources.files("synthlens").joinpath("configs/budgets.yaml").read_text()
    return yaml.safe_load(text)


#: The named budgets, as ``configs/budgets.yaml`` defines them.
BUDGETS: tuple[str, ...] = tuple(load_budgets())


def packaged_config(name: str) -> dict[str, Any]:
    """A config shipped with synthlens (``demo``, ...)."""
    text = resources.files("synthlens").joinpath(f"configs/{name}.yaml").read_text()
    return yaml.safe_load(text)


# ---------------------------------------------------------------------- sections
@dataclass(frozen=True)
class DatasetConfig:
    """``dataset:``, the real data.

    Parameters
    ----------
    source:
        ``demo`` (or ``demo64``), a MedMNIST name (``pneumoniamnist``, ``bloodmnist@64``),
        an ``.npz`` path or an image folder (relative paths: from the config's folder).
    size:
        Image size of ``demo`` and of MedMNIST names [28]; files have the size they have.
    download, cache_dir:
        Whether a MedMNIST file may be downloaded [true], and its cache folder
        [``~/.cache/synthlens``].
    """

    source: str = "demo"
    size: int | None = None
    download: bool = True
    cache_dir: str | None = None


def sweep_variants(spec: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The sets one ``generators:`` entry draws: ``sample: {knob: [values]}`` sweeps one
    knob (one set per value, named ``NAME-KNOBVALUE``); otherwise one set, ``NAME``."""
    sample = dict(spec.get("sample") or {})
    swept = [k for k, v in sample.items() if isinstance(v, list)]
    if len(swept) > 1:
        raise SettingError("sample", f"only one knob can sweep, got {swept}")
    if not swept:
        return [(spec["name"], sample)]
    knob = swept[0]
    return [(f"{spec['name']}-{knob}{value:g}" if isinstance(value, float | int)
             else f"{spec['name']}-{knob}{value}", {**sample, knob: value})
            for value in sample[knob]]


@dataclass(frozen=True)
class GeneratorSpec:
    """One entry of ``generators:``.

    Parameters
    ----------
    family:
        A generator family (``synthlens.generators.GENERATORS``).
    name:
        The set's name [the family's].
    params:
        Knobs to pin whatever the budget (the family's ``Knobs``: names, types, defaults).
    sample:
        Sample knobs of the draw (the family's ``sample_knobs()``): a value, or a list of
        values to sweep (one knob may sweep; one set per value, named ``NAME-KNOBVALUE``).
    """

    family: str
    name: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)
    sample: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", self.family)

    def variants(self) -> list[tuple[str, dict[str, Any]]]:
        """(set name, sample knobs) of every set this entry draws."""
        return sweep_variants(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "family": self.family,
                "params": copy.deepcopy(dict(self.params)),
                "sample": copy.deepcopy(dict(self.sample))}


#: The smallest per-space subsample (``features.subsample``): below it the k-NN and moment
#: metrics of the real-vs-real floor's halves are noise.
MIN_SUBSAMPLE = 100


@dataclass(frozen=True)
class FeaturesConfig:
    """``features:``, the feature spaces the metrics are computed in.

    Parameters
    ----------
    extractors:
        Registered extractor names or ``"package.module:factory"`` entry points.
    primary:
        The headline space (metrics without an ``@space`` suffix) [``domain`` when listed,
        else the first extractor].
    options:
        Per-extractor settings merged over the budget's ``features.<name>`` (e.g. a
        TorchScript file: ``{torchscript: {path: model.pt}}``).
    cache_dir:
        A feature cache shared between runs [inside the run folder].
    subsample:
        Per extractor, the number of images of each set scored in its space (``{inception:
        500}``): a fixed, class-stratified draw of the run's seed, the same for the real
        reference, the holdout and every set; for costly spaces on CPU. Spaces not named
        score every image [none].
    """

    extractors: tuple[str, ...] = ("domain",)
    primary: str | None = None
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    cache_dir: str | None = None
    subsample: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.extractors:
            raise SettingError("extractors", "is empty; name at least one extractor")
        if self.primary is None:
            primary = "domain" if "domain" in self.extractors else self.extractors[0]
            object.__setattr__(self, "primary", primary)
        elif self.primary not in self.extractors:
            raise SettingError("primary", f"{self.primary!r} is not one of features.extractors",
                               self.extractors)
        twice = sorted({n for n in self.extractors if self.extractors.count(n) > 1})
        if twice:
            raise SettingError("extractors", f"{twice[0]!r} is listed twice")
        for name, n in self.subsample.items():
            if name not in self.extractors:
                raise SettingError(f"subsample.{name}", "is not one of features.extractors",
                                   self.extractors)
            if isinstance(n, bool) or not isinstance(n, int) or n < MIN_SUBSAMPLE:
                raise SettingError(f"subsample.{name}", f"expected a whole number of images "
                                                        f"of at least {MIN_SUBSAMPLE}, got {n!r}")


@dataclass(frozen=True)
class MetricsConfig:
    """``metrics:``.

    Parameters
    ----------
    names:
        ``all`` (every metric defined for the feature space) or a list of metric names.
    k:
        Neighbourhood size of the k-NN metrics [5].
    neighbourhood:
        Ball membership of the k-NN and copy metrics: ``closed`` (``d <= radius``) or
        ``open`` (``d < radius``, the convention of prdc and of the companion study's
        analyzer) [closed]; see :class:`~synthlens.metrics.RealReference`.
    """

    names: str | tuple[str, ...] = "all"
    k: int = 5
    neighbourhood: str = "closed"

    def __post_init__(self) -> None:
        if isinstance(self.names, str) and self.names != "all":
            raise SettingError("names", f"expected 'all' or a list of metric names, got "
                                        f"{self.names!r}")
        if self.k < 1:
            raise SettingError("k", f"must be at least 1, got {self.k}")
        if self.neighbourhood not in ("closed", "open"):
            raise SettingError("neighbourhood", f"unknown rule {self.neighbourhood!r}",
                               ("closed", "open"))

    @property
    def all(self) -> bool:
        """Every metric (``names: all``)."""
        return self.names in ("all", ("all",))


@dataclass(frozen=True)
class UtilitySection:
    """``utility:``.

    Parameters
    ----------
    protocols:
        Protocols to run [the budget's]; ``[]`` skips the utility stage.
    cross_task_dataset:
        A second labelled dataset (any dataset source) for the ``cross_task`` protocols.
    """

    protocols: tuple[str, ...] | None = None
    cross_task_dataset: str | None = None


@dataclass(frozen=True)
class PrivacySection:
    """``privacy:``, who was a member: the real images the scored sets' generators were
    trained on (the privacy metrics' reference) and the real images they never saw
    (the non-members, which are also the ``real-holdout`` reference set).

    Parameters
    ----------
    members, non_members:
        Each a split name (``train``, ``val``, ``test``) or a path to a labelled image set
        (an ``.npz`` or a class-folder tree, as for ``synthetic:``; write ``./train`` for a
        folder called ``train``). Declare both or neither. Neither [the default of a config]
        keeps the holdout: members are the training split without its
        ``holdout_fraction``, non-members that holdout, as for the generators a run trains;
        so a config that trains generators declares neither. ``synthlens evaluate``
        declares ``members: train, non_members: val`` (its ``configs/evaluate.yaml``).
    """

    members: str | None = None
    non_members: str | None = None

    def __post_init__(self) -> None:
        if (self.members is None) != (self.non_members is None):
            given, missing = (("members", "non_members") if self.non_members is None
                              else ("non_members", "members"))
            raise SettingError(missing, f"missing: privacy.{given} is declared, so declare "
                                        f"privacy.{missing} too (a split name "
                                        f"{', '.join(SPLITS)} or a path)")
        for key in ("members", "non_members"):
            if getattr(self, key) == "":
                raise SettingError(key, "is empty; give a split name or a path", SPLITS)
        if self.members is not None and self.members == self.non_members:
            raise SettingError("non_members", f"is {self.members!r}, the same as members; "
                                              "non-members are images the generator never saw")

    @property
    def declared(self) -> bool:
        """Members and non-members were declared (else the holdout is used)."""
        return self.members is not None


@dataclass(frozen=True)
class MetricEffort:
    """A budget's ``metrics:``: bootstrap replicates of the CIs, KID subsets and MS-SSIM
    pairs (defaults: what the metrics stage takes when a budget names none)."""

    n_bootstrap: int = 200
    kid_subsets: int = 100
    ms_ssim_pairs: int = 200

    def __post_init__(self) -> None:
        for name in ("n_bootstrap", "kid_subsets", "ms_ssim_pairs"):
            if getattr(self, name) < (0 if name == "n_bootstrap" else 1):
                raise SettingError(name, f"must be at least "
                                         f"{0 if name == 'n_bootstrap' else 1}, got "
                                         f"{getattr(self, name)}")


@dataclass(frozen=True)
class BudgetSettings:
    """A budget: a ``budgets.yaml`` entry with the config's ``budget_overrides`` merged
    over it. Sections are owned by stages.

    Parameters
    ----------
    sample_fraction:
        Share of the real training split's class counts each generator draws [1.0].
    metrics:
        Effort of the metrics stage (:class:`MetricEffort`).
    generators:
        One :class:`~synthlens.generators.Budget` mapping per family
        (:meth:`generator_budget`).
    features:
        Settings of each extractor (``features.<name>``), under ``features.options``.
    utility:
        The utility stage (:class:`~synthlens.utility.UtilityConfig`, :meth:`utility_config`).
    """

    sample_fraction: float = 1.0
    metrics: MetricEffort = field(default_factory=MetricEffort)
    generators: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    features: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    utility: Mapping[str, Any] = field(default_factory=dict)
    #: The budget as written (``config.yaml``'s ``budget_settings``; fingerprints hash it).
    raw: Mapping[str, Any] = field(default_factory=dict, metadata=INTERNAL, compare=False)

    def __post_init__(self) -> None:
        if not self.sample_fraction > 0:
            raise SettingError("sample_fraction", f"must be positive, got "
                                                  f"{self.sample_fraction}")

    def generator_budget(self, family: str) -> Budget:
        """The training budget of a generator family."""
        from synthlens.generators.base import Budget

        if family not in self.generators:
            raise SettingError("generators", f"the budget has no settings for {family!r}; "
                                             "add them under budget_overrides.generators",
                               sorted(self.generators))
        return Budget.from_dict(self.generators[family])

    def utility_config(self, protocols: tuple[str, ...] | None = None) -> UtilityConfig:
        """The utility stage's settings, with ``protocols`` (the config's) replacing the
        budget's when given."""
        from synthlens.utility.protocols import UtilityConfig

        settings = dict(self.utility)
        if protocols is not None:
            settings["protocols"] = list(protocols)
        return UtilityConfig.from_dict(settings)

    def to_dict(self) -> dict[str, Any]:
        return copy.deepcopy(dict(self.raw))


@dataclass(frozen=True)
class RunConfig(Mapping[str, Any]):
    """A resolved run config, typed (built by :func:`resolve_config`).

    Attributes are the sections; ``config[key]`` (read-only, the :class:`Mapping`
    interface) gives the plain form of a section as ``config.yaml`` holds it, for code
    that still reads the config as a dict.

    Parameters
    ----------
    name, seed, device, budget:
        Run name; master seed; ``auto`` (cuda when a GPU is present), ``cpu`` or ``cuda``;
        a budget of ``configs/budgets.yaml``.
    dataset:
        :class:`DatasetConfig`.
    holdout_fraction:
        Share of the training split no generator sees, in (0, 0.5) [0.1]: the
        real-holdout reference set and the non-member set of the privacy metrics.
    generators:
        Generators to train (:class:`GeneratorSpec`).
    references:
        Non-learned reference sets computed by the harness (``real-holdout``, ``real-duplicate``,
        ``noise``).
    synthetic:
        User-supplied synthetic sets, ``{name: path}``.
    resize:
        How a user's set whose image size differs from the real data's is brought to it:
        ``none`` (refuse it) [none], ``area`` or ``lanczos``
        (:mod:`synthlens.data.resize`). Grey and RGB are never converted.
    strict:
        Refuse (exit 2, before the run folder exists) a user's set that holds exact
        copies of real val or test images [false: it is scored, and flagged].
    privacy:
        :class:`PrivacySection`, the members and non-members of the privacy metrics.
    features, metrics, utility:
        :class:`FeaturesConfig`, :class:`MetricsConfig`, :class:`UtilitySection`.
    gates:
        Thresholds a pipeline stops on (:mod:`synthlens.gates`), e.g.
        ``"memorisation_rate > 0.01"``: checked after every output is written; a failed
        gate makes the command exit 3.
    budget_settings:
        The expanded budget (:class:`BudgetSettings`); a raw config gives
        ``budget_overrides`` (same structure) instead, merged over the named budget.
    threads:
        Torch and BLAS threads of every unit (one generator, one extractor fit, one
        (space, set) of metrics, one set's utility) [1]: fixed, so that the numbers do not
        depend on the machine's core count or the executor (part of the fingerprints when
        not 1).
    executor:
        Where the units run: ``local`` (this machine) or ``ray`` (a Ray cluster; needs
        ``pip install 'synthlens[ray]'``) [local]. Never changes a number.
    jobs:
        ``local`` only: units side by side in worker processes, or ``auto`` (the available
        cores // ``threads``; 1 runs every unit in this process, one after another) [auto].
    ray_address:
        ``ray`` only: the cluster to join (``ray.init(address=...)``, e.g. ``auto`` or
        ``ray://head:10001``) [a Ray session of this process, else a local cluster].
    """

    name: str = "synthlens-run"
    seed: int = 0
    device: str = "auto"
    budget: str = "demo"
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    holdout_fraction: float = 0.1
    generators: tuple[GeneratorSpec, ...] = (GeneratorSpec("cvae"),)
    references: tuple[str, ...] = REFERENCE_SETS
    synthetic: Mapping[str, str] = field(default_factory=dict)
    resize: str = "none"
    strict: bool = False
    privacy: PrivacySection = field(default_factory=PrivacySection)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    utility: UtilitySection = field(default_factory=UtilitySection)
    gates: tuple[str, ...] = ()
    threads: int = 1
    executor: str = "local"
    jobs: int | str = "auto"
    ray_address: str | None = None
    budget_settings: BudgetSettings = field(default_factory=BudgetSettings)
    #: Where the config came from (a path, ``demo``...), for the messages.
    source: str = field(default="<config>", compare=False, metadata=INTERNAL)

    def __post_init__(self) -> None:
        if self.budget not in BUDGETS:
            raise SettingError("budget", f"unknown budget {self.budget!r}", BUDGETS)
        if self.device not in DEVICES:
            raise SettingError("device", f"unknown device {self.device!r}", DEVICES)
        if not 0.0 < self.holdout_fraction < 0.5:
            raise SettingError("holdout_fraction", f"must lie in (0, 0.5), got "
                                                   f"{self.holdout_fraction}")
        if self.resize not in RESIZE_METHODS:
            raise SettingError("resize", f"unknown resize method {self.resize!r}",
                               RESIZE_METHODS)
        if self.privacy.declared and self.generators:
            raise SettingError("privacy.members", "declared, but this config trains "
                                                  "generators: their members are the "
                                                  "training split without the holdout; "
                                                  "declare members only for sets you bring "
                                                  "(generators: [])")
        from synthlens.executor import EXECUTORS

        if self.threads < 1:
            raise SettingError("threads", f"must be at least 1, got {self.threads}")
        if self.executor not in EXECUTORS:
            raise SettingError("executor", f"unknown executor {self.executor!r}", EXECUTORS)
        if self.jobs != "auto" and (isinstance(self.jobs, str) or self.jobs < 1):
            raise SettingError("jobs", f"expected 'auto' or a whole number of at least 1, "
                                       f"got {self.jobs!r}")
        if self.ray_address is not None and self.executor != "ray":
            raise SettingError("ray_address", "is for executor ray (--executor ray)")

    @classmethod
    def from_resolved(cls, values: Mapping[str, Any], source: str = "<config>") -> RunConfig:
        """Check a resolved config (``to_dict``'s form, e.g. a run's ``config.yaml``) in
        full and type it; a :class:`RunConfig` is returned as it is."""
        if isinstance(values, RunConfig):
            return values
        try:
            if "budget_settings" not in values:
                raise SettingError("budget_settings", "missing: a resolved config holds the "
                                                      "expanded budget (see resolve_config)")
            return _resolve(dict(values), source)
        except SettingError as error:
            raise error.in_file(source) from None

    def extractor_options(self, name: str) -> dict[str, Any]:
        """An extractor's settings: the budget's ``features.<name>``, overridden by
        ``features.options.<name>``."""
        return {**self.budget_settings.features.get(name, {}),
                **self.features.options.get(name, {})}

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as plain data (what ``config.yaml`` holds)."""
        return {f.name: plain(getattr(self, f.name)) for f in setting_fields(RunConfig)}

    def __getitem__(self, key: str) -> Any:
        if key not in names(RunConfig):
            raise KeyError(key)
        return plain(getattr(self, key))

    def __iter__(self) -> Iterator[str]:
        return iter(names(RunConfig))

    def __len__(self) -> int:
        return len(names(RunConfig))


# ---------------------------------------------------------------------- resolution
def _deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def resolve_config(raw: Mapping[str, Any] | None = None, *, source: str = "<config>",
                   budget: str | None = None, seed: int | None = None,
                   device: str | None = None, fail_if: Sequence[str] = (),
                   **execution: Any) -> RunConfig:
    """Fill defaults, expand the budget, apply command-line overrides, check everything.

    ``fail_if`` adds gates (``--fail-if``) to the config's ``gates``; ``execution``
    overrides ``threads``, ``executor``, ``jobs`` and ``ray_address`` (None: the config's).
    Raises :class:`~synthlens.errors.SettingError` (an ``InputError``) naming ``source``,
    the key path and the accepted values of the first setting the code does not accept
    (``--fail-if`` for a bad gate given there).
    """
    overrides: Mapping[str, Any] = {}
    n_config_gates = 0
    try:
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            raise SettingError("", "the config must be a mapping of settings")
        values = dict(raw)
        accepted = [n for n in names(RunConfig) if n != "budget_settings"]
        check_names(values, (*accepted, "budget_overrides"), "key of the config")
        overrides = values.pop("budget_overrides", None) or {}
        if not isinstance(overrides, Mapping):
            raise SettingError("budget_overrides", "expected a mapping with the structure of "
                                                   "a budget (configs/budgets.yaml)")
        check_names(execution, EXECUTION, "execution setting")
        for key, value in (("budget", budget), ("seed", seed), ("device", device),
                           *execution.items()):
            if value is not None:
                values[key] = value
        if fail_if:
            given = values.get("gates") or []
            if not isinstance(given, list | tuple):
                raise SettingError("gates", "expected a list of gate expressions such as "
                                            "'memorisation_rate > 0.01'")
            n_config_gates = len(given)
            values["gates"] = [*given, *fail_if]
        name = values.get("budget", RunConfig.budget)
        if name not in BUDGETS:
            raise SettingError("budget", f"unknown budget {name!r}", BUDGETS)
        values["budget_settings"] = _deep_merge(load_budgets()[name], overrides)
        return _resolve(values, source)
    except SettingError as error:
        if fail_if and error.key.startswith("gates["):
            index = int(error.key[len("gates["):].split("]")[0])
            if index >= n_config_gates:
                raise InputError("--fail-if", error.bare_problem) from None
        raise _budget_key(error, overrides).in_file(source) from None


def load_config(path: str | os.PathLike[str], **overrides: Any) -> RunConfig:
    """Read and resolve a YAML config file; relative data paths are taken from its folder."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "config file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise InputError(path, f"not valid YAML: {error}".splitlines()[0]) from None
    if not isinstance(raw, Mapping):
        raise InputError(path, "the config must be a YAML mapping")
    raw = dict(raw)
    dataset = raw.get("dataset")
    if isinstance(dataset, Mapping):
        src = dataset.get("source")
        if isinstance(src, str) and (src.endswith(".npz") or os.sep in src):
            candidate = (path.parent / src).resolve()
            if candidate.exists():
                raw["dataset"] = {**dataset, "source": str(candidate)}
    if isinstance(raw.get("synthetic"), Mapping):
        raw["synthetic"] = {k: str((path.parent / v).resolve())
                            if isinstance(v, str) and (path.parent / v).exists() else v
                            for k, v in raw["synthetic"].items()}
    if isinstance(raw.get("privacy"), Mapping):
        raw["privacy"] = {k: str((path.parent / v).resolve())
                          if isinstance(v, str) and v not in SPLITS
                          and (path.parent / v).exists() else v
                          for k, v in raw["privacy"].items()}
    return resolve_config(raw, source=str(path), **overrides)


def _resolve(values: dict[str, Any], source: str) -> RunConfig:
    """Type a resolved config (``budget_settings`` expanded) and check it across sections."""
    budget_raw = values.pop("budget_settings")
    budget_settings = build(BudgetSettings, budget_raw, "budget_settings",
                            what="budget section",
                            extra={"raw": copy.deepcopy(dict(budget_raw))})
    _require_families(values.get("generators"))
    config = build(RunConfig, values, what="key of the config",
                   extra={"budget_settings": budget_settings, "source": source})
    _check_budget(config)  # first: the generators' knobs merge the budget's options
    _check_generators(config)
    _check_set_names(config)
    _check_features(config)
    _check_metrics(config)
    _check_utility(config)
    _check_gates(config)
    if config.executor == "ray":
        from synthlens.executor import RAY_MISSING

        try:
            import ray  # noqa: F401
        except ImportError:
            raise SettingError("executor", RAY_MISSING) from None
    return config


def _budget_key(error: SettingError, overrides: Mapping[str, Any]) -> SettingError:
    """Name a budget problem by the ``budget_overrides`` key the user wrote, when it is
    one (``budget_settings`` is the expanded budget, as in ``config.yaml``)."""
    prefix = "budget_settings"
    if not error.key.startswith(prefix) or not overrides:
        return error
    node: Any = overrides
    for part in key_parts(error.key)[1:]:
        if not isinstance(node, Mapping):
            break  # an override's value is the leaf the problem is in
        if part not in node:
            return error
        node = node[part]
    return SettingError("budget_overrides" + error.key[len(prefix):], error.bare_problem,
                        error.accepted)


# ---------------------------------------------------------------------- cross-checks
def _families() -> dict[str, Any]:
    from synthlens.generators import GENERATORS

    return dict(GENERATORS)


def _require_families(generators: Any) -> None:
    """Name the families when an entry has none (``build`` would only say 'missing')."""
    if isinstance(generators, list | tuple):
        for i, spec in enumerate(generators):
            if isinstance(spec, Mapping) and "family" not in spec:
                raise SettingError(f"generators[{i}].family", "missing: every generator "
                                                              "needs a family",
                                   sorted(_families()))


def _check_generators(config: RunConfig) -> None:
    from synthlens.generators import REFERENCES

    families = _families()
    for i, spec in enumerate(config.generators):
        key = f"generators[{i}]"
        if spec.family not in families:
            hint = " (a reference set: list it under references)" \
                if spec.family in REFERENCES else ""
            raise SettingError(f"{key}.family", f"unknown generator family "
                                                f"{spec.family!r}{hint}", sorted(families))
        try:
            generator = families[spec.family](**spec.params)
        except SettingError as error:
            raise error.within(f"{key}.params") from None
        if spec.family not in config.budget_settings.generators:
            raise SettingError(f"{key}.family", f"budget {config.budget!r} has no settings "
                                                f"for {spec.family}; add them under "
                                                f"budget_overrides.generators.{spec.family}",
                               sorted(config.budget_settings.generators))
        budget = config.budget_settings.generator_budget(spec.family)
        check_names(spec.sample, generator.sample_knobs(),
                    f"sample knob of {spec.family}", f"{key}.sample")
        try:
            generator.knobs_for(budget)
            variants = spec.variants()
        except SettingError as error:
            raise error.within(key) from None
        if not variants:
            raise SettingError(f"{key}.sample", "the sweep has no values")
        for _, options in variants:
            try:
                generator.knobs_for(budget, **options)
            except SettingError as error:
                raise error.within(f"{key}.sample") from None


def _check_set_names(config: RunConfig) -> None:
    from synthlens.generators import REFERENCES
    from synthlens.utility.evaluate import BASELINE_NAME

    reserved = (*REFERENCES, BASELINE_NAME)
    seen: dict[str, str] = {}

    def add(name: str, key: str) -> None:
        if name in seen:
            raise SettingError(key, f"set name {name!r} is used twice (also {seen[name]})")
        if name in reserved:
            raise SettingError(key, f"{name!r} is a reserved set name; choose another")
        if not name or any(c in name for c in "/\\") or name.startswith("."):
            raise SettingError(key, f"set name {name!r} is not a plain file name")
        seen[name] = key

    for j, ref in enumerate(config.references):
        if ref not in REFERENCES:
            raise SettingError(f"references[{j}]", f"unknown reference {ref!r}", REFERENCES)
        if ref in seen:
            raise SettingError(f"references[{j}]", f"{ref!r} is listed twice")
        seen[ref] = f"references[{j}]"
    for i, spec in enumerate(config.generators):
        for set_name, _ in spec.variants():
            add(set_name, f"generators[{i}].name")
    for name in config.synthetic:
        add(name, f"synthetic.{name}")


def _check_features(config: RunConfig) -> None:
    from synthlens.features import available_extractors, extractor_class

    registered = available_extractors()
    accepted = [*registered, "'package.module:factory'"]
    for j, name in enumerate(config.features.extractors):
        if name not in registered and ":" not in name:
            raise SettingError(f"features.extractors[{j}]", f"unknown extractor {name!r}",
                               accepted)
    for name in config.features.options:
        if name not in registered and ":" not in name:
            raise SettingError(f"features.options.{name}", "unknown extractor", accepted)
    for name in config.budget_settings.features:
        if name not in registered:
            raise SettingError(f"budget_settings.features.{name}", "unknown extractor",
                               registered)
    for name in registered:
        cls = extractor_class(name)
        for key, options in ((f"budget_settings.features.{name}",
                              config.budget_settings.features.get(name, {})),
                             (f"features.options.{name}",
                              config.features.options.get(name, {}))):
            check_names(options, cls.option_names(), f"option of the {name} extractor", key)
        if name in config.features.extractors:
            given = config.extractor_options(name)
            for option in cls.required_options():
                if option not in given:
                    raise SettingError(f"features.options.{name}.{option}",
                                       f"missing: the {name} extractor needs it")
    # Entry points ("package.module:factory") are imported, and their options checked,
    # when the inputs are loaded (synthlens.pipeline.load_inputs), still before the run
    # folder exists.


def _metric_catalogue() -> list[str]:
    """Every metric name a run computes (the metric registry)."""
    from synthlens.metrics import REGISTRY

    return sorted(REGISTRY)


def _check_metrics(config: RunConfig) -> None:
    if config.metrics.all or isinstance(config.metrics.names, str):
        return
    known = _metric_catalogue()
    for j, name in enumerate(config.metrics.names):
        if name not in known:
            raise SettingError(f"metrics.names[{j}]", f"unknown metric {name!r}",
                               [*known, "all"])


def known_metric_name(name: str, extractors: Sequence[str] = ()) -> bool:
    """Whether ``name`` is a metric a run can write: a catalogued metric, optionally in a
    configured feature space (``fid@inception``), or a utility score
    (``utility.PROTOCOL.SCORE`` or ``utility.PROTOCOL.gain_SCORE``)."""
    from synthlens.utility.protocols import PROTOCOLS
    from synthlens.utility.scores import score_names

    if name.startswith("utility."):
        parts = name.split(".")
        if len(parts) != 3 or parts[1] not in PROTOCOLS:
            return False
        score = parts[2].removeprefix("gain_")
        return score in score_names("ordinal")
    base, _, space = name.partition("@")
    return base in _metric_catalogue() and (not space or space in extractors)


def _check_gates(config: RunConfig) -> None:
    from synthlens.gates import parse_gate

    extractors = config.features.extractors
    for j, expression in enumerate(config.gates):
        try:
            parse_gate(expression, source=f"gates[{j}]",
                       known_metric=lambda n: known_metric_name(n, extractors))
        except InputError as error:
            raise SettingError(f"gates[{j}]", error.problem) from None


def _check_utility(config: RunConfig) -> None:
    from synthlens.utility.protocols import CROSS_TASK_SOURCES, PROTOCOLS

    protocols = config.utility.protocols
    for j, protocol in enumerate(protocols or ()):
        if protocol not in PROTOCOLS:
            raise SettingError(f"utility.protocols[{j}]", f"unknown protocol {protocol!r}",
                               PROTOCOLS)
    if protocols == ():
        return  # the utility stage is skipped
    if protocols is None:
        budget_protocols = config.budget_settings.utility.get("protocols") or ()
        key = "budget_settings.utility.protocols"
        protocols = tuple(budget_protocols) if isinstance(budget_protocols, list) else ()
    else:
        key = "utility.protocols"
    for j, protocol in enumerate(protocols):
        if protocol in CROSS_TASK_SOURCES and not config.utility.cross_task_dataset:
            raise SettingError(f"{key}[{j}]", f"protocol {protocol!r} needs a second "
                                              "labelled dataset: set "
                                              "utility.cross_task_dataset")


def _check_budget(config: RunConfig) -> None:
    from synthlens.generators.base import Budget

    families = _families()
    for family, settings in config.budget_settings.generators.items():
        key = f"budget_settings.generators.{family}"
        if family not in families:
            raise SettingError(key, "unknown generator family", sorted(families))
        try:
            families[family]().check_options(Budget.from_dict(settings))
        except SettingError as error:
            raise error.within(key) from None
    try:  # with the budget's own protocols; the config's are checked by _check_utility
        config.budget_settings.utility_config()
    except SettingError as error:
        raise error.within("budget_settings.utility") from None
