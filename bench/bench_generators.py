"""Measure what the generators issue asks of a `synthlens run` that trained generators on
PneumoniaMNIST: per-family training and sampling times, sample counts, reload
determinism, FID in an in-domain feature space against the ``noise`` reference and real
images, label consistency under a real-trained classifier, k-NN precision / recall and
the StyleGAN2 truncation sweep.

    synthlens run configs/pneumoniamnist.yaml --out runs/pneumonia-std --stop-after generate
    python bench/bench_generators.py runs/pneumonia-std --check-reload

Times come from the run's manifest (each ``generators/<name>`` stage: training plus
sampling of all its sets); ``--check-reload`` reloads every ``model.pt``, samples again
with the run's seed, times it and checks the images are identical to the saved set.
Results go to ``RUN/bench/generators.json``; ``--report`` prints the markdown tables for
docs/benchmarks.md; ``--privacy`` (on its own) adds synthlens's privacy metrics of every set
in the judge's feature space.

The judge and the in-domain feature space: a SmallCNN trained on the run's generator
training split (model selection on val) with the ``standard`` utility augmentations and
balanced class weights; its penultimate layer (128-d) is the feature space, FID the
Fréchet distance of Gaussians fitted to those features (scipy, independent of
synthlens.metrics), k-NN precision / recall come from the ``prdc`` package (k = 5).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from scipy import linalg
from scipy.stats import spearmanr

from synthlens.config import sweep_variants
from synthlens.data.dataset import ImageSet
from synthlens.data.npz import load_imageset, load_npz
from synthlens.data.tensors import crop_to
from synthlens.generators import Generator, load_generator
from synthlens.io import read_json, write_json
from synthlens.nets.classifiers import (
    TrainConfig,
    TrainedClassifier,
    build_classifier,
    train_classifier,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "pneumoniamnist.npz"
JUDGE = TrainConfig(arch="small_cnn", epochs=12, batch_size=64, width=32, lr=0.004,
                    augment_intensity=0.2, class_weighting=True)
SWEEP_PSIS = (0.2, 0.4, 0.6, 0.8, 1.0)  # the acceptance range


def fid(a: np.ndarray, b: np.ndarray) -> float:
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # tr sqrt(S1 S2) = sum of square roots of the eigenvalues of S1 S2 (similar to a PSD
    # matrix, so they are real and non-negative up to rounding).
    eig = linalg.eigvals(s1 @ s2).real.clip(min=0)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(eig).sum())


class Judge:
    """Real-trained classifier: label consistency and the in-domain feature space."""

    def __init__(self, path: Path, train: ImageSet, val: ImageSet) -> None:
        saved = torch.load(path, weights_only=True) if path.exists() else None
        if saved is not None and saved["train_sha256"] == train.sha256():
            model = build_classifier(JUDGE.arch, train.channels, train.n_classes,
                                     **JUDGE.model_kwargs(train.image_shape))
            model.load_state_dict(saved["state"])
            self.clf = TrainedClassifier(model, train.n_classes, JUDGE, [])
        else:
            self.clf = train_classifier(train, val, config=JUDGE, seed=0, desc="judge")
            torch.save({"state": self.clf.model.state_dict(), "train_sha256": train.sha256()},
                       path)
        self.reference = self.clf.embed(train.images)

    def scores(self, images: ImageSet) -> dict[str, object]:
        from prdc import compute_prdc

        pred = self.clf.predict(images.images)
        per_class = [float((pred[images.labels == c] == c).mean())
                     for c in range(images.n_classes)]
        feats = self.clf.embed(images.images)
        knn = compute_prdc(real_features=self.reference, fake_features=feats, nearest_k=5)
        return {"label_consistency": float((pred == images.labels).mean()),
                "label_consistency_per_class": per_class,
                "fid_domain": fid(self.reference, feats),
                "knn_precision": float(knn["precision"]), "knn_recall": float(knn["recall"]),
                "n": len(images), "class_counts": images.class_counts().tolist()}


def check_reload(model: Generator, run: Path, variants: list[tuple[str, dict]], seed: int,
                 ) -> dict[str, dict[str, object]]:
    """Resample every set of a reloaded model with the run's seed, compare and time."""
    out = {}
    for set_name, options in variants:
        saved = load_imageset(run / "sets" / set_name / "samples.npz")
        start = time.perf_counter()
        again = model.sample(saved.class_counts(), seed=seed + 1, **options)
        out[set_name] = {"sample_s": time.perf_counter() - start,
                         "identical": bool(np.array_equal(again.images, saved.images)
                                           and np.array_equal(again.labels, saved.labels))}
        print(f"reload {set_name}: {out[set_name]}", flush=True)
    return out


