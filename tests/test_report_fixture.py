"""A synthetic run folder, built in code, for the analysis and report tests.

``make_run`` writes the layout the pipeline produces (results.json, samples, curves, audit
CSVs, the real train split) with plausible numbers: fidelity and variety trade off by
construction and utility follows variety, so the analysis has something to find.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from synthlens.io import write_json, write_npz

CLASS_NAMES = ["normal", "opacity"]
GENERATED = ["cvae", "cvae-small", "dcgan", "stylegan-psi0.2", "stylegan-psi1.0", "ddpm",
             "vqvae", "ldm", "flow"]
SIZE = 16


def phantoms(n: int, rng: np.random.Generator, blur: float, noise: float) -> tuple[
        np.ndarray, np.ndarray]:
    """Chest-like blobs: two dark lung fields; class 1 has a faint opacity in one."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / (SIZE - 1) * 2 - 1
    labels = np.arange(n) % 2
    imgs = np.empty((n, SIZE, SIZE), np.uint8)
    for i in range(n):
        body = np.exp(-(xx ** 2 / 0.8 + yy ** 2 / 0.9) * (1 + blur))
        lungs = sum(np.exp(-(((xx - s * 0.4) / 0.25) ** 2 + (yy / 0.5) ** 2)) for s in (-1, 1))
        img = 0.9 * body - 0.5 * lungs + rng.normal(0, noise, (SIZE, SIZE))
        if labels[i]:
            img += 0.35 * np.exp(-(((xx - 0.4) / 0.15) ** 2 + ((yy - 0.1) / 0.2) ** 2))
        imgs[i] = np.clip((img + 0.5) * 180, 0, 255).astype(np.uint8)
    return imgs, labels.astype(np.int64)


def _m(value: float, direction: str, half: float | None = None, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"value": float(value), "direction": direction,
                           "ci": None if half is None else [value - half, value + half],
                           "feature_space": {"id": "domain-cnn-16", "weights_sha256": "ab" * 32,
                                             "preprocessing": "uint8/255"}}
    out.update(extra)
    return out


def full_metrics(f: float, v: float, u: float, rng: np.random.Generator) -> dict[str, Any]:
    seeds = (u + rng.normal(0, 0.004, 5)).tolist()
    gain = u - 0.90
    return {
        "fid": _m(10 + 60 * (1 - f), "lower", 2.0),
        "kid": _m(0.01 + 0.05 * (1 - f), "lower", 0.003),
        "precision": _m(0.4 + 0.55 * f, "higher", 0.03,
                        per_class={"normal": 0.42 + 0.55 * f, "opacity": 0.36 + 0.5 * f}),
        "density": _m(0.5 + 0.6 * f, "higher", 0.05),
        "recall": _m(0.2 + 0.6 * v, "higher", 0.03,
                     per_class={"normal": 0.25 + 0.6 * v, "opacity": 0.15 + 0.55 * v}),
        "coverage": _m(0.3 + 0.5 * v, "higher", 0.03),
        "mean_image_kb": _m(2.0 - v, "lower"),
        "vendi": _m(3 + 20 * v, "higher", 0.5),
        "copy_rate": _m(0.01 + 0.15 * f * (1 - v), "lower", 0.01),
        "privacy": _m(0.99 - 0.15 * f * (1 - v), "higher", 0.01),
        "utility.augment.auroc": _m(u, "higher", 0.01,
                                    details={"per_seed": seeds, "p_value": 0.2}),
        "utility.augment.accuracy": _m(u - 0.08, "higher", 0.015),
        "utility.augment.gain_auroc": _m(gain, "higher", 0.008,
                                         details={"p_value": 0.01 if abs(gain) > 0.012 else 0.4}),
        "utility.cross_task.accuracy": _m(0.6 + 0.1 * v + rng.normal(0, 0.01), "higher", 0.02),
    }


