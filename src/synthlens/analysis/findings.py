"""Findings in plain words, generated from the analysis numbers and hedged by their CIs.

Every sentence is built from a number in the analysis; none is written by hand for a
particular run. Hedges follow fixed rules: a correlation whose bootstrap CI includes zero
is called fragile, one that does not survive Benjamini-Hochberg correction is said to
possibly be chance, and orderings whose utility CIs overlap are called uncertain.
"""

from __future__ import annotations

import math
from typing import Any

from synthlens.analysis import table
from synthlens.analysis.categories import metric_label, short_utility_label

_PRIMARY = {
    "fidelity": ("fid", "kid", "precision", "density", "fidelity_privacy_aware"),
    "variety": ("recall", "coverage", "variety", "vendi", "beta_recall"),
}


def fmt(v: float | None) -> str:
    """3 significant figures (at most 1 decimal from 10 up), with a typographic minus."""
    if v is None or not math.isfinite(v):
        return "n/a"
    a = abs(v)
    s = f"{v:.0f}" if a >= 100 else f"{v:.1f}" if a >= 10 else f"{v:.3g}"
    return s.replace("-", "−")


def fmt_signed(v: float) -> str:
    return ("+" if v > 0 else "") + fmt(v)


def fmt_p(p: float | None) -> str:
    if p is None or not math.isfinite(p):
        return "p n/a"
    return "p < 0.001" if p < 0.001 else f"p = {p:.2g}"


def fmt_ci(ci: Any) -> str:
    if not ci or ci[0] is None or ci[1] is None:
        return "CI n/a"
    return f"95% CI [{fmt(ci[0])}, {fmt(ci[1])}]"


def ordinal(k: int) -> str:
    suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"{k}{suffix}"


def _finite(v: Any) -> bool:
    return v is not None and math.isfinite(v)


def _ci_has_zero(ci: Any) -> bool:
    return not ci or ci[0] is None or ci[1] is None or ci[0] <= 0 <= ci[1]


def _corr_phrase(c: dict[str, Any]) -> str:
    """``Spearman ρ = 0.5, 95% CI [..], p = ..``."""
    return f"Spearman ρ = {fmt(c['spearman'])}, {fmt_ci(c.get('spearman_ci'))}, " \
           f"{fmt_p(c.get('spearman_p'))}"


def findings(results: dict[str, Any], analysis: dict[str, Any]) -> list[dict[str, str]]:
    """A list of ``{"id", "level", "text"}``; ``level`` is ``warning``, ``key`` or ``info``."""
    out: list[dict[str, str]] = []
    alpha = analysis["alpha"]
    if analysis.get("sample_size_statement"):
        out.append({"id": "sample_size", "level": "warning",
                    "text": analysis["sample_size_statement"]})
    primary = analysis.get("primary_utility")
    if primary is None:
        out.append({"id": "no_utility", "level": "info", "text":
                    "No utility score was recorded, so whether the metrics predict usefulness "
                    "could not be tested."})
    else:
        out += _gain_findings(results, analysis, primary)
        out += _duplicate_control_findings(analysis, primary)
        out += _best_set_findings(results, analysis, primary)
        out += _predictor_findings(analysis, primary, alpha)
    out += _tradeoff_findings(analysis)
    out += _floor_findings(results, analysis)
    out += _copy_findings(results)
    return out


def _copy_findings(results: dict[str, Any]) -> list[dict[str, str]]:
    """Generated and user sets holding exact copies (``sets[NAME].exact_copies``): of real
    val or test images (a leak that inflates utility) and of the members (memorisation)."""
    out = []
    for name, entry in results["sets"].items():
        copies = entry.get("exact_copies") or {}
        if entry.get("kind") not in ("generated", "user") or not any(copies.values()):
            continue
        leaked = [(split, copies.get(split, 0)) for split in ("test", "val")
                  if copies.get(split, 0)]
        n = entry.get("n_images") or 0
        if leaked:
            parts = " and ".join(f"{k} of the real {split} images" for split, k in leaked)
            out.append({"id": f"leak_{name}", "level": "warning", "text":
                        f"Set {name} holds exact copies of {parts} (of its {n} images): "
                        "the utility classifiers are selected on val and scored on test, so "
                        "its utility is inflated. Remove them (run with --strict to refuse "
                        "such a set)."})
        if copies.get("members"):
            k = copies["members"]
            out.append({"id": f"exact_copies_{name}", "level": "warning", "text":
                        f"Set {name} holds {k} exact cop{'y' if k == 1 else 'ies'} of training "
                        f"images (the privacy members; {k} of its {n} images): the privacy "
                        "audit lists them (exact_copy_of)."})
    return out


