"""Train generator families on PneumoniaMNIST at a named budget and measure what the
generators issue asks: fit and sampling times, sample counts, FID in an in-domain feature
space against the ``noise`` reference and real images, label consistency under a
real-trained classifier, k-NN precision/recall, and the StyleGAN2 truncation sweep.

    python bench/bench_generators.py --budget standard --families ldm,vqvae2 \
        --out runs/bench-generators

Resumable: each family trains in ``OUT/FAMILY`` with the harness's checkpoints, and a family
whose ``model.pt`` exists is loaded instead of retrained. Results accumulate in
``OUT/results.json``; ``--report`` prints the markdown table for docs/benchmarks.md.

The in-domain feature space: the penultimate layer (128-d) of a SmallCNN trained on the
real training split (model selection on val), the same network that judges label
consistency; FID is the Fréchet distance between Gaussians fitted to those features.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from scipy import linalg

from synthlens.data.dataset import ImageSet
from synthlens.data.splits import reserve_holdout
from synthlens.generators import GENERATORS, Budget, get_generator, load_generator
from synthlens.generators.grid import write_sample_grid
from synthlens.generators.references import noise_reference
from synthlens.io import read_json, write_json
from synthlens.utility.classifiers import TrainConfig, train_classifier

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "pneumoniamnist.npz"
BUDGETS = Path(__file__).resolve().parents[1] / "src" / "synthlens" / "configs" / "budgets.yaml"
CLASSES = ("normal", "pneumonia")
HOLDOUT = 0.1


def load_splits() -> tuple[ImageSet, ImageSet, ImageSet, ImageSet]:
    """(generator training set, holdout, val, test): the harness's stratified 10% holdout
    (seed 0) is taken out of train, so generators see 90% of the training split."""
    d = np.load(DATA)
    train = ImageSet(d["train_images"], d["train_labels"], CLASSES, split="train")
    fit, holdout = reserve_holdout(train, HOLDOUT, seed=0)
    return (fit, holdout, ImageSet(d["val_images"], d["val_labels"], CLASSES, split="val"),
            ImageSet(d["test_images"], d["test_labels"], CLASSES, split="test"))


def full_train_counts() -> np.ndarray:
    d = np.load(DATA)
    return np.bincount(d["train_labels"][:, 0], minlength=len(CLASSES))


def budget_for(name: str, family: str) -> Budget:
    config = yaml.safe_load(BUDGETS.read_text())
    return Budget.from_dict(config[name]["generators"][family])


def fid(a: np.ndarray, b: np.ndarray) -> float:
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # tr sqrt(S1 S2) = sum of square roots of the eigenvalues of S1 S2 (similar to a PSD
    # matrix, so they are real and non-negative up to rounding).
    eig = linalg.eigvals(s1 @ s2).real.clip(min=0)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(eig).sum())


def knn_precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 5) -> tuple[float, float]:
    from prdc import compute_prdc

    out = compute_prdc(real_features=real, fake_features=fake, nearest_k=k)
    return float(out["precision"]), float(out["recall"])


class Judge:
    """Real-trained classifier: label consistency and the in-domain feature space."""

    def __init__(self, out: Path, train: ImageSet, val: ImageSet) -> None:
        path = out / "judge.pt"
        config = TrainConfig(epochs=12, width=32)
        torch.manual_seed(0)
        if path.exists():
            from synthlens.utility.classifiers import TrainedClassifier, build_classifier
            model = build_classifier("small_cnn", 1, len(CLASSES), width=32)
            model.load_state_dict(torch.load(path, weights_only=True))
            self.clf = TrainedClassifier(model, len(CLASSES), config, [])
        else:
            self.clf = train_classifier(train, val, config=config, seed=0, desc="judge")
            torch.save(self.clf.model.state_dict(), path)

    def scores(self, images: ImageSet, reference: np.ndarray) -> dict[str, object]:
        pred = self.clf.predict(images.images)
        per_class = [float((pred[images.labels == c] == c).mean()) for c in range(len(CLASSES))]
        feats = self.clf.embed(images.images)
        precision, recall = knn_precision_recall(reference, feats)
        return {"label_consistency": float((pred == images.labels).mean()),
                "label_consistency_per_class": per_class,
                "fid_domain": fid(reference, feats), "knn_precision": precision,
                "knn_recall": recall, "n": len(images)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", default="standard")
    parser.add_argument("--families", default=",".join(GENERATORS))
    parser.add_argument("--out", default="runs/bench-generators")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sweep", action="store_true", help="StyleGAN2 truncation sweep")
    parser.add_argument("--report", action="store_true", help="print the markdown table")
    parser.add_argument("--skip-done", action="store_true",
                        help="skip families that already have results for this budget")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.json"
    results = read_json(results_path) if results_path.exists() else {}
    if args.report:
        print(markdown(results))
        return 0

    train, holdout, val, test = load_splits()
    counts = full_train_counts()
    judge = Judge(out, train, val)
    reference = judge.clf.embed(train.images)
    results["machine"] = {"cpu": platform.processor() or platform.machine(),
                          "threads": torch.get_num_threads(), "torch": torch.__version__}
    results.setdefault("anchors", {})
    results["anchors"]["real-holdout"] = judge.scores(holdout, reference)
    results["anchors"]["real-test"] = judge.scores(test, reference)
    results["anchors"]["noise"] = judge.scores(noise_reference(train, counts, seed=1), reference)
    write_json(results_path, results)

    for family in [f for f in args.families.split(",") if f]:
        done = results.get("families", {}).get(family, {})
        if args.skip_done and done.get("budget") == args.budget:
            continue
        budget = budget_for(args.budget, family)
        workdir = out / family
        entry = results.setdefault("families", {}).get(family, {})
        if (workdir / "model.pt").exists():
            model = load_generator(workdir / "model.pt")
        else:
            start, cpu = time.perf_counter(), time.process_time()
            load = os.getloadavg()[0]
            model = get_generator(family).fit(train, budget, seed=args.seed, workdir=workdir)
            entry["fit_s"] = time.perf_counter() - start
            entry["fit_cpu_s"] = time.process_time() - cpu
            entry["load_avg"] = [load, os.getloadavg()[0]]
            model.save(workdir / "model.pt")
        start, cpu = time.perf_counter(), time.process_time()
        synthetic = model.sample(counts, seed=args.seed + 1)
        entry["sample_s"] = time.perf_counter() - start
        entry["sample_cpu_s"] = time.process_time() - cpu
        entry["budget"] = args.budget
        entry.update(judge.scores(synthetic, reference))
        entry["class_counts"] = synthetic.class_counts().tolist()
        write_sample_grid(synthetic, workdir / "grid.png", per_class=10, scale=3)
        results["families"][family] = entry
        write_json(results_path, results)
        print(family, json.dumps(entry), flush=True)

        if family == "stylegan2" and args.sweep:
            sweep = {}
            for psi in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0):
                s = model.sample(counts, seed=args.seed + 1, truncation=psi)
                sweep[f"{psi:.1f}"] = judge.scores(s, reference)
                write_sample_grid(s, workdir / f"grid_psi{psi:.1f}.png", per_class=10, scale=3)
            from scipy.stats import spearmanr
            psis = [0.2, 0.4, 0.6, 0.8, 1.0]
            prec = [sweep[f"{p:.1f}"]["knn_precision"] for p in psis]
            rec = [sweep[f"{p:.1f}"]["knn_recall"] for p in psis]
            results["truncation_sweep"] = {
                "psi": sweep, "spearman_precision": float(spearmanr(psis, prec)[0]),
                "spearman_recall": float(spearmanr(psis, rec)[0])}
            write_json(results_path, results)
            print("sweep", json.dumps(results["truncation_sweep"]), flush=True)
    print(markdown(results))
    return 0


def markdown(results: dict) -> str:
    lines = ["| set | budget | fit wall / CPU (s) | sample wall / CPU (s) | n (normal/pneumonia) "
             "| FID (domain) | label consistency (normal / pneumonia) | k-NN precision | "
             "k-NN recall |", "|---|---|---|---|---|---|---|---|---|"]
    for name, e in {**results.get("families", {}), **results.get("anchors", {})}.items():
        per = e["label_consistency_per_class"]
        lines.append(
            f"| {name} | {e.get('budget', '-')} | {e.get('fit_s', float('nan')):.0f} / "
            f"{e.get('fit_cpu_s', float('nan')):.0f} | {e.get('sample_s', float('nan')):.0f} / "
            f"{e.get('sample_cpu_s', float('nan')):.0f} | "
            f"{'/'.join(map(str, e.get('class_counts', ['-'])))} | {e['fid_domain']:.2f} | "
            f"{e['label_consistency']:.3f} ({per[0]:.2f} / {per[1]:.2f}) | "
            f"{e['knn_precision']:.3f} | {e['knn_recall']:.3f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
