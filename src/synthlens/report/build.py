"""Build ``report.html``, ``results.csv`` and the figures of a run from its folder alone.

:func:`build_report` recomputes nothing: it renders ``results.json`` (the scores, and the
analysis the run's ``analysis`` stage stored there) and the saved samples, audits and
curves, and writes

* ``RUN/report.html``: one self-contained page (inline CSS, images as base64 PNG data URIs,
  no scripts, no external assets), also copied to ``RUN/report/report.html``;
* ``RUN/results.csv``: one row per set and metric (floors included as set
  ``real-vs-real floor``);
* ``RUN/report/figures/*.png``: every figure of the page.

The page depends on the run folder only (no clock), so rebuilding it gives the same bytes.
"""

from __future__ import annotations

import base64
import csv
import io
import math
import re
from datetime import UTC, datetime
from html import escape
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from synthlens.analysis import table
from synthlens.analysis.categories import (
    CATEGORIES,
    PROTOCOLS,
    SCORES,
    metric_category,
    metric_description,
    metric_label,
    short_utility_label,
)
from synthlens.analysis.findings import fmt, fmt_p, ordinal
from synthlens.audit import CATEGORIES as AUDIT_CATEGORIES
from synthlens.audit import category_shares
from synthlens.errors import InputError
from synthlens.io import write_bytes, write_text
from synthlens.metrics.base import PER_CLASS_SKIPPED
from synthlens.progress import progress_bar
from synthlens.report import figures as F
from synthlens.report.runfiles import RunFiles

SECTIONS = (
    ("summary", "Summary"),
    ("sets", "Sets and scores"),
    ("samples", "Samples"),
    ("plane", "Fidelity–variety plane"),
    ("radar", "Profiles"),
    ("correlations", "Metrics vs utility"),
    ("privacy", "Privacy audit"),
    ("per-class", "Per class"),
    ("curves", "Training curves"),
    ("details", "Run details"),
)
CSV_COLUMNS = ("set", "kind", "metric", "value", "direction", "ci_low", "ci_high",
               "feature_space", "category")
FLOOR_SET = "real-vs-real floor"

MEANING = {
    "summary": "synthlens scored each synthetic image set on four aspects: <b>fidelity</b> "
               "(do the images look real?), <b>variety</b> (do they cover the range of real "
               "images?), <b>privacy</b> (do they avoid reproducing training images?) and "
               "<b>utility</b> (does adding them help a classifier on real test images?). The "
               "question is whether choosing a generator by fidelity, as is common, also picks "
               "the most useful set. The sentences below are generated from the numbers; "
               "words like <i>fragile</i> or <i>uncertain</i> mean the confidence interval is "
               "wide.",
    "sets": "Each row is one image set, each column one metric. <span class=arrow>↑</span> "
            "means higher is better, <span class=arrow>↓</span> lower is better; grey brackets "
            "are 95% confidence intervals and bold marks the best synthetic set. The "
            "<i>real-vs-real floor</i> row is what unseen real images (half of the held-out "
            "share, in the same feature space) score against the training images: synthetic "
            "sets should not be expected to beat it on fidelity, and a privacy score worse "
            "than it (red) means images closer to training images than chance explains. "
            "Metrics that depend on the number of images (FID, KID, recall, coverage, Vendi) "
            "are computed on fewer images for the floor than for the sets. The "
            "<i>real-only</i> row is the classifier trained on real images alone.",
    "samples": "The first images of each class from every set, with real training images "
               "for comparison when the run saved them. Look for artefacts, near-identical "
               "images (mode collapse) and classes that cannot be told apart.",
    "plane": "Each bubble is a set: further right is more realistic, higher up is more "
             "varied. Bubble size shows how much the set changed the classifier's score "
             "compared with real data alone, and colour whether that change was significant. "
             "The companion study found the two axes trade off (r = −0.92), so sets in the "
             "top-right corner are rare. Positions are relative to the sets in this run "
             "(0 = worst, 1 = best).",
    "radar": "One shape per set; each axis is one aspect, scaled from 0 (worst set in this "
             "run) to 1 (best). A large, even shape is an all-rounder; a spike is a set that "
             "is strong on one aspect only.",
    "correlations": "Does a metric predict usefulness? Each number is the rank correlation "
                    "(Spearman ρ) between a metric and a utility score across the synthetic "
                    "sets, aligned so that a positive value means <i>better on the metric goes "
                    "with more useful</i>. * marks p < 0.05 in a permutation test. With few "
                    "sets even a strong-looking correlation can be chance: read the interval "
                    "and the p-value, and the corrected q-value when many pairs are tested.",
    "privacy": "Which synthetic images are closest to a training image? Each pair shows a "
               "synthetic image above its nearest training image. <i>copy</i> means closer "
               "to a training image than that image's own nearest real neighbour: these are "
               "the images that could reveal a patient. Compare with the real-vs-real floor "
               "in the table above: unseen real images also count as copies by this rule "
               "now and then.",
    "per-class": "Metrics broken down by class. A set can look good on average while one "
                 "class, often the disease class, is poorly generated.",
    "curves": "Generator training losses against training steps. Still falling at the end "
              "suggests under-training; erratic curves suggest unstable training.",
    "details": "What was run, with which versions, seeds and input hashes, so that the "
               "results can be traced and reproduced.",
}


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "set"


