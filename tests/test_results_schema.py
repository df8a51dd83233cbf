"""docs/results.md pinned to a real run: the key tables, the metric names, the CSV and audit
columns are checked both ways against the shared smoke run's results.json.

A key table is a Markdown table whose header starts with ``| key |``; it documents the
object named by the first ``code`` span of the heading above it (``sets[NAME]`` is every
value of ``sets``, ``correlations[]`` every item of that list; the heading *Top level* is
the file itself). Its first cell holds the keys (one or more ``code`` spans), and
*required* in the description marks a key present in every such object.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from synthlens.analysis.categories import metric_category
from synthlens.audit import CATEGORIES, COLUMNS
from synthlens.io import read_json
from synthlens.report import CSV_COLUMNS

DOC = Path(__file__).resolve().parents[1] / "docs" / "results.md"
CODE = re.compile(r"`([^`]+)`")


def doc_text() -> str:
    return DOC.read_text(encoding="utf-8")


def key_tables(text: str) -> dict[str, dict[str, bool]]:
    """Documented object path -> {key: required}."""
    tables: dict[str, dict[str, bool]] = {}
    path: str | None = None
    in_table = False
    for line in text.splitlines():
        if line.startswith("#"):
            spans = CODE.findall(line)
            path = spans[0] if spans else ("" if "top level" in line.lower() else None)
            in_table = False
        elif line.startswith("| key |"):
            assert path is not None, f"a key table under a heading without a path: {line}"
            assert path not in tables, f"{path!r} documented twice"
            tables[path] = {}
            in_table = True
        elif in_table and line.startswith("|") and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            keys = CODE.findall(cells[0])
            assert keys, f"no key in row {line!r}"
            for key in keys:
                tables[path][key] = "*required*" in cells[-1]
        elif not line.startswith("|"):
            in_table = False
    return tables


def objects_at(results: dict[str, Any], path: str) -> list[Any]:
    """Every object of the run at a documented path."""
    objs: list[Any] = [results]
    for step in filter(None, path.split(".")):
        name, _, index = step.partition("[")
        objs = [o[name] for o in objs if isinstance(o, dict) and name in o]
        if index == "]":
            objs = [item for o in objs for item in o]
        elif index:
            objs = [value for o in objs for value in o.values()]
    return objs


@pytest.fixture(scope="module")
def results(smoke_run: Path) -> dict[str, Any]:
    return read_json(smoke_run / "results.json")


def test_the_doc_has_key_tables_for_every_object_of_the_contract() -> None:
    assert set(key_tables(doc_text())) == {
        "", "config", "dataset", "dataset.counts", "privacy", "sets[NAME]", "sets[NAME].files",
        "sets[NAME].exact_copies", "sets[NAME].metrics[METRIC]", "floors[METRIC]", "analysis",
        "analysis.correlations[]", "analysis.utility_gains[SET]", "analysis.findings[]"}


@pytest.mark.parametrize("path", sorted(key_tables(doc_text())))
def test_documented_keys_are_the_keys_a_run_writes(results: dict[str, Any], path: str) -> None:
    documented = key_tables(doc_text())[path]
    objects = objects_at(results, path)
    assert objects, f"the run has no {path or 'top level'}"
    written = set().union(*(set(o) for o in objects))
    assert sorted(written - set(documented)) == [], f"undocumented keys of {path or 'top level'}"
    assert sorted(set(documented) - written) == [], f"documented keys of {path or 'top level'} " \
                                                    "that the run does not write"
    required = {k for k, req in documented.items() if req}
    for obj in objects:
        assert required <= set(obj), (path, sorted(required - set(obj)))


def _metric_table(text: str) -> dict[str, str]:
    """name -> category, from the table headed ``| category | names |``."""
    section = text.split("| category | names |", 1)[1].split("\n\n", 1)[0]
    out = {}
    for line in section.splitlines()[2:]:
        category, names = (c.strip() for c in line.strip().strip("|").split("|"))
        for name in CODE.findall(names):
            out[name] = category
    return out


def test_documented_metric_names_are_the_names_a_run_writes(results: dict[str, Any]) -> None:
    documented = _metric_table(doc_text())
    utility_pattern = documented.pop("utility.<protocol>.<score>")
    assert utility_pattern == "utility"
    entries = [*results["floors"], *(m for s in results["sets"].values() for m in s["metrics"])]
    names = {m.split("@")[0] for m in entries if not m.startswith("utility.")}
    # The smoke demo computes the full battery, so every documented name appears.
    assert names == set(documented)
    for name, category in documented.items():
        assert metric_category(name) == category, name
    text = doc_text()
    protocols = CODE.findall(text.split("Utility protocols:", 1)[1].split("Scores:", 1)[0])
    scores = CODE.findall(text.split("Scores:", 1)[1].split("`gain_<score>`", 1)[0])
    utility = {m for m in entries if m.startswith("utility.")}
    assert utility
    for metric in utility:  # the smoke budget runs one protocol: the run's are documented
        _, protocol, score = metric.split(".")
        assert protocol in protocols and score.removeprefix("gain_") in scores, metric
        assert metric_category(metric) == "utility"


def test_documented_csv_and_audit_columns(smoke_run: Path) -> None:
    text = doc_text()
    csv_line = text.split("`floor`). Columns:", 1)[1].strip().splitlines()[0]
    assert tuple(c.strip() for c in csv_line.strip("`").split(",")) == CSV_COLUMNS
    audit = text.split("with the columns", 1)[1].split("(`synthlens.audit.COLUMNS`", 1)[0]
    assert tuple(CODE.findall(audit)) == tuple(name for name, _ in COLUMNS)
    header = (smoke_run / "metrics" / "audit" / "cvae.csv").read_text().splitlines()[0]
    assert tuple(header.split(",")) == tuple(name for name, _ in COLUMNS)
    values = text.split("`category` is", 1)[1].split(",", 2)
    assert tuple(CODE.findall(",".join(values))[:3]) == CATEGORIES
