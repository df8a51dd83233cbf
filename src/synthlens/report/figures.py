"""The report's figures, each a function returning a matplotlib Figure (Agg backend only).

Figures never read files; :mod:`synthlens.report.build` hands them arrays and the
results/analysis dicts, saves each as PNG under ``RUN/report/figures/`` and embeds it.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: the report is built on servers and in CI

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from synthlens.analysis import table
from synthlens.analysis.categories import metric_label, short_utility_label

BASELINE_COLOUR = "#34495e"
STATUS_COLOURS = {
    "better": "#1a9850",
    "gain_ns": "#a6d96a",
    "no_difference": "#8c8c8c",
    "loss_ns": "#fdae61",
    "worse": "#d73027",
    "untested": "#6a8caf",
    "unknown": "#c8c8c8",
}
STATUS_LABELS = {
    "better": "better than real-only (significant)",
    "gain_ns": "gain, not significant",
    "no_difference": "no significant difference",
    "loss_ns": "loss, not significant",
    "worse": "worse than real-only (significant)",
    "untested": "not tested",
    "unknown": "no utility score",
}


def gain_key(status: str, gain: float | None) -> str:
    """Colour key: significant better/worse, or the sign of a non-significant change."""
    if status == "no_difference" and gain is not None and math.isfinite(gain) and gain != 0:
        return "gain_ns" if gain > 0 else "loss_ns"
    return status if status in STATUS_COLOURS else "unknown"
_STYLE = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "figure.dpi": 110,
    "savefig.dpi": 110,
    "font.family": "DejaVu Sans",
}


def style() -> Any:
    return plt.rc_context(_STYLE)


def set_colours(names: Sequence[str]) -> dict[str, str]:
    """One stable colour per set, shared by every figure."""
    cmap = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
    return {n: matplotlib.colors.to_hex(cmap(i % cmap.N)) for i, n in enumerate(names)}


def to_png(fig: Figure, tight: bool = True) -> bytes:
    """PNG bytes of ``fig`` (closed afterwards); ``tight`` trims margins at one extra draw.

    Stored as a 256-colour palette PNG (median cut): grey image grids keep every grey
    level, charts lose only antialiasing shades, and the self-contained report is about
    2.4 times smaller (a 15-set study: 4.8 MB of figures down to 2.0 MB)."""
    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight" if tight else None, facecolor="white")
    plt.close(fig)
    buf.seek(0)
    image = Image.open(buf).convert("RGB").quantize(colors=256,
                                                    method=Image.Quantize.MEDIANCUT)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def arrow(results: dict[str, Any], metric: str) -> str:
    try:
        return "↑" if table.direction(results, metric) == "higher" else "↓"
    except KeyError:
        return ""


# -- images --------------------------------------------------------------------------------


def _to_rgb(images: np.ndarray) -> np.ndarray:
    return images if images.ndim == 4 else np.repeat(images[..., None], 3, axis=-1)


def image_grid(images: np.ndarray, labels: np.ndarray, class_names: Sequence[str],
               per_class: int = 8) -> tuple[np.ndarray, list[str]]:
    """(H_total, W_total, 3) uint8 mosaic with one row per class and the row labels.

    Takes the first ``per_class`` images of each class (the sample files are already in
    random order), padding short rows with a blank tile.
    """
    images = _to_rgb(np.asarray(images))
    h, w = images.shape[1:3]
    pad = max(1, h // 14)
    n_cls = len(class_names)
    out = np.full((n_cls * (h + pad) + pad, per_class * (w + pad) + pad, 3), 255, np.uint8)
    for r in range(n_cls):
        idx = np.flatnonzero(labels == r)[:per_class]
        for c, i in enumerate(idx):
            y0, x0 = pad + r * (h + pad), pad + c * (w + pad)
            out[y0:y0 + h, x0:x0 + w] = images[i]
    return out, [f"{name} (n={int(np.sum(labels == r))})" for r, name in enumerate(class_names)]


def sample_grid(title: str, images: np.ndarray, labels: np.ndarray,
                class_names: Sequence[str], per_class: int = 8) -> Figure:
    mosaic, rows = image_grid(images, labels, class_names, per_class)
    n_cls = len(class_names)
    with style():
        fig, ax = plt.subplots(figsize=(per_class * 0.62 + 1.6, n_cls * 0.62 + 0.45))
        ax.imshow(mosaic, interpolation="nearest")
        step = mosaic.shape[0] / n_cls
        ax.set_yticks([(r + 0.5) * step for r in range(n_cls)], rows)
        ax.set_xticks([])
        for side in ("left", "bottom", "top", "right"):
            ax.spines[side].set_visible(False)
        ax.tick_params(length=0)
        ax.set_title(title, loc="left", fontweight="bold")
    return fig


def closest_pairs(set_name: str, rows: list[dict[str, Any]], synthetic: np.ndarray,
                  train: np.ndarray, k: int = 8) -> Figure:
    """The ``k`` synthetic images nearest a training image (top) above that image (bottom).

    Drawn as one mosaic on one axis (a grid of small axes is several times slower).
    """
    rows = sorted(rows, key=lambda r: r["distance"])[:k]
    synthetic, train = _to_rgb(synthetic), _to_rgb(train)
    h, w = synthetic.shape[1:3]
    pad = max(2, h // 8)
    n = len(rows)
    mosaic = np.full((2 * h + 3 * pad, n * (w + pad) + pad, 3), 255, np.uint8)
    for c, row in enumerate(rows):
        x0 = pad + c * (w + pad)
        if row["category"] == "copy":  # a red frame marks copies
            mosaic[pad // 2:2 * h + 2 * pad + pad // 2, x0 - pad // 2:x0 + w + pad // 2] = \
                (215, 48, 39)
        mosaic[pad:pad + h, x0:x0 + w] = synthetic[row["synthetic_index"]]
        mosaic[2 * pad + h:2 * pad + 2 * h, x0:x0 + w] = train[row["nearest_train_index"]]
    with style():
        fig, ax = plt.subplots(figsize=(1.0 * n + 1.0, 2.75))
        ax.imshow(mosaic, interpolation="nearest")
        for c, row in enumerate(rows):
            colour = "#d73027" if row["category"] == "copy" else "#333333"
            ax.text(pad + c * (w + pad) + w / 2, -pad, f"d={row['distance']:.3g}\n"
                    f"{row['category']}", ha="center", va="bottom", fontsize=8, color=colour)
        ax.set_xticks([])
        ax.set_yticks([pad + h / 2, 2 * pad + 1.5 * h], ["synthetic", "nearest\ntraining"],
                      fontsize=8)
        ax.tick_params(length=0)
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.set_title(f"{set_name}: closest synthetic–training pairs", loc="left",
                     fontweight="bold", fontsize=10, pad=30)
    return fig


def audit_shares(shares: dict[str, dict[str, float]]) -> Figure:
    """Stacked bars: share of each set's images in copy / real / non-real."""
    cats = [("copy", "#d73027"), ("real", "#4575b4"), ("non-real", "#bdbdbd")]
    names = list(shares)
    with style():
        fig, ax = plt.subplots(figsize=(6.4, 0.42 * len(names) + 1.0))
        left = np.zeros(len(names))
        for cat, colour in cats:
            vals = np.array([shares[n].get(cat, 0.0) for n in names])
            ax.barh(names, vals, left=left, color=colour, label=cat, height=0.6)
            for i, v in enumerate(vals):
                if v >= 0.07:
                    ax.text(left[i] + v / 2, i, f"{v:.0%}", ha="center", va="center",
                            color="white", fontsize=8)
            left += vals
        ax.set_xlim(0, 1)
        ax.invert_yaxis()
        ax.set_xlabel("share of synthetic images")
        ax.legend(ncol=3, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    return fig


# -- numbers -------------------------------------------------------------------------------


def utility_forest(results: dict[str, Any], metric: str, set_names: list[str],
                   status: dict[str, str], baseline: str | None) -> Figure:
    """``status`` maps set names to colour keys (see :func:`gain_key`)."""
    """Each set's utility with its CI, against the real-only baseline's value and CI."""
    names = [s for s in set_names if math.isfinite(table.value(results, s, metric))]
    names.sort(key=lambda s: table.value(results, s, metric), reverse=True)
    with style():
        fig, ax = plt.subplots(figsize=(6.6, 0.36 * len(names) + 1.3))
        if baseline is not None and math.isfinite(table.value(results, baseline, metric)):
            bv = table.value(results, baseline, metric)
            bci = table.ci(results, baseline, metric)
            if bci is not None:
                ax.axvspan(bci[0], bci[1], color="#d9e2ec", alpha=0.8, lw=0)
            ax.axvline(bv, color=BASELINE_COLOUR, lw=1.5, label=f"real-only baseline ({bv:.3g})")
        for i, s in enumerate(names):
            v = table.value(results, s, metric)
            interval = table.ci(results, s, metric)
            colour = STATUS_COLOURS.get(status.get(s, "unknown"), "#555555")
            if interval is not None:
                ax.plot(interval, [i, i], color=colour, lw=2)
            marker = "*" if table.set_kind(results, s) == "reference" else "o"
            ax.plot([v], [i], marker, color=colour, ms=8 if marker == "o" else 11)
        ax.set_yticks(range(len(names)), names)
        ax.set_ylim(len(names) - 0.5, -0.5)
        ax.set_xlabel(f"{short_utility_label(metric)} {arrow(results, metric)} (95% CI)")
        handles = [Line2D([], [], marker="o", ls="", color=c, label=STATUS_LABELS[k])
                   for k, c in STATUS_COLOURS.items() if k in status.values()]
        handles += ax.get_legend_handles_labels()[0]
        ax.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2,
                  frameon=False, fontsize=8)
        ax.grid(axis="x", color="#eeeeee")
    return fig


