"""Gates for pipelines: ``--fail-if "memorisation_rate > 0.01"`` stops a CI job on a threshold.

A gate is one comparison, written the way a reader would say it::

    [SET:]METRIC OP THRESHOLD

* ``METRIC`` is a key of a set's ``metrics`` in ``results.json``: ``memorisation_rate``,
  ``fid@inception`` (a metric in another feature space), ``utility.augment.gain_auroc``.
* ``OP`` is one of ``<``, ``<=``, ``>``, ``>=``.
* ``THRESHOLD`` is a number, or ``floor``: the metric's real-vs-real floor of the same run
  (``copy_rate > floor`` fails a set that copies more than fresh real images do).
* ``SET:`` limits the gate to one set; without it the gate applies to every candidate set
  (generated and user sets; the references and the real-only baseline are not gated).

The gate *fails* a set when the comparison is true for it. A set that has no value for the
metric (skipped below its minimum N, or not computed) fails too, with the reason: a gate
that cannot be checked must not pass silently. Gates are parsed and checked against the
metric catalogue before anything runs (a malformed gate is an :class:`InputError`, exit 2);
they are evaluated after every output is written (a failed gate is exit 3).
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from synthlens.errors import InputError

#: Exit code of a run whose outputs were all written but a gate failed.
GATE_EXIT_CODE = 3

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt}
_PATTERN = re.compile(
    r"^\s*(?:(?P<set>[^:<>=\s]+)\s*:\s*)?(?P<metric>[A-Za-z_][\w.@\-]*)\s*"
    r"(?P<op><=|>=|<|>)\s*(?P<threshold>\S+)\s*$")
#: Kinds of set a gate without ``SET:`` applies to.
GATED_KINDS = ("generated", "user")


@dataclass(frozen=True)
class Gate:
    """One parsed gate expression."""

    expression: str
    metric: str
    op: str
    threshold: float | None  # None: the metric's real-vs-real floor
    set_name: str | None = None

    @property
    def uses_floor(self) -> bool:
        return self.threshold is None


@dataclass(frozen=True)
class GateOutcome:
    """A gate checked on one set."""

    gate: Gate
    set_name: str
    value: float | None
    ci: tuple[float, float] | None
    threshold: float | None
    failed: bool
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"expression": self.gate.expression, "set": self.set_name,
                "metric": self.gate.metric, "op": self.gate.op,
                "threshold": _number(self.threshold),
                "threshold_source": "floor" if self.gate.uses_floor else "number",
                "value": _number(self.value),
                "ci": None if self.ci is None else [_number(v) for v in self.ci],
                "failed": self.failed, "reason": self.reason}

    def line(self) -> str:
        """The console line of a failed gate: set, metric, value, CI and threshold."""
        value = "no value" if self.value is None else _fmt(self.value)
        ci = "" if self.ci is None else f" (95% CI [{_fmt(self.ci[0])}, {_fmt(self.ci[1])}])"
        if self.threshold is None:
            against = "no floor"
        else:
            against = _fmt(self.threshold) + (" (real-vs-real floor)" if self.gate.uses_floor
                                              else "")
        why = f"; {self.reason}" if self.reason else ""
        return (f"gate failed: {self.gate.expression}: set {self.set_name}: "
                f"{self.gate.metric} = {value}{ci}, threshold {against}{why}")


def parse_gate(expression: str, *, source: str = "--fail-if",
               known_metric: Callable[[str], bool] | None = None,
               known_sets: Iterable[str] | None = None) -> Gate:
    """Parse one gate; ``known_metric`` (name -> bool) and ``known_sets`` check the names.

    Raises :class:`InputError` naming ``source`` and what is accepted.
    """
    if not isinstance(expression, str):
        raise InputError(source, f"a gate is a string such as 'memorisation_rate > 0.01', got "
                                 f"{expression!r}")
    match = _PATTERN.match(expression)
    if match is None:
        raise InputError(source, f"cannot read gate {expression!r}; write [SET:]METRIC OP "
                                 "THRESHOLD with OP one of <, <=, >, >= and THRESHOLD a number "
                                 "or 'floor' (e.g. 'memorisation_rate > 0.01')")
    metric, op, raw = match["metric"], match["op"], match["threshold"]
    threshold: float | None
    if raw == "floor":
        if metric.startswith("utility."):
            raise InputError(source, f"gate {expression!r}: utility scores have no real-vs-real "
                                     "floor; compare with a number (a gain below 0 is a loss)")
        threshold = None
    else:
        try:
            threshold = float(raw)
        except ValueError:
            raise InputError(source, f"gate {expression!r}: threshold {raw!r} is neither a "
                                     "number nor 'floor'") from None
        if not math.isfinite(threshold):
            raise InputError(source, f"gate {expression!r}: threshold must be finite")
    if known_metric is not None and not known_metric(metric):
        raise InputError(source, f"gate {expression!r}: unknown metric {metric!r}; name a "
                                 "metric of results.json (e.g. fid, memorisation_rate, "
                                 "fid@inception, utility.augment.gain_auroc)")
    set_name = match["set"]
    if set_name is not None and known_sets is not None:
        sets = list(known_sets)
        if set_name not in sets:
            raise InputError(source, f"gate {expression!r}: unknown set {set_name!r}; sets of "
                                     f"this run: {', '.join(sets)}")
    return Gate(expression.strip(), metric, op, threshold, set_name)


def parse_gates(expressions: Sequence[str], *, source: str = "--fail-if",
                known_metric: Callable[[str], bool] | None = None,
                known_sets: Iterable[str] | None = None) -> list[Gate]:
    sets = None if known_sets is None else list(known_sets)
    return [parse_gate(e, source=source, known_metric=known_metric, known_sets=sets)
            for e in expressions]


def check_gates(gates: Sequence[Gate], results: Mapping[str, Any]) -> list[GateOutcome]:
    """Every gate on every set it applies to, from a finished ``results.json`` dict."""
    sets: Mapping[str, Any] = results.get("sets", {})
    floors: Mapping[str, Any] = results.get("floors", {})
    outcomes: list[GateOutcome] = []
    for gate in gates:
        if gate.set_name is not None:
            names = [gate.set_name]
        else:
            names = [n for n, e in sets.items() if (e.get("kind") or "generated") in GATED_KINDS]
        threshold, floor_reason = gate.threshold, None
        if gate.uses_floor:
            entry = floors.get(gate.metric) or {}
            threshold = _number(entry.get("value"))
            if threshold is None:
                floor_reason = f"the run has no real-vs-real floor of {gate.metric}"
        for name in names:
            entry = (sets.get(name) or {}).get("metrics", {}).get(gate.metric)
            if entry is None:
                outcomes.append(GateOutcome(gate, name, None, None, threshold, True,
                                            f"set {name} has no {gate.metric}"))
                continue
            value = _number(entry.get("value"))
            ci_raw = entry.get("ci")
            ci = None
            if ci_raw is not None and None not in ci_raw:
                ci = (float(ci_raw[0]), float(ci_raw[1]))
            if value is None:
                skipped = (entry.get("details") or {}).get("skipped")
                outcomes.append(GateOutcome(gate, name, None, ci, threshold, True,
                                            f"no value ({skipped})" if skipped else "no value"))
            elif threshold is None:
                outcomes.append(GateOutcome(gate, name, value, ci, None, True, floor_reason))
            else:
                outcomes.append(GateOutcome(gate, name, value, ci, threshold,
                                            _OPS[gate.op](value, threshold)))
    return outcomes


def outcome_from_json(entry: Mapping[str, Any]) -> GateOutcome:
    """A :class:`GateOutcome` read back from its ``results.json`` entry."""
    floor = entry.get("threshold_source") == "floor"
    gate = Gate(entry["expression"], entry["metric"], entry["op"],
                None if floor else entry["threshold"], entry.get("set"))
    ci = entry.get("ci")
    return GateOutcome(gate, entry["set"], entry.get("value"),
                       None if ci is None or None in ci else (float(ci[0]), float(ci[1])),
                       entry.get("threshold"), bool(entry["failed"]), entry.get("reason"))


def _number(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _fmt(value: float) -> str:
    return f"{value:.4g}"
