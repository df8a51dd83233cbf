"""A class of fewer than ~150 training images (BreastMNIST's malignant class) must not crash a
run: below a metric's minimum N its per-class value is null, and the run completes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from synthlens.cli import main


@pytest.mark.shared_data
@pytest.mark.slow
def test_evaluate_completes_on_breastmnist(shared_data, tmp_path: Path, capsys) -> None:
    real = shared_data("breastmnist.npz")
    with np.load(real) as data:
        images, labels = data["train_images"][:200], data["train_labels"][:200, 0]
    synthetic = tmp_path / "copy.npz"
    np.savez(synthetic, images=images, labels=labels)
    out = tmp_path / "run"
    code = main(["evaluate", "--real", str(real), "--synthetic", f"copy={synthetic}",
                 "--budget", "smoke", "--device", "cpu", "--out", str(out), "--quiet"])
    assert code == 0, capsys.readouterr().err
    results = json.loads((out / "results.json").read_text())
    per_class = [value for entry in results["sets"].values()
                 for metric in entry["metrics"].values()
                 for value in (metric.get("per_class") or {}).values()]
    per_class += [value for metric in results["floors"].values()
                  for value in (metric.get("per_class") or {}).values()]
    assert None in per_class  # the small class is below some metric's minimum N ...
    assert any(isinstance(v, float) for v in per_class)  # ... and the others are numbers
    assert (out / "report.html").is_file()


@pytest.mark.shared_data
@pytest.mark.slow
def test_run_completes_on_breastmnist(shared_data, tmp_path: Path, capsys) -> None:
    """``synthlens run`` trains a generator on BreastMNIST (147 malignant training images)
    and completes every stage, utility included."""
    import yaml

    config = tmp_path / "breast.yaml"
    config.write_text(yaml.safe_dump({
        "budget": "smoke", "dataset": {"source": str(shared_data("breastmnist.npz"))},
        "generators": [{"family": "cvae"}], "references": ["real-holdout"],
        "features": {"extractors": ["domain"]}, "utility": {"protocols": ["augment"]}}))
    out = tmp_path / "run"
    code = main(["run", str(config), "--device", "cpu", "--out", str(out), "--quiet"])
    assert code == 0, capsys.readouterr().err
    results = json.loads((out / "results.json").read_text())
    assert results["dataset"]["counts"]["train"][0] < 150  # the small class
    gain = results["sets"]["cvae"]["metrics"]["utility.augment.gain_auroc"]
    assert gain["value"] is not None
    assert (out / "report.html").is_file()
