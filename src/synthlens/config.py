"""Run configuration: a YAML file (or dict) resolved against defaults and a named budget.

A config says *what* to compare; the budget (``configs/budgets.yaml``) says *how long*
each stage trains. The resolved config, with the budget expanded, is written to the run
folder, so a run can be repeated from that file alone. Unknown keys are errors, because a
misspelt key would otherwise silently fall back to a default.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from synthlens.errors import InputError

BUDGETS = ("smoke", "demo", "standard", "full")

DEFAULTS: dict[str, Any] = {
    "name": "synthlens-run",
    "seed": 0,
    "device": "auto",
    "budget": "demo",
    # dataset.source: "demo", a MedMNIST name ("pneumoniamnist", "bloodmnist@64"),
    # an .npz path or an image folder.
    "dataset": {"source": "demo", "size": None, "download": True, "cache_dir": None},
    # Share of the training split no generator sees: the real-holdout reference set and
    # the non-member set of the privacy metrics.
    "holdout_fraction": 0.1,
    # Generators to train: {name, family, params, sample: {knob: value or [values]}}.
    "generators": [{"name": "cvae", "family": "cvae", "params": {}}],
    # Non-learned reference sets computed by the harness.
    "references": ["real-holdout", "real-duplicate", "noise"],
    # User-supplied synthetic sets: {name: path}.
    "synthetic": {},
    # features.options: per-extractor settings merged over the budget's (e.g. a
    # TorchScript file: {torchscript: {path: model.pt}}); cache_dir: a feature cache
    # shared between runs (default: inside the run folder).
    "features": {"extractors": ["domain"], "primary": "domain", "options": {},
                 "cache_dir": None},
    # metrics.names: a list, or "all" (every metric defined for the feature space).
    "metrics": {"names": "all", "k": 5},
    # utility.protocols: null takes the budget's list; [] skips the utility stage.
    "utility": {"protocols": None, "cross_task_dataset": None},
    # Per-budget overrides merged over configs/budgets.yaml (same structure).
    "budget_overrides": {},
}

#: The non-learned reference sets the harness computes itself (never correlated; every score
#: is read against them): unseen real images, training images replayed, and noise.
REFERENCE_SETS = ("real-holdout", "real-duplicate", "noise")

# Stages a run can stop after (`synthlens run --stop-after`); utility and report follow.
STAGES = ("data", "generate", "features", "score")


def _deep_merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_budgets() -> dict[str, Any]:
    text = resources.files("synthlens").joinpath("configs/budgets.yaml").read_text()
    return yaml.safe_load(text)


def packaged_config(name: str) -> dict[str, Any]:
    """A config shipped with synthlens (``demo``, ...)."""
    text = resources.files("synthlens").joinpath(f"configs/{name}.yaml").read_text()
    return yaml.safe_load(text)


def _check_keys(given: Mapping[str, Any], allowed: Mapping[str, Any], where: str,
                source: str) -> None:
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise InputError(source, f"unknown key {unknown[0]!r} in {where}; "
                                 f"known keys: {sorted(allowed)}")


def resolve_config(raw: Mapping[str, Any] | None = None, *, source: str = "<config>",
                   budget: str | None = None, seed: int | None = None,
                   device: str | None = None) -> dict[str, Any]:
    """Fill defaults, expand the budget, apply command-line overrides, validate."""
    raw = dict(raw or {})
    _check_keys(raw, DEFAULTS, "the config", source)
    for section in ("dataset", "features", "metrics", "utility"):
        if section in raw:
            if not isinstance(raw[section], Mapping):
                raise InputError(source, f"'{section}' must be a mapping")
            _check_keys(raw[section], DEFAULTS[section], f"'{section}'", source)
    config = _deep_merge(DEFAULTS, raw)
    if budget is not None:
        config["budget"] = budget
    if seed is not None:
        config["seed"] = seed
    if device is not None:
        config["device"] = device
    if config["budget"] not in BUDGETS:
        raise InputError(source, f"budget {config['budget']!r} is not one of {list(BUDGETS)}")
    if config["device"] not in ("auto", "cpu", "cuda"):
        raise InputError(source, f"device {config['device']!r} is not auto, cpu or cuda")
    if not 0.0 < float(config["holdout_fraction"]) < 0.5:
        raise InputError(source, "holdout_fraction must be between 0 and 0.5")
    budgets = load_budgets()
    config["budget_settings"] = _deep_merge(budgets[config["budget"]],
                                            config.pop("budget_overrides") or {})
    names: set[str] = set()
    for i, spec in enumerate(config["generators"]):
        if not isinstance(spec, Mapping) or "family" not in spec:
            raise InputError(source, f"generators[{i}] needs a 'family'")
        _check_keys(spec, {"name": 0, "family": 0, "params": 0, "sample": 0},
                    f"generators[{i}]", source)
        spec.setdefault("name", spec["family"])
        spec.setdefault("params", {})
        spec.setdefault("sample", {})
        names.add(spec["name"])
    features = config["features"]
    if not features["extractors"]:
        raise InputError(source, "features.extractors is empty; name at least one")
    if features["primary"] not in features["extractors"]:
        features["primary"] = features["extractors"][0]
    for ref in config["references"]:
        if ref not in REFERENCE_SETS:
            raise InputError(source, f"references: unknown reference {ref!r}; accepted: "
                                     f"{', '.join(REFERENCE_SETS)}")
    clash = names & set(config["synthetic"]) | names & set(config["references"])
    if clash:
        raise InputError(source, f"set name {sorted(clash)[0]!r} is used twice")
    return config


def load_config(path: str | os.PathLike[str], **overrides: Any) -> dict[str, Any]:
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
    dataset = dict(raw.get("dataset") or {})
    src = dataset.get("source")
    if isinstance(src, str) and (src.endswith(".npz") or os.sep in src):
        candidate = (path.parent / src).resolve()
        if candidate.exists():
            dataset["source"] = str(candidate)
            raw["dataset"] = dataset
    if raw.get("synthetic"):
        raw["synthetic"] = {k: str((path.parent / v).resolve())
                            if (path.parent / v).exists() else v
                            for k, v in raw["synthetic"].items()}
    return resolve_config(raw, source=str(path), **overrides)