class _Figures:
    """Saves each figure as PNG and returns the ``<figure>`` HTML that embeds it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.png"):  # stale figures of an earlier build
            old.unlink()
        self.names: list[str] = []

    def add(self, name: str, fig: Any, alt: str, caption: str = "", tight: bool = True) -> str:
        png = F.to_png(fig, tight)
        fname = f"{_slug(name)}.png"
        write_bytes(self.folder / fname, png)
        self.names.append(fname)
        data = base64.b64encode(png).decode("ascii")
        cap = f"<figcaption>{caption}</figcaption>" if caption else ""
        return (f'<figure><img src="data:image/png;base64,{data}" alt="{escape(alt)}" '
                f'loading="eager">{cap}</figure>')


def _absent(text: str) -> str:
    return f'<p class="absent">{escape(text)}</p>'


def _cell_value(v: float) -> str:
    return fmt(v) if math.isfinite(v) else "–"


def _metric_header(results: dict[str, Any], metric: str) -> str:
    arrow = F.arrow(results, metric)
    tip = f"{metric_description(metric)} {'Higher' if arrow == '↑' else 'Lower'} is better."
    label = metric_label(metric)
    if metric.startswith("utility."):  # the protocol is the table's heading already
        score = metric.rsplit(".", 1)[-1]
        gain = score.startswith("gain_")
        score = score.removeprefix("gain_")
        label = ("gain in " if gain else "") + SCORES.get(score, score.replace("_", " "))
    return (f'<th title="{escape(tip)}">{escape(label)} '
            f'<span class="arrow">{arrow}</span></th>')


def _metric_table(results: dict[str, Any], metrics: list[str], rows: list[str],
                  candidates: list[str], show_floor: bool, baseline: str | None = None,
                  show_p: bool = False) -> str:
    head = "<tr><th>set</th>" + "".join(_metric_header(results, m) for m in metrics) + "</tr>"
    best: dict[str, str] = {}
    for m in metrics:
        vals = {s: table.sign(results, m) * table.value(results, s, m) for s in candidates}
        vals = {s: v for s, v in vals.items() if math.isfinite(v)}
        if len(vals) >= 2:
            best[m] = max(vals, key=lambda s: vals[s])
    body = []
    all_rows = list(rows) + ([baseline] if baseline else [])
    for s in all_rows:
        kind = table.set_kind(results, s)
        cls = {"reference": "reference", "baseline": "baseline"}.get(kind, "")
        label = "real-only baseline" if kind == "baseline" else s
        cells = [f'<td>{escape(label)} <span class="kind">{escape(kind)}</span></td>']
        for m in metrics:
            v = table.value(results, s, m)
            if not math.isfinite(v):
                why = _skipped_reason(table.metric_entry(results, s, m))
                title = f' title="{escape(why)}"' if why else ""
                cells.append(f'<td class="na"{title}>–</td>')
                continue
            klass = []
            if best.get(m) == s:
                klass.append("best")
            title = ""
            fl = table.floor(results, m)
            if (metric_category(m) == "privacy" and fl and fl.get("value") is not None
                    and kind != "reference"):
                sgn = table.sign(results, m)
                lo_hi = fl.get("ci") or [fl["value"], fl["value"]]
                bound = min(lo_hi) if sgn > 0 else max(lo_hi)
                if sgn * v < sgn * bound:
                    klass.append("warn")
                    title = ' title="worse than the real-vs-real floor"'
            interval = table.ci(results, s, m)
            extra = f'<span class="ci">[{fmt(interval[0])}, {fmt(interval[1])}]</span>' \
                if interval else ""
            p = table.p_value(results, s, m)
            if show_p and math.isfinite(p):
                extra += f'<span class="ci">{escape(fmt_p(p))}</span>'
            cls_attr = f' class="{" ".join(klass)}"' if klass else ""
            cells.append(f"<td{cls_attr}{title}>{_cell_value(v)}{extra}</td>")
        body.append(f'<tr class="{cls}">' + "".join(cells) + "</tr>")
    if show_floor and any(table.floor(results, m) for m in metrics):
        cells = ['<td>real vs real <span class="kind">floor</span></td>']
        for m in metrics:
            fl = table.floor(results, m)
            if not fl or fl.get("value") is None:
                why = _skipped_reason(fl)
                title = f' title="{escape(why)}"' if why else ""
                cells.append(f'<td class="na"{title}>–</td>')
                continue
            ci = fl.get("ci")
            extra = (f'<span class="ci">[{fmt(ci[0])}, {fmt(ci[1])}]</span>'
                     if ci and None not in ci[:2] else "")
            cells.append(f"<td>{fmt(float(fl['value']))}{extra}</td>")
        body.append('<tr class="floor">' + "".join(cells) + "</tr>")
    return f'<div class="tablewrap"><table>{head}{"".join(body)}</table></div>'


def _kv(items: list[tuple[str, Any]]) -> str:
    rows = "".join(f"<dt>{escape(str(k))}</dt><dd>{escape('–' if v is None else str(v))}</dd>"
                   for k, v in items)
    return f'<dl class="kv">{rows}</dl>'


def _skipped_reason(entry: dict[str, Any] | None) -> str:
    """Why a metric has no value (``details.skipped``), or ``""``."""
    return str(((entry or {}).get("details") or {}).get("skipped") or "")


def _per_class_missing(rows: list[tuple[str, str, str, str]]) -> str:
    """(set, class, metric, reason) of the null per-class values, grouped by set and
    reason: which classes, in which metrics."""
    if not rows:
        return ""
    groups: dict[tuple[str, str], tuple[dict[str, None], dict[str, None]]] = {}
    for set_name, cls, metric, reason in rows:
        classes, metrics = groups.setdefault((set_name, reason), ({}, {}))
        classes[cls] = None
        metrics[metric_label(metric)] = None
    items = "".join(f"<li>{escape(set_name)}, {escape(', '.join(classes))}: {escape(reason)} "
                    f"({escape(', '.join(metrics))})</li>"
                    for (set_name, reason), (classes, metrics) in groups.items())
    return ("<p class=note>Per-class values not computed (no bar in the chart, – in the "
            f'table):</p><ul class="skipped">{items}</ul>')


def _not_computed(rows: list[tuple[str, str, str]], what: str) -> str:
    """A list of (set, metric, reason) that have no value, grouped by reason."""
    if not rows:
        return ""
    by_reason: dict[str, list[str]] = {}
    for set_name, metric, reason in rows:
        by_reason.setdefault(reason, []).append(f"{metric_label(metric)} of {set_name}")
    items = "".join(f"<li>{escape(', '.join(dict.fromkeys(where)))}: {escape(reason)}</li>"
                    for reason, where in by_reason.items())
    return f'<p class=note>{escape(what)} (shown as –):</p><ul class="skipped">{items}</ul>'


def _flatten(obj: Any, prefix: str = "", limit: int = 120) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _flatten(v, f"{prefix}.{k}" if prefix else str(k), limit)
    elif isinstance(obj, list) and len(obj) <= 8 and all(not isinstance(v, (dict, list))
                                                         for v in obj):
        out.append((prefix, ", ".join(str(v) for v in obj)))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _flatten(v, f"{prefix}[{i}]", limit)
    else:
        out.append((prefix, obj))
    return out[:limit]


class _Report:
    def __init__(self, run: RunFiles, analysis: dict[str, Any], figs: _Figures) -> None:
        self.run = run
        self.results = run.results
        self.analysis = analysis
        self.figs = figs
        r = self.results
        self.candidates = table.sets_of_kind(r, table.CANDIDATE_KINDS)
        self.references = table.sets_of_kind(r, ("reference",))
        self.baseline = table.baseline_set(r)
        self.shown = self.candidates + self.references
        self.colours = F.set_colours(self.shown)
        self.primary = analysis.get("primary_utility")
        self.status = {s: F.gain_key(g["status"], g["gain"])
                       for s, g in analysis["utility_gains"].items()}
        self.class_names = list((r.get("dataset") or {}).get("class_names") or [])
        self.manifest = run.json("manifest.json") or {}
        results_stage = (self.manifest.get("stages") or {}).get("results") or {}
        self.written = _minute(results_stage.get("finished"))  # when results.json was made

    # -- sections ---------------------------------------------------------------------------

    def summary(self) -> str:
        r, a = self.results, self.analysis
        cards = [("Synthetic sets compared", str(len(self.candidates)),
                  f"+ {len(self.references)} reference" if self.references else "")]
        if self.primary:
            base_v = table.value(r, self.baseline, self.primary) if self.baseline else math.nan
            cards.append(("Headline utility", short_utility_label(self.primary),
                          f"real-only baseline {fmt(base_v)}" if math.isfinite(base_v)
                          else "no real-only baseline recorded"))
            vals = {s: table.sign(r, self.primary) * table.value(r, s, self.primary)
                    for s in self.candidates}
            vals = {s: v for s, v in vals.items() if math.isfinite(v)}
            if vals:
                top = max(vals, key=lambda s: vals[s])
                st = self.status.get(top, "unknown")
                cards.append(("Most useful set", top,
                              f"{fmt(table.value(r, top, self.primary))} "
                              f"({F.STATUS_LABELS[st]})"))
        for b in a["best_sets"]:
            if b["category"] == "fidelity":
                cards.append((f"Best {metric_label(b['metric'])}", b["best_set"],
                              f"ranked {ordinal(b['utility_rank'])} of {b['n_ranked']} for "
                              "utility"))
                break
        html = '<div class="cards">' + "".join(
            f'<div class="card"><div class="k">{escape(k)}</div><div class="v">{escape(v)}'
            f'</div><div class="s">{escape(s)}</div></div>' for k, v, s in cards) + "</div>"
        items = "".join(f'<li class="{escape(f["level"])}">{escape(f["text"])}</li>'
                        for f in a["findings"])
        html += f'<h3>Findings</h3><ul class="findings">{items}</ul>'
        if self.primary and any(math.isfinite(table.value(r, s, self.primary))
                                for s in self.shown):
            fig = F.utility_forest(r, self.primary, self.shown, self.status, self.baseline)
            html += self.figs.add(
                "utility", fig, f"{short_utility_label(self.primary)} per set",
                f"{escape(short_utility_label(self.primary))} of every set with its 95% CI; "
                "the dark line and grey band are the classifier trained on real images only "
                "(value and 95% CI). "
                "Colour: significance of the difference (from the utility protocol's paired "
                "test); ★ reference set.")
        return html

    def sets(self) -> str:
        r = self.results
        rows = self.shown
        metrics = table.metric_names(r, rows + ([self.baseline] if self.baseline else []))
        blurbs = {
            "fidelity": "Do the synthetic images look like real ones?",
            "variety": "Do they cover the variation of the real images (or repeat a few)?",
            "privacy": "Do they reproduce training images?",
            "other": "Metrics synthlens does not classify.",
        }
        html = ""
        for cat in ("fidelity", "variety", "privacy", "other"):
            ms = [m for m in metrics if metric_category(m) == cat]
            if not ms:
                continue
            html += f"<h3>{cat.capitalize()}</h3><p class=note>{escape(blurbs[cat])}</p>"
            html += _metric_table(r, ms, rows, self.candidates, show_floor=True)
        util = [m for m in metrics if metric_category(m) == "utility"]
        protocols: dict[str, list[str]] = {}
        for m in util:
            protocols.setdefault(m.split(".")[1] if m.count(".") >= 2 else "other", []).append(m)
        for proto, ms in protocols.items():
            html += (f"<h3>Utility: {escape(PROTOCOLS.get(proto, proto))}</h3>"
                     "<p class=note>Classifier scores on the real test split; p-values are "
                     "the protocol's paired test against the real-only classifier.</p>")
            html += _metric_table(r, ms, rows, self.candidates, show_floor=True,
                                  baseline=self.baseline, show_p=True)
            warned = {s: str(w) for s in rows for m in ms
                      if (w := ((table.metric_entry(r, s, m) or {}).get("details") or {})
                          .get("warning"))}
            if warned:
                html += "<p class=note>Read with care:</p><ul class=\"skipped\">" + "".join(
                    f"<li>{escape(s)}: {escape(w)}</li>" for s, w in warned.items()) + "</ul>"
        if not metrics:
            html += _absent("results.json holds no metrics.")
        skipped = [(s, m, _skipped_reason(table.metric_entry(r, s, m))) for s in rows
                   for m in metrics if (table.metric_entry(r, s, m) or {}).get("value") is None
                   and table.metric_entry(r, s, m) is not None]
        skipped += [("the real-vs-real floor", m, _skipped_reason(table.floor(r, m)))
                    for m in metrics if table.floor(r, m)
                    and table.floor(r, m).get("value") is None]  # type: ignore[union-attr]
        html += _not_computed([(s, m, why or "undefined on this set (no finite value)")
                               for s, m, why in skipped], "Not computed")
        return html

    def samples(self) -> str:
        parts = []
        train = self.run.train()
        if train is not None:
            names = self._class_names(train)
            fig = F.sample_grid("real (training split)", train["images"], train["labels"], names)
            parts.append(self.figs.add("samples_real-train", fig, "real training images"))
        missing = []
        for s in self.shown:
            data = self.run.samples(s)
            if data is None:
                missing.append(s)
                continue
            fig = F.sample_grid(s, data["images"], data["labels"], self._class_names(data))
            parts.append(self.figs.add(f"samples_{s}", fig, f"samples of {s}"))
        if not parts:
            return _absent("No set's samples.npz (sets/<set>/samples.npz, as results.json "
                           "names it) was found.")
        note = (f"<p class=note>No saved samples for: {escape(', '.join(missing))}.</p>"
                if missing else "")
        return f'<div class="grid">{"".join(parts)}</div>{note}'

    def _class_names(self, data: dict[str, np.ndarray]) -> list[str]:
        if "class_names" in data:
            return [str(c) for c in data["class_names"].tolist()]
        if self.class_names:
            return self.class_names
        return [str(i) for i in range(int(data["labels"].max()) + 1)]

    def plane(self) -> str:
        a = self.analysis
        scores = a["category_scores"]
        usable = [s for s, v in scores.items()
                  if v.get("fidelity") is not None and v.get("variety") is not None]
        if len(usable) < 2:
            return _absent("The plane needs at least two synthetic sets with both a fidelity "
                           "and a variety metric that differ between sets.")
        t = a.get("tradeoff") or {}
        comp = t.get("composite") or {}
        rho = comp.get("spearman")
        rho_text = (f"fidelity vs variety: Spearman ρ = {rho:.2f}, {fmt_p(comp.get('spearman_p'))}"
                    if rho is not None else "too few sets for a correlation")
        fig = F.fidelity_variety_plane(scores, a["utility_gains"],
                                       a["category_metrics"].get("fidelity", []),
                                       a["category_metrics"].get("variety", []),
                                       rho_text, self.primary)
        return self.figs.add(
            "plane", fig, "fidelity-variety plane",
            "Fidelity and variety scores are the mean of the sign-aligned metrics, each scaled "
            "0–1 across the synthetic sets. Labels give the gain over the real-only baseline.")

    def radar(self) -> str:
        scores = self.analysis["category_scores"]
        cats = [c for c in CATEGORIES if any(v.get(c) is not None for v in scores.values())]
        if len(scores) < 2 or not cats:
            return _absent("Profiles need at least two synthetic sets whose metrics differ.")
        fig = F.radar(scores, cats, self.colours)
        used = self.analysis["category_metrics"]
        cap = "; ".join(f"{c}: {', '.join(metric_label(m) for m in used.get(c, []))}"
                        for c in cats)
        return self.figs.add("radar", fig, "profile per set", "Metrics per axis — " + escape(cap))

    def correlations(self) -> str:
        a, r = self.analysis, self.results
        html = ""
        if a.get("sample_size_statement"):
            html += (f'<ul class="findings"><li class="warning">'
                     f'{escape(a["sample_size_statement"])}</li></ul>')
        if not a["correlations"]:
            return html + _absent("No correlation could be computed (at least three synthetic "
                                  "sets with a metric and a utility score are needed).")
        fig = F.correlation_heatmap(a, r)
        if fig is not None:
            html += self.figs.add("correlation_heatmap", fig, "correlation heatmap",
                                  "Spearman ρ of each metric (rows) with each utility score "
                                  "(columns), sign-aligned; * p < 0.05 (permutation test).")
        if self.primary:
            rows = a["ranking"].get(self.primary, [])
            lookup = {(c["metric"], c["utility"]): c for c in a["correlations"]}
            trs = []
            for k, row in enumerate(rows, 1):
                c = lookup[(row["metric"], self.primary)]
                trs.append(
                    f"<tr><td>{k}. {escape(metric_label(row['metric']))} "
                    f"<span class=arrow>{F.arrow(r, row['metric'])}</span></td>"
                    f"<td>{escape(row['category'])}</td><td>{c.get('n')}</td>"
                    f"<td>{_corr_cell(c, 'spearman')}</td>"
                    f"<td>{escape(fmt_p(c.get('spearman_p')))}</td>"
                    f"<td>{_q_text(c.get('spearman_q'))}</td>"
                    f"<td>{_corr_cell(c, 'kendall')}</td>"
                    f"<td>{escape(fmt_p(c.get('kendall_p')))}</td></tr>")
            html += (f"<h3>Which metric best predicts "
                     f"{escape(short_utility_label(self.primary))}?</h3>"
                     '<div class="tablewrap"><table><tr><th>metric</th><th>category</th>'
                     "<th>sets</th><th>Spearman ρ [95% CI]</th><th>p</th><th>q (BH)</th>"
                     "<th>Kendall τ [95% CI]</th><th>p</th></tr>" + "".join(trs) +
                     "</table></div>")
            fig = F.metric_scatter(r, a, self.primary, self.candidates, self.references,
                                   self.baseline, self.colours)
            if fig is not None:
                html += self.figs.add(
                    "metric_vs_utility", fig, "metrics against utility",
                    f"Each metric (raw value, x) against "
                    f"{escape(short_utility_label(self.primary))} (y) per set, with the rank "
                    "correlation over the synthetic sets (reference sets are drawn but not "
                    "correlated).", tight=False)
        t = a.get("tradeoff")
        if t:
            comp = t["composite"]
            html += ("<h3>Fidelity–variety trade-off</h3><p>Composite scores: "
                     f"{_corr_cell(comp, 'spearman', 'Spearman ρ')}, "
                     f"{escape(fmt_p(comp.get('spearman_p')))}; "
                     f"Pearson r = {escape(fmt(comp.get('pearson')))}. "
                     f"<span class=note>{escape(t['reference'])}.</span></p>")
        html += ("<details><summary>How these numbers were computed</summary><ul>" +
                 "".join(f"<li><b>{escape(k)}</b>: {escape(v)}</li>"
                         for k, v in a["methods"].items() if isinstance(v, str)) +
                 "</ul></details>")
        return html

    def membership(self) -> str:
        """Who the members and non-members of the privacy metrics were (``privacy``)."""
        p = self.results.get("privacy")
        if not isinstance(p, dict):
            return ""
        if p.get("declared"):
            how = ("declared, as <code>synthlens evaluate</code> does (<code>--members</code>, "
                   "<code>--non-members</code>; by default train and val)")
        else:
            how = ("the training split without its holdout, and the holdout: a random, "
                   "class-stratified share of the training split that no generator saw")
        html = (f'<p class="membership" data-members="{escape(str(p.get("members")))}" '
                f'data-non-members="{escape(str(p.get("non_members")))}">'
                f"<b>Members</b> (what the generator was trained on; the privacy metrics' "
                f"reference): <code>{escape(str(p.get('members')))}</code>, "
                f"{p.get('n_members')} images. <b>Non-members</b> (never seen; the "
                f"real-holdout set): <code>{escape(str(p.get('non_members')))}</code>, "
                f"{p.get('n_non_members')} images. Chosen: {how}.</p>")
        if p.get("warning"):
            html += (f'<ul class="findings"><li class="warning membership-warning">'
                     f"{escape(str(p['warning']))}</li></ul>")
        return html

    def privacy(self) -> str:
        r = self.results
        members = self.membership()
        audits = {s: self.run.audit(s) for s in self.shown}
        audits = {s: rows for s, rows in audits.items() if rows}
        if not audits:
            return members + _absent("No per-image privacy audit (metrics/audit/<set>.csv) "
                                     "in this run.")
        shares = {s: category_shares(rows) for s, rows in audits.items()}
        html = members + self.figs.add("audit_categories", F.audit_shares(shares),
                                       "audit categories per set",
                                       "Share of each set's images that are copies, "
                                       "real-like or non-real by the copy/real/non-real rule.")
        head = "".join(f"<th>{escape(c)}</th>" for c in AUDIT_CATEGORIES)
        copy_keys = ("members", "val", "test")
        head += "".join(f"<th>exact copies of {k}</th>" for k in copy_keys)

        def copies(s: str) -> str:
            found = (r["sets"].get(s) or {}).get("exact_copies") or {}
            return "".join(f'<td data-copies="{k}">{found.get(k, "–")}</td>' for k in copy_keys)

        rows_html = "".join(
            f'<tr data-set="{escape(s)}" data-images="{len(audits[s])}"><td>{escape(s)}</td>'
            + "".join(f'<td data-category="{c}" data-share="{share[c]!r}">{share[c]:.1%}</td>'
                      for c in AUDIT_CATEGORIES) + copies(s) + "</tr>"
            for s, share in shares.items())
        html += ('<div class="tablewrap"><table class="audit-shares"><tr><th>set</th>'
                 f"{head}</tr>{rows_html}</table></div>"
                 "<p class=note>Exact copies: images byte-identical to a member image (the "
                 "audit's <code>exact_copy_of</code> names which), or to a real val or test "
                 "image (these inflate utility).</p>")
        fl = table.floor(r, "copy_rate")
        if fl and fl.get("value") is not None:
            html += (f"<p class=note>Real-vs-real floor of the copy rate: "
                     f"{escape(fmt(float(fl['value'])))}.</p>")
        train = self.run.train()
        parts = []
        for s, rows in audits.items():
            data = self.run.samples(s)
            if train is not None and data is not None:
                fig = F.closest_pairs(s, rows, data["images"], train["images"])
                parts.append(self.figs.add(f"pairs_{s}", fig, f"closest pairs of {s}"))
            else:
                top = sorted(rows, key=lambda row: row["distance"])[:8]
                trs = "".join(f"<tr><td>{row['synthetic_index']}</td>"
                              f"<td>{row['nearest_train_index']}</td>"
                              f"<td>{fmt(row['distance'])}</td><td>{escape(row['category'])}"
                              "</td></tr>" for row in top)
                parts.append(f"<h3>{escape(s)}</h3><p class=note>Images not shown: "
                             "data/train.npz or the set's samples.npz is missing.</p>"
                             '<div class="tablewrap"><table><tr><th>synthetic index</th>'
                             "<th>nearest training index</th><th>distance</th><th>category"
                             f"</th></tr>{trs}</table></div>")
        return html + "".join(parts)

    def per_class(self) -> str:
        r = self.results
        metrics = [m for m in table.metric_names(r, self.shown)
                   if any((table.metric_entry(r, s, m) or {}).get("per_class")
                          for s in self.shown)][:12]
        if not metrics:
            return _absent("No metric in this run recorded per-class values.")
        names = self.class_names or sorted({c for m in metrics for s in self.shown
                                            for c in ((table.metric_entry(r, s, m) or {})
                                                      .get("per_class") or {})})
        fig = F.per_class(r, metrics, self.shown, names, self.colours)
        html = self.figs.add("per_class", fig, "per-class metrics")
        head = "<tr><th>metric</th><th>set</th>" + "".join(
            f"<th>{escape(c)}</th>" for c in names) + "</tr>"
        body: list[str] = []
        missing: list[tuple[str, str, str, str]] = []
        for m in metrics:
            for s in self.shown:
                entry = table.metric_entry(r, s, m) or {}
                pc = entry.get("per_class")
                if not pc:
                    continue
                reasons = (entry.get("details") or {}).get(PER_CLASS_SKIPPED) or {}
                cells = []
                for c in names:
                    v = pc.get(c)
                    if v is None:
                        why = reasons.get(c) or ("not computed" if c in pc
                                                 else "no value for this class")
                        cells.append(f'<td class="na" title="{escape(why)}">–</td>')
                        missing.append((s, c, m, why))
                    else:
                        cells.append(f"<td>{_cell_value(float(v))}</td>")
                body.append(f"<tr><td>{escape(metric_label(m))}</td><td>{escape(s)}</td>"
                            + "".join(cells) + "</tr>")
        html += ("<details><summary>Per-class values (table)</summary>"
                 f'<div class="tablewrap"><table>{head}{"".join(body)}</table></div></details>')
        return html + _per_class_missing(missing)

    def curves(self) -> str:
        curves = {title: panel for s in self.shown for title, panel in self.run.curves(s).items()}
        if not curves:
            return _absent("No training curves (generators/<name>/curves.json, as "
                           "results.json names them) were saved.")
        return self.figs.add("training_curves", F.training_curves(curves), "training curves")

    def details(self) -> str:
        r, run = self.results, self.run
        ds = r.get("dataset") or {}
        html = "<h3>Dataset</h3>" + _kv([(k, v) for k, v in _flatten(ds)])
        html += "<h3>Versions and files</h3>" + _kv([
            ("results.json schema", r.get("schema_version", "unknown")),
            ("synthlens (run)", r.get("synthlens_version", "unknown")),
            ("analysis", self.analysis.get("version")),
            ("analysis seed", self.analysis.get("seed")),
            ("results written", self.written or "unknown"),
            ("run folder", run.root.resolve().name),
            ("figures", f"report/figures/ ({len(self.figs.names)} PNG files)"),
        ])
        if self.manifest:
            html += "<h3>Manifest</h3>" + _kv(_flatten(_stable(self.manifest)))
        config = run.text("config.yaml")
        if config is not None:
            html += f"<details open><summary>config.yaml</summary><pre>{escape(config)}</pre>" \
                    "</details>"
        summary = run.text("data/summary.json")
        if summary is not None:
            html += f"<details><summary>data/summary.json</summary><pre>{escape(summary)}" \
                    "</pre></details>"
        metrics = table.metric_names(r)
        if metrics:
            rows = "".join(
                f"<tr><td>{escape(m)}</td><td>{escape(metric_label(m))}</td>"
                f"<td>{escape(metric_category(m))}</td><td>{F.arrow(r, m)}</td>"
                f"<td>{escape(metric_description(m))}</td>"
                f"<td>{escape(_feature_spaces(r, m))}</td></tr>" for m in metrics)
            html += ("<h3>Metric glossary</h3><div class=tablewrap><table class=text><tr>"
                     "<th>name</th><th>label</th><th>aspect</th><th>better</th><th>meaning</th>"
                     f"<th>feature space</th></tr>{rows}</table></div>")
        if run.problems:
            html += "<h3>Files that could not be read</h3><ul>" + "".join(
                f"<li>{escape(p)}</li>" for p in run.problems) + "</ul>"
        return html


def _minute(iso: Any) -> str | None:
    """``2026-12-01T20:56:36+00:00`` as ``2026-12-01 20:56 UTC`` (None when absent)."""
    try:
        return datetime.fromisoformat(str(iso)).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return None


def _stable(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest without what changes while the report is written or rebuilt (the run's
    status and invocations, the report stage itself), so that a rebuilt page is identical."""
    out = {k: v for k, v in manifest.items() if k not in ("status", "finished", "runs")}
    out["stages"] = {k: v for k, v in (manifest.get("stages") or {}).items() if k != "report"}
    return out


