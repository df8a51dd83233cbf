"""Variety: how much of the real data's range the synthetic set covers, and how varied it is.

k-NN recall (Kynkäänniemi et al. 2019), coverage (Naeem et al. 2020), β-recall (Alaa et al.
2022), the Vendi score (Friedman and Dieng 2023), the study's mean-image size and its
run-level ``variety`` normalisation (Xing et al. 2023), and within-class MS-SSIM diversity.
"""

from __future__ import annotations

import io
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from synthlens.io import write_bytes
from synthlens.metrics.base import PER_CLASS_SKIPPED, MetricResult, PerClass
from synthlens.metrics.context import EvaluationContext, Metric, SetMetric, classes_of
from synthlens.metrics.fidelity import (
    ALPHAS,
    center_distances,
    integrated_curve_score,
    row_mean,
)
from synthlens.metrics.moments import InnerProducts, eigenvalues, high_dimensional, row_block
from synthlens.metrics.moments import gram as inner_products
from synthlens.metrics.reference import SetNeighbourhoods

if TYPE_CHECKING:
    from synthlens.metrics.knn import Neighbours


class Recall(SetMetric):
    name = "recall"
    direction = "higher"
    family = "variety"
    label = "recall"
    min_n = 10
    description = ("Share of real samples inside some synthetic sample's k-NN ball (radius = "
                   "distance to its k-th nearest synthetic neighbour; `<=`).")
    reference = "Kynkäänniemi et al., NeurIPS 2019"

    def score(self, ctx: EvaluationContext) -> MetricResult:
        covered = (ctx.neighbourhoods.real_in_synthetic_balls > 0).astype(np.float64)
        return self.mean_result(ctx, covered,
                           per_class=self.conditional(
                               ctx, lambda _, s: (s.real_in_synthetic_balls > 0).mean()),
                           k=ctx.reference.k, ci_unit="real samples")


class Coverage(SetMetric):
    name = "coverage"
    direction = "higher"
    family = "variety"
    label = "coverage"
    min_n = 10
    description = ("Share of real samples whose k-NN ball contains at least one synthetic sample "
                   "(`<=`; `<` under the open neighbourhood rule).")
    reference = "Naeem et al., ICML 2020"

    def score(self, ctx: EvaluationContext) -> MetricResult:
        ref = ctx.reference
        nb = ctx.neighbourhoods
        covered = ref.within(nb.real_to_synthetic.scores[:, 0], ref.radii_).astype(np.float64)

        def conditional(label: int, sub) -> float:
            radii = ref.class_neighbours_[label].kth()
            return float(ref.within(sub.real_to_synthetic.scores[:, 0], radii).mean())

        return self.mean_result(ctx, covered,
                           per_class=self.conditional(ctx, conditional),
                           k=ref.k, ci_unit="real samples")


def beta_recall_curve(covered: np.ndarray, closest_d: np.ndarray,
                      betas: np.ndarray = ALPHAS) -> np.ndarray:
    """``C_β``: share of real samples whose nearest synthetic sample is within the real
    sample's nearest-neighbour distance *and* inside the synthetic β-quantile ball.

    ``covered`` and ``closest_d`` are (..., n) so bootstrap resamples go through in one call.
    """
    radii = np.quantile(closest_d, betas, axis=-1)  # (n_beta, ...)
    radii = np.moveaxis(radii, 0, -1)  # (..., n_beta)
    inside = closest_d[..., None, :] <= radii[..., :, None]
    return (covered[..., None, :] & inside).mean(axis=-1)


