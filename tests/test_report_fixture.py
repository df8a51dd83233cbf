"""Hand-built ``results.json`` contents for the analysis tests, which need what one smoke run
cannot give: up to nine generated sets whose fidelity and variety trade off by construction
and whose utility follows variety, so the correlations have something known to find.

The report, results-schema and pipeline tests read a run folder made by the real pipeline
instead (the ``smoke_run`` fixture of conftest.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np

CLASS_NAMES = ["normal", "opacity"]
GENERATED = ["cvae", "cvae-small", "dcgan", "stylegan-psi0.2", "stylegan-psi1.0", "ddpm",
             "vqvae", "ldm", "flow"]


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
        "dataset": {"name": "phantoms <demo> & co", "image_shape": [16, 16],
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


def test_fixture_has_the_designed_trade_off() -> None:
    results = make_results(5)
    assert [s for s, e in results["sets"].items() if e["kind"] == "generated"] == GENERATED[:5]
    prec = [results["sets"][s]["metrics"]["precision"]["value"] for s in GENERATED[:5]]
    rec = [results["sets"][s]["metrics"]["recall"]["value"] for s in GENERATED[:5]]
    assert np.corrcoef(prec, rec)[0, 1] < -0.5  # the built-in trade-off