def _feature_spaces(results: dict[str, Any], metric: str) -> str:
    ids = {table.feature_space_id(table.metric_entry(results, s, metric))
           for s in results["sets"]}
    ids.discard("")
    return ", ".join(sorted(ids))


def _q_text(q: float | None) -> str:
    return "–" if q is None else f"{q:.2g}"


def _corr_cell(c: dict[str, Any], stat: str, prefix: str = "") -> str:
    v = c.get(stat)
    if v is None:
        return "–"
    ci = c.get(f"{stat}_ci")
    ci_txt = f" [{fmt(ci[0])}, {fmt(ci[1])}]" if ci else ""
    return escape(f"{prefix + ' = ' if prefix else ''}{fmt(v)}{ci_txt}")


def _page(results: dict[str, Any], body: dict[str, str], subtitle: str) -> str:
    css = resources.files("synthlens.report").joinpath("report.css").read_text("utf-8")
    ds = results.get("dataset") or {}
    title = f"synthlens report — {ds.get('name', 'run')}"
    nav = "".join(f'<a href="#{sid}">{escape(name)}</a>' for sid, name in SECTIONS)
    sections = "".join(
        f'<section id="{sid}"><h2>{escape(name)}</h2>'
        f'<div class="meaning"><b>What this means.</b> {MEANING[sid]}</div>{body[sid]}</section>'
        for sid, name in SECTIONS)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(title)}</title><style>{css}</style></head><body>"
            f'<header class="top"><h1>{escape(title)}</h1><p>{escape(subtitle)}</p></header>'
            f"<nav>{nav}</nav><main>{sections}</main>"
            "<footer>Generated by synthlens from the run folder; self-contained, works "
            "offline.</footer></body></html>\n")


