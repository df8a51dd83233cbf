"""build_report(): a self-contained page with every section, valid PNGs, CSV rows, escaping."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import re
from pathlib import Path

import pytest
from PIL import Image

from synthlens.errors import InputError
from synthlens.report import CSV_COLUMNS, SECTIONS, build_report
from test_report_fixture import GENERATED, make_run

IMG_SRC = re.compile(r"<img\b[^>]*\bsrc=\"([^\"]*)\"")


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = make_run(tmp_path_factory.mktemp("report"), 7)
    build_report(run, progress=False)
    return run


def decode_images(page: str) -> list[Image.Image]:
    out = []
    for src in IMG_SRC.findall(page):
        assert src.startswith("data:image/png;base64,"), src[:60]
        raw = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert raw[:8] == b"\x89PNG\r\n\x1a\n"
        img = Image.open(io.BytesIO(raw))
        img.verify()
        out.append(Image.open(io.BytesIO(raw)))
    return out


def test_every_section_present_and_images_are_png_data_uris(full_run: Path) -> None:
    page = (full_run / "report.html").read_text(encoding="utf-8")
    for sid, _ in SECTIONS:
        assert f'<section id="{sid}">' in page, sid
        assert f'href="#{sid}"' in page
    assert page.count("What this means.") == len(SECTIONS)
    images = decode_images(page)
    # utility, 8 sample grids (real + 7 sets), plane, radar, heatmap, scatter, audit shares,
    # 2 audit pair figures, per-class, curves.
    assert len(images) == 1 + 8 + 1 + 1 + 2 + 1 + 2 + 1 + 1
    assert all(img.width > 100 and img.height > 50 for img in images)
    pngs = sorted(p.name for p in (full_run / "report" / "figures").glob("*.png"))
    assert len(pngs) == len(images)
    assert {"plane.png", "radar.png", "utility.png", "samples_real-train.png",
            "pairs_cvae.png", "training_curves.png", "per_class.png"} <= set(pngs)
    assert (full_run / "report" / "report.html").read_text(encoding="utf-8") == page


def test_page_is_self_contained_and_escaped(full_run: Path) -> None:
    page = (full_run / "report.html").read_text(encoding="utf-8")
    assert "<script" not in page and "<link" not in page and "@import" not in page
    assert not re.search(r"(src|href)=\"(?!data:|#)", page)  # only data URIs and anchors
    assert "url(" not in page.split("<style>")[1].split("</style>")[0]
    # Dataset name, metric name and config text carry HTML-special characters.
    assert "phantoms &lt;demo&gt; &amp; co" in page and "<demo>" not in page
    assert "weird&lt;metric&gt;" in page and "weird<metric>" not in page
    assert "&#x27;&lt;not html&gt;&#x27;" in page


def test_report_content_shows_numbers_floors_and_findings(full_run: Path) -> None:
    page = (full_run / "report.html").read_text(encoding="utf-8")
    analysis = json.loads((full_run / "report" / "analysis.json").read_text())
    for finding in analysis["findings"]:
        assert html.escape(finding["text"]) in page
    assert "real vs real" in page and "real-only baseline" in page
    assert 'class="arrow">↓' in page and 'class="arrow">↑' in page
    assert 'title="worse than the real-vs-real floor"' in page  # a privacy cell flagged
    assert "Which metric best predicts augmentation AUROC?" in page


def test_results_csv_one_row_per_set_and_metric(full_run: Path) -> None:
    results = json.loads((full_run / "results.json").read_text())
    with open(full_run / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0].keys()) == CSV_COLUMNS
    n_metrics = sum(len(s["metrics"]) for s in results["sets"].values())
    assert len(rows) == n_metrics + len(results["floors"])
    fid = next(r for r in rows if r["set"] == "cvae" and r["metric"] == "fid")
    entry = results["sets"]["cvae"]["metrics"]["fid"]
    assert float(fid["value"]) == entry["value"] and fid["direction"] == "lower"
    assert float(fid["ci_low"]) == entry["ci"][0] and float(fid["ci_high"]) == entry["ci"][1]
    assert fid["feature_space"] == "domain-cnn-16" and fid["kind"] == "generated"
    assert fid["category"] == "fidelity"
    base = next(r for r in rows if r["set"] == "real-only")
    assert base["kind"] == "baseline"
    floor = next(r for r in rows if r["kind"] == "floor" and r["metric"] == "copy_rate")
    assert floor["set"] == "real-vs-real floor" and float(floor["value"]) == 0.04


def test_skeleton_run_builds_a_smaller_report(tmp_path: Path) -> None:
    run = make_run(tmp_path, 1, skeleton=True)
    page = build_report(run, progress=False).read_text(encoding="utf-8")
    for sid, _ in SECTIONS:
        assert f'<section id="{sid}">' in page
    assert len(decode_images(page)) == 2  # utility forest + one sample grid
    assert "Only 1 synthetic set compared" in page
    assert "No per-image privacy audit" in page and "No training curves" in page
    with open(run / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {(r["set"], r["metric"]) for r in rows} == {
        ("cvae", m) for m in ("fid", "precision", "recall", "utility.augment.auroc",
                              "utility.augment.accuracy")} | {
        ("real-only", "utility.augment.auroc"), ("real-only", "utility.augment.accuracy")}


def test_rebuild_removes_stale_figures_and_tolerates_bad_optional_files(tmp_path: Path) -> None:
    run = make_run(tmp_path, 3, skeleton=True)
    build_report(run, progress=False)
    stale = run / "report" / "figures" / "old_figure.png"
    stale.write_bytes(b"not a png")
    (run / "generators" / GENERATED[0] / "curves.json").write_text("{not json")
    page = build_report(run, progress=False).read_text(encoding="utf-8")
    assert not stale.exists()
    assert "could not be read" in page and "curves.json" in page


def test_missing_results_json_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"results\.json: not found"):
        build_report(tmp_path, progress=False)
    (tmp_path / "results.json").write_text("{")
    with pytest.raises(InputError, match="not valid JSON"):
        build_report(tmp_path, progress=False)
