"""compare_runs(): two runs side by side in one self-contained page.

Run A is the shared smoke run; run B is a copy cut down to three of its generated sets, its
analysis made again by the real producer (a second pipeline run would cost a minute).
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest

from synthlens.analysis import analyse
from synthlens.analysis.findings import fmt
from synthlens.errors import InputError
from synthlens.io import read_json, write_json
from synthlens.report import compare_runs

KEPT = ("cvae", "dcgan", "ldm", "real-only")


def test_compare_two_runs(smoke_run: Path, smoke_copy: Path, tmp_path: Path) -> None:
    results = read_json(smoke_copy / "results.json")
    results["sets"] = {s: e for s, e in results["sets"].items() if s in KEPT}
    del results["analysis"]
    results["analysis"] = analyse(results, seed=0)
    write_json(smoke_copy / "results.json", results)
    out = compare_runs(smoke_run, smoke_copy, tmp_path)
    assert out == tmp_path / "compare.html"
    page = out.read_text(encoding="utf-8")
    for sid in ("setup", "findings", "scores"):
        assert f'<section id="{sid}">' in page
    assert "<script" not in page and not re.search(r"(src|href)=\"(?!data:|#)", page)
    # cvae's FID is in both runs with the same value: difference 0.
    fid = fmt(results["sets"]["cvae"]["metrics"]["fid"]["value"])
    row = re.search(r"<tr><td>cvae</td><td>FID .*?</tr>", page).group(0)
    assert row.count(f"<td>{fid}") == 2 and row.endswith("<td>0</td></tr>")
    # A set only in run A is marked as missing in run B.
    assert re.search(r"<tr><td>vqvae2</td><td>FID .*?no such set", page)
    # Each run's own stored findings: run B's 3-set statement.
    assert "Too few sets to conclude anything" in page
    for finding in read_json(smoke_run / "results.json")["analysis"]["findings"]:
        assert html.escape(finding["text"]) in page


def test_compare_refuses_a_run_without_its_analysis(smoke_run: Path, smoke_copy: Path,
                                                    tmp_path: Path) -> None:
    results = read_json(smoke_copy / "results.json")
    del results["analysis"]
    write_json(smoke_copy / "results.json", results)
    with pytest.raises(InputError, match="holds no 'analysis' section"):
        compare_runs(smoke_run, smoke_copy, tmp_path)