class BetaRecall(SetMetric):
    name = "beta_recall"
    direction = "higher"
    family = "variety"
    label = "β-recall"
    min_n = 20
    distances = ("euclidean", "cosine")
    description = ("Integrated β-recall: for β in [0, 1], the share of real samples whose "
                   "nearest synthetic sample lies within the real sample's nearest-neighbour "
                   "distance and inside the synthetic β-support (ball around the synthetic "
                   "centre), compared with β. Per class: real class c against synthetic "
                   "class c.")
    reference = "Alaa et al., ICML 2022"

    def score(self, ctx: EvaluationContext) -> MetricResult:
        ref, x = ctx.reference, ctx.features
        assert ref is not None and x is not None
        nb = ctx.neighbourhoods
        unit = ref.distance == "cosine"

        def parts(to_synthetic: Neighbours, nn1: np.ndarray, rows: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
            covered = ref.within(to_synthetic.scores[:, 0], nn1)
            # distance of each real sample's nearest synthetic sample to the synthetic centre
            # (of the synthetic rows `rows`, read in place: a class is not copied)
            centre = row_mean(x, unit, rows=rows)
            closest_d = center_distances(x, centre, unit, rows=rows)[to_synthetic.indices[:, 0]]
            return covered, closest_d

        covered, closest_d = parts(nb.real_to_synthetic, ref.nn1_)
        curve = beta_recall_curve(covered, closest_d)
        value = float(integrated_curve_score(curve))
        joint = np.stack([covered.astype(np.float64), closest_d], axis=1)
        ci = self.bootstrap(ctx, joint, lambda s: integrated_curve_score(
            beta_recall_curve(s[..., 0] > 0.5, s[..., 1])))

        def conditional(label: int, sub: SetNeighbourhoods) -> float:
            assert ctx.labels is not None
            nn1 = ref.class_neighbours_[label].scores[:, 0]
            return float(integrated_curve_score(beta_recall_curve(
                *parts(sub.real_to_synthetic, nn1, np.flatnonzero(ctx.labels == label)))))

        return self.result(ctx, value, ci=ci, per_class=self.conditional(ctx, conditional),
                           curve=[round(float(v), 6) for v in curve],
                           ci_unit="real samples",
                           embedding="features, centre = mean of synthetic features")


# ---------------------------------------------------------------------------------------------
# Vendi score
# ---------------------------------------------------------------------------------------------


def vendi_score(x: np.ndarray, rows: np.ndarray | None = None,
                products: InnerProducts | None = None) -> float:
    """Vendi score with the cosine-similarity kernel: ``exp(−Σ λ log λ)``, λ = eig(K / n).

    The non-zero eigenvalues of ``K/n = X̂ X̂ᵀ / n`` (n×n) equal those of ``X̂ᵀ X̂ / n`` (d×d),
    so the smaller of the two is decomposed (the dual d×d form when n > d). Above
    :data:`~synthlens.metrics.moments.DIRECT_MAX_DIM` the n×n matrix is accumulated over
    blocks of columns and normalised afterwards (no float64 copy of the features; ``rows``,
    the subset to score, read in place), or read from ``products`` (the inner products
    shared with the other metrics) when given.
    """
    x = np.asarray(x)
    n, d = (x.shape[0] if rows is None else len(rows)), x.shape[1]
    block = row_block(d)
    if n <= d and high_dimensional(d):
        if products is not None:
            own = products(x)
            gram = np.array(own if rows is None else own[np.ix_(rows, rows)], copy=True)
        else:
            gram = inner_products(x, x_rows=rows)
        norms = np.sqrt(np.diag(gram))
        if (norms == 0).any():
            raise ValueError("vendi: all-zero feature rows have no cosine similarity")
        gram /= norms[:, None]
        gram /= norms[None, :]
    elif n <= d:
        xn = np.asarray(x if rows is None else x[rows], np.float64)
        norms = np.linalg.norm(xn, axis=1, keepdims=True)
        if (norms == 0).any():
            raise ValueError("vendi: all-zero feature rows have no cosine similarity")
        xn = xn / norms
        gram = xn @ xn.T
    else:
        x = x if rows is None else x[rows]
        gram = np.zeros((d, d))
        for s in range(0, n, block):  # blockwise: memory stays at d×d plus one block
            xb = np.array(x[s:s + block], dtype=np.float64)  # a copy: normalised in place
            norms = np.linalg.norm(xb, axis=1, keepdims=True)
            if (norms == 0).any():
                raise ValueError("vendi: all-zero feature rows have no cosine similarity")
            xb /= norms
            gram += xb.T @ xb
    gram /= n  # in place: one N×N (or d×d) matrix less in memory
    vals = eigenvalues(gram)
    vals = vals[vals > 1e-12]
    return float(np.exp(-np.sum(vals * np.log(vals))))


class Vendi(SetMetric):
    name = "vendi"
    direction = "higher"
    family = "variety"
    label = "Vendi score"
    min_n = 2
    distances = ("euclidean", "cosine")
    description = ("Vendi score: the exponential of the entropy of the eigenvalues of the "
                   "cosine-similarity matrix / N, an effective number of distinct samples "
                   "(1 for identical samples, N for orthogonal ones).")
    reference = "Friedman and Dieng, TMLR 2023"

    def score(self, ctx: EvaluationContext) -> MetricResult:
        x = ctx.features
        assert x is not None
        products = ctx.products  # shared inner products in a high-dimensional space
        per_class = self.per_class(
            ctx, lambda _, mask: vendi_score(x, np.flatnonzero(mask), products),
            min_n=self.min_n)
        return self.result(ctx, vendi_score(x, products=products), per_class=per_class,
                           kernel="cosine")


# ---------------------------------------------------------------------------------------------
# Image-level variety: mean-image PNG size, MS-SSIM diversity
# ---------------------------------------------------------------------------------------------


def mean_image(images: np.ndarray, labels: np.ndarray | None = None
               ) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """The study's mean image: the mean of the per-class mean images, as uint8.

    Returns ``(overall, {label: class mean})``; without labels both are the plain mean.
    Means are rounded to the nearest integer.
    """
    images = np.asarray(images)
    if labels is None:
        m = np.rint(images.mean(axis=0, dtype=np.float64)).astype(np.uint8)
        return m, {}
    per_class = {int(c): images[labels == c].mean(axis=0, dtype=np.float64)
                 for c in np.unique(labels)}
    overall = np.mean(np.stack(list(per_class.values())), axis=0)
    return (np.rint(overall).astype(np.uint8),
            {c: np.rint(m).astype(np.uint8) for c, m in per_class.items()})


def write_mean_images(folder: str | os.PathLike[str], images: np.ndarray,
                      labels: np.ndarray | None = None,
                      class_names: Sequence[str] | None = None) -> dict[str, Path]:
    """Save the mean image (and each class's) as the PNGs whose sizes ``mean_image_kb``
    reports, to look at. Returns ``{"all" or class name: path}``."""
    folder = Path(folder)
    overall, per_class = mean_image(images, labels)
    out = {"all": folder / "mean_all.png"}
    for label in per_class:
        name = class_names[label] if class_names is not None else str(label)
        out[name] = folder / f"mean_class_{label}.png"
    for key, path in out.items():
        image = overall if key == "all" else per_class[int(path.stem.rsplit("_", 1)[1])]
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(image)).save(buf, format="PNG")
        write_bytes(path, buf.getvalue())
    return out


