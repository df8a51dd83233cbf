"""``features.subsample``: a costly space scores a fixed, class-stratified draw of each set,
the same draw whatever the order of the sets, and says so in results.json and results.csv."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from synthlens.config import packaged_config, resolve_config
from synthlens.errors import SettingError
from synthlens.pipeline import run


def _config(**features) -> dict:
    raw = packaged_config("evaluate")
    raw.update(dataset={"source": "demo", "size": 28}, references=["real-holdout", "noise"],
               features={"extractors": ["domain", "pixels"], **features},
               metrics={"names": ["fid", "precision", "copy_rate"], "k": 5},
               utility={"protocols": []})
    return resolve_config(raw, source="test", budget="smoke", device="cpu")


@pytest.mark.slow
def test_subsampled_space_scores_the_draw_and_says_so(tmp_path: Path) -> None:
    out = run(_config(subsample={"pixels": 150}), tmp_path / "run", progress=False)
    results = json.loads((out / "results.json").read_text())
    noise = results["sets"]["noise"]["metrics"]
    assert noise["fid@pixels"]["feature_space"]["subsample"] == {"images_per_set": 150,
                                                                  "seed": 0}
    assert "subsample" not in noise["fid"]["feature_space"]  # the domain space: every image
    assert noise["fid@pixels"]["details"]["n"] <= 152 < noise["fid"]["details"]["n"]
    with open(out / "results.csv", newline="") as f:
        spaces = {row["feature_space"] for row in csv.DictReader(f)
                  if row["metric"] == "fid@pixels"}
    assert spaces == {"pixels (150 images per set)"}


def test_subsample_names_a_listed_extractor_and_enough_images() -> None:
    with pytest.raises(SettingError, match=r"features\.subsample\.inception"):
        _config(subsample={"inception": 500})
    with pytest.raises(SettingError, match="at least 100"):
        _config(subsample={"pixels": 10})
