"""Does fidelity predict utility here? The correlation analysis of one run.

:func:`analyse` takes a ``results.json`` dict and returns the JSON-ready ``analysis``
section: rank correlations (Spearman and Kendall) between every metric and every utility
score across the compared sets, with bootstrap confidence intervals and permutation
p-values, the fidelity-variety trade-off, a ranking of predictors, utility gains over the
real-only baseline, and findings in plain words.

Choices (also written into the output's ``methods``):

* Only sets of kind ``generated`` and ``user`` are correlated. ``reference`` sets (the real
  hold-out scored as if it were synthetic) are an upper anchor, not a candidate generator,
  and would dominate a rank correlation of a few points; ``baseline`` sets carry utility
  only. Both are still shown in the report.
* Every value is sign-aligned by its direction before correlating, so a positive
  correlation always means "better on the metric goes with better utility".
* Bootstrap replicates resample the sets with replacement and, inside each set, its own
  uncertainty: per-seed utility values (``details["per_seed"]``) are resampled where
  present; otherwise a value with a CI is drawn from the normal distribution that CI
  implies (the image-level bootstrap of a metric is summarised by its CI). Replicates in
  which a correlation is undefined (every value tied) are dropped and counted.
* A metric that is a function of another (``privacy`` = 1 − ``copy_rate``; the catalogue's
  ``redundant_with``) is not tested, scored or ranked beside it: one signal counts once.
* Permutation p-values are two-sided and exact (all n! orderings) up to ``exact_max_n``
  sets, Monte Carlo above. Benjamini-Hochberg q-values correct for the number of
  metric-utility pairs tested.
"""

from __future__ import annotations

import math
import zlib
from typing import Any

import numpy as np
from scipy.stats import norm

from synthlens.analysis import table
from synthlens.analysis.categories import counted_once, metric_category
from synthlens.analysis.findings import findings as make_findings
from synthlens.analysis.scores import category_scores, minmax_rows
from synthlens.analysis.spaces import space_agreement, space_findings
from synthlens.analysis.stats import (
    EXACT_MAX_N,
    benjamini_hochberg,
    kendall_rows,
    pearson_rows,
    permutation_test,
    smallest_p_value,
    spearman_rows,
)
from synthlens.stats import percentile_ci

ANALYSIS_VERSION = "1.0"
#: Fewer sets than this and the report says plainly that nothing can be concluded.
MIN_SETS = 4
#: Preferred headline utility scores, best first.
PRIMARY_UTILITY_ORDER = (
    "utility.augment.auroc", "utility.augment.balanced_accuracy", "utility.augment.accuracy",
    "utility.augment.f1_macro",
)
_ROWS = {"spearman": spearman_rows, "kendall": kendall_rows, "pearson": pearson_rows}


def primary_utility(utilities: list[str]) -> str | None:
    """The headline utility score: augmentation AUROC if present, else the first raw score."""
    for name in PRIMARY_UTILITY_ORDER:
        if name in utilities:
            return name
    raw = [u for u in utilities if not table.is_gain(u)]
    augment = [u for u in raw if u.startswith("utility.augment.")]
    for group in (augment, raw, utilities):
        if group:
            return group[0]
    return None


def utility_status(results: dict[str, Any], set_name: str, metric: str, alpha: float = 0.05
                   ) -> dict[str, Any]:
    """Gain of ``set_name`` over the real-only baseline on ``metric`` and whether it is real.

    ``status`` is ``better`` / ``worse`` (p < alpha, or a gain CI excluding zero when no
    p-value was recorded), ``no_difference``, or ``untested`` (neither a p-value nor a CI).
    """
    gain, gain_ci, p = table.utility_gain(results, set_name, metric)
    entry = table.metric_entry(results, set_name, table.gain_name(metric)) or {}
    n_seeds = len((entry.get("details") or {}).get("per_seed") or [])
    # An exact two-sided Wilcoxon test over n seeds cannot go below 2 / 2^n (0.25 for 3
    # seeds): then judge by the seed-and-image bootstrap CI instead of never deciding.
    wilcoxon_can_decide = not (gain_ci is not None and n_seeds > 0
                               and 2.0 / 2 ** n_seeds >= alpha)
    if not math.isfinite(gain):
        status = "unknown"
    elif math.isfinite(p) and wilcoxon_can_decide:
        status = ("better" if gain > 0 else "worse") if p < alpha else "no_difference"
    elif gain_ci is not None:
        status = "better" if gain_ci[0] > 0 else "worse" if gain_ci[1] < 0 else "no_difference"
    else:
        status = "untested"
    return {"gain": gain, "ci": gain_ci, "p_value": p, "status": status,
            "decided_by": "p_value" if math.isfinite(p) and wilcoxon_can_decide
            else "ci" if gain_ci is not None else None}