def diagnose_vqvae2(run: Path, name: str, judge: Judge, holdout: ImageSet
                    ) -> dict[str, dict[str, object]]:
    """Where a VQ-VAE-2 loses quality, on the real held-out images: the autoencoder alone
    (real top + real bottom codes), the bottom prior (real top + sampled bottom codes)
    and both priors (sampled top + sampled bottom, as in generation)."""
    model = load_generator(run / "generators" / name / "model.pt")
    top, bottom = (torch.from_numpy(c) for c in model.encode_codes(holdout.images))
    labels = torch.from_numpy(holdout.labels)
    rng = torch.Generator().manual_seed(0)

    def decoded(id_t: torch.Tensor, id_b: torch.Tensor) -> ImageSet:
        x = crop_to(model.net.decode_codes(id_t, id_b), model.size)
        pixels = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1)
        array = pixels.numpy()
        return ImageSet(array[..., 0] if array.shape[-1] == 1 else array, holdout.labels,
                        holdout.class_names)

    with torch.no_grad():
        sampled_bottom = model._prior_sample(model.bottom_prior, labels, model.bottom_shape,
                                             rng, top, 1.0)
        sampled_top = model._prior_sample(model.top_prior, labels, model.top_shape, rng,
                                          None, 1.0)
        both = model._prior_sample(model.bottom_prior, labels, model.bottom_shape, rng,
                                   sampled_top, 1.0)
        return {"autoencoder": judge.scores(decoded(top, bottom)),
                "real_top_sampled_bottom": judge.scores(decoded(top, sampled_bottom)),
                "sampled_top_sampled_bottom": judge.scores(decoded(sampled_top, both))}


PRIVACY_METRICS = ("memorisation_rate", "mia_auc", "dcr_ratio", "copy_rate")


def privacy(judge: Judge, train: ImageSet, holdout: ImageSet, sets: Path
            ) -> dict[str, dict[str, float]]:
    """synthlens's privacy metrics of every set in the judge's feature space, plus the
    real floor (half of the holdout standing in for a synthetic set)."""
    from synthlens.metrics import RealReference, evaluate_features, real_floor

    reference = RealReference(k=5, feature_space="judge").fit(
        judge.clf.embed(train.images), train.labels, holdout=judge.clf.embed(holdout.images),
        holdout_labels=holdout.labels, class_names=train.class_names)

    def values(scores: dict) -> dict[str, float]:
        return {name: float(scores[name].value) for name in PRIVACY_METRICS}

    out = {"real floor": values(real_floor(reference, metrics=PRIVACY_METRICS,
                                           n_bootstrap=0))}
    # real-holdout *is* the non-member set, so its membership figures say nothing
    for folder in sorted(p for p in sets.iterdir()
                         if (p / "samples.npz").exists() and p.name != "real-holdout"):
        images = load_imageset(folder / "samples.npz")
        out[folder.name] = values(evaluate_features(
            reference, judge.clf.embed(images.images), images.labels,
            metrics=PRIVACY_METRICS, n_bootstrap=0))
        print(folder.name, out[folder.name], flush=True)
    return out


