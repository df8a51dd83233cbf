"""End to end: `synthlens demo --budget smoke` (the shared ``smoke_run`` of conftest.py),
resume, report rebuild, and `evaluate`.

These check the outputs' contents (numbers that must hold for any sane run), not only
that the files exist. The report's own tests (test_report_*.py) and the results schema
(test_results_schema.py) read the same run.
"""

from __future__ import annotations

import base64
import json
import re

import numpy as np

from synthlens.analysis import analyse
from synthlens.cli import main
from synthlens.io import read_json

LAST_STAGES = ("results", "analysis", "report")


def test_smoke_demo_writes_the_results_contract(smoke_run):
    results = read_json(smoke_run / "results.json")
    assert results["schema_version"] == "1.0"
    assert results["dataset"]["class_names"] == ["normal", "pneumonia"]
    sets = results["sets"]
    assert {"cvae", "real-holdout", "noise", "real-only"} <= set(sets)
    assert sets["real-only"]["kind"] == "baseline"
    for name, entry in sets.items():
        for metric, value in entry["metrics"].items():
            assert value["direction"] in ("higher", "lower"), (name, metric)
            assert value["ci"] is None or len(value["ci"]) == 2
    for name in ("cvae", "real-holdout", "noise"):
        metrics = sets[name]["metrics"]
        assert {"fid", "precision", "recall", "utility.augment.auroc"} <= set(metrics), name
        assert metrics["fid"]["direction"] == "lower"
        assert 0.0 <= metrics["precision"]["value"] <= 1.0
        assert metrics["fid"]["feature_space"]["id"]
    # Real held-out images are far closer to the training images than noise is.
    fid = {name: sets[name]["metrics"]["fid"]["value"] for name in sets if name != "real-only"}
    assert fid["real-holdout"] < fid["noise"]
    assert (sets["real-holdout"]["metrics"]["recall"]["value"]
            > sets["noise"]["metrics"]["recall"]["value"])
    baseline_auroc = sets["real-only"]["metrics"]["utility.augment.auroc"]["value"]
    assert 0.5 < baseline_auroc <= 1.0
    assert "fid" in results["floors"]
    assert results["analysis"]["findings"]


def test_the_stored_analysis_is_the_analysis_of_the_results_as_written(smoke_run):
    """Computed once, by the run's analysis stage, on the results as every reader sees them
    (so a resumed run, the report and a user's own call agree)."""
    results = read_json(smoke_run / "results.json")
    stored = results.pop("analysis")
    assert stored["seed"] == 0
    assert json.loads(json.dumps(analyse(results, seed=0))) == stored


def test_smoke_demo_manifest_and_config(smoke_run):
    manifest = read_json(smoke_run / "manifest.json")
    assert manifest["status"] == "complete"
    assert {"real.train", "real.val", "real.test"} <= set(manifest["inputs"])
    assert all(len(h) == 64 for h in manifest["inputs"].values())
    assert manifest["seeds"]["seed"] == 0
    assert all(stage["status"] == "done" for stage in manifest["stages"].values())
    # The last stages are stages like the others, in order, each naming what it wrote.
    last = [manifest["stages"][s] for s in LAST_STAGES]
    assert [s["output"] for s in last] == ["results.json", "results.json", "report.html"]
    assert last[0]["finished"] <= last[1]["started"] and last[1]["finished"] <= last[2]["started"]
    assert manifest["runs"][-1]["feature_extractions"] >= 3  # train, holdout, the sets
    assert (smoke_run / "config.yaml").read_text().startswith("name: demo")


def test_smoke_demo_report(smoke_run):
    html = (smoke_run / "report.html").read_text()
    images = re.findall(r'<img[^>]+src="([^"]+)"', html)
    assert images and all(src.startswith("data:image/png;base64,") for src in images)
    assert base64.b64decode(images[0].split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "cvae" in html and "real-holdout" in html
    assert "http://" not in html and "https://" not in html.replace("https://doi", "")


def test_resume_skips_every_stage_and_report_rebuilds(smoke_copy, capsys):
    manifest = read_json(smoke_copy / "manifest.json")
    before, runs = manifest["stages"], len(manifest["runs"])
    results = (smoke_copy / "results.json").read_bytes()
    assert main(["demo", "--budget", "smoke", "--out", str(smoke_copy), "--quiet"]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["demo", "--budget", "smoke", "--out", str(smoke_copy), "--quiet",
                 "--resume", "--device", "cpu"]) == 0
    after = read_json(smoke_copy / "manifest.json")
    assert after["stages"] == before  # nothing re-ran: same fingerprints and timestamps
    assert len(after["runs"]) == runs + 1 and after["status"] == "complete"
    assert after["runs"][-1]["feature_extractions"] == 0
    assert (smoke_copy / "results.json").read_bytes() == results
    page = (smoke_copy / "report.html").read_bytes()
    (smoke_copy / "report.html").unlink()
    assert main(["report", str(smoke_copy)]) == 0
    assert (smoke_copy / "report.html").read_bytes() == page


def test_evaluate_copy_of_training_split_scores_near_perfect_fidelity(shared_data, tmp_path):
    real = shared_data("pneumoniamnist.npz")
    out = tmp_path / "run"
    code = main(["evaluate", "--real", str(real), "--synthetic", f"copy={real}",
                 "--out", str(out), "--budget", "smoke", "--protocols", "--quiet",
                 "--device", "cpu"])
    assert code == 0
    metrics = read_json(out / "results.json")["sets"]["copy"]["metrics"]
    assert metrics["precision"]["value"] >= 0.95
    assert metrics["recall"]["value"] >= 0.95
    assert np.isfinite(metrics["fid"]["value"])


def test_second_evaluate_of_the_same_sets_extracts_nothing(tmp_path):
    from synthlens.data import make_demo

    demo = make_demo()
    synthetic = tmp_path / "mine.npz"
    np.savez(synthetic, images=demo.test.images, labels=demo.test.labels)
    out = tmp_path / "run"
    common = ["evaluate", "--real", "demo", "--synthetic", f"mine={synthetic}", "--out",
              str(out), "--budget", "smoke", "--protocols", "--quiet", "--device", "cpu"]
    assert main([*common, "--metrics", "fid", "precision"]) == 0
    first = read_json(out / "manifest.json")["runs"][-1]
    assert first["feature_extractions"] >= 3  # train, holdout, the user's set
    # Asking for more metrics reruns the metric stages, which read the cached features.
    assert main([*common, "--metrics", "fid", "precision", "recall", "--resume"]) == 0
    manifest = read_json(out / "manifest.json")
    assert manifest["runs"][-1]["feature_extractions"] == 0
    assert "recall" in read_json(out / "results.json")["sets"]["mine"]["metrics"]
