"""Train a run's utility arms in a second process, side by side with the run itself.

The utility stage caches every trained arm (one classifier at one seed) as a
content-addressed ``.npz`` in ``RUN/utility/arms/`` (a hash of the data, the seed, the
classifier and the protocol settings), written atomically. This script trains the arms of
the run's sets into that cache, in *reverse* set order, while ``synthlens run --resume``
scores the sets; when the run reaches its utility stage it reads the arms that are there
and trains only the rest. It never writes the manifest or any stage output, so the run
folder stays the only state and the results are those of the run alone (same data, seeds
and one torch thread: the same arms, bit for bit).

    synthlens run configs/pneumoniamnist.yaml --out runs/pneumonia --resume &
    OMP_NUM_THREADS=1 python bench/warm_utility_arms.py runs/pneumonia

Without ``--wait`` it takes the sets whose samples are there; with it, it starts during
the ``generate`` stage and takes each set as soon as its generator's stage is done. On two
cores, two one-thread processes do about 1.5× the work per second of one two-thread process.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import yaml

from synthlens.config import RunConfig
from synthlens.data import load_imageset
from synthlens.pipeline import UTILITY_ARMS, load_inputs, utility_evaluator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--wait", action="store_true",
                        help="start during the generate stage: take each set as soon as its "
                             "generator stage is done, until every set of the config is")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    config = yaml.safe_load((args.run / "config.yaml").read_text(encoding="utf-8"))
    settings = RunConfig.from_resolved(config)
    inputs = load_inputs(config)
    fit_train = load_imageset(args.run / "data" / "train.npz", split="train")
    evaluator = utility_evaluator(inputs, fit_train, cache_dir=args.run.joinpath(*UTILITY_ARMS),
                                  device="cpu", progress=False)
    stage_of = {set_name: f"generators/{spec.name}" for spec in settings.generators
                for set_name, _ in spec.variants()}
    expected = [*stage_of, *settings.references]
    start = time.perf_counter()
    evaluator.baseline_results()  # the real-only arms, needed by every set
    print(f"warm: real-only: {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    done: set[str] = set()
    while len(done) < len(expected):
        ready = [n for n in expected if n not in done and _ready(args.run, n, stage_of.get(n))]
        if not ready:
            if not args.wait:
                break
            time.sleep(30)
            continue
        for name in reversed(ready):  # the run itself goes forward
            start = time.perf_counter()
            images = load_imageset(args.run / "sets" / name / "samples.npz", split=name)
            evaluator.evaluate_set(name, images)
            done.add(name)
            print(f"warm: {name}: {time.perf_counter() - start:.0f} s", file=sys.stderr,
                  flush=True)
    return 0


def _ready(run: Path, name: str, stage: str | None) -> bool:
    """The set's samples are written, and (for a generated set) its stage is finished."""
    if not (run / "sets" / name / "samples.npz").exists():
        return False
    if stage is None:
        return True
    manifest = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    return manifest["stages"].get(stage, {}).get("status") == "done"


if __name__ == "__main__":
    sys.exit(main())