def fidelity_variety_plane(scores: dict[str, dict[str, float | None]],
                           gains: dict[str, dict[str, Any]],
                           fidelity_metrics: list[str], variety_metrics: list[str],
                           rho_text: str, utility: str | None) -> Figure:
    """The companion study's Fig. 3: fidelity vs variety, bubble = utility gain."""
    names = [s for s, v in scores.items() if v.get("fidelity") is not None
             and v.get("variety") is not None]
    mags = [abs(gains[s]["gain"]) for s in names if s in gains and gains[s]["gain"] is not None
            and math.isfinite(gains[s]["gain"])]
    gmax = max(mags) if mags and max(mags) > 0 else None
    with style():
        fig, ax = plt.subplots(figsize=(6.8, 5.4))
        placed: list[tuple[str, float, float]] = []
        for s in names:
            x, y = scores[s]["fidelity"], scores[s]["variety"]
            g = gains.get(s, {})
            gain = g.get("gain")
            has_gain = gain is not None and math.isfinite(gain) and gmax is not None
            size = 90 + 1400 * abs(gain) / gmax if has_gain else 120
            colour = STATUS_COLOURS[gain_key(g.get("status", "unknown"), gain)]
            ax.scatter([x], [y], s=size, color=colour, alpha=0.75, edgecolor="#333333",
                       lw=0.8, zorder=3)
            label = s if not has_gain else f"{s}\n{gain:+.3g}"
            placed.append((label, x, y))
        ax.set_xlim(-0.12, 1.15)
        ax.set_ylim(-0.12, 1.18)
        _place_labels(ax, placed)
        ax.set_xlabel("fidelity score → more realistic\n(" + ", ".join(
            metric_label(m) for m in fidelity_metrics) + "; 0 = worst, 1 = best set here)")
        ax.set_ylabel("variety score → more varied\n(" + ", ".join(
            metric_label(m) for m in variety_metrics) + ")")
        ax.grid(color="#eeeeee", zorder=0)
        ax.text(0.99, 0.01, rho_text, transform=ax.transAxes, ha="right", va="bottom",
                fontsize=8, color="#444444")
        statuses = {gain_key(gains.get(s, {}).get("status", "unknown"),
                             gains.get(s, {}).get("gain")) for s in names}
        handles = [Line2D([], [], marker="o", ls="", ms=9, alpha=0.6, color=c,
                          label=STATUS_LABELS[k]) for k, c in STATUS_COLOURS.items()
                   if k in statuses]
        title = (f"bubble area ∝ |gain in {short_utility_label(utility)}|"
                 if utility and gmax else "no utility gain recorded")
        ax.legend(handles=handles, title=title, loc="lower center", bbox_to_anchor=(0.5, 1.0),
                  ncol=2, frameon=False, fontsize=8, title_fontsize=8)
    return fig


