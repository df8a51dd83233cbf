"""docs/study.md reads the reference study's numbers from its committed results.json.

Every number of ours in the document is a link into the results file whose fragment is the
JSON path of the value: ``[−0.92](study/pneumoniamnist/results.json#/analysis/tradeoff/
composite/pearson)``. Path segments are keys, list indices, or ``[key=value,...]`` to pick
the entry of a list that has those values (``correlations/[metric=fid,utility=...]``). A
value may be a number or a list of numbers (a CI, written ``[[−0.98, −0.80]](...)``); the
link text must equal it rounded to the decimals written. This test resolves every link and
fails on any mismatch, so the document cannot drift from the committed run.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
STUDY = DOCS / "study.md"
RESULTS = DOCS / "study" / "pneumoniamnist" / "results.json"
LINK = re.compile(r"\[((?:[^\[\]]|\[[^\[\]]*\])+)\]"
                  r"\((study/pneumoniamnist/results\.json)#([^)]+)\)")
NUMBER = re.compile(r"[−+-]?(?:\d+\.\d+|\d+)(?:e[−+-]?\d+)?")


def resolve(document: Any, pointer: str) -> Any:
    """The value at ``pointer`` (``/a/b/0/[k=v,k2=v2]/c``) in ``document``."""
    node = document
    for raw in pointer.strip("/").split("/"):
        part = raw.replace("%20", " ")
        if part.startswith("[") and part.endswith("]"):
            wanted = dict(item.split("=", 1) for item in part[1:-1].split(","))
            matches = [e for e in node if all(str(e.get(k)) == v for k, v in wanted.items())]
            if len(matches) != 1:
                raise KeyError(f"{pointer}: {len(matches)} entries match {part}")
            node = matches[0]
        elif isinstance(node, list):
            node = node[int(part)]
        else:
            if part not in node:
                raise KeyError(f"{pointer}: no key {part!r}")
            node = node[part]
    return node


def numbers(text: str) -> list[tuple[float, int]]:
    """Each number written in ``text``, with its number of decimals."""
    out = []
    for token in NUMBER.findall(text):
        token = token.replace("−", "-")
        decimals = len(token.split(".")[1].split("e")[0]) if "." in token else 0
        out.append((float(token), decimals))
    return out


def links(text: str) -> list[tuple[str, str]]:
    return [(m.group(1), m.group(3)) for m in LINK.finditer(text)]


def check_link(results: dict[str, Any], shown: str, pointer: str) -> None:
    value = resolve(results, pointer)
    values = value if isinstance(value, list) else [value]
    written = numbers(shown)
    assert len(written) == len(values), f"{pointer}: shows {shown!r}, the file has {value!r}"
    for (number, decimals), actual in zip(written, values, strict=True):
        assert isinstance(actual, int | float), f"{pointer}: {actual!r} is not a number"
        assert abs(round(float(actual), decimals) - number) <= 10 ** -decimals / 2 + 1e-12, (
            f"{pointer}: the document says {shown!r}, results.json has {actual!r}")


def test_resolver_and_rounding_catch_a_mismatch() -> None:
    doc = {"a": [{"k": "x", "v": 0.123}, {"k": "y", "v": [-0.5, 0.25]}]}
    check_link(doc, "0.12", "/a/[k=x]/v")
    check_link(doc, "[−0.50, 0.25]", "/a/[k=y]/v")
    with pytest.raises(AssertionError):
        check_link(doc, "0.13", "/a/[k=x]/v")
    with pytest.raises(KeyError):
        resolve(doc, "/a/[k=z]/v")
    assert links("ρ = [−0.92](study/pneumoniamnist/results.json#/x/y) and "
                 "[[1, 2]](study/pneumoniamnist/results.json#/z)") == [("−0.92", "/x/y"),
                                                                      ("[1, 2]", "/z")]


def test_every_number_of_ours_in_study_md_is_read_from_results_json() -> None:
    text = STUDY.read_text(encoding="utf-8")
    results = json.loads(RESULTS.read_text(encoding="utf-8"))
    found = links(text)
    assert len(found) >= 30, "docs/study.md links too few numbers to results.json"
    for shown, pointer in found:
        check_link(results, shown, pointer)


def test_claim_table_has_a_verdict_for_every_claim_of_the_papers() -> None:
    text = STUDY.read_text(encoding="utf-8")
    table = text.split("## Claim by claim", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in table.splitlines()
            if line.startswith("|") and not line.startswith("|---")][1:]
    assert len(rows) >= 7
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert len(cells) == 5, row
        claim, _paper, ours, verdict, why = cells
        assert links(ours), f"no number of ours read from results.json in: {claim}"
        assert verdict.strip("*") in ("agrees", "disagrees", "cannot tell at this N"), verdict
        assert why, claim


def test_committed_outputs_are_complete_and_small() -> None:
    folder = RESULTS.parent
    names = {p.name for p in folder.rglob("*") if p.is_file()}
    assert {"results.json", "results.csv", "report.html", "README.md"} <= names
    assert any(n.endswith(".png") for n in names)
    assert not [n for n in names if n.endswith((".npz", ".pt", ".npy"))]
    assert sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) <= 10 * 2**20
    licence = (folder / "README.md").read_text(encoding="utf-8")
    assert "CC BY 4.0" in licence and "MedMNIST" in licence
    readme = (DOCS.parent / "README.md").read_text(encoding="utf-8")
    assert "docs/study.md" in readme and "docs/study/pneumoniamnist/" in readme


def test_committed_study_report_renders_with_every_set_in_the_privacy_audit(tmp_path: Path
                                                                          ) -> None:
    from test_report_browser import check_report_in_browser

    page = RESULTS.parent / "report.html"
    out = check_report_in_browser(page, tmp_path)
    html = page.read_text(encoding="utf-8")
    assert out["images"] == html.count("<img ")
    results = json.loads(RESULTS.read_text(encoding="utf-8"))
    audit = html.split('id="privacy"', 1)[1].split("</section>", 1)[0]
    assert "<img " in audit  # the audit chart: copy / real / non-real share of every set
    for name, entry in results["sets"].items():
        if entry["kind"] in ("generated", "reference"):
            assert name in audit, name
