"""build_report() on a run folder made by the real pipeline (the shared smoke run): every
section, valid PNGs, CSV rows, escaping, the privacy audit's real shares, and a rebuild that
recomputes nothing and gives the same page."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from synthlens.analysis import analyse
from synthlens.analysis.findings import fmt
from synthlens.audit import CATEGORIES
from synthlens.errors import InputError
from synthlens.io import read_json, write_json
from synthlens.pipeline import rebuild_report
from synthlens.report import CSV_COLUMNS, SECTIONS, build_report

IMG_SRC = re.compile(r"<img\b[^>]*\bsrc=\"([^\"]*)\"")


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


def page_of(run: Path) -> str:
    return (run / "report.html").read_text(encoding="utf-8")


def shown_sets(results: dict[str, Any]) -> list[str]:
    """Every set the report shows: all but the real-only baseline."""
    return [s for s, e in results["sets"].items() if e["kind"] != "baseline"]


def test_every_section_present_and_images_are_png_data_uris(smoke_run: Path) -> None:
    page = page_of(smoke_run)
    results = read_json(smoke_run / "results.json")
    for sid, _ in SECTIONS:
        assert f'<section id="{sid}">' in page, sid
        assert f'href="#{sid}"' in page
    assert page.count("What this means.") == len(SECTIONS)
    images = decode_images(page)
    assert all(img.width > 100 and img.height > 50 for img in images)
    pngs = {p.name for p in (smoke_run / "report" / "figures").glob("*.png")}
    assert len(pngs) == len(images)
    shown = shown_sets(results)
    assert len(shown) == 10  # 7 generated sets (StyleGAN2 at two truncations) + 3 references
    # Every shown set has a sample grid and closest pairs (the audit and data/train.npz are
    # in the run); the curves figure has one panel per generator.
    assert pngs == {"utility.png", "plane.png", "radar.png", "correlation_heatmap.png",
                    "metric_vs_utility.png", "audit_categories.png", "per_class.png",
                    "training_curves.png", "samples_real-train.png",
                    *(f"samples_{s}.png" for s in shown), *(f"pairs_{s}.png" for s in shown)}
    assert (smoke_run / "report" / "report.html").read_text(encoding="utf-8") == page


def test_page_is_self_contained(smoke_run: Path) -> None:
    page = page_of(smoke_run)
    assert "<script" not in page and "<link" not in page and "@import" not in page
    assert not re.search(r"(src|href)=\"(?!data:|#)", page)  # only data URIs and anchors
    assert "url(" not in page.split("<style>")[1].split("</style>")[0]
    assert "http://" not in page and "https://" not in page.replace("https://doi", "")


@pytest.fixture(scope="module")
def edited_run(smoke_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the smoke run with what a user controls made awkward, rebuilt once: names
    and config text with HTML-special characters, and a copy_rate floor below cvae's value."""
    run = Path(shutil.copytree(smoke_run, tmp_path_factory.mktemp("edited") / smoke_run.name))
    results = read_json(run / "results.json")
    results["dataset"]["name"] = "phantoms <demo> & co"
    cvae = results["sets"]["cvae"]["metrics"]
    cvae["weird<metric>"] = {**cvae["fid"], "direction": "higher"}
    value = cvae["copy_rate"]["value"]
    results["floors"]["copy_rate"].update(value=value / 4, ci=[value / 8, value / 2])
    write_json(run / "results.json", results)
    with open(run / "config.yaml", "a", encoding="utf-8") as handle:
        handle.write("note: '<not html>'\n")
    build_report(run, progress=False)
    return run


def test_text_from_the_run_folder_is_escaped(edited_run: Path) -> None:
    """Names the user controls (dataset, metric, config text) carry HTML-special characters."""
    page = page_of(edited_run)
    assert "phantoms &lt;demo&gt; &amp; co" in page and "<demo>" not in page
    assert "weird&lt;metric&gt;" in page and "weird<metric>" not in page
    assert "&#x27;&lt;not html&gt;&#x27;" in page


def test_privacy_floor_flags_a_set_worse_than_unseen_real_images(edited_run: Path) -> None:
    """A privacy cell worse than the floor's CI is flagged (in red, with a title): cvae's
    copy_rate, once the floor lies below it."""
    value = read_json(edited_run / "results.json")["sets"]["cvae"]["metrics"]["copy_rate"]
    cell = f'<td class="warn" title="worse than the real-vs-real floor">{fmt(value["value"])}'
    assert cell in page_of(edited_run)