def _place_labels(ax: Any, labels: list[tuple[str, float, float]]) -> None:
    """Annotate points without labels piling up: shift a label down/up until it is clear.

    Works in axes-fraction units (the plane's limits are fixed before this is called); a
    shifted label gets a thin leader line to its point.
    """
    xlim, ylim = ax.get_xlim(), ax.get_ylim()
    taken: list[tuple[float, float]] = []
    for text, x, y in sorted(labels, key=lambda t: (-t[2], t[1])):
        fx = (x - xlim[0]) / (xlim[1] - xlim[0]) + 0.015
        fy = (y - ylim[0]) / (ylim[1] - ylim[0]) + 0.02
        dy = 0.0
        for k in range(40):
            dy = (k + 1) // 2 * 0.075 * (1 if k % 2 else -1) if k else 0.0
            if not 0.0 <= fy + dy <= 0.93:
                continue
            if all(abs(fx - tx) > 0.17 or abs(fy + dy - ty) > 0.07 for tx, ty in taken):
                break
        taken.append((fx, fy + dy))
        ax.annotate(text, (x, y), xytext=(fx, fy + dy), textcoords="axes fraction",
                    fontsize=8, zorder=4, va="bottom",
                    arrowprops={"arrowstyle": "-", "color": "#999999", "lw": 0.6}
                    if dy else None)