def _gain_findings(results: dict[str, Any], analysis: dict[str, Any], primary: str
                   ) -> list[dict[str, str]]:
    label = short_utility_label(primary)
    base = table.baseline_set(results)
    gains = {s: g for s, g in analysis["utility_gains"].items() if s in analysis["sets"]
             and _finite(g["gain"])}
    if base is None or not gains:
        return []
    base_v = table.value(results, base, primary)
    status = [g["status"] for g in gains.values()]
    best = max(gains, key=lambda s: gains[s]["gain"])
    worst = min(gains, key=lambda s: gains[s]["gain"])
    g_best = gains[best]
    if all(s == "untested" for s in status):
        text = (f"Against the real-only baseline ({label} {fmt(base_v)}), gains ranged from "
                f"{fmt_signed(gains[worst]['gain'])} ({worst}) to "
                f"{fmt_signed(g_best['gain'])} ({best}); no significance test was recorded, "
                "so these differences may be noise.")
    else:
        n = len(gains)
        better, worse = status.count("better"), status.count("worse")
        text = (f"Against the real-only baseline ({label} {fmt(base_v)}), {better} of {n} "
                f"sets improved it significantly, {worse} made it significantly worse and "
                f"{n - better - worse} showed no significant difference.")
        ci_part = f", {fmt_ci(g_best['ci'])}" if g_best.get("ci") else ""
        p_part = f", {fmt_p(g_best['p_value'])}" if _finite(g_best.get("p_value")) else ""
        text += f" The largest gain was {best}'s ({fmt_signed(g_best['gain'])}{ci_part}{p_part})."
        if g_best["status"] != "better":
            text += " Even this gain is not significant."
    return [{"id": "utility_gain", "level": "key", "text": text}]


#: The reference set that replays training images (count-matched, with replacement).
DUPLICATE_CONTROL = "real-duplicate"


def _duplicate_control_findings(analysis: dict[str, Any], primary: str
                                ) -> list[dict[str, str]]:
    """Every gain read against replaying the training images: a synthetic set that does not
    beat ``real-duplicate`` adds nothing a copy of the data would not."""
    control = analysis["utility_gains"].get(DUPLICATE_CONTROL)
    if control is None or not _finite(control.get("gain")):
        return []
    label = short_utility_label(primary)
    gains = {s: g for s, g in analysis["utility_gains"].items() if s in analysis["sets"]
             and _finite(g["gain"])}
    c_gain, c_ci = control["gain"], control.get("ci")
    ci_part = f" ({fmt_ci(c_ci)})" if c_ci else ""
    text = (f"The real-duplicate control (training images drawn again, as many as each set) "
            f"changed {label} by {fmt_signed(c_gain)}{ci_part} against real-only.")
    if gains:
        above = [s for s, g in gains.items() if g["gain"] > c_gain]
        clear = [s for s in above if gains[s].get("ci") and c_ci
                 and gains[s]["ci"][0] > c_ci[1]]
        text += (f" {len(above)} of {len(gains)} synthetic sets gained more than it, "
                 f"{len(clear)} with a CI wholly above the control's"
                 + (f" ({', '.join(clear)})." if clear else "."))
        if not clear:
            text += " No gain here is clearly more than replaying the training data gives."
    return [{"id": "duplicate_control", "level": "key", "text": text}]


