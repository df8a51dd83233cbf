"""Read numbers out of a ``results.json`` dict, tolerating whatever subset of metrics exists.

Every accessor returns NaN (never raises) for a metric that a set does not have, so the
analysis and the report degrade gracefully from the walking skeleton (FID, precision,
recall, one utility protocol) to a full run.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from synthlens.analysis.categories import PROTOCOLS, SCORES, metric_category
from synthlens.analysis.categories import metric_order as catalogue_order
from synthlens.errors import InputError

#: Kinds of set whose metrics are compared with each other in the correlation analysis.
CANDIDATE_KINDS = ("generated", "user")
#: A baseline set carries the real-only utility scores (no image metrics).
BASELINE_KIND = "baseline"
#: The ``details`` key of a utility gain's p-value (the paired Wilcoxon test over seeds).
P_VALUE_KEY = "wilcoxon_p"


def check_results(results: Any, source: str = "results.json") -> dict[str, Any]:
    """Validate the parts of the contract the analysis relies on; return ``results``."""
    if not isinstance(results, dict):
        raise InputError(source, "expected a JSON object at the top level")
    sets = results.get("sets")
    if not isinstance(sets, dict):
        raise InputError(source, "missing 'sets' object")
    for name, entry in sets.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("metrics", {}), dict):
            raise InputError(source, f"sets[{name!r}] must be an object with a 'metrics' object")
        for metric, m in entry.get("metrics", {}).items():
            if not isinstance(m, dict) or m.get("direction") not in ("higher", "lower"):
                raise InputError(source, f"sets[{name!r}].metrics[{metric!r}] needs a "
                                         "'direction' of 'higher' or 'lower'")
    return results


def set_kind(results: dict[str, Any], name: str) -> str:
    return str(results["sets"][name].get("kind") or "generated")


def sets_of_kind(results: dict[str, Any], kinds: tuple[str, ...]) -> list[str]:
    return [name for name in results["sets"] if set_kind(results, name) in kinds]


def baseline_set(results: dict[str, Any]) -> str | None:
    """The real-only utility baseline (``real-only`` if several baselines exist)."""
    names = sets_of_kind(results, (BASELINE_KIND,))
    if "real-only" in names:
        return "real-only"
    return names[0] if names else None


def metric_entry(results: dict[str, Any], set_name: str, metric: str) -> dict[str, Any] | None:
    return results["sets"][set_name].get("metrics", {}).get(metric)


def _num(value: Any) -> float:
    if value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def value(results: dict[str, Any], set_name: str, metric: str) -> float:
    entry = metric_entry(results, set_name, metric)
    return math.nan if entry is None else _num(entry.get("value"))


def ci(results: dict[str, Any], set_name: str, metric: str) -> tuple[float, float] | None:
    entry = metric_entry(results, set_name, metric)
    if entry is None or not entry.get("ci"):
        return None
    lo, hi = (_num(v) for v in entry["ci"][:2])
    return (lo, hi) if math.isfinite(lo) and math.isfinite(hi) else None


def per_seed(results: dict[str, Any], set_name: str, metric: str) -> np.ndarray | None:
    """Per-seed values from ``details["per_seed"]`` (a list, or a {seed: value} object)."""
    entry = metric_entry(results, set_name, metric)
    if entry is None:
        return None
    raw = (entry.get("details") or {}).get("per_seed")
    if isinstance(raw, dict):
        raw = list(raw.values())
    if not isinstance(raw, list):
        return None
    arr = np.array([_num(v) for v in raw], dtype=float)
    arr = arr[np.isfinite(arr)]
    return arr if arr.size >= 2 else None


def p_value(results: dict[str, Any], set_name: str, metric: str) -> float:
    entry = metric_entry(results, set_name, metric)
    if entry is None:
        return math.nan
    details = entry.get("details") or {}
    return _num(details[P_VALUE_KEY]) if P_VALUE_KEY in details else math.nan


def direction(results: dict[str, Any], metric: str) -> str:
    """The metric's direction, taken from the first set (or floor) that has it."""
    for entry in results["sets"].values():
        m = entry.get("metrics", {}).get(metric)
        if m is not None:
            return str(m["direction"])
    floor = (results.get("floors") or {}).get(metric)
    if floor is not None and floor.get("direction") in ("higher", "lower"):
        return str(floor["direction"])
    raise KeyError(metric)