def _replicates(results: dict[str, Any], sets: list[str], metric: str, n_boot: int,
                ci_level: float, seed: int) -> tuple[np.ndarray, list[str]]:
    """(n_boot, n_sets) sign-aligned bootstrap draws of each set's value, and how each was drawn."""
    rng = np.random.default_rng([seed, zlib.crc32(metric.encode())])
    sgn = table.sign(results, metric)
    z = float(norm.ppf(0.5 + ci_level / 2.0))
    out = np.full((n_boot, len(sets)), np.nan)
    how: list[str] = []
    for j, name in enumerate(sets):
        v = table.value(results, name, metric)
        seeds = table.per_seed(results, name, metric)
        interval = table.ci(results, name, metric)
        if not math.isfinite(v):
            how.append("missing")
            continue
        if seeds is not None:
            draws = seeds[rng.integers(0, seeds.size, (n_boot, seeds.size))].mean(axis=1)
            out[:, j] = draws - seeds.mean() + v  # centred on the reported value
            how.append("per_seed")
        elif interval is not None and interval[1] > interval[0]:
            out[:, j] = rng.normal(v, (interval[1] - interval[0]) / (2.0 * z), n_boot)
            how.append("ci")
        else:
            out[:, j] = v
            how.append("fixed")
    return sgn * out, how


class _Pairs:
    """Correlation of two aligned vectors across sets, with CIs and p-values."""

    def __init__(self, n_sets: int, n_boot: int, n_perm: int, exact_max_n: int,
                 ci_level: float, seed: int) -> None:
        self.u = np.random.default_rng([seed, 1]).random((n_boot, max(n_sets, 1)))
        self.n_perm = n_perm
        self.exact_max_n = exact_max_n
        self.ci_level = ci_level
        self.seed = seed

    def __call__(self, x: np.ndarray, y: np.ndarray, xr: np.ndarray, yr: np.ndarray,
                 statistics: tuple[str, ...] = ("spearman", "kendall")) -> dict[str, Any]:
        valid = np.flatnonzero(np.isfinite(x) & np.isfinite(y))
        k = valid.size
        out: dict[str, Any] = {"n": int(k)}
        if k < 3:
            out["note"] = f"only {k} set(s) have both values; at least 3 are needed"
            return out
        idx = valid[np.minimum((self.u[:, :k] * k).astype(np.intp), k - 1)]
        rows = np.arange(idx.shape[0])[:, None]
        xb, yb = xr[rows, idx], yr[rows, idx]
        for stat in statistics:
            # The same orderings for every pair of the same size: order-independent results.
            perm = permutation_test(x[valid], y[valid], stat,  # type: ignore[arg-type]
                                    n_permutations=self.n_perm, exact_max_n=self.exact_max_n,
                                    rng=np.random.default_rng([self.seed, 2]))
            out[stat] = perm.statistic
            out[f"{stat}_p"] = perm.p_value
            out["p_method"] = perm.method
            if k >= MIN_SETS:
                boot = _ROWS[stat](xb, yb)
                out[f"{stat}_ci"] = percentile_ci(boot, self.ci_level)
                out["boot_valid"] = float(np.isfinite(boot).mean())
            else:
                out[f"{stat}_ci"] = None
        if k < MIN_SETS:
            # Resampling 3 points mostly repeats them: the interval would look certain.
            out["ci_note"] = f"no bootstrap CI with fewer than {MIN_SETS} sets"
        return out


def _fraction(p: float) -> str:
    denom = round(1.0 / p)
    return f"1/{denom}" if abs(1.0 / denom - p) < 1e-12 else f"{p:.3g}"


def sample_size_statement(n: int, alpha: float = 0.05) -> str | None:
    """Why ``n`` sets cannot support a conclusion (None when they can reach p < alpha)."""
    if n == 0:
        return "No synthetic sets were compared, so there is nothing to correlate."
    if n < 3:
        return (f"Only {n} synthetic set{'s' if n > 1 else ''} compared: a rank correlation "
                "needs at least 3 sets, so none was computed and nothing can be concluded "
                "about whether fidelity predicts utility.")
    p_min = smallest_p_value(n)
    if n < MIN_SETS:
        return (f"Too few sets to conclude anything: only {n} synthetic sets were compared. "
                f"With {n} sets the smallest possible two-sided permutation p-value is "
                f"{_fraction(p_min)} (only 2 of the {math.factorial(n)} orderings are as "
                "extreme as a perfect rank correlation), so no correlation can be "
                f"significant; the correlations below are descriptive only. At least 5 sets "
                f"are needed to reach p < {alpha:g} (smallest p with 5 sets: 1/60).")
    if p_min >= alpha:
        return (f"With {n} sets the smallest possible two-sided permutation p-value is "
                f"{_fraction(p_min)} ≈ {p_min:.3f}, so no correlation can reach "
                f"p < {alpha:g}; treat the correlations as descriptive.")
    return None