def png_kb(image: np.ndarray) -> float:
    """Size in KiB of an image saved as lossless PNG (Pillow, default zlib level 6)."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buf, format="PNG")
    return buf.tell() / 1024.0


class MeanImageKB(SetMetric):
    name = "mean_image_kb"
    direction = "lower"
    family = "variety"
    label = "mean-image size (KiB)"
    needs = ("images",)
    min_n = 2
    description = ("Lossless PNG size (KiB) of the mean of the per-class mean images: a varied "
                   "set averages to a blurry image that compresses well. Contrast-dependent and "
                   "only relative; see `variety` for the run-normalised score.")
    reference = "Xing et al., CBMS 2023 / MICCAI 2023"

    def score(self, ctx: EvaluationContext) -> MetricResult:
        overall, per_class_images = mean_image(ctx.images, ctx.labels)
        per_class = self.per_class(ctx, lambda label, _: png_kb(per_class_images[label]))
        return self.result(ctx, png_kb(overall), per_class=per_class, format="PNG (Pillow)")


class Variety(Metric):
    """The run-level variety score: one value per set, from every set's ``mean_image_kb``."""

    name = "variety"
    direction = "higher"
    family = "variety"
    label = "variety"
    needs = ("images", "run")
    min_n = 2
    description = ("1 − mean_image_kb normalised (min-max) across the sets of the run (1 = the "
                   "set with the smallest mean image, 0 = the largest); per class the same.")
    reference = "Xing et al., MICCAI 2023"

    def compute(self, mean_image_kb: Mapping[str, MetricResult | float]
                ) -> dict[str, MetricResult]:
        """``1 − (size − min) / (max − min)`` over the sets of one run.

        ``mean_image_kb`` maps set names to their ``mean_image_kb`` result (or value). Per-class
        values are normalised the same way across sets. With fewer than two sets, or all sizes
        equal, the normalisation is undefined and values are NaN (with a warning).
        """
        def value(v: MetricResult | float) -> float:
            return v.value if isinstance(v, MetricResult) else float(v)

        sizes = {name: value(v) for name, v in mean_image_kb.items()}
        finite = [s for s in sizes.values() if math.isfinite(s)]
        lo, hi = (min(finite), max(finite)) if finite else (math.nan, math.nan)
        undefined = len(finite) < self.min_n or hi == lo
        if undefined:
            warnings.warn("variety: needs at least two sets with different mean-image sizes",
                          RuntimeWarning, stacklevel=3)
        classes: set[str] = set()
        for v in mean_image_kb.values():
            if isinstance(v, MetricResult) and v.per_class:
                classes |= set(v.per_class)
        class_range = {}
        for c in classes:
            vals = [v.per_class[c] for v in mean_image_kb.values()
                    if isinstance(v, MetricResult) and v.per_class and c in v.per_class
                    and math.isfinite(v.per_class[c])]
            class_range[c] = (min(vals), max(vals)) if len(vals) >= 2 else (math.nan, math.nan)
        out = {}
        for name, v in mean_image_kb.items():
            s = sizes[name]
            val = math.nan if undefined or not math.isfinite(s) else 1 - (s - lo) / (hi - lo)
            per_class = None
            if isinstance(v, MetricResult) and v.per_class:
                per_class = PerClass()
                for c, sc in v.per_class.items():
                    clo, chi = class_range[c]
                    ok = math.isfinite(sc) and chi > clo
                    per_class[c] = 1 - (sc - clo) / (chi - clo) if ok else math.nan
                    if not math.isfinite(sc):
                        per_class.reasons[c] = ("no mean-image size of this class in this set ("
                                                + v.details.get(PER_CLASS_SKIPPED, {}).get(
                                                    c, "not computed") + ")")
                    elif not ok:
                        per_class.reasons[c] = ("needs at least two sets with different "
                                                "mean-image sizes of this class")
            out[name] = MetricResult(self.name, val, self.direction, per_class=per_class,
                                     details={"mean_image_kb": s, "min_kb": lo, "max_kb": hi,
                                              "n_sets": len(finite)})
        return out


