"""What every score returns, and the contract every metric follows.

A metric is one small class (as in torchmetrics): it declares its ``name``, its
``direction`` ("higher" or "lower" is better), the smallest sample size it accepts, and a
``compute`` that returns a :class:`MetricResult`. Results serialise to the
``results.json`` contract: ``{"value": float, "direction": ..., "ci": [lo, hi] | null}``
plus optional ``per_class``, ``feature_space`` and ``details`` keys.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

Direction = Literal["higher", "lower"]

#: The ``details`` key naming, for every class whose per-class value is null, why.
PER_CLASS_SKIPPED = "per_class_skipped"
#: The reason given where a producer left a per-class value undefined without saying why.
UNDEFINED_FOR_CLASS = "undefined for this class (no finite value on its images)"


class PerClass(dict[str, float]):
    """Per-class values (``{class name: value}``, NaN where a class has none) with
    ``reasons``: ``{class name: why its value is NaN}``. :class:`MetricResult` moves the
    reasons into ``details["per_class_skipped"]``."""

    def __init__(self, values: Any = (), reasons: dict[str, str] | None = None) -> None:
        super().__init__(values)
        self.reasons: dict[str, str] = dict(reasons or {})


@dataclass
class MetricResult:
    """One score of one set.

    ``ci`` is a (low, high) confidence interval or ``None`` where none makes sense;
    ``per_class`` maps class names to values (NaN where a class has none; ``None`` is
    read as NaN); ``feature_space`` names the extractor (id, weights SHA-256,
    preprocessing) the value was computed in; ``details`` holds anything else worth
    keeping (sample sizes, std, warnings). Every NaN per-class value has its reason in
    ``details["per_class_skipped"]`` (from a :class:`PerClass`'s ``reasons``, else
    :data:`UNDEFINED_FOR_CLASS`).
    """

    name: str
    value: float
    direction: Direction
    ci: tuple[float, float] | None = None
    per_class: dict[str, float] | None = None
    feature_space: dict[str, Any] | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.direction not in ("higher", "lower"):
            raise ValueError(f"metric {self.name}: direction must be 'higher' or 'lower', "
                             f"got {self.direction!r}")
        self.value = float(self.value)
        if self.ci is not None:
            self.ci = (float(self.ci[0]), float(self.ci[1]))
        if self.per_class is not None:
            given = {**(self.details.get(PER_CLASS_SKIPPED) or {}),
                     **getattr(self.per_class, "reasons", {})}
            values = {str(k): _none_to_nan(v) for k, v in self.per_class.items()}
            skipped = {k: str(given.get(k, UNDEFINED_FOR_CLASS))
                       for k, v in values.items() if not math.isfinite(v)}
            self.per_class = values
            details = {k: v for k, v in self.details.items() if k != PER_CLASS_SKIPPED}
            self.details = {**details, PER_CLASS_SKIPPED: skipped} if skipped else details

    def to_json(self) -> dict[str, Any]:
        """The ``results.json`` entry; NaN and infinity become ``null`` (JSON has neither)."""
        out: dict[str, Any] = {
            "value": _finite_or_none(self.value),
            "direction": self.direction,
            "ci": None if self.ci is None else [_finite_or_none(v) for v in self.ci],
        }
        if self.per_class is not None:
            out["per_class"] = {k: _finite_or_none(v) for k, v in self.per_class.items()}
        if self.feature_space is not None:
            out["feature_space"] = self.feature_space
        if self.details:
            out["details"] = _json_safe(self.details)
        return out

    @classmethod
    def from_json(cls, name: str, entry: dict[str, Any]) -> MetricResult:
        value = entry.get("value")
        ci = entry.get("ci")
        return cls(
            name=name,
            value=math.nan if value is None else value,
            direction=entry["direction"],
            ci=None if ci is None else (_none_to_nan(ci[0]), _none_to_nan(ci[1])),
            per_class=(None if entry.get("per_class") is None
                       else {k: _none_to_nan(v) for k, v in entry["per_class"].items()}),
            feature_space=entry.get("feature_space"),
            details=entry.get("details", {}),
        )


def _finite_or_none(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _json_safe(obj: Any) -> Any:
    """Details may hold NaN (an undefined bound) or numpy scalars: make them valid JSON."""
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", None) == 0:
        obj = obj.item()  # numpy scalar
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _none_to_nan(value: float | None) -> float:
    return math.nan if value is None else float(value)
