"""Which axis (fidelity, variety, privacy, utility) each metric measures, and how to name it.

The table is the single place that maps a metric name from ``results.json`` to its
category, a display label and a one-line plain-words description for the report. Names
not in the table are matched by their longest known prefix (``fid_domain`` -> ``fid``);
anything else is ``"other"`` and still shown, never dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

CATEGORIES = ("fidelity", "variety", "privacy", "utility")


@dataclass(frozen=True)
class MetricInfo:
    category: str
    label: str
    description: str


METRICS: dict[str, MetricInfo] = {
    # Fidelity: do the synthetic images look like real ones?
    "fid": MetricInfo("fidelity", "FID", "Fréchet distance between the real and synthetic "
                      "feature distributions (0 = identical)."),
    "kid": MetricInfo("fidelity", "KID", "Kernel (MMD) distance between real and synthetic "
                      "features; unbiased for small sets."),
    "precision": MetricInfo("fidelity", "precision", "Share of synthetic images inside the "
                            "k-NN ball (k = 5) of some real image."),
    "density": MetricInfo("fidelity", "density", "How many real k-NN balls contain each "
                          "synthetic image, on average (1 = like real data)."),
    "alpha_precision": MetricInfo("fidelity", "α-precision", "Share of synthetic images in "
                                  "the α-support of the real distribution."),
    "fidelity": MetricInfo("fidelity", "fidelity (copy ∪ real)", "Share of synthetic images "
                           "that fall among real images (copies included)."),
    "fidelity_privacy_aware": MetricInfo("fidelity", "privacy-aware fidelity", "Share of "
                                         "synthetic images that look real without being "
                                         "copies."),
    "label_consistency": MetricInfo("fidelity", "label consistency", "Share of synthetic "
                                    "images a real-trained classifier assigns to their "
                                    "intended class."),
    # Variety: do the synthetic images cover the real variation?
    "recall": MetricInfo("variety", "recall", "Share of real images inside the k-NN ball of "
                         "some synthetic image."),
    "coverage": MetricInfo("variety", "coverage", "Share of real k-NN balls that contain at "
                           "least one synthetic image."),
    "beta_recall": MetricInfo("variety", "β-recall", "Share of real images in the β-support "
                              "of the synthetic distribution."),
    "vendi": MetricInfo("variety", "Vendi score", "Effective number of distinct images "
                        "(exponential of the similarity-matrix entropy)."),
    "mean_image_kb": MetricInfo("variety", "mean-image size (kB)", "PNG size of the per-class "
                                "mean image; a varied set gives a blurry, small mean."),
    "variety": MetricInfo("variety", "variety", "1 − normalised mean-image size across the "
                          "compared sets."),
    "ms_ssim_diversity": MetricInfo("variety", "MS-SSIM diversity", "1 − mean MS-SSIM between "
                                    "pairs of synthetic images of a class."),
    # Privacy: do the synthetic images leak training images?
    "authenticity": MetricInfo("privacy", "authenticity", "Share of synthetic images judged "
                               "not to be copies of a training image."),
    "privacy": MetricInfo("privacy", "privacy", "1 − share of synthetic images closer to a "
                          "training image than its nearest real neighbour."),
    "copy_rate": MetricInfo("privacy", "copy rate", "Share of synthetic images that are "
                            "near-copies of a training image."),
    "dcr_ratio": MetricInfo("privacy", "DCR ratio", "Distance to the closest training image, "
                            "relative to that of unseen real images (≈1 = no memorisation)."),
    "memorisation_rate": MetricInfo("privacy", "memorisation rate", "Share of synthetic "
                                    "images much closer to one training image than to any "
                                    "other."),
    "mia_auc": MetricInfo("privacy", "MIA AUROC", "How well an attacker tells training "
                          "images from unseen ones using the synthetic set (0.5 = cannot)."),
}

PROTOCOLS = {
    "augment": "augmentation (real + synthetic)",
    "synthetic_only": "synthetic-only training",
    "low_data": "low-data augmentation",
    "cross_task": "cross-task transfer",
}

SCORES = {
    "accuracy": "accuracy",
    "balanced_accuracy": "balanced accuracy",
    "auroc": "AUROC",
    "f1_macro": "macro F1",
}

_SEPARATORS = ("_", ".", "@", "-", ":", "/")


def base_name(name: str) -> str | None:
    """The known metric ``name`` refers to: itself, or its longest known prefix."""
    if name in METRICS:
        return name
    best = None
    for known in METRICS:
        if name.startswith(known) and name[len(known)] in _SEPARATORS:
            if best is None or len(known) > len(best):
                best = known
    return best


def metric_category(name: str) -> str:
    """``fidelity``, ``variety``, ``privacy``, ``utility`` or ``other`` (unknown names)."""
    if name.startswith("utility."):
        return "utility"
    base = base_name(name)
    return METRICS[base].category if base else "other"


def metric_label(name: str) -> str:
    """A short display label: ``FID``, ``augmentation (real + synthetic) AUROC`` ..."""
    if name.startswith("utility."):
        parts = name.split(".", 2)
        protocol = parts[1] if len(parts) > 1 else ""
        score = parts[2] if len(parts) > 2 else ""
        prefix = ""
        if score.startswith("gain_"):
            prefix, score = "gain in ", score[len("gain_"):]
        proto_label = PROTOCOLS.get(protocol, protocol.replace("_", " "))
        return f"{prefix}{proto_label} {SCORES.get(score, score.replace('_', ' '))}".strip()
    base = base_name(name)
    if base is None:
        return name
    if base == name:
        return METRICS[base].label
    return f"{METRICS[base].label} ({name[len(base) + 1:]})"


def metric_description(name: str) -> str:
    if name.startswith("utility."):
        parts = name.split(".", 2)
        score = parts[2] if len(parts) > 2 else ""
        gain = score.startswith("gain_")
        what = ("Change, against the real-only classifier, of " if gain
                else "Score, on the real test split, of ")
        return (what + "a classifier trained under the "
                f"{PROTOCOLS.get(parts[1], parts[1]) if len(parts) > 1 else ''} protocol.")
    base = base_name(name)
    return METRICS[base].description if base else "Metric not described by synthlens."


def short_utility_label(name: str) -> str:
    """``augmentation AUROC`` rather than the longer label, for findings sentences."""
    label = metric_label(name)
    return label.replace(" (real + synthetic)", "")
