"""compare_runs(): two runs side by side in one self-contained page."""

from __future__ import annotations

import re
from pathlib import Path

from synthlens.report import compare_runs
from test_report_fixture import make_run


def test_compare_two_runs(tmp_path: Path) -> None:
    full = make_run(tmp_path, 5)
    skeleton = make_run(tmp_path, 3, skeleton=True)
    out = compare_runs(full, skeleton, tmp_path)
    assert out == tmp_path / "compare.html"
    page = out.read_text(encoding="utf-8")
    for sid in ("setup", "findings", "scores"):
        assert f'<section id="{sid}">' in page
    assert "<script" not in page and not re.search(r"(src|href)=\"(?!data:|#)", page)
    assert "phantoms &lt;demo&gt; &amp; co" in page
    # cvae's FID exists in both runs with the same value (same fixture seed): difference 0.
    row = re.search(r"<tr><td>cvae</td><td>FID .*?</tr>", page).group(0)
    assert row.count("64.0") == 2 and row.endswith("<td>0</td></tr>")
    # A set only in run A is marked as missing in run B.
    assert re.search(r"<tr><td>stylegan-psi1.0</td><td>FID .*?no such set", page)
    assert "Too few sets to conclude anything" in page  # run B's 3-set statement