def test_report_content_shows_numbers_floors_and_findings(smoke_run: Path) -> None:
    page = page_of(smoke_run)
    analysis = read_json(smoke_run / "results.json")["analysis"]
    assert analysis["findings"]
    for finding in analysis["findings"]:
        assert html.escape(finding["text"]) in page
    assert "real vs real" in page and "real-only baseline" in page
    assert 'class="arrow">↓' in page and 'class="arrow">↑' in page
    assert "Which metric best predicts augmentation AUROC?" in page
    # The stored analysis is what the page shows: the headline correlation's ρ.
    top = analysis["ranking"][analysis["primary_utility"]][0]
    assert f"{fmt(top['spearman'])} [" in page


def audit_rows(page: str) -> dict[str, dict[str, Any]]:
    """The privacy section's table of audit shares: set -> images and share per category."""
    out = {}
    for row in re.findall(r'<tr data-set="([^"]*)" data-images="(\d+)">(.*?)</tr>', page):
        name, n, cells = row
        shares = dict(re.findall(r'data-category="([^"]*)" data-share="([^"]*)"', cells))
        out[html.unescape(name)] = {"n": int(n), **{c: float(v) for c, v in shares.items()}}
    return out


def test_privacy_audit_shows_the_real_copy_real_non_real_shares(smoke_run: Path) -> None:
    """The audit chart is drawn from the metrics stage's audit CSVs: for every set the bar is
    full (the shares add up to 1), and the shares are the ones the copy_rate metric found
    for the same images; across the sets every category's bar has length."""
    results = read_json(smoke_run / "results.json")
    page = page_of(smoke_run)
    shares = audit_rows(page)
    assert set(shares) == set(shown_sets(results))
    for name, row in shares.items():
        assert row["n"] == results["sets"][name]["n_images"], name
        assert sum(row[c] for c in CATEGORIES) == pytest.approx(1.0), name
        copy_rate = results["sets"][name]["metrics"]["copy_rate"]
        assert row["copy"] == pytest.approx(copy_rate["value"]), name
        assert row["real"] == pytest.approx(copy_rate["details"]["real_share"]), name
        assert row["non-real"] == pytest.approx(copy_rate["details"]["non_real_share"]), name
    for category in CATEGORIES:
        assert max(row[category] for row in shares.values()) > 0, category
    assert "audit_categories.png" in {p.name for p in (smoke_run / "report" / "figures")
                                      .glob("*.png")}


def test_results_csv_one_row_per_set_and_metric(smoke_run: Path) -> None:
    results = read_json(smoke_run / "results.json")
    with open(smoke_run / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0].keys()) == CSV_COLUMNS
    n_metrics = sum(len(s["metrics"]) for s in results["sets"].values())
    assert len(rows) == n_metrics + len(results["floors"])
    pairs = {(row["set"], row["metric"]) for row in rows}
    for name, entry in results["sets"].items():
        for metric in entry["metrics"]:
            assert (name, metric) in pairs
    fid = next(r for r in rows if r["set"] == "cvae" and r["metric"] == "fid")
    entry = results["sets"]["cvae"]["metrics"]["fid"]
    assert float(fid["value"]) == entry["value"] and fid["direction"] == "lower"
    if entry["ci"] is not None:
        assert float(fid["ci_low"]) == entry["ci"][0] and float(fid["ci_high"]) == entry["ci"][1]
    assert fid["feature_space"] == entry["feature_space"]["id"] and fid["kind"] == "generated"
    assert fid["category"] == "fidelity"
    base = next(r for r in rows if r["set"] == "real-only")
    assert base["kind"] == "baseline"
    floor = next(r for r in rows if r["kind"] == "floor" and r["metric"] == "copy_rate")
    assert floor["set"] == "real-vs-real floor"
    assert float(floor["value"]) == results["floors"]["copy_rate"]["value"]


