"""When is a utility gain called significant? Wilcoxon where it can decide, else the CI."""

from __future__ import annotations

from synthlens.analysis.correlations import utility_status


def _results(per_seed, p, ci):
    gain = {"value": sum(per_seed) / len(per_seed), "direction": "higher", "ci": ci,
            "details": {"per_seed": per_seed, "wilcoxon_p": p, "p_value": p}}
    return {"sets": {
        "real-only": {"kind": "baseline", "metrics": {
            "utility.augment.auroc": {"value": 0.8, "direction": "higher", "ci": None}}},
        "s": {"kind": "generated", "metrics": {
            "utility.augment.auroc": {"value": 0.82, "direction": "higher", "ci": None},
            "utility.augment.gain_auroc": gain}}}}


def test_three_seeds_cannot_reach_alpha_so_the_ci_decides():
    status = utility_status(_results([1.0, 2.0, 3.0], 0.25, [0.5, 3.5]), "s",
                            "utility.augment.auroc")
    assert status["status"] == "better" and status["decided_by"] == "ci"
    status = utility_status(_results([1.0, -2.0, 3.0], 0.75, [-1.0, 3.0]), "s",
                            "utility.augment.auroc")
    assert status["status"] == "no_difference"


def test_enough_seeds_let_wilcoxon_decide():
    per_seed = [1.0, 2.0, 3.0, 1.5, 2.5, 0.5]
    status = utility_status(_results(per_seed, 0.03125, [0.2, 3.0]), "s",
                            "utility.augment.auroc")
    assert status["status"] == "better" and status["decided_by"] == "p_value"
    status = utility_status(_results(per_seed, 0.2, [0.2, 3.0]), "s", "utility.augment.auroc")
    assert status["status"] == "no_difference"
