"""Every feature-space metric of one synthetic set in the ``pixels`` space of large images.

    python bench/bench_pixels_space.py                    # 128x128: 16,384-d, N = 5,000
    python bench/bench_pixels_space.py --size 256         # 65,536-d
    python bench/bench_pixels_space.py --n-train 1000 --n-holdout 200 --n-synthetic 1000

The images are PneumoniaMNIST (``../shared/data/pneumoniamnist.npz``) upsampled from 28x28
with Pillow's bicubic filter: the first ``--n-train`` images of train+val+test are the real
training set, the next ``--n-holdout`` the held-out real set, and the synthetic set is
``--n-synthetic`` jittered copies of real images (a shift of up to 2 px and Gaussian noise
of 4 grey levels), 1% of them exact copies of training images. Labels are the source
images' (2 classes), so class-conditional values are computed too.

Measured, as the pipeline runs them: ``RealReference.fit`` (real k-NN, holdout k-NN),
``compare`` (the neighbour sweeps of the set), every metric of ``evaluate_features`` one by
one (pipeline effort: 200 bootstrap resamples, 100 KID subsets), the audit table, and
``real_floor`` (the real-vs-real floor). For each stage: wall time, CPU time and the peak
resident memory above the features (``VmHWM`` of /proc/self/status, reset through
/proc/self/clear_refs before each stage, minus the resident size once the features are
built and the images freed). Targets on 2 cores at 128x128: under 2 minutes and 1.5 GB.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import gc
import json
import os
import platform
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "pneumoniamnist.npz"


def status_kb(key: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def reset_peak() -> None:
    """Set VmHWM back to the current resident size (Linux >= 4.0)."""
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")


def release_freed_memory() -> None:
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass


def upsample(images: np.ndarray, size: int) -> np.ndarray:
    out = np.empty((len(images), size, size), dtype=np.uint8)
    for i, image in enumerate(images):
        out[i] = np.asarray(Image.fromarray(image).resize((size, size), Image.BICUBIC))
    return out


def make_images(size: int, n_train: int, n_holdout: int, n_synthetic: int, seed: int
                ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    with np.load(DATA, allow_pickle=False) as data:
        pool = np.concatenate([data[f"{s}_images"] for s in ("train", "val", "test")])
        labels = np.concatenate([data[f"{s}_labels"].ravel() for s in ("train", "val", "test")])
    if n_train + n_holdout > len(pool):
        raise SystemExit(f"--n-train + --n-holdout must be at most {len(pool)}")
    rng = np.random.default_rng(seed)
    train = slice(0, n_train)
    holdout = slice(n_train, n_train + n_holdout)
    source = rng.integers(0, len(pool), n_synthetic)
    synthetic = upsample(pool[source], size)
    for i, (dy, dx) in enumerate(rng.integers(-2, 3, (n_synthetic, 2))):
        noisy = np.roll(synthetic[i], (dy, dx), axis=(0, 1)) + rng.normal(0, 4, (size, size))
        synthetic[i] = np.clip(np.rint(noisy), 0, 255)
    copies = rng.choice(n_synthetic, n_synthetic // 100, replace=False)
    copy_of = rng.integers(0, n_train, len(copies))
    real_train = upsample(pool[train], size)
    synthetic[copies] = real_train[copy_of]
    syn_labels = labels[source].astype(np.int64)
    syn_labels[copies] = labels[copy_of]
    return {"train": (real_train, labels[train].astype(np.int64)),
            "holdout": (upsample(pool[holdout], size), labels[holdout].astype(np.int64)),
            "synthetic": (synthetic, syn_labels)}


class Stages:
    """Wall time, CPU time and peak memory above the features of each measured call."""

    def __init__(self, base_kb: int) -> None:
        self.base_kb = base_kb
        self.rows: list[dict[str, Any]] = []

    def run(self, name: str, fn: Callable[[], Any]) -> Any:
        release_freed_memory()
        reset_peak()
        start_kb = status_kb("VmRSS")
        cpu, wall = time.process_time(), time.perf_counter()
        out = fn()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        peak_kb = status_kb("VmHWM")
        row = {"stage": name, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
               "peak_above_features_mb": round((peak_kb - self.base_kb) / 1024, 1),
               "peak_above_stage_start_mb": round((peak_kb - start_kb) / 1024, 1)}
        self.rows.append(row)
        print(json.dumps(row), flush=True)
        return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=128, help="image side (pixels = size²)")
    parser.add_argument("--n-train", type=int, default=5000)
    parser.add_argument("--n-holdout", type=int, default=500)
    parser.add_argument("--n-synthetic", type=int, default=5000)
    parser.add_argument("--bootstrap", type=int, default=200)
    parser.add_argument("--kid-subsets", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    if not DATA.exists():
        raise SystemExit(f"{DATA} not found: this benchmark needs ../shared/data")

    import torch

    from synthlens.features import get_extractor
    from synthlens.metrics import (
        RealReference,
        audit_table,
        default_feature_metrics,
        evaluate_features,
        real_floor,
    )

    report: dict[str, Any] = {
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": {"cpu": platform.processor() or platform.machine(),
                    "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "load_avg_at_start": os.getloadavg(),
                    "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}}
    print(json.dumps(report["machine"]), flush=True)
    t0 = time.perf_counter()
    extractor = get_extractor("pixels")
    sets = {}
    for name, (images, labels) in make_images(args.size, args.n_train, args.n_holdout,
                                              args.n_synthetic, args.seed).items():
        sets[name] = (extractor.extract(images), labels)
    del images
    features_mb = sum(x.nbytes for x, _ in sets.values()) / 2**20
    release_freed_memory()
    base_kb = status_kb("VmRSS")
    report["features"] = {"dim": int(sets["train"][0].shape[1]),
                          "n": {k: int(v[0].shape[0]) for k, v in sets.items()},
                          "features_mb": round(features_mb, 1),
                          "rss_with_features_mb": round(base_kb / 1024, 1),
                          "prepare_s": round(time.perf_counter() - t0, 1)}
    print(json.dumps(report["features"]), flush=True)

    (train, train_labels), (holdout, holdout_labels) = sets["train"], sets["holdout"]
    synthetic, syn_labels = sets["synthetic"]
    stages = Stages(base_kb)
    effort = {"n_bootstrap": args.bootstrap, "kid_subsets": args.kid_subsets}
    values: dict[str, float] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # N <= d, small classes: expected
        reference = stages.run("fit", lambda: RealReference(
            k=5, feature_space=extractor.describe()).fit(
                train, train_labels, holdout=holdout, holdout_labels=holdout_labels,
                class_names=["normal", "pneumonia"]))
        nb = stages.run("compare", lambda: reference.compare(synthetic, syn_labels))
        for metric in default_feature_metrics("euclidean", holdout=True):
            result = stages.run(f"metric {metric}", lambda m=metric: evaluate_features(
                reference, synthetic, syn_labels, metrics=[m], neighbourhoods=nb, **effort))
            values[metric] = result[metric].value
        stages.run("audit_table", lambda: audit_table(reference, nb, syn_labels))
        floor = stages.run("real_floor", lambda: real_floor(reference, **effort))
    rows = stages.rows
    report["stages"] = rows
    report["values"] = values
    report["floor_values"] = {k: v.value for k, v in floor.items()}
    report["total"] = {"wall_s": round(sum(r["wall_s"] for r in rows), 1),
                       "cpu_s": round(sum(r["cpu_s"] for r in rows), 1),
                       "peak_above_features_mb": max(r["peak_above_features_mb"]
                                                     for r in rows)}
    print(f"\n{report['features']['dim']}-d, N = {report['features']['n']}; load "
          f"{os.getloadavg()[0]:.1f} at the end\n")
    print("| stage | wall (s) | CPU (s) | peak above features (MB) |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['stage']} | {r['wall_s']} | {r['cpu_s']} | {r['peak_above_features_mb']} |")
    total = report["total"]
    print(f"| **all** | **{total['wall_s']}** | {total['cpu_s']} | "
          f"**{total['peak_above_features_mb']}** |")
    print("\nvalues:", json.dumps({k: round(v, 6) for k, v in values.items()}))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