def test_rebuilt_report_recomputes_nothing_and_is_identical(smoke_copy: Path, smoke_run: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    """``synthlens report RUN`` re-renders the stored analysis: with the analysis made to
    fail, the rebuilt page, figures and CSV equal those written at the end of the run."""
    def no_analysis(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("the report recomputed the analysis")

    import synthlens.analysis
    import synthlens.analysis.correlations

    monkeypatch.setattr(synthlens.analysis, "analyse", no_analysis)
    monkeypatch.setattr(synthlens.analysis.correlations, "analyse", no_analysis)
    (smoke_copy / "report.html").unlink()
    for png in (smoke_copy / "report" / "figures").glob("*.png"):
        png.unlink()
    assert rebuild_report(smoke_copy) == smoke_copy / "report.html"
    assert page_of(smoke_copy) == page_of(smoke_run)
    assert (smoke_copy / "results.csv").read_bytes() == (smoke_run / "results.csv").read_bytes()
    figures = sorted(p.name for p in (smoke_run / "report" / "figures").glob("*.png"))
    assert sorted(p.name for p in (smoke_copy / "report" / "figures").glob("*.png")) == figures
    for name in figures:
        assert ((smoke_copy / "report" / "figures" / name).read_bytes()
                == (smoke_run / "report" / "figures" / name).read_bytes()), name


def test_results_without_analysis_are_refused(smoke_copy: Path) -> None:
    results = read_json(smoke_copy / "results.json")
    del results["analysis"]
    write_json(smoke_copy / "results.json", results)
    with pytest.raises(InputError, match=r"results\.json: holds no 'analysis' section.*--resume"):
        build_report(smoke_copy, progress=False)


def test_a_run_with_one_set_and_no_optional_files_builds_a_smaller_report(smoke_copy: Path
                                                                          ) -> None:
    """The smoke run cut down to one generated set, its audit and curves removed, and its
    analysis made again by the real producer: every section still renders and says what
    is missing."""
    results = read_json(smoke_copy / "results.json")
    results["sets"] = {s: e for s, e in results["sets"].items() if s in ("cvae", "real-only")}
    del results["sets"]["cvae"]["files"]["curves"]
    del results["analysis"]
    results["analysis"] = analyse(results, seed=0)
    write_json(smoke_copy / "results.json", results)
    for audit in (smoke_copy / "metrics" / "audit").glob("*.csv"):
        audit.unlink()
    page = build_report(smoke_copy, progress=False).read_text(encoding="utf-8")
    for sid, _ in SECTIONS:
        assert f'<section id="{sid}">' in page
    assert "Only 1 synthetic set compared" in page
    assert "No per-image privacy audit" in page and "No training curves" in page
    assert "No correlation could be computed" in page
    assert {p.name for p in (smoke_copy / "report" / "figures").glob("*.png")} == {
        "utility.png", "samples_real-train.png", "samples_cvae.png", "per_class.png"}
    assert len(decode_images(page)) == 4
    with open(smoke_copy / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {(r["set"], r["metric"]) for r in rows if r["kind"] != "floor"} == {
        (s, m) for s, e in results["sets"].items() for m in e["metrics"]}


def test_rebuild_removes_stale_figures_and_tolerates_bad_optional_files(smoke_copy: Path
                                                                        ) -> None:
    stale = smoke_copy / "report" / "figures" / "old_figure.png"
    stale.write_bytes(b"not a png")
    curves = read_json(smoke_copy / "results.json")["sets"]["cvae"]["files"]["curves"]
    (smoke_copy / curves).write_text("{not json")
    audit = smoke_copy / "metrics" / "audit" / "dcgan.csv"
    audit.write_text(audit.read_text().replace("non-real", "unreal", 1))
    page = build_report(smoke_copy, progress=False).read_text(encoding="utf-8")
    assert not stale.exists()
    assert "could not be read" in page and "curves.json" in page
    assert "dcgan.csv" in page and "&#x27;unreal&#x27; is not one of copy, real, non-real" in page
    assert "dcgan" not in audit_rows(page) and "cvae" in audit_rows(page)


def test_missing_results_json_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"results\.json: not found"):
        build_report(tmp_path, progress=False)
    (tmp_path / "results.json").write_text("{")
    with pytest.raises(InputError, match="not valid JSON"):
        build_report(tmp_path, progress=False)


def test_results_json_on_disk_is_plain_json(smoke_run: Path) -> None:
    """No NaN or infinity sneaks into the file (JSON has neither)."""
    text = (smoke_run / "results.json").read_text(encoding="utf-8")
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
