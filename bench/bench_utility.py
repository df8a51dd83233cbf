"""Utility benchmarks and sanity controls (figures for docs/benchmarks.md, section Utility).

    python bench/bench_utility.py baseline  # real-only on PneumoniaMNIST, `standard` budget
    python bench/bench_utility.py controls  # copy / label-shuffled / real-holdout controls
    python bench/bench_utility.py demo      # wall time of the `demo` budget, 8 sets
    python bench/bench_utility.py transfer  # low_data + cross_task (BreastMNIST) controls

Each part prints a Markdown table and writes JSON beside ``--out``. Trained arms are cached
under ``--cache`` so that an interrupted run resumes. Needs ``../shared/data`` for the
first two parts. Run on an otherwise idle machine for timings; the load average at start
and end is printed with the results.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from importlib.resources import files
from pathlib import Path

import numpy as np
import torch
import yaml

from synthlens.data.dataset import ImageSet, RealData
from synthlens.data.demo import make_demo
from synthlens.data.npz import load_npz
from synthlens.data.splits import reserve_holdout
from synthlens.generators.references import noise_reference
from synthlens.utility.evaluate import BASELINE_NAME, UtilityEvaluator
from synthlens.utility.protocols import UtilityConfig

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def budget_config(budget: str, **overrides: object) -> UtilityConfig:
    budgets = yaml.safe_load((files("synthlens") / "configs" / "budgets.yaml").read_text())
    return UtilityConfig.from_dict({**budgets[budget]["utility"], **overrides})


def load() -> str:
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())


def fmt(result, pp: bool = False) -> str:
    ci = result.ci
    digits = 2 if pp else 3
    text = f"{result.value:+.{digits}f}" if pp else f"{result.value:.{digits}f}"
    if ci is not None:
        text += f" [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"
    return text


def baseline(args: argparse.Namespace) -> dict:
    real = load_npz(DATA / "pneumoniamnist.npz")
    config = budget_config(args.budget, protocols=["augment"])
    ev = UtilityEvaluator(real, config=config, progress=not args.quiet, cache_dir=args.cache)
    start_load = load()
    results = ev.baseline_results()
    seconds = [ev.timings[(BASELINE_NAME, "real", s)] for s in config.seeds]
    cpu = [ev.cpu_timings[(BASELINE_NAME, "real", s)] for s in config.seeds]
    out = {"budget": args.budget, "classifier": config.classifier.to_dict(),
           "threads": torch.get_num_threads(), "load_start": start_load, "load_end": load(),
           "seconds_per_seed": seconds, "cpu_seconds_per_seed": cpu,
           "scores": {k: v.to_json() for k, v in results.items()}}
    print(f"| score | mean [95% CI] | per seed ({', '.join(map(str, config.seeds))}) |")
    print("|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {fmt(r)} | {', '.join(f'{v:.3f}' for v in r.details['per_seed'])} |")
    print(f"seconds per seed: wall {[round(s) for s in seconds]}, CPU {[round(c) for c in cpu]}"
          f"; threads {out['threads']}; "
          f"load {start_load} -> {out['load_end']}")
    return out


def controls(args: argparse.Namespace) -> dict:
    data = load_npz(DATA / "pneumoniamnist.npz") if args.data == "pneumoniamnist" \
        else make_demo()
    fit, holdout = reserve_holdout(data.train, 0.1, seed=0)
    real = RealData(data.name, fit, data.val, data.test, source=data.source)
    rng = np.random.default_rng(0)
    shuffled = ImageSet(fit.images, rng.permutation(fit.labels), fit.class_names,
                        split="shuffled", source="control:shuffled")
    copy = ImageSet(fit.images, fit.labels, fit.class_names, split="copy",
                    source="control:copy")
    plan = {"copy": (copy, ["augment"]), "shuffled": (shuffled, ["augment"]),
            "real-holdout": (holdout, ["augment", "synthetic_only"])}
    out: dict = {"budget": args.budget, "data": data.name, "load_start": load(), "sets": {}}
    start = time.perf_counter()
    for name, (images, protocols) in plan.items():
        config = budget_config(args.budget, protocols=protocols)
        ev = UtilityEvaluator(real, config=config, progress=not args.quiet,
                              cache_dir=args.cache)
        base = ev.baseline_results()
        res = ev.evaluate_set(name, images)
        out["sets"][name] = {k: v.to_json() for k, v in res.items()}
        out["sets"][BASELINE_NAME] = {k: v.to_json() for k, v in base.items()}
        for protocol in protocols:
            for score in ("auroc", "accuracy"):
                g = res[f"utility.{protocol}.gain_{score}"]
                b = base[f"utility.{protocol}.{score}"]
                s = res[f"utility.{protocol}.{score}"]
                print(f"| {name} | {protocol} | {score} | {fmt(b)} | {fmt(s)} | "
                      f"{fmt(g, pp=True)} | "
                      f"{', '.join(f'{v:+.2f}' for v in g.details['per_seed'])} | "
                      f"{g.details['wilcoxon_p']:.3g} |", flush=True)
    out["seconds"] = time.perf_counter() - start
    out["load_end"] = load()
    print(f"total {out['seconds']:.0f} s; load {out['load_start']} -> {out['load_end']}")
    return out


def transfer(args: argparse.Namespace) -> dict:
    """low_data and cross_task on PneumoniaMNIST, features moved to BreastMNIST."""
    data = load_npz(DATA / "pneumoniamnist.npz")
    breast = load_npz(DATA / "breastmnist.npz")
    fit, holdout = reserve_holdout(data.train, 0.1, seed=0)
    real = RealData(data.name, fit, data.val, data.test, source=data.source)
    shuffled = ImageSet(fit.images, np.random.default_rng(0).permutation(fit.labels),
                        fit.class_names, split="shuffled", source="control:shuffled")
    config = budget_config(args.budget, protocols=["augment", "low_data"])
    ev = UtilityEvaluator(real, config=config, cross_task_data=breast,
                          progress=not args.quiet, cache_dir=args.cache)
    out: dict = {"budget": args.budget, "load_start": load(), "sets": {}}
    start = time.perf_counter()
    base = ev.baseline_results()
    out["sets"][BASELINE_NAME] = {k: v.to_json() for k, v in base.items()}
    for name, images in (("real-holdout", holdout), ("shuffled", shuffled)):
        res = ev.evaluate_set(name, images, protocols=["low_data", "cross_task"])
        out["sets"][name] = {k: v.to_json() for k, v in res.items()}
        for protocol in ("low_data", "cross_task"):
            for score in ("auroc", "accuracy"):
                g = res[f"utility.{protocol}.gain_{score}"]
                print(f"| {name} | {protocol} | {score} | "
                      f"{fmt(base[f'utility.{protocol}.{score}'])} | "
                      f"{fmt(res[f'utility.{protocol}.{score}'])} | {fmt(g, pp=True)} | "
                      f"{', '.join(f'{v:+.2f}' for v in g.details['per_seed'])} |",
                      flush=True)
    out["seconds"] = time.perf_counter() - start
    out["load_end"] = load()
    print(f"total {out['seconds']:.0f} s; load {out['load_start']} -> {out['load_end']}")
    return out


def demo(args: argparse.Namespace) -> dict:
    data = make_demo()
    fit, holdout = reserve_holdout(data.train, 0.1, seed=0)
    real = RealData(data.name, fit, data.val, data.test, source=data.source)
    rng = np.random.default_rng(0)
    sets = {"real-holdout": holdout, "noise": noise_reference(fit, fit.class_counts())}
    for i, sigma in enumerate((10, 25, 50, 80, 120)):
        noisy = np.clip(fit.images + rng.normal(0, sigma, fit.images.shape), 0, 255)
        sets[f"noisy{i}"] = ImageSet(noisy.astype(np.uint8), fit.labels, fit.class_names,
                                     split=f"noisy{i}")
    sets["shuffled"] = ImageSet(fit.images, rng.permutation(fit.labels), fit.class_names,
                                split="shuffled")
    config = budget_config(args.budget)
    ev = UtilityEvaluator(real, config=config, progress=not args.quiet)
    out: dict = {"budget": args.budget, "threads": torch.get_num_threads(),
                 "load_start": load(), "n_sets": len(sets), "seeds": list(config.seeds),
                 "protocols": list(ev.protocols)}
    start = time.perf_counter()
    cpu = time.process_time()
    ev.baseline_results()
    rows = []
    for name, images in sets.items():
        res = ev.evaluate_set(name, images)
        rows.append((name, res))
    out["seconds"] = time.perf_counter() - start
    out["cpu_seconds"] = time.process_time() - cpu
    out["load_end"] = load()
    for name, res in rows:
        print(f"| {name} | " + " | ".join(fmt(res[f"utility.{p}.gain_auroc"], pp=True)
                                          for p in ev.protocols) + " |")
    print(f"{len(sets)} sets x {len(config.seeds)} seeds, protocols {list(ev.protocols)}: "
          f"{out['seconds']:.0f} s wall, {out['cpu_seconds']:.0f} s CPU; threads "
          f"{out['threads']}; load {out['load_start']} -> {out['load_end']}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("part", choices=["baseline", "controls", "demo", "transfer"])
    parser.add_argument("--budget", default=None)
    parser.add_argument("--data", default="pneumoniamnist", choices=["pneumoniamnist", "demo"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache", default="runs/bench_utility_cache")
    parser.add_argument("--out", default="runs/bench_utility")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    args.budget = args.budget or ("demo" if args.part == "demo" else "standard")
    torch.set_num_threads(args.threads)
    parts = {"baseline": baseline, "controls": controls, "demo": demo, "transfer": transfer}
    result = parts[args.part](args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{args.part}-{args.budget}-{args.data if args.part == 'controls' else ''}.json"
    path.write_text(json.dumps(result, indent=1, default=float))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