def radar(scores: dict[str, dict[str, float | None]], categories: list[str],
          colours: dict[str, str]) -> Figure:
    """One small radar per set over the category scores (bars when under 3 categories)."""
    names = list(scores)
    ncols = min(4, max(1, len(names)))
    nrows = math.ceil(len(names) / ncols)
    with style():
        if len(categories) < 3:
            fig, ax = plt.subplots(figsize=(6.4, 0.5 * len(names) * len(categories) + 1.2))
            height = 0.8 / max(1, len(categories))
            for k, cat in enumerate(categories):
                vals = [scores[n].get(cat) or 0.0 for n in names]
                ax.barh(np.arange(len(names)) + k * height, vals, height=height, label=cat)
            ax.set_yticks(np.arange(len(names)) + 0.4 - height / 2, names)
            ax.set_xlim(0, 1)
            ax.invert_yaxis()
            ax.set_xlabel("score (0 = worst, 1 = best set here)")
            ax.legend(frameon=False, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=4)
            return fig
        fig, axes = plt.subplots(nrows, ncols, figsize=(2.6 * ncols, 2.75 * nrows),
                                 subplot_kw={"projection": "polar"}, squeeze=False)
        angles = np.linspace(0, 2 * np.pi, len(categories), endpoint=False)
        for ax, name in zip(axes.flat, names, strict=False):
            vals = [scores[name].get(c) for c in categories]
            plotted = np.array([0.0 if v is None else v for v in vals])
            closed = np.append(angles, angles[0])
            ax.plot(closed, np.append(plotted, plotted[0]), color=colours[name], lw=2)
            ax.fill(closed, np.append(plotted, plotted[0]), color=colours[name], alpha=0.25)
            ax.set_ylim(0, 1)
            ax.set_yticks([0.5, 1.0], ["", ""])
            ax.set_theta_offset(np.pi / 2)  # first axis (fidelity) at the top
            ax.set_xticks(angles, [c if v is not None else f"{c}\n(n/a)"
                                   for c, v in zip(categories, vals, strict=True)], fontsize=8)
            ax.tick_params(axis="x", pad=9)
            ax.set_title(name, fontweight="bold", pad=14)
        for ax in list(axes.flat)[len(names):]:
            ax.set_visible(False)
        fig.tight_layout()
    return fig