def _clean(obj: Any) -> Any:
    """JSON-ready copy: NaN/inf -> None, numpy scalars -> Python, tuples -> lists."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return float(obj) if math.isfinite(float(obj)) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def analyse(
    results: dict[str, Any],
    seed: int = 0,
    *,
    kinds: tuple[str, ...] = table.CANDIDATE_KINDS,
    n_boot: int = 2000,
    n_perm: int = 10_000,
    alpha: float = 0.05,
    ci_level: float = 0.95,
    exact_max_n: int = EXACT_MAX_N,
) -> dict[str, Any]:
    """The ``analysis`` section of ``results.json`` (JSON-ready: no NaN, plain types).

    Deterministic given ``seed``. Works with any subset of metrics; correlations need at
    least 3 sets with both values, and the output says so when there are too few.
    """
    table.check_results(results)
    sets = table.sets_of_kind(results, kinds)
    excluded = {name: f"kind '{table.set_kind(results, name)}' is not correlated "
                      f"(only {', '.join(kinds)} sets are)"
                for name in results["sets"] if name not in sets}
    n = len(sets)
    metrics = table.metric_names(results, sets)
    utilities = [m for m in metrics if metric_category(m) == "utility"]
    # A metric that repeats another's signal (privacy = 1 − copy_rate) is tested once.
    predictors = counted_once(m for m in metrics if metric_category(m) != "utility")
    # Gains are a shift of their raw score by the baseline: same ranks, so not re-tested.
    targets = [u for u in utilities if not (table.is_gain(u) and
                                            u.replace("gain_", "") in utilities)]

    point = {m: np.array([table.sign(results, m) * table.value(results, s, m) for s in sets])
             for m in metrics}
    reps: dict[str, np.ndarray] = {}
    drawn: dict[str, list[str]] = {}
    for m in metrics:
        reps[m], drawn[m] = _replicates(results, sets, m, n_boot, ci_level, seed)
    pair = _Pairs(n, n_boot, n_perm, exact_max_n, ci_level, seed)

    correlations: list[dict[str, Any]] = []
    if n >= 3:
        for u in targets:
            for m in predictors:
                rec = {"metric": m, "utility": u, "category": metric_category(m)}
                rec.update(pair(point[m], point[u], reps[m], reps[u]))
                correlations.append(rec)
    q = benjamini_hochberg(np.array([c.get("spearman_p", math.nan) for c in correlations]))
    for c, qv in zip(correlations, q, strict=True):
        c["spearman_q"] = qv

    ranking: dict[str, list[dict[str, Any]]] = {}
    for u in targets:
        rows = [c for c in correlations if c["utility"] == u]
        rows.sort(key=lambda c: -c["spearman"] if math.isfinite(c.get("spearman", math.nan))
                  else math.inf)
        ranking[u] = [{k: c.get(k) for k in ("metric", "category", "spearman", "spearman_ci",
                                              "spearman_p", "spearman_q", "n")} for c in rows]
    best_predictors = {}
    for u, rows in ranking.items():
        if rows and rows[0].get("spearman") is not None and math.isfinite(rows[0]["spearman"]):
            top = rows[0]
            best_predictors[u] = {**top, "significant": bool(
                top["spearman_p"] is not None and top["spearman_p"] < alpha)}

    tradeoff = _tradeoff(results, sets, point, reps, pair, n)

    primary = primary_utility(utilities)
    gains: dict[str, dict[str, Any]] = {}
    if primary is not None and not table.is_gain(primary):
        for s in sets + table.sets_of_kind(results, ("reference",)):
            if table.metric_entry(results, s, primary) is not None:
                gains[s] = utility_status(results, s, primary, alpha)

    best_sets = []
    if primary is not None:
        y = point[primary]
        for m in predictors:
            x = point[m]
            both = np.isfinite(x) & np.isfinite(y)
            if both.sum() < 2:
                continue
            best = int(np.nanargmax(np.where(both, x, -np.inf)))
            tied = int(np.sum(x[both] == x[best])) - 1
            rank = 1 + int(np.sum(y[both] > y[best]))
            best_sets.append({"metric": m, "category": metric_category(m),
                              "best_set": sets[best], "ties": tied,
                              "utility": primary, "utility_rank": rank,
                              "n_ranked": int(both.sum()),
                              "best_utility_set": sets[int(np.nanargmax(
                                  np.where(both, y, -np.inf)))]})

    scores, used = category_scores(results, sets) if sets else ({}, {})
    out: dict[str, Any] = {
        "version": ANALYSIS_VERSION,
        "seed": seed,
        "alpha": alpha,
        "ci_level": ci_level,
        "sets": sets,
        "excluded_sets": excluded,
        "n_sets": n,
        "too_few_sets": n < MIN_SETS,
        "smallest_possible_p": smallest_p_value(n) if n >= 2 else None,
        "can_reach_alpha": bool(n >= 2 and smallest_p_value(n) < alpha),
        "sample_size_statement": sample_size_statement(n, alpha),
        "methods": {
            "sets": "Correlations across sets of kind " + ", ".join(kinds) + "; reference "
                    "and baseline sets are shown but not correlated.",
            "alignment": "Values are multiplied by -1 when lower is better, so a positive "
                         "correlation means better metric goes with better utility.",
            "bootstrap": f"{n_boot} replicates resampling sets with replacement and, within "
                         "each set, per-seed values (details.per_seed) or a normal draw from "
                         "the value's CI; percentile intervals; replicates with an undefined "
                         "correlation (all tied) dropped (share kept: boot_valid). No "
                         f"interval below {MIN_SETS} sets: resamples of so few points are "
                         "mostly repeats and the interval would look falsely certain.",
            "permutation": f"Two-sided; exact enumeration of all orderings up to {exact_max_n}"
                           f" sets, otherwise {n_perm} random orderings with "
                           "p = (1 + hits) / (1 + permutations).",
            "multiple_testing": "Benjamini-Hochberg q-values over all metric-utility pairs "
                                "(spearman_q).",
            "category_scores": "Each metric sign-aligned and min-max scaled over the "
                               "correlated sets (0 = worst, 1 = best of this run); a "
                               "category's score is the mean of its metrics.",
            "uncertainty_sources": drawn,
            "counted_once": "A metric that is a function of another (the catalogue's "
                            "redundant_with: privacy = 1 - copy_rate) is left out of the "
                            "correlations, rankings and category scores when that metric "
                            "is present; left out here: "
                            + (", ".join(m for m in metrics if m not in predictors
                                         and metric_category(m) != "utility") or "none")
                            + ".",
        },
        "metrics": predictors,
        "utilities": utilities,
        "categories": {m: metric_category(m) for m in metrics},
        "primary_utility": primary,
        "correlations": correlations,
        "ranking": ranking,
        "best_predictors": best_predictors,
        "tradeoff": tradeoff,
        "category_scores": scores,
        "category_metrics": used,
        "utility_gains": gains,
        "best_sets": best_sets,
    }
    out["feature_space_agreement"] = space_agreement(results, sets)
    out["findings"] = make_findings(results, out) + space_findings(
        out["feature_space_agreement"])
    return _clean(out)


def _composite(reps: dict[str, np.ndarray], metrics: list[str]) -> np.ndarray:
    """Per-replicate category score (B, n): min-max per metric and replicate, then mean."""
    stack = np.stack([minmax_rows(reps[m]) for m in metrics])
    with np.errstate(invalid="ignore"):
        counts = np.isfinite(stack).sum(axis=0)
        total = np.nansum(stack, axis=0)
    return np.where(counts > 0, total / np.maximum(counts, 1), np.nan)


def _tradeoff(results: dict[str, Any], sets: list[str], point: dict[str, np.ndarray],
              reps: dict[str, np.ndarray], pair: _Pairs, n: int) -> dict[str, Any] | None:
    """Fidelity vs variety across the sets: composite scores and every metric pair."""
    if n < 3:
        return None
    scores, used = category_scores(results, sets)
    fid_metrics, var_metrics = used.get("fidelity", []), used.get("variety", [])
    if not fid_metrics or not var_metrics:
        return None
    fx = np.array([_nan(scores[s].get("fidelity")) for s in sets])
    vy = np.array([_nan(scores[s].get("variety")) for s in sets])
    out: dict[str, Any] = {
        "fidelity_metrics": fid_metrics,
        "variety_metrics": var_metrics,
        "composite": pair(fx, vy, _composite(reps, fid_metrics), _composite(reps, var_metrics),
                          ("spearman", "kendall", "pearson")),
        "reference": "companion study (Xing et al., MICCAI 2023): Pearson r = -0.92 between "
                     "fidelity and variety over 14 synthetic sets",
        "pairs": [],
    }
    for f in fid_metrics:
        for v in var_metrics:
            rec = {"fidelity_metric": f, "variety_metric": v}
            rec.update(pair(point[f], point[v], reps[f], reps[v]))
            out["pairs"].append(rec)
    return out


def _nan(v: float | None) -> float:
    return math.nan if v is None else float(v)