def _overlap(a: tuple[float, float] | None, b: tuple[float, float] | None) -> bool | None:
    if a is None or b is None:
        return None
    return a[0] <= b[1] and b[0] <= a[1]


def _best_set_findings(results: dict[str, Any], analysis: dict[str, Any], primary: str
                       ) -> list[dict[str, str]]:
    out = []
    by_metric = {b["metric"]: b for b in analysis["best_sets"]}
    for category, order in _PRIMARY.items():
        choice = next((m for m in order if m in by_metric), None)
        if choice is None:
            choice = next((m for m, b in by_metric.items() if b["category"] == category), None)
        if choice is None:
            continue
        b = by_metric[choice]
        s, top = b["best_set"], b["best_utility_set"]
        v = table.value(results, s, choice)
        text = (f"The set with the best {metric_label(choice)} ({s}, {fmt(v)}) ranked "
                f"{ordinal(b['utility_rank'])} of {b['n_ranked']} for "
                f"{short_utility_label(primary)}")
        if b["utility_rank"] == 1:
            text += "; it was also the most useful set."
        else:
            text += f" (the most useful was {top})."
            overlap = _overlap(table.ci(results, s, primary), table.ci(results, top, primary))
            if overlap:
                text += " Their utility CIs overlap, so this ordering is uncertain."
            elif overlap is False:
                text += " Their utility CIs do not overlap."
        if b.get("ties"):
            text += f" ({b['ties']} other set(s) tied on {metric_label(choice)}.)"
        out.append({"id": f"best_{category}_set", "level": "key", "text": text})
    return out


def _short_corr(c: dict[str, Any]) -> str:
    ci = c.get("spearman_ci")
    ci_txt = f" [{fmt(ci[0])}, {fmt(ci[1])}]" if ci and None not in ci else ""
    return f"{metric_label(c['metric'])} (ρ = {fmt(c['spearman'])}{ci_txt}, " \
           f"{fmt_p(c.get('spearman_p'))})"


def _names(rows: list[dict[str, Any]]) -> str:
    return ", ".join(metric_label(c["metric"]) for c in rows)


def _hedges(sig: list[dict[str, Any]], n_tests: int, alpha: float) -> str:
    """Sentences that qualify significant correlations: direction, CI, multiple testing."""
    out = []
    negative = [c for c in sig if c["spearman"] < 0]
    if negative:
        out.append(f"The correlation is negative for {_names(negative)}: sets better on "
                   f"{'this metric' if len(negative) == 1 else 'these metrics'} were less "
                   "useful.")
    fragile = [c for c in sig if _ci_has_zero(c.get("spearman_ci"))]
    if fragile:
        out.append(f"The bootstrap CI includes zero for {_names(fragile)}, so "
                   f"{'that association is' if len(fragile) == 1 else 'those are'} fragile.")
    chance = [c for c in sig if n_tests > 1 and _finite(c.get("spearman_q"))
              and c["spearman_q"] >= alpha]
    if chance:
        out.append(f"{_names(chance)} did not survive correction for the {n_tests} "
                   "metric–utility pairs tested (Benjamini–Hochberg q ≥ "
                   f"{alpha:g}), so {'it' if len(chance) == 1 else 'they'} may be chance.")
    return (" " + " ".join(out)) if out else ""