def correlation_heatmap(analysis: dict[str, Any], results: dict[str, Any]) -> Figure | None:
    """Spearman rho (sign-aligned) of every metric with every utility score; * = p < alpha."""
    corr = analysis["correlations"]
    metrics = analysis["metrics"]
    utilities = list(analysis["ranking"])
    if not corr or not metrics or not utilities:
        return None
    lookup = {(c["metric"], c["utility"]): c for c in corr}
    mat = np.full((len(metrics), len(utilities)), np.nan)
    for i, m in enumerate(metrics):
        for j, u in enumerate(utilities):
            v = lookup.get((m, u), {}).get("spearman")
            mat[i, j] = np.nan if v is None else v
    with style():
        fig, ax = plt.subplots(figsize=(1.05 * len(utilities) + 3.2, 0.34 * len(metrics) + 1.9))
        im = ax.imshow(mat, cmap="RdBu", vmin=-1, vmax=1, aspect="auto")
        for i, m in enumerate(metrics):
            for j, u in enumerate(utilities):
                c = lookup.get((m, u), {})
                v = c.get("spearman")
                if v is None:
                    ax.text(j, i, "–", ha="center", va="center", color="#999999", fontsize=8)
                    continue
                star = "*" if (c.get("spearman_p") or 1.0) < analysis["alpha"] else ""
                ax.text(j, i, f"{v:.2f}{star}", ha="center", va="center", fontsize=7.5,
                        color="white" if abs(v) > 0.6 else "black")
        ax.set_yticks(range(len(metrics)),
                      [f"{metric_label(m)} {arrow(results, m)}  [{analysis['categories'][m]}]"
                       for m in metrics])
        ax.set_xticks(range(len(utilities)), [short_utility_label(u) for u in utilities],
                      rotation=35, ha="right")
        for spine in ax.spines.values():
            spine.set_visible(False)
        bar = fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02)
        bar.set_label("Spearman ρ (+ = better metric, more useful)")
    return fig


def metric_scatter(results: dict[str, Any], analysis: dict[str, Any], utility: str,
                   set_names: list[str], references: list[str], baseline: str | None,
                   colours: dict[str, str]) -> Figure | None:
    """Each metric (x, raw) against the headline utility (y), with its rank correlation."""
    lookup = {c["metric"]: c for c in analysis["correlations"] if c["utility"] == utility}
    metrics = [m for m in analysis["metrics"]
               if sum(math.isfinite(table.value(results, s, m)) for s in set_names) >= 2]
    if not metrics:
        return None
    ncols = min(4, len(metrics))
    nrows = math.ceil(len(metrics) / ncols)
    with style():
        fig, axes = plt.subplots(nrows, ncols, figsize=(3.05 * ncols, 2.75 * nrows),
                                 squeeze=False)
        for ax, m in zip(axes.flat, metrics, strict=False):
            for s in set_names + references:
                x, y = table.value(results, s, m), table.value(results, s, utility)
                if not (math.isfinite(x) and math.isfinite(y)):
                    continue
                ref = s in references
                ax.scatter([x], [y], s=60 if ref else 34, marker="*" if ref else "o",
                           color="black" if ref else colours[s], zorder=3)
                ax.annotate(s, (x, y), xytext=(3, 3), textcoords="offset points", fontsize=6.5,
                            color="#444444")
            fl = table.floor(results, m)
            if fl and fl.get("value") is not None:
                ax.axvline(fl["value"], color="#756bb1", ls="--", lw=1)
            if baseline and math.isfinite(table.value(results, baseline, utility)):
                ax.axhline(table.value(results, baseline, utility), color=BASELINE_COLOUR, ls=":",
                           lw=1.2)
            c = lookup.get(m, {})
            rho, p = c.get("spearman"), c.get("spearman_p")
            note = "n < 3" if rho is None else f"ρ = {rho:.2f}, p = {p:.2g}"
            ax.set_title(f"{metric_label(m)} {arrow(results, m)}\n{note}", fontsize=9)
            ax.tick_params(labelsize=7)
            ax.grid(color="#f0f0f0", zorder=0)
        for ax in list(axes.flat)[len(metrics):]:
            ax.set_visible(False)
        for r in range(nrows):
            axes[r, 0].set_ylabel(short_utility_label(utility), fontsize=8)
        handles = [Line2D([], [], color="#756bb1", ls="--", label="real-vs-real floor"),
                   Line2D([], [], color=BASELINE_COLOUR, ls=":", label="real-only baseline"),
                   Line2D([], [], marker="*", ls="", color="black", label="reference set")]
        height = 2.75 * nrows
        fig.legend(handles=handles, loc="upper center", ncol=3, frameon=False,
                   bbox_to_anchor=(0.5, 1.0))
        # Fixed margins in inches: tight_layout on a grid of axes costs seconds.
        fig.subplots_adjust(left=0.75 / (3.05 * ncols), right=0.98,
                            top=1 - 0.75 / height, bottom=0.3 / height,
                            hspace=0.62, wspace=0.3)
    return fig