def sign(results: dict[str, Any], metric: str) -> float:
    """+1 when higher is better, -1 when lower is better: multiplying aligns "better" to up."""
    return 1.0 if direction(results, metric) == "higher" else -1.0


def metric_names(results: dict[str, Any], set_names: list[str] | None = None) -> list[str]:
    """Every metric of the given sets, in first-seen order, utility scores last."""
    names: dict[str, None] = {}
    for name in set_names if set_names is not None else list(results["sets"]):
        for metric in results["sets"][name].get("metrics", {}):
            names.setdefault(metric, None)
    seen = list(names)
    return sorted(seen, key=lambda m: (*metric_order(m), seen.index(m)))


_CATEGORY_ORDER = {"fidelity": 0, "variety": 1, "privacy": 2, "other": 3, "utility": 4}
_PROTOCOL_ORDER = list(PROTOCOLS)
_SCORE_ORDER = list(SCORES)


def metric_order(metric: str) -> tuple[int, int, int]:
    """Sort key: category, then the catalogue's order (FID before precision ...), unknowns last.

    Independent of the key order in ``results.json`` (which writers may sort).
    """
    category = _CATEGORY_ORDER[metric_category(metric)]
    if metric.startswith("utility."):
        parts = metric.split(".", 2)
        proto = parts[1] if len(parts) > 1 else ""
        score = parts[2] if len(parts) > 2 else ""
        gain = score.startswith("gain_")
        score = score.removeprefix("gain_")
        p = _PROTOCOL_ORDER.index(proto) if proto in _PROTOCOL_ORDER else len(_PROTOCOL_ORDER)
        k = _SCORE_ORDER.index(score) if score in _SCORE_ORDER else len(_SCORE_ORDER)
        return category, p, 2 * k + gain
    return category, catalogue_order(metric), 0


def floor(results: dict[str, Any], metric: str) -> dict[str, Any] | None:
    entry = (results.get("floors") or {}).get(metric)
    return entry if isinstance(entry, dict) else None


def is_gain(metric: str) -> bool:
    return metric.startswith("utility.") and metric.split(".")[-1].startswith("gain_")


def gain_name(metric: str) -> str:
    """``utility.augment.auroc`` -> ``utility.augment.gain_auroc``."""
    head, _, score = metric.rpartition(".")
    return f"{head}.gain_{score}"


def utility_gain(results: dict[str, Any], set_name: str, metric: str
                 ) -> tuple[float, tuple[float, float] | None, float]:
    """(gain over the real-only baseline, its CI or None, its p-value or NaN) of one score.

    A recorded ``gain_<score>`` metric is used as is (with its own CI and p-value);
    otherwise the gain is the difference from the baseline set's value, without a CI.
    """
    recorded = gain_name(metric)
    if metric_entry(results, set_name, recorded) is not None:
        p = p_value(results, set_name, recorded)
        if not math.isfinite(p):
            p = p_value(results, set_name, metric)
        return value(results, set_name, recorded), ci(results, set_name, recorded), p
    base = baseline_set(results)
    own = value(results, set_name, metric)
    if base is None:
        return math.nan, None, math.nan
    return own - value(results, base, metric), None, p_value(results, set_name, metric)


def feature_space_id(entry: dict[str, Any] | None) -> str:
    """A short id of the feature space a value was computed in ('' when none)."""
    if entry is None:
        return ""
    space = entry.get("feature_space")
    if space is None:
        return ""
    if isinstance(space, str):
        return space
    if isinstance(space, dict):
        for key in ("id", "extractor", "name"):
            if space.get(key):
                subsample = space.get("subsample") or {}
                if subsample.get("images_per_set"):
                    return f"{space[key]} ({subsample['images_per_set']} images per set)"
                return str(space[key])
    return str(space)