def _predictor_findings(analysis: dict[str, Any], primary: str, alpha: float
                        ) -> list[dict[str, str]]:
    corr = [c for c in analysis["correlations"] if _finite(c.get("spearman"))]
    if not corr:
        return []
    out = []
    ulabel = short_utility_label(primary)
    n_tests = sum(1 for c in corr if _finite(c.get("spearman_p")))
    for category in ("fidelity", "variety", "privacy"):
        rows = [c for c in corr if c["utility"] == primary and c["category"] == category]
        if not rows:
            continue
        sig = sorted((c for c in rows if _finite(c.get("spearman_p"))
                      and c["spearman_p"] < alpha), key=lambda c: c["spearman_p"])
        if not sig:
            strongest = max(rows, key=lambda c: abs(c["spearman"]))
            text = (f"No {category} metric predicted {ulabel} at p < {alpha:g} (strongest: "
                    f"{metric_label(strongest['metric'])}, {_corr_phrase(strongest)}).")
        else:
            many = len(sig) > 1
            text = (f"{len(sig)} {category} metric{'s' if many else ''} predicted {ulabel} at "
                    f"p < {alpha:g}: " + "; ".join(_short_corr(c) for c in sig) + "."
                    + _hedges(sig, n_tests, alpha))
        out.append({"id": f"predict_{category}", "level": "key", "text": text})
    best = analysis["best_predictors"].get(primary)
    if best is not None:
        text = (f"The metric that best tracked {ulabel} was {metric_label(best['metric'])} "
                f"({best['category']}; Spearman ρ = {fmt(best['spearman'])}, "
                f"{fmt_ci(best.get('spearman_ci'))}, {fmt_p(best.get('spearman_p'))})")
        text += "." if best["significant"] else ", but not significantly."
        out.append({"id": "best_predictor", "level": "info", "text": text})
    n_sig = sum(1 for c in corr if _finite(c.get("spearman_p")) and c["spearman_p"] < alpha)
    n_q = sum(1 for c in corr if _finite(c.get("spearman_q")) and c["spearman_q"] < alpha)
    if n_tests > 1:
        out.append({"id": "multiple_testing", "level": "info", "text":
                    f"Across all {n_tests} metric–utility pairs tested, {n_sig} had "
                    f"p < {alpha:g} (about {n_tests * alpha:.1f} would by chance alone); "
                    f"{n_q} survived Benjamini–Hochberg correction."})
    return out


def _tradeoff_findings(analysis: dict[str, Any]) -> list[dict[str, str]]:
    t = analysis.get("tradeoff")
    if not t or not _finite(t["composite"].get("spearman")):
        return []
    c = t["composite"]
    rho = c["spearman"]
    word = "anti-correlated" if rho < 0 else "positively correlated" if rho > 0 else \
        "uncorrelated"
    text = (f"Fidelity and variety were {word} across the sets ({_corr_phrase(c)}; Pearson "
            f"r = {fmt(c.get('pearson'))}). The companion study found r = −0.92: sets that "
            "look more real tended to cover less of the real variation.")
    if _ci_has_zero(c.get("spearman_ci")):
        text += " Here the CI includes zero, so the direction of the trade-off is not " \
                "established."
    return [{"id": "tradeoff", "level": "key", "text": text}]


def _floor_findings(results: dict[str, Any], analysis: dict[str, Any]) -> list[dict[str, str]]:
    out = []
    for metric in analysis["metrics"]:
        if analysis["categories"].get(metric) != "privacy":
            continue
        fl = table.floor(results, metric)
        if fl is None or not _finite(fl.get("value")):
            continue
        sgn = table.sign(results, metric)
        bound = fl["value"]
        if fl.get("ci") and _finite(fl["ci"][0]) and _finite(fl["ci"][1]):
            bound = min(fl["ci"]) if sgn > 0 else max(fl["ci"])  # the floor's worst end
        worse = [s for s in analysis["sets"]
                 if _finite(table.value(results, s, metric))
                 and sgn * table.value(results, s, metric) < sgn * bound]
        label = metric_label(metric)
        if worse:
            one = len(worse) == 1
            text = (f"On {label}, {len(worse)} set{'' if one else 's'} "
                    f"{'was' if one else 'were'} worse than the real-vs-real floor "
                    f"({fmt(fl['value'])}, beyond its CI): {', '.join(worse)}. Unseen real "
                    f"images score the floor, so {'this set sits' if one else 'these sets sit'}"
                    " closer to training images than chance closeness explains.")
            level = "warning"
        else:
            text = (f"No set was worse than the real-vs-real floor on {label} "
                    f"({fmt(fl['value'])}).")
            level = "info"
        out.append({"id": f"floor_{metric}", "level": level, "text": text})
    return out
