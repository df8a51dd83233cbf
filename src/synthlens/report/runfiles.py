"""Read what the report needs from a run folder, tolerating optional parts that are absent.

Layout (written by the pipeline)::

    RUN/config.yaml, manifest.json, results.json
    RUN/data/summary.json, data/train.npz (optional: real training split for audit pairs)
    RUN/sets/<set>/samples.npz (images, labels, class_names; results.json names the file)
    RUN/generators/<name>/curves.json (optional training curves; results.json names the file)
    RUN/metrics/audit/<set>.csv (optional per-image privacy audit, synthlens.audit.COLUMNS)

Only ``results.json`` (with its ``analysis`` section) is required; everything else is shown
when present and explained when absent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from synthlens.audit import read_audit_csv
from synthlens.errors import InputError
from synthlens.io import read_npz


@dataclass
class RunFiles:
    root: Path
    results: dict[str, Any]
    problems: list[str] = field(default_factory=list)

    @classmethod
    def open(cls, run_dir: str | Path) -> RunFiles:
        root = Path(run_dir)
        if not root.is_dir():
            raise InputError(root, "run folder not found")
        path = root / "results.json"
        if not path.is_file():
            raise InputError(path, "not found; run the pipeline (synthlens demo/run/evaluate) "
                                   "before building its report")
        try:
            results = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(path, f"not valid JSON ({exc})") from exc
        return cls(root, results)

    # Optional parts: each returns None when absent and records why when unreadable.
    def _note(self, path: Path, exc: Exception) -> None:
        self.problems.append(f"{path.relative_to(self.root)}: could not be read ({exc})")

    def text(self, rel: str) -> str | None:
        path = self.root / rel
        if not path.is_file():
            return None
        try:
            return path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            self._note(path, exc)
            return None

    def json(self, rel: str) -> Any:
        raw = self.text(rel)
        if raw is None:
            return None
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            self._note(self.root / rel, exc)
            return None

    def npz(self, rel: str) -> dict[str, np.ndarray] | None:
        path = self.root / rel
        if not path.is_file():
            return None
        try:
            data = read_npz(path)
        except (OSError, ValueError) as exc:
            self._note(path, exc)
            return None
        if "images" not in data or "labels" not in data:
            self._note(path, KeyError("needs 'images' and 'labels'"))
            return None
        return data

    def _file(self, set_name: str, kind: str) -> str | None:
        """A set's file as results.json names it (``sets[NAME].files[kind]``), else None."""
        entry = (self.results.get("sets") or {}).get(set_name) or {}
        return (entry.get("files") or {}).get(kind)

    def samples(self, set_name: str) -> dict[str, np.ndarray] | None:
        rel = self._file(set_name, "samples")
        return None if rel is None else self.npz(rel)

    def train(self) -> dict[str, np.ndarray] | None:
        return self.npz("data/train.npz")

    def curves(self, set_name: str) -> dict[str, dict[str, list[float]]]:
        """Training curves by panel title: one panel per training stage.

        A single-stage generator logs ``step`` and its losses; a multi-stage one (an
        autoencoder, then a prior) prefixes each stage's keys with ``stage/``.
        """
        rel = self._file(set_name, "curves")
        data = None if rel is None else self.json(rel)
        if not isinstance(data, dict):
            return {}
        series = {k: v for k, v in data.items() if isinstance(v, list)}
        if isinstance(series.get("step"), list):
            return {set_name: series}
        panels: dict[str, dict[str, list[float]]] = {}
        for key, values in series.items():
            stage, _, name = key.rpartition("/")
            if stage:
                panels.setdefault(f"{set_name}: {stage}", {})[name] = values
        return {title: panel for title, panel in panels.items() if "step" in panel}

    def audit(self, set_name: str) -> list[dict[str, Any]] | None:
        """The set's per-image privacy audit (:func:`synthlens.audit.read_audit_csv`)."""
        path = self.root / "metrics" / "audit" / f"{set_name}.csv"
        if not path.is_file():
            return None
        try:
            return read_audit_csv(path)
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            self._note(path, exc)
            return None
