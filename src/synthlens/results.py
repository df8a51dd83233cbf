"""A finished run, read from its folder: the object ``synthlens.run``, ``synthlens.evaluate`` and
``synthlens.open_run`` return.

``results.json`` is the contract (docs/results.md); this class only reads it, so a run made by
the CLI, by the Python API or on another machine opens the same way::

    res = synthlens.open_run("runs/demo")
    res.metric("dcgan", "fid")            # MetricResult: value, ci, direction, per_class, ...
    res.table()                           # tidy: one row per set and metric (DataFrame or rows)
    res.findings                          # the report's plain-word findings
    res.correlations()                    # metric-utility rank correlations with CIs
    res.report("elsewhere/report.html")   # the self-contained HTML report
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from synthlens.errors import InputError
from synthlens.metrics.base import MetricResult


class Results:
    """The scores, floors, analysis and gates of one finished run."""

    def __init__(self, root: str | os.PathLike[str], data: dict[str, Any]) -> None:
        self.root = Path(root)
        self.data = data

    # -- what the run holds --------------------------------------------------------------
    @property
    def sets(self) -> list[str]:
        """Every set of the run, the references and the real-only baseline included."""
        return list(self.data.get("sets", {}))

    def kind(self, set_name: str) -> str:
        """``generated``, ``user``, ``reference`` or ``baseline``."""
        return str(self._set(set_name).get("kind") or "generated")

    def metrics(self, set_name: str) -> dict[str, MetricResult]:
        """Every metric of one set (utility scores included), by ``results.json`` name."""
        entries = self._set(set_name).get("metrics", {})
        return {name: MetricResult.from_json(name, entry) for name, entry in entries.items()}

    def metric(self, set_name: str, name: str) -> MetricResult:
        """One metric of one set: ``.value``, ``.ci``, ``.direction``, ``.per_class``, ..."""
        entries = self._set(set_name).get("metrics", {})
        if name not in entries:
            raise KeyError(f"set {set_name!r} has no metric {name!r}; it has: "
                           f"{', '.join(sorted(entries))}")
        return MetricResult.from_json(name, entries[name])

    def floor(self, name: str) -> MetricResult:
        """The real-vs-real floor of a metric (unseen real images as the synthetic set)."""
        floors = self.data.get("floors", {})
        if name not in floors:
            raise KeyError(f"no real-vs-real floor of {name!r}; floors: "
                           f"{', '.join(sorted(floors))}")
        return MetricResult.from_json(name, floors[name])

    @property
    def analysis(self) -> dict[str, Any]:
        return dict(self.data.get("analysis") or {})

    @property
    def findings(self) -> list[str]:
        """The plain-word findings, in the report's order."""
        return [f["text"] for f in self.analysis.get("findings", [])]

    @property
    def gates(self) -> list[dict[str, Any]]:
        """Each gate checked on each set, with its outcome (empty without gates)."""
        return list(self.data.get("gates") or [])

    @property
    def failed_gates(self) -> list[dict[str, Any]]:
        return [g for g in self.gates if g.get("failed")]

    # -- tidy tables ---------------------------------------------------------------------
    def rows(self) -> list[dict[str, Any]]:
        """One dict per (set, metric) and per floor: the rows of :meth:`table`."""
        from synthlens.analysis.categories import metric_category

        out: list[dict[str, Any]] = []

        def row(set_name: str, kind: str, name: str, entry: dict[str, Any]) -> dict[str, Any]:
            ci = entry.get("ci") or [None, None]
            space = entry.get("feature_space") or {}
            return {"set": set_name, "kind": kind, "metric": name,
                    "category": metric_category(name), "value": entry.get("value"),
                    "ci_low": ci[0], "ci_high": ci[1], "direction": entry.get("direction"),
                    "feature_space": space.get("id")}

        for set_name, entry in self.data.get("sets", {}).items():
            kind = str(entry.get("kind") or "generated")
            for name, metric in sorted(entry.get("metrics", {}).items()):
                out.append(row(set_name, kind, name, metric))
        for name, metric in sorted(self.data.get("floors", {}).items()):
            out.append(row("real-vs-real", "floor", name, metric))
        return out

    def table(self) -> Any:
        """The tidy table: a pandas DataFrame when pandas is installed, else :meth:`rows`."""
        return _frame(self.rows())

    def correlations(self) -> Any:
        """Metric-utility rank correlations (Spearman, Kendall, CIs, p and q values)."""
        return _frame([dict(c) for c in self.analysis.get("correlations", [])])

    # -- the report ----------------------------------------------------------------------
    def report(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write the self-contained HTML report; to ``path`` when given (a file or a
        folder), else ``report.html`` in the run folder. Returns the page's path."""
        from synthlens.pipeline import rebuild_report

        page = Path(rebuild_report(self.root))
        if path is None:
            return page
        target = Path(path)
        if target.is_dir():
            target = target / "report.html"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(page, target)
        return target

    def _set(self, set_name: str) -> dict[str, Any]:
        sets = self.data.get("sets", {})
        if set_name not in sets:
            raise KeyError(f"no set {set_name!r} in {self.root}; sets: {', '.join(sets)}")
        return sets[set_name]

    def __repr__(self) -> str:
        return f"Results({str(self.root)!r}, sets={self.sets})"


def open_run(path: str | os.PathLike[str]) -> Results:
    """Read a finished run folder (or its ``results.json``) into a :class:`Results`."""
    path = Path(path)
    if path.is_file() and path.name == "results.json":
        path = path.parent
    file = path / "results.json"
    if not path.is_dir():
        raise InputError(path, "run folder not found")
    if not file.is_file():
        raise InputError(file, "not found; is this a finished synthlens run?")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(file, f"not valid JSON ({error})") from None
    if not isinstance(data, dict) or not isinstance(data.get("sets"), dict):
        raise InputError(file, "is not a synthlens results.json (no 'sets' object)")
    return Results(path, data)


def _frame(rows: list[dict[str, Any]]) -> Any:
    try:
        import pandas as pd
    except ImportError:
        return rows
    return pd.DataFrame(rows)