def make_results(n_sets: int = 7, *, skeleton: bool = False, seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    sets: dict[str, Any] = {}
    fs = np.linspace(0.1, 0.95, n_sets)
    for i, name in enumerate(GENERATED[:n_sets]):
        f = float(fs[i])
        v = float(np.clip(1 - f + rng.normal(0, 0.08), 0, 1))
        u = float(0.90 + 0.03 * v - 0.01 + rng.normal(0, 0.002))
        metrics = full_metrics(f, v, u, rng)
        if skeleton:
            metrics = {k: {kk: vv for kk, vv in m.items() if kk in ("value", "direction", "ci")}
                       for k, m in metrics.items()
                       if k in ("fid", "precision", "recall", "utility.augment.auroc",
                                "utility.augment.accuracy")}
        sets[name] = {"kind": "generated", "generator": name.split("-")[0],
                      "n_images": 64, "metrics": metrics}
    if not skeleton:
        ref = full_metrics(0.97, 0.97, 0.93, rng)
        ref = {k: m for k, m in ref.items() if "gain" not in k}
        ref["weird<metric>"] = _m(1.5, "higher")
        sets["real-holdout"] = {"kind": "reference", "generator": None, "n_images": 64,
                                "metrics": ref}
    sets["real-only"] = {"kind": "baseline", "generator": None, "n_images": 0, "metrics": {
        "utility.augment.auroc": _m(0.90, "higher", 0.01),
        "utility.augment.accuracy": _m(0.82, "higher", 0.015),
        **({} if skeleton else {"utility.cross_task.accuracy": _m(0.62, "higher", 0.02)}),
    }}
    results: dict[str, Any] = {
        "schema_version": "1.0",
        "synthlens_version": "0.1.0",
        "dataset": {"name": "phantoms <demo> & co", "image_shape": [SIZE, SIZE],
                    "class_names": CLASS_NAMES,
                    "counts": {"train": 96, "holdout": 32, "val": 32, "test": 64},
                    "sha256": {"train": "cd" * 32}},
        "sets": sets,
    }
    if not skeleton:
        results["floors"] = {
            "fid": {"value": 4.1, "direction": "lower", "ci": [3.5, 4.8]},
            "precision": {"value": 0.95, "direction": "higher", "ci": [0.92, 0.97]},
            "recall": {"value": 0.94, "direction": "higher", "ci": [0.91, 0.96]},
            "copy_rate": {"value": 0.04, "direction": "lower", "ci": [0.02, 0.06]},
            "privacy": {"value": 0.96, "direction": "higher", "ci": [0.94, 0.98]},
        }
    return results


def make_run(root: Path, n_sets: int = 7, *, skeleton: bool = False, seed: int = 0) -> Path:
    """Write a run folder under ``root`` and return its path."""
    rng = np.random.default_rng(seed + 100)
    run = root / ("skeleton" if skeleton else f"run{n_sets}")
    results = make_results(n_sets, skeleton=skeleton, seed=seed)
    write_json(run / "results.json", results)
    (run / "config.yaml").write_text("dataset: demo\nbudget: smoke\nseed: 0\n"
                                     "note: '<not html>'\n")
    write_json(run / "manifest.json", {"versions": {"synthlens": "0.1.0", "torch": "2.13.0",
                                                    "numpy": np.__version__},
                                       "seeds": {"global": 0}, "inputs": {"train": "cd" * 32}})
    write_json(run / "data" / "summary.json", {"train": 96, "holdout": {"n": 32}})
    names = np.array(CLASS_NAMES)
    if not skeleton:
        imgs, labels = phantoms(96, rng, 0.0, 0.05)
        write_npz(run / "data" / "train.npz", images=imgs, labels=labels, class_names=names)
    gen = [s for s, e in results["sets"].items() if e["kind"] == "generated"]
    for i, name in enumerate(gen):
        imgs, labels = phantoms(24, rng, blur=0.3 * i, noise=0.02 + 0.03 * i)
        write_npz(run / "generators" / name / "samples.npz", images=imgs, labels=labels,
                  class_names=names)
        if not skeleton and i < 3:
            steps = list(range(0, 200, 10))
            loss = (2.0 * np.exp(-np.array(steps) / 60) + 0.1).tolist()
            (run / "generators" / name / "curves.json").write_text(json.dumps(
                {"step": steps, "loss": loss, "kl": [0.5 * x for x in loss]}))
        if not skeleton and i < 2:
            audit = run / "metrics" / "audit" / f"{name}.csv"
            audit.parent.mkdir(parents=True, exist_ok=True)
            with open(audit, "w", newline="") as handle:
                w = csv.writer(handle)
                w.writerow(["synthetic_index", "nearest_train_index", "distance", "category"])
                for j in range(24):
                    d = float(rng.uniform(0.05, 2.0))
                    cat = "copy" if d < 0.3 else "real" if d < 1.2 else "non-real"
                    w.writerow([j, int(rng.integers(0, 96)), f"{d:.4f}", cat])
    return run


def test_fixture_is_a_valid_run(tmp_path: Path) -> None:
    run = make_run(tmp_path, 5)
    results = json.loads((run / "results.json").read_text())
    assert [s for s, e in results["sets"].items() if e["kind"] == "generated"] == GENERATED[:5]
    prec = [results["sets"][s]["metrics"]["precision"]["value"] for s in GENERATED[:5]]
    rec = [results["sets"][s]["metrics"]["recall"]["value"] for s in GENERATED[:5]]
    assert np.corrcoef(prec, rec)[0, 1] < -0.5  # the built-in trade-off
    with np.load(run / "generators" / "cvae" / "samples.npz") as data:
        assert data["images"].dtype == np.uint8 and data["images"].shape == (24, SIZE, SIZE)