def per_class(results: dict[str, Any], metrics: list[str], set_names: list[str],
              class_names: list[str], colours: dict[str, str]) -> Figure:
    ncols = min(2, len(metrics))
    nrows = math.ceil(len(metrics) / ncols)
    with style():
        fig, axes = plt.subplots(nrows, ncols, figsize=(5.4 * ncols, 2.8 * nrows),
                                 squeeze=False)
        for ax, m in zip(axes.flat, metrics, strict=False):
            present = [s for s in set_names
                       if (table.metric_entry(results, s, m) or {}).get("per_class")]
            width = 0.8 / max(1, len(present))
            for k, s in enumerate(present):
                pc = table.metric_entry(results, s, m)["per_class"]  # type: ignore[index]
                vals = [np.nan if pc.get(c) is None else pc[c] for c in class_names]
                xs = np.arange(len(class_names)) + k * width - 0.4 + width / 2
                ax.bar(xs, vals, width=width, color=colours[s], label=s)
                for x, v in zip(xs, vals, strict=True):  # no value: a dash on the axis
                    if not np.isfinite(v):
                        ax.text(x, 0, "–", ha="center", va="bottom", color=colours[s],
                                fontsize=9, fontweight="bold")
            ax.set_xticks(range(len(class_names)), class_names, fontsize=8)
            ax.set_xlim(-0.5, len(class_names) - 0.5)  # every class, with or without bars
            ax.set_title(f"{metric_label(m)} {arrow(results, m)}")
            ax.grid(axis="y", color="#f0f0f0")
        for ax in list(axes.flat)[len(metrics):]:
            ax.set_visible(False)
        handles, labels = axes[0, 0].get_legend_handles_labels()
        fig.tight_layout()
        # Below the axes: with many sets a legend on top would cover the titles.
        fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0),
                   ncol=min(6, len(labels)), frameon=False, fontsize=8)
    return fig


def training_curves(curves: dict[str, dict[str, list[float]]]) -> Figure:
    names = list(curves)
    ncols = min(3, len(names))
    nrows = math.ceil(len(names) / ncols)
    with style():
        fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 2.6 * nrows),
                                 squeeze=False)
        for ax, name in zip(axes.flat, names, strict=False):
            data = curves[name]
            step = np.asarray(data["step"], dtype=float)
            positive = True
            spread = 1.0
            for key, vals in data.items():
                if key == "step" or len(vals) != len(step):
                    continue
                arr = np.asarray([np.nan if v is None else v for v in vals], dtype=float)
                ax.plot(step, arr, lw=1.4, label=key)
                finite = arr[np.isfinite(arr)]
                if finite.size:
                    positive &= bool(np.all(finite > 0))
                    if positive:
                        spread = max(spread, float(finite.max() / finite.min()))
            if positive and spread > 50:
                ax.set_yscale("log")
            ax.set_title(name, fontweight="bold")
            ax.set_xlabel("step", fontsize=8)
            ax.legend(fontsize=7, frameon=False)
            ax.grid(color="#f0f0f0")
        for ax in list(axes.flat)[len(names):]:
            ax.set_visible(False)
        fig.tight_layout()
    return fig