def results_csv(results: dict[str, Any]) -> str:
    """``results.csv`` text: one row per set and metric, then the real-vs-real floors."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)

    def num(v: Any) -> str:
        if v is None:
            return ""
        v = float(v)
        return repr(v) if math.isfinite(v) else ""

    for name, entry in results["sets"].items():
        kind = entry.get("kind") or "generated"
        for metric, m in entry.get("metrics", {}).items():
            ci = m.get("ci") or [None, None]
            writer.writerow([name, kind, metric, num(m.get("value")), m["direction"],
                             num(ci[0]), num(ci[1]), table.feature_space_id(m),
                             metric_category(metric)])
    for metric, m in (results.get("floors") or {}).items():
        ci = m.get("ci") or [None, None]
        writer.writerow([FLOOR_SET, "floor", metric, num(m.get("value")), m.get("direction", ""),
                         num(ci[0]), num(ci[1]), table.feature_space_id(m),
                         metric_category(metric)])
    return buf.getvalue()


def write_results_csv(results: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    write_text(path, results_csv(table.check_results(results, str(path))))
    return path


def build_report(run_dir: str | Path, *, progress: bool = True) -> Path:
    """(Re)build ``report.html``, ``results.csv`` and the figures of a run; return the page path.

    Reads only the run folder and recomputes nothing: the analysis is the one stored in
    ``results.json`` by the run's ``analysis`` stage. Raises
    :class:`synthlens.errors.InputError` when ``results.json`` is missing or invalid or
    holds no analysis.
    """
    run = RunFiles.open(run_dir)
    source = str(run.root / "results.json")
    results = table.check_results(run.results, source)
    analysis = results.get("analysis")
    if not isinstance(analysis, dict):
        raise InputError(source, "holds no 'analysis' section (the run's analysis stage has "
                                 "not finished); continue the run with --resume")
    figs = _Figures(run.root / "report" / "figures")
    report = _Report(run, analysis, figs)
    body = {}
    for sid, _ in progress_bar(SECTIONS, desc="report", disable=not progress, leave=False):
        body[sid] = getattr(report, sid.replace("-", "_"))()
    ds = results.get("dataset") or {}
    shape = "×".join(str(x) for x in ds.get("image_shape") or [])
    subtitle = (f"{len(report.candidates)} synthetic set(s) on {ds.get('name', 'a dataset')}"
                + (f" ({shape} px)" if shape else "")
                + (f" · results of {report.written}" if report.written else ""))
    page = _page(results, body, subtitle)
    out = run.root / "report.html"
    write_text(out, page)
    write_text(run.root / "report" / "report.html", page)
    write_results_csv(results, run.root / "results.csv")
    return out