def variety_scores(mean_image_kb: Mapping[str, MetricResult | float]) -> dict[str, MetricResult]:
    """Run-level variety of every set (see :class:`Variety`)."""
    return Variety().compute(mean_image_kb)


class MSSSIMDiversity(SetMetric):
    """Mean MS-SSIM over ``pairs`` random pairs per class."""

    name = "ms_ssim_diversity"
    direction = "lower"
    family = "variety"
    label = "MS-SSIM diversity"
    needs = ("images",)
    min_n = 2
    description = ("Mean MS-SSIM over random pairs of two different images of the same class "
                   "(of the whole set when unlabelled): 200 pairs (ms_ssim_pairs) per class "
                   "with at least two images, pooled over classes. Lower = more diverse; 1 = "
                   "identical images.")
    reference = "Odena et al., ICML 2017 (MS-SSIM: Wang et al. 2003)"

    def __init__(self, *, pairs: int = 200, **interval: Any) -> None:
        super().__init__(**interval)
        self.pairs = int(pairs)

    def score(self, ctx: EvaluationContext) -> MetricResult:
        from synthlens.metrics.ssim import ms_ssim  # torch: imported when used

        images = ctx.images
        assert images is not None
        n_pairs = self.pairs
        rng = ctx.rng(self.name)
        labels = ctx.labels if ctx.labels is not None else np.zeros(ctx.n, dtype=np.int64)
        values, per_class = [], PerClass()
        for c in (classes_of(ctx, labels) if ctx.labels is not None else [0]):
            idx = np.flatnonzero(labels == c)
            if idx.size < 2:
                per_class[ctx.class_name(int(c))] = math.nan
                per_class.reasons[ctx.class_name(int(c))] = (
                    "no synthetic images of this class" if idx.size == 0 else
                    "1 synthetic image of this class; an image pair needs 2")
                continue
            a = rng.integers(0, idx.size, n_pairs)
            b = (a + rng.integers(1, idx.size, n_pairs)) % idx.size  # distinct from a
            sims = np.concatenate([ms_ssim(images[idx[a[s:s + 64]]], images[idx[b[s:s + 64]]])
                                   for s in range(0, n_pairs, 64)])
            values.append(sims)
            per_class[ctx.class_name(int(c))] = float(sims.mean())
        allv = np.concatenate(values)
        return self.mean_result(ctx, allv,
                           per_class=per_class if ctx.labels is not None else None,
                           pairs_per_class=n_pairs, ci_unit="image pairs")
