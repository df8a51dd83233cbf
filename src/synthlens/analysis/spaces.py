"""Does the feature space change the verdict? Ranking agreement between extractors.

A run scored in several feature spaces stores the headline space's metrics under their
plain names (``fid``) and the others with a suffix (``fid@inception``). For every metric
present in two spaces, Kendall's tau between the sets' values says how much the ranking
of the sets moves when only the feature space changes (Stein et al. 2023 found that it
can reorder generators).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.stats import kendalltau


def _values(results: dict[str, Any], sets: list[str], metric: str) -> np.ndarray:
    out = []
    for name in sets:
        entry = results["sets"][name]["metrics"].get(metric) or {}
        value = entry.get("value")
        out.append(math.nan if value is None else float(value))
    return np.asarray(out)


def space_agreement(results: dict[str, Any], sets: list[str]) -> list[dict[str, Any]]:
    """Kendall tau (tau-b) of every metric between the headline space and each other one.

    One row per (metric, other space) with ``tau``, its two-sided ``p_value`` (SciPy's
    exact test for small N) and ``n_sets``; rows need at least three sets with finite
    values in both spaces.
    """
    names = {m for name in sets for m in results["sets"][name]["metrics"]}
    rows = []
    for metric in sorted(names):
        base, sep, space = metric.partition("@")
        if not sep or base not in names or base.startswith("utility."):
            continue
        x, y = _values(results, sets, base), _values(results, sets, metric)
        ok = np.isfinite(x) & np.isfinite(y)
        if ok.sum() < 3:
            continue
        tau, p = kendalltau(x[ok], y[ok])
        rows.append({"metric": base, "space": space, "n_sets": int(ok.sum()),
                     "tau": None if math.isnan(tau) else float(tau),
                     "p_value": None if math.isnan(p) else float(p)})
    return rows


def space_findings(rows: list[dict[str, Any]]) -> list[dict[str, str]]:
    """One plain-word line per other feature space."""
    out = []
    for space in sorted({r["space"] for r in rows}):
        taus = [r for r in rows if r["space"] == space and r["tau"] is not None]
        if not taus:
            continue
        low = min(taus, key=lambda r: r["tau"])
        mean = float(np.mean([r["tau"] for r in taus]))
        out.append({"id": f"feature_space_{space}", "level": "info", "text": (
            f"Changing the feature space to {space} kept the sets' rankings with a mean "
            f"Kendall tau of {mean:.2f} over {len(taus)} metrics; the least stable was "
            f"{low['metric']} (tau = {low['tau']:.2f}, {low['n_sets']} sets). A tau near 1 "
            "means the same order; near 0, an unrelated one.")})
    return out
