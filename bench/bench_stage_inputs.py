"""Time the stages that train on a frozen model's outputs, with the harness hook
``Generator._stage_inputs`` (encode the split once per stage) against its peer, encoding
every minibatch inside the step (what the code did before the hook). Same models, same
minibatches, the two variants interleaved so that machine drift hits both alike.

    python bench/bench_stage_inputs.py runs/pneumonia-std [--steps 150] [--rounds 3]

It reloads the run's VQ-VAE-2 and latent-diffusion ``model.pt`` (trained by
``synthlens run ... --stop-after generate``), so the networks have the sizes of the run's
budget. The cached variant's time includes the one-off encoding of the whole split.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import torch

from synthlens.data.npz import load_imageset
from synthlens.data.tensors import to_model_range
from synthlens.generators import Generator, load_generator

STAGES = {"vqvae2": "bottom_prior", "ldm": "diffusion"}


def time_variant(model: Generator, stage: str, images: torch.Tensor, labels: torch.Tensor,
                 batches: list[torch.Tensor], cached: bool) -> float:
    start = time.perf_counter()
    rows = model._stage_inputs(stage, images) if cached else None
    for step, idx in enumerate(batches):
        inputs = rows[idx] if rows is not None else model._stage_inputs(stage, images[idx])
        model._train_step(stage, inputs.to(model.device), labels[idx], step)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    train = load_imageset(args.run / "data" / "train.npz")
    images, labels = to_model_range(train.images), torch.from_numpy(train.labels)
    print(f"# {platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} "
          f"threads, {len(train)} training images, {args.steps} steps x {args.rounds} rounds")
    print("| generator (stage) | batch | hook: encode once (s) | peer: encode every step (s) "
          "| peer / hook |")
    print("|---|---|---|---|---|")
    for name, stage in STAGES.items():
        model = load_generator(args.run / "generators" / name / "model.pt")
        assert model.budget is not None
        model._begin_stage(stage, train)
        batch = model.budget.stage_batch_size(stage)
        rng = torch.Generator().manual_seed(0)
        batches = [torch.randint(0, len(images), (batch,), generator=rng)
                   for _ in range(args.steps)]
        hook, peer = [], []
        for _ in range(args.rounds):
            hook.append(time_variant(model, stage, images, labels, batches, cached=True))
            peer.append(time_variant(model, stage, images, labels, batches, cached=False))
        h, p = statistics.median(hook), statistics.median(peer)
        print(f"| {name} ({stage}) | {batch} | {h:.1f} | {p:.1f} | {p / h:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
