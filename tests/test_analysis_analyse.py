"""analyse(): correlations against SciPy, sign alignment, uncertainty, statements, findings."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
import scipy.stats as st

from synthlens.analysis import analyse, metric_category, metric_label
from synthlens.analysis.table import check_results
from synthlens.errors import InputError
from test_report_fixture import GENERATED, make_results


def hand_results(columns: dict[str, tuple[str, list[float]]], *,
                 baseline: dict[str, float] | None = None,
                 extra: dict[str, dict[str, dict[str, Any]]] | None = None) -> dict[str, Any]:
    """results.json with one set per list position; columns = {metric: (direction, values)}."""
    n = len(next(iter(columns.values()))[1])
    sets: dict[str, Any] = {}
    for i in range(n):
        metrics = {m: {"value": vals[i], "direction": d, "ci": None}
                   for m, (d, vals) in columns.items() if vals[i] is not None}
        metrics.update((extra or {}).get(f"s{i}", {}))
        sets[f"s{i}"] = {"kind": "generated", "metrics": metrics}
    if baseline:
        sets["real-only"] = {"kind": "baseline", "metrics": {
            m: {"value": v, "direction": "higher", "ci": None} for m, v in baseline.items()}}
    return {"schema_version": "1.0", "dataset": {"name": "hand"}, "sets": sets}


def corr(analysis: dict[str, Any], metric: str, utility: str) -> dict[str, Any]:
    return next(c for c in analysis["correlations"]
                if c["metric"] == metric and c["utility"] == utility)


def text(analysis: dict[str, Any]) -> str:
    return "\n".join(f["text"] for f in analysis["findings"])


@pytest.fixture(scope="module")
def seven() -> tuple[dict[str, Any], dict[str, Any]]:
    results = make_results(7)
    return results, analyse(results, n_boot=500)


def test_correlations_match_scipy_on_sign_aligned_values(seven) -> None:
    results, a = seven
    sets = GENERATED[:7]
    assert a["sets"] == sets and a["n_sets"] == 7
    u = [results["sets"][s]["metrics"]["utility.augment.auroc"]["value"] for s in sets]
    for metric in ("fid", "precision", "recall", "copy_rate"):
        entry = results["sets"][sets[0]]["metrics"][metric]
        sign = 1 if entry["direction"] == "higher" else -1
        x = [sign * results["sets"][s]["metrics"][metric]["value"] for s in sets]
        c = corr(a, metric, "utility.augment.auroc")
        assert c["n"] == 7 and c["p_method"] == "exact"
        assert c["spearman"] == pytest.approx(st.spearmanr(x, u).statistic, abs=1e-12)
        assert c["kendall"] == pytest.approx(st.kendalltau(x, u).statistic, abs=1e-12)
        lo, hi = c["spearman_ci"]
        assert -1 <= lo <= hi <= 1


def test_lower_is_better_metric_is_aligned_so_better_is_positive() -> None:
    # Lower FID (better) goes with higher utility: the aligned correlation must be +1.
    r = hand_results({"fid": ("lower", [10, 20, 30, 40, 50]),
                      "utility.augment.auroc": ("higher", [0.95, 0.94, 0.93, 0.92, 0.91])})
    c = corr(analyse(r, n_boot=200), "fid", "utility.augment.auroc")
    assert c["spearman"] == pytest.approx(1.0) and c["kendall"] == pytest.approx(1.0)
    assert c["spearman_p"] == pytest.approx(2 / 120)  # exact: only 2 of 5! orderings


def test_reference_and_baseline_sets_are_not_correlated(seven) -> None:
    _, a = seven
    assert "real-holdout" not in a["sets"] and "real-only" not in a["sets"]
    assert "reference" in a["excluded_sets"]["real-holdout"]
    assert "baseline" in a["excluded_sets"]["real-only"]
    # Gains duplicate their raw score's ranks and are not tested twice.
    assert "utility.augment.gain_auroc" not in a["ranking"]


def test_too_few_sets_statement_with_three_sets() -> None:
    a = analyse(make_results(3), n_boot=200)
    assert a["too_few_sets"] is True and a["can_reach_alpha"] is False
    assert a["smallest_possible_p"] == pytest.approx(1 / 3)
    statement = a["sample_size_statement"]
    assert statement.startswith("Too few sets to conclude anything: only 3")
    assert "1/3" in statement
    assert a["findings"][0] == {"id": "sample_size", "level": "warning", "text": statement}
    c = corr(a, "fid", "utility.augment.auroc")
    assert c["spearman_p"] >= 1 / 3 - 1e-12
    assert c["spearman_ci"] is None and "fewer than 4" in c["ci_note"]
    assert "No fidelity metric predicted augmentation AUROC at p < 0.05" in text(a)


def test_sample_size_statements_for_two_four_and_seven_sets(seven) -> None:
    two = analyse(make_results(2), n_boot=100)
    assert two["correlations"] == [] and "at least 3 sets" in two["sample_size_statement"]
    four = analyse(make_results(4), n_boot=100)
    assert four["too_few_sets"] is False and four["can_reach_alpha"] is False
    assert "1/12" in four["sample_size_statement"]
    assert seven[1]["sample_size_statement"] is None and seven[1]["can_reach_alpha"] is True


def test_skeleton_metrics_only_and_json_ready() -> None:
    for n in (1, 5):
        a = analyse(make_results(n, skeleton=True), n_boot=200)
        json.dumps(a, allow_nan=False)  # no NaN anywhere
        assert a["primary_utility"] == "utility.augment.auroc"
        assert set(a["metrics"]) == {"fid", "precision", "recall"}
        if n == 5:
            assert len(a["correlations"]) == 3 * 2 and a["tradeoff"] is not None
        else:
            assert a["correlations"] == [] and a["tradeoff"] is None


def test_deterministic_given_seed(seven) -> None:
    results, a = seven
    again = analyse(results, n_boot=500)
    assert json.dumps(again, sort_keys=True) == json.dumps(a, sort_keys=True)
    other = analyse(results, seed=1, n_boot=500)
    c0, c1 = corr(a, "fid", "utility.augment.auroc"), corr(other, "fid", "utility.augment.auroc")
    assert c0["spearman"] == c1["spearman"] and c0["spearman_p"] == c1["spearman_p"]


def test_per_seed_values_are_resampled_and_widen_the_interval() -> None:
    x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    u = [0.80, 0.81, 0.82, 0.83, 0.84, 0.85]
    plain = hand_results({"precision": ("higher", x), "utility.augment.auroc": ("higher", u)})
    noisy = hand_results(
        {"precision": ("higher", x), "utility.augment.auroc": ("higher", u)},
        extra={f"s{i}": {"utility.augment.auroc": {
            "value": u[i], "direction": "higher", "ci": None,
            "details": {"per_seed": [u[i] - 0.05, u[i], u[i] + 0.05]}}} for i in range(6)})
    a_plain, a_noisy = analyse(plain, n_boot=1000), analyse(noisy, n_boot=1000)
    assert a_noisy["methods"]["uncertainty_sources"]["utility.augment.auroc"] == ["per_seed"] * 6
    assert a_plain["methods"]["uncertainty_sources"]["utility.augment.auroc"] == ["fixed"] * 6
    ci_plain = corr(a_plain, "precision", "utility.augment.auroc")["spearman_ci"]
    ci_noisy = corr(a_noisy, "precision", "utility.augment.auroc")["spearman_ci"]
    # Without per-seed noise every resample is perfectly monotone; with it, ranks swap.
    assert ci_plain == [1.0, 1.0]
    assert ci_noisy[0] < 0.5 and ci_noisy[1] == pytest.approx(1.0)


def test_best_fid_set_rank_finding() -> None:
    # s0 has the best (lowest) FID and the 4th best utility of 7.
    fid = [5, 10, 20, 30, 40, 50, 60]
    auroc = [0.90, 0.93, 0.95, 0.85, 0.80, 0.92, 0.70]
    a = analyse(hand_results({"fid": ("lower", fid), "utility.augment.auroc": ("higher", auroc)},
                             baseline={"utility.augment.auroc": 0.88}), n_boot=200)
    best = next(b for b in a["best_sets"] if b["metric"] == "fid")
    assert best["best_set"] == "s0" and best["utility_rank"] == 4 and best["n_ranked"] == 7
    assert "The set with the best FID (s0, 5) ranked 4th of 7 for augmentation AUROC " \
           "(the most useful was s2)." in text(a)
    # rho(-fid, auroc) = 0.57, exact p = 0.2: not significant.
    assert corr(a, "fid", "utility.augment.auroc")["spearman"] == pytest.approx(
        st.spearmanr([-v for v in fid], auroc).statistic)
    assert "No fidelity metric predicted augmentation AUROC at p < 0.05 (strongest: FID" in text(a)
    gains = a["utility_gains"]
    assert gains["s2"]["gain"] == pytest.approx(0.07) and gains["s2"]["status"] == "untested"
    assert "no significance test was recorded" in text(a)


def test_significant_predictor_finding_with_hedges() -> None:
    rng = np.random.default_rng(0)
    n = 9
    prec = np.linspace(0.3, 0.9, n)
    auroc = 0.95 - 0.05 * prec + rng.normal(0, 0.001, n)  # better precision, less useful
    a = analyse(hand_results({"precision": ("higher", prec.tolist()),
                              "utility.augment.auroc": ("higher", auroc.tolist())}), n_boot=300)
    c = corr(a, "precision", "utility.augment.auroc")
    assert c["p_method"] == "monte_carlo" and c["spearman"] < -0.9 and c["spearman_p"] < 0.01
    t = text(a)
    assert "1 fidelity metric predicted augmentation AUROC at p < 0.05: precision" in t
    assert "The correlation is negative for precision" in t


def test_tradeoff_found_in_fixture(seven) -> None:
    _, a = seven
    comp = a["tradeoff"]["composite"]
    assert comp["spearman"] < -0.8 and comp["pearson"] < -0.8
    assert "Fidelity and variety were anti-correlated" in text(a)
    pair = next(p for p in a["tradeoff"]["pairs"]
                if p["fidelity_metric"] == "fid" and p["variety_metric"] == "recall")
    assert pair["spearman"] < 0 and pair["n"] == 7


def test_ranking_is_sorted_and_floor_findings(seven) -> None:
    _, a = seven
    rho = [r["spearman"] for r in a["ranking"]["utility.augment.auroc"]]
    assert rho == sorted(rho, reverse=True)
    assert a["best_predictors"]["utility.augment.auroc"]["metric"] == \
        a["ranking"]["utility.augment.auroc"][0]["metric"]
    floor = next(f for f in a["findings"] if f["id"] == "floor_copy_rate")
    assert floor["level"] == "warning" and "real-vs-real floor (0.04" in floor["text"]


def test_metric_table_and_unknown_names() -> None:
    assert metric_category("fid") == "fidelity"
    assert metric_category("fid_inception") == "fidelity"
    assert metric_category("recall") == "variety"
    assert metric_category("copy_rate") == "privacy"
    assert metric_category("utility.cross_task.accuracy") == "utility"
    assert metric_category("weird<metric>") == "other"
    assert metric_label("utility.augment.gain_auroc") == \
        "gain in augmentation (real + synthetic) AUROC"
    r = hand_results({"mystery": ("higher", [1, 2, 3, 4]),
                      "utility.augment.auroc": ("higher", [1, 2, 3, 5])})
    a = analyse(r, n_boot=100)
    assert a["categories"]["mystery"] == "other" and corr(a, "mystery", "utility.augment.auroc")


def test_bad_results_raise_input_error() -> None:
    with pytest.raises(InputError, match="direction"):
        check_results({"sets": {"a": {"metrics": {"fid": {"value": 1.0}}}}})
    with pytest.raises(InputError, match="missing 'sets'"):
        analyse({"schema_version": "1.0"})
