"""Which axis (fidelity, variety, privacy, utility) each metric measures, and how to name it.

Metric facts (family, label, description, redundancy) are read from the metric catalogue
(:mod:`synthlens.metrics.catalogue`, i.e. the metric classes); this module only adds the
names of utility scores and the matching of suffixed names: a name that is not in the
catalogue is matched by its longest known prefix followed by a separator
(``fid@inception`` -> ``fid``); anything else is ``"other"`` and still shown, never dropped.
"""

from __future__ import annotations

from collections.abc import Iterable

from synthlens.metrics.catalogue import FAMILIES, REGISTRY

CATEGORIES: tuple[str, ...] = (*FAMILIES, "utility")

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
    """The catalogue metric ``name`` refers to: itself, or its longest known prefix."""
    if name in REGISTRY:
        return name
    best = None
    for known in REGISTRY:
        if name.startswith(known) and name[len(known)] in _SEPARATORS:
            if best is None or len(known) > len(best):
                best = known
    return best


def metric_order(name: str) -> int:
    """Position of ``name``'s metric in the catalogue (unknown names after every known one)."""
    base = base_name(name)
    return list(REGISTRY).index(base) if base else len(REGISTRY)


def metric_category(name: str) -> str:
    """``fidelity``, ``variety``, ``privacy``, ``utility`` or ``other`` (unknown names)."""
    if name.startswith("utility."):
        return "utility"
    base = base_name(name)
    return REGISTRY[base].family if base else "other"


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
        return REGISTRY[base].label
    return f"{REGISTRY[base].label} ({name[len(base) + 1:]})"


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
    return REGISTRY[base].description if base else "Metric not described by synthlens."


def counted_once(names: Iterable[str]) -> list[str]:
    """``names`` without those whose signal another of them carries: a metric the catalogue
    marks ``redundant_with`` another (``privacy`` = 1 − ``copy_rate``) is left out when that
    metric, in the same feature space, is among ``names``. Category scores and correlation
    tests use this, so one signal is counted once."""
    names = list(names)
    present = set(names)

    def carried_elsewhere(name: str) -> bool:
        base = base_name(name)
        other = REGISTRY[base].redundant_with if base else None
        return other is not None and other + name[len(base):] in present

    return [n for n in names if not carried_elsewhere(n)]


def short_utility_label(name: str) -> str:
    """``augmentation AUROC`` rather than the longer label, for findings sentences."""
    label = metric_label(name)
    return label.replace(" (real + synthetic)", "")
