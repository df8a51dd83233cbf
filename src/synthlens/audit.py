"""The per-image privacy audit: one home for its columns and its CSV file.

The metrics stage builds the table (:func:`synthlens.metrics.privacy.audit_table`) and writes
``RUN/metrics/audit/<set>.csv`` with :func:`write_audit_csv`; the report reads it back with
:func:`read_audit_csv`. Both take the column names from :data:`COLUMNS`, so writer and reader
cannot drift apart. Torch-free: the report imports it.

Columns, one row per synthetic image:

``synthetic_index``
    row of the image in the set's ``samples.npz``
``label``
    its class (a class name in the CSV; −1 without labels)
``nearest_train_index``, ``nearest_train_label``
    its closest image in the real training split (``data/train.npz``), and that image's class
``distance``
    the distance between the two in the feature space
``nearest_train_nn_distance``
    that training image's distance to its own nearest real neighbour
``holdout_dcr_quantile``
    share of held-out real images closer to the training split than this image (empty
    without a holdout; small means unusually close)
``category``
    ``copy``, ``real`` or ``non-real`` (:data:`CATEGORIES`): the companion study's rule
``realism``
    the realism score (empty when not computed)
``predicted_class``
    the label-consistency judge's prediction (−1 without a judge)
``exact_copy_of``
    the row of a byte-identical image in the real training split (``data/train.npz``, the
    privacy members), −1 when there is none: the exact copies, found by hash
    (:mod:`synthlens.data.copies`) whatever the feature space. Audits written before this
    column existed read as −1.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from synthlens.io import atomic_path

# (name, kind): "index" and "label" are integers in the table (labels become class names in
# the CSV), "float" may be NaN (an empty cell), "category" is one of CATEGORIES.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("synthetic_index", "index"),
    ("label", "label"),
    ("nearest_train_index", "index"),
    ("nearest_train_label", "label"),
    ("distance", "float"),
    ("nearest_train_nn_distance", "float"),
    ("holdout_dcr_quantile", "float"),
    ("category", "category"),
    ("realism", "float"),
    ("predicted_class", "label"),
    ("exact_copy_of", "index"),
)
#: Columns an older audit may lack, with the value they read as.
OPTIONAL = {"exact_copy_of": "-1"}
CATEGORY = "category"
CATEGORIES = ("copy", "real", "non-real")

_DTYPES: dict[str, Any] = {"index": np.int64, "label": np.int64, "float": np.float64,
                           "category": f"U{max(map(len, CATEGORIES))}"}
DTYPE = np.dtype([(name, _DTYPES[kind]) for name, kind in COLUMNS])


def empty_table(n: int) -> np.ndarray:
    """A structured array of ``n`` audit rows with the columns of :data:`COLUMNS`."""
    return np.zeros(n, dtype=DTYPE)


def write_audit_csv(path: str | os.PathLike[str], table: np.ndarray,
                    class_names: Sequence[str] | None = None) -> None:
    """Write an audit table as CSV (atomically); labels become names when given."""
    kinds = dict(COLUMNS)
    if table.dtype.names != tuple(kinds):
        raise ValueError(f"audit table columns {table.dtype.names} are not {tuple(kinds)}")
    unknown = set(np.unique(table[CATEGORY]).tolist()) - set(CATEGORIES)
    if unknown:
        raise ValueError(f"audit categories {sorted(unknown)} are not in {CATEGORIES}")
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(kinds)
        for row in table:
            out: list[Any] = []
            for name, kind in COLUMNS:
                value = row[name]
                if kind == "label" and class_names is not None and value >= 0:
                    out.append(class_names[int(value)])
                elif kind == "float":
                    out.append("" if np.isnan(value) else repr(float(value)))
                elif kind == "category":
                    out.append(str(value))
                else:
                    out.append(int(value))
            writer.writerow(out)


def read_audit_csv(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Rows of an audit CSV, typed: indices ``int``, floats ``float`` (NaN for an empty
    cell), labels ``str`` (a class name or ``-1``), ``category`` checked against
    :data:`CATEGORIES`. Raises ``ValueError`` naming the column on any mismatch."""
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        header = tuple(reader.fieldnames or ())
        missing = [name for name, _ in COLUMNS if name not in header and name not in OPTIONAL]
        if missing:
            raise ValueError(f"audit CSV lacks column(s) {', '.join(missing)} "
                             f"(has {', '.join(header) or 'none'})")
        rows = []
        for line, raw in enumerate(reader, start=2):
            row: dict[str, Any] = {}
            for name, kind in COLUMNS:
                cell = raw[name] if name in header else OPTIONAL[name]
                if kind == "index":
                    row[name] = int(cell)
                elif kind == "float":
                    row[name] = math.nan if cell == "" else float(cell)
                elif kind == "category":
                    if cell not in CATEGORIES:
                        raise ValueError(f"line {line}: {CATEGORY} {cell!r} is not one of "
                                         f"{', '.join(CATEGORIES)}")
                    row[name] = cell
                else:
                    row[name] = cell
            rows.append(row)
    return rows


def category_shares(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Share of the rows in each category (0 for an empty table)."""
    n = len(rows)
    return {c: (sum(row[CATEGORY] == c for row in rows) / n if n else 0.0) for c in CATEGORIES}