def privacy_markdown(rows: dict[str, dict[str, float]]) -> str:
    lines = ["| set | " + " | ".join(PRIVACY_METRICS) + " |",
             "|---|" + "---|" * len(PRIVACY_METRICS)]
    lines += [f"| {name} | " + " | ".join(f"{row[m]:.3f}" for m in PRIVACY_METRICS) + " |"
              for name, row in rows.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a run folder (synthlens run ...)")
    parser.add_argument("--data", type=Path, default=DATA,
                        help="the MedMNIST .npz the run used (for val and test)")
    parser.add_argument("--check-reload", action="store_true")
    parser.add_argument("--judge", type=Path, default=None,
                        help="judge checkpoint to reuse or write (default RUN/bench/judge.pt; "
                             "retrained when it was fitted on other data)")
    parser.add_argument("--only", default=None, metavar="NAMES",
                        help="comma-separated generator names to (re)measure; the others "
                             "keep their figures from an earlier call")
    parser.add_argument("--extra-seeds", default="", metavar="SEEDS",
                        help="comma-separated sampling seeds: also score each set sampled "
                             "again with these seeds from the reloaded model (sampling "
                             "variance of the figures)")
    parser.add_argument("--diagnose-vqvae2", action="store_true",
                        help="score VQ-VAE-2's autoencoder and priors separately on the "
                             "real held-out images")
    parser.add_argument("--privacy", action="store_true",
                        help="only: synthlens's privacy metrics of every set of the run in the "
                             "judge's feature space (members = the generators' training "
                             "split, non-members = real-holdout), and the real floor")
    parser.add_argument("--report", action="store_true", help="print the markdown tables")
    args = parser.parse_args(argv)
    out = args.run / "bench"
    out.mkdir(exist_ok=True)
    results_path = out / "generators.json"
    if args.report:
        print(markdown(read_json(results_path)))
        return 0
    if not args.data.exists():
        print(f"{args.data}: not found; pass --data", file=sys.stderr)
        return 2

    config = yaml.safe_load((args.run / "config.yaml").read_text())
    manifest = read_json(args.run / "manifest.json")
    real = load_npz(args.data)
    if real.train.sha256() != manifest["inputs"]["real.train"]:
        print(f"{args.data}: not the training data of {args.run}", file=sys.stderr)
        return 2
    train = load_imageset(args.run / "data" / "train.npz")  # the generators' training split
    judge = Judge(args.judge or out / "judge.pt", train, real.val)
    if args.privacy:
        results = read_json(results_path) if results_path.exists() else {}
        holdout = load_imageset(args.run / "data" / "holdout.npz")
        results["privacy"] = privacy(judge, train, holdout, args.run / "sets")
        write_json(results_path, results)
        print(privacy_markdown(results["privacy"]))
        return 0
    seed = int(config["seed"])
    results = {"run": str(args.run), "budget": config["budget"],
               "machine": {"cpu": platform.processor() or platform.machine(),
                           "cores": os.cpu_count(), "threads": torch.get_num_threads(),
                           "torch": torch.__version__},
               "generator_training_images": len(train), "generators": {}, "sets": {},
               "anchors": {"real-test": judge.scores(real.test)}}
    only = set(args.only.split(",")) if args.only else None
    if only and results_path.exists():
        earlier = read_json(results_path)
        results["generators"] = earlier["generators"]
        results["sets"] = earlier["sets"]
    for name in config["references"]:
        results["anchors"][name] = judge.scores(
            load_imageset(args.run / "sets" / name / "samples.npz"))
    write_json(results_path, results)

    for spec in config["generators"]:
        name, variants = spec["name"], sweep_variants(spec)
        if only and name not in only:
            continue
        stage = manifest["stages"].get(f"generators/{name}", {})
        if stage.get("status") != "done":
            print(f"{name}: not trained in this run, skipped", flush=True)
            continue
        entry = {"family": spec["family"], "stage_s": stage["seconds"],
                 "sets": [s for s, _ in variants]}
        extra_seeds = [int(x) for x in args.extra_seeds.split(",") if x]
        model = (load_generator(args.run / "generators" / name / "model.pt")
                 if args.check_reload or extra_seeds else None)
        if model is not None and args.check_reload:
            entry["reload"] = check_reload(model, args.run, variants, seed)
            entry["fit_s"] = stage["seconds"] - sum(r["sample_s"]
                                                    for r in entry["reload"].values())
        if args.diagnose_vqvae2 and spec["family"] == "vqvae2":
            holdout = load_imageset(args.run / "data" / "holdout.npz")
            entry["diagnosis"] = diagnose_vqvae2(args.run, name, judge, holdout)
        results["generators"][name] = entry
        for set_name, options in variants:
            images = load_imageset(args.run / "sets" / set_name / "samples.npz")
            results["sets"][set_name] = {"generator": name, "options": options,
                                         **judge.scores(images)}
            if model is not None and extra_seeds:
                results["sets"][set_name]["other_seeds"] = {
                    str(s): judge.scores(model.sample(images.class_counts(), seed=s, **options))
                    for s in extra_seeds}
            print(set_name, results["sets"][set_name], flush=True)
        write_json(results_path, results)

    sweep = {psi: results["sets"].get(f"stylegan2-truncation{psi:g}") for psi in SWEEP_PSIS}
    if all(sweep.values()):
        results["truncation_sweep"] = {
            "psi": list(SWEEP_PSIS),
            "spearman_precision": float(spearmanr(
                SWEEP_PSIS, [sweep[p]["knn_precision"] for p in SWEEP_PSIS])[0]),
            "spearman_recall": float(spearmanr(
                SWEEP_PSIS, [sweep[p]["knn_recall"] for p in SWEEP_PSIS])[0])}
    write_json(results_path, results)
    print(markdown(results))
    return 0


def markdown(results: dict) -> str:
    lines = ["| generator | family | stage (s) | training (s) | resample (s) | reload identical |",
             "|---|---|---|---|---|---|"]
    total = 0.0
    for name, e in results["generators"].items():
        total += e["stage_s"]
        reload = e.get("reload", {})
        lines.append(f"| {name} | {e['family']} | {e['stage_s']:.0f} | "
                     f"{e.get('fit_s', float('nan')):.0f} | "
                     f"{sum(r['sample_s'] for r in reload.values()):.0f} | "
                     f"{all(r['identical'] for r in reload.values()) if reload else '-'} |")
    lines.append(f"| **all** | | **{total:.0f}** ({total / 3600:.2f} h) | | | |")
    lines += ["", "| set | n (per class) | FID (domain) | label consistency (per class) | "
              "k-NN precision | k-NN recall |", "|---|---|---|---|---|---|"]
    for name, e in {**results["sets"], **results["anchors"]}.items():
        per = " / ".join(f"{v:.2f}" for v in e["label_consistency_per_class"])
        lines.append(f"| {name} | {e['n']} ({' / '.join(map(str, e['class_counts']))}) | "
                     f"{e['fid_domain']:.3f} | {e['label_consistency']:.3f} ({per}) | "
                     f"{e['knn_precision']:.3f} | {e['knn_recall']:.3f} |")
        for seed, o in e.get("other_seeds", {}).items():
            per = " / ".join(f"{v:.3f}" for v in o["label_consistency_per_class"])
            lines.append(f"| ↳ sampling seed {seed} | {o['n']} | {o['fid_domain']:.3f} | "
                         f"{o['label_consistency']:.3f} ({per}) | {o['knn_precision']:.3f} | "
                         f"{o['knn_recall']:.3f} |")
    for name, e in results["generators"].items():
        if "diagnosis" in e:
            lines += ["", f"{name} on the real held-out images (FID, label consistency per "
                          "class):"]
            for part, d in e["diagnosis"].items():
                per = " / ".join(f"{v:.3f}" for v in d["label_consistency_per_class"])
                lines.append(f"- {part}: FID {d['fid_domain']:.2f}, {per}")
    if "truncation_sweep" in results:
        t = results["truncation_sweep"]
        lines += ["", f"StyleGAN2 truncation sweep over psi {t['psi']}: Spearman(psi, "
                      f"precision) = {t['spearman_precision']:+.2f}, Spearman(psi, recall) = "
                      f"{t['spearman_recall']:+.2f}."]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
