"""Data-parallel generator training under ``torchrun`` (CPU, ``gloo``, 2 processes).

One ``torchrun --nproc_per_node=2`` launch runs this file as its worker script (the jobs
below, in one process group) next to single-process fits in the test process:

- every family trained by 2 ranks on shares of the global batch ends with the weights,
  buffers and optimiser moments of the single-process fit (1e-5): DCGAN (BatchNorm over
  the global batch), the cVAE, StyleGAN2 (lazy R1, minibatch std over the global batch),
  VQ-VAE-2 (EMA codebooks and their restarts, per-class priors with dropout, a class
  missing from one rank's share), latent diffusion and DDPM (timesteps, noise, label
  dropout and dropout drawn for the global batch); rank 0's curves equal the
  single-process curves;
- a fit killed after a checkpoint resumes under the other world size (2 -> 1, 1 -> 2) and
  ends where the uninterrupted fit does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

SRC = Path(__file__).resolve().parents[1] / "src"
BUDGETS = SRC / "synthlens" / "configs" / "budgets.yaml"
EXACT = ("dcgan", "cvae", "ddpm", "ldm", "vqvae2", "stylegan2")  # 2 ranks = 1 process


class Killed(Exception):
    """Stands for the process dying: raised at the start of step ``kill_at``, after the
    checkpoint written when step ``kill_at - 1`` finished."""


def tiny_set() -> Any:
    """24 smooth 16×16 grey images, 16 of class 0 and 8 of class 1."""
    from synthlens.data.dataset import ImageSet

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:16, :16]
    labels = np.array([0] * 16 + [1] * 8)
    images = []
    for label in labels:
        cy, cx = rng.uniform(4, 12, 2)
        radius = 3 + 2 * label + rng.uniform(0, 1)
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * radius ** 2))
        images.append(255 * np.clip(blob + rng.normal(0, 0.05, blob.shape), 0, 1))
    return ImageSet(np.stack(images).astype(np.uint8), labels, ("a", "b"))


def budget(family: str) -> Any:
    """The smoke budget of ``family`` cut to a few steps of a batch of 8."""
    from synthlens.generators import Budget

    settings = dict(yaml.safe_load(BUDGETS.read_text())["smoke"]["generators"][family])
    steps = 4 if family in ("dcgan", "cvae") else 2
    settings.update(steps=steps, batch_size=8, checkpoint_every=2, log_every=1)
    if family == "stylegan2":
        settings["options"] = {**settings["options"], "r1_interval": 2}  # R1 at step 0
    if family == "vqvae2":
        # Per-class priors (with dropout) on batches of 4: the draws of seed 0 give one
        # rank no row of a class (top prior, step 0; bottom prior, step 0), and the ranks
        # unequal counts of it. The key bias of attention has an analytically zero
        # gradient, which Adam turns from float rounding into steps of up to prior_lr:
        # keep it small.
        settings["stage_fractions"] = {"vqvae": 1.0, "top_prior": 1.0, "bottom_prior": 1.0}
        settings["options"] = {**settings["options"], "prior_lr": 1e-4,
                               "stage_batch_sizes": {"top_prior": 4, "bottom_prior": 4}}
    return Budget.from_dict(settings)


def fit(family: str, workdir: Path | None, kill_at: int | None = None) -> Any:
    from synthlens.generators import get_generator

    gen = get_generator(family)
    if kill_at is not None:
        train_step = gen._train_step

        def dying(stage: str, images: torch.Tensor, labels: torch.Tensor,
                  step: int) -> dict[str, float]:
            if step == kill_at:
                raise Killed
            return train_step(stage, images, labels, step)

        gen._train_step = dying  # type: ignore[method-assign]
        with pytest.raises(Killed):  # also outside pytest, in the torchrun worker
            gen.fit(tiny_set(), budget(family), seed=0, workdir=workdir, progress=False)
        return gen
    return gen.fit(tiny_set(), budget(family), seed=0, workdir=workdir, progress=False)


def flat(state: Any, prefix: str = "") -> dict[str, torch.Tensor]:
    """Every number of a generator's ``_state()`` (weights, buffers, optimiser moments)."""
    if isinstance(state, torch.Tensor):
        return {prefix: state.detach().double()}
    if isinstance(state, dict):
        return {k: v for key, item in state.items() for k, v in flat(item, f"{prefix}/{key}")
                .items()}
    if isinstance(state, list | tuple):
        return {k: v for i, item in enumerate(state) for k, v in flat(item, f"{prefix}/{i}")
                .items()}
    if isinstance(state, int | float | bool):
        return {prefix: torch.tensor(float(state), dtype=torch.float64)}
    return {}


def saved(path: Path) -> dict[str, torch.Tensor]:
    return flat(torch.load(path, weights_only=True)["state"])


def max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """The largest |a - b| over every tensor, relative to the tensor's largest entry where
    that exceeds 1: weights are compared absolutely; Adam's moments of the cVAE's loss,
    summed over pixels, reach 20, and float32 rounds at 1e-7 of the terms it sums."""
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max() / a[k].abs().max().clamp_min(1))
               if a[k].numel() else 0.0 for k in a)


# --------------------------------------------------------------------------- the worker
def worker(jobs_file: str) -> None:
    """One rank of the torchrun launch: run every job, save this rank's final state."""
    jobs = json.loads(Path(jobs_file).read_text())
    rank = int(os.environ["RANK"])
    for job in jobs:
        gen = fit(job["family"], Path(job["workdir"]) if job["workdir"] else None,
                  job.get("kill_at"))
        assert gen.world.size == 2 and gen.world.rank == rank
        if job.get("kill_at") is None:
            torch.save({"state": gen._state(), "resumed_from": gen.resumed_from},
                       Path(job["out"]) / f"rank{rank}.pt")


# --------------------------------------------------------------------------- the tests
@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Single-process fits here, then one 2-process torchrun launch of :func:`worker`."""
    root = tmp_path_factory.mktemp("ddp")
    dirs = {name: root / name for name in (
        *[f"{f}-1" for f in EXACT], *[f"{f}-2" for f in EXACT],
        "dcgan-killed-1", "cvae-killed-2", "dcgan-resumed-2")}
    for path in dirs.values():
        path.mkdir()
    for family in EXACT:
        gen = fit(family, dirs[f"{family}-1"])
        torch.save({"state": gen._state(), "resumed_from": gen.resumed_from},
                   dirs[f"{family}-1"] / "rank0.pt")
    fit("dcgan", dirs["dcgan-killed-1"], kill_at=2)  # written by 1 process, resumed by 2
    jobs = [*({"family": f, "workdir": str(dirs[f"{f}-2"]), "out": str(dirs[f"{f}-2"])}
              for f in EXACT),
            {"family": "cvae", "workdir": str(dirs["cvae-killed-2"]), "kill_at": 2},
            {"family": "dcgan", "workdir": str(dirs["dcgan-killed-1"]),
             "out": str(dirs["dcgan-resumed-2"])}]
    (root / "jobs.json").write_text(json.dumps(jobs))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get(
        "PYTHONPATH", "")]), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         __file__, str(root / "jobs.json")],
        capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    return dirs


@pytest.mark.parametrize("family", EXACT)
def test_two_ranks_train_as_one_process_on_the_global_batch(runs: dict[str, Path],
                                                            family: str) -> None:
    """Weights, buffers (BatchNorm statistics, codebooks, EMA copies) and optimiser
    moments after the same steps: both ranks hold the single process's."""
    from synthlens.generators import get_generator

    single = saved(runs[f"{family}-1"] / "rank0.pt")
    for rank in (0, 1):
        parallel = saved(runs[f"{family}-2"] / f"rank{rank}.pt")
        assert max_difference(single, parallel) <= 1e-5, (family, rank)
    # and training moved the weights away from their initial values
    fresh = get_generator(family)
    fresh.image_shape, fresh.class_names, fresh.budget = (16, 16), ("a", "b"), budget(family)
    torch.manual_seed(0)
    fresh._build(fresh.budget)
    initial = flat(fresh._state())
    weights = sorted(k for k in initial.keys() & single.keys() if initial[k].numel())
    assert max(float((initial[k] - single[k]).abs().max()) for k in weights) > 0
    # rank 0 logged the losses over the global batch, as the single process did
    curves_1 = json.loads((runs[f"{family}-1"] / "curves.json").read_text())
    curves_2 = json.loads((runs[f"{family}-2"] / "curves.json").read_text())
    assert curves_1.keys() == curves_2.keys()
    for key in curves_1:
        np.testing.assert_allclose(curves_2[key], curves_1[key], rtol=1e-5, atol=1e-5)
    # rank 0 alone wrote the files
    assert sorted(p.name for p in runs[f"{family}-2"].iterdir()) == [
        "checkpoint.pt", "curves.json", "rank0.pt", "rank1.pt"]


def test_a_killed_fit_resumes_under_another_world_size(runs: dict[str, Path]) -> None:
    # 1 process killed after step 2 of 4, resumed by 2 ranks
    for rank in (0, 1):
        resumed = torch.load(runs["dcgan-resumed-2"] / f"rank{rank}.pt", weights_only=True)
        assert resumed["resumed_from"] == ("main", 2)
        assert max_difference(saved(runs["dcgan-1"] / "rank0.pt"),
                              flat(resumed["state"])) <= 1e-5
    # 2 ranks killed after step 2 of 4, resumed by 1 process
    checkpoint = torch.load(runs["cvae-killed-2"] / "checkpoint.pt", weights_only=True)
    assert checkpoint["step"] == 2
    gen = fit("cvae", runs["cvae-killed-2"])
    assert gen.resumed_from == ("main", 2) and gen.world.size == 1
    assert max_difference(saved(runs["cvae-1"] / "rank0.pt"), flat(gen._state())) <= 1e-5


def test_a_batch_that_does_not_split_into_equal_shares_is_refused() -> None:
    from synthlens.errors import SettingError
    from synthlens.generators.distributed import World

    with pytest.raises(SettingError, match="batch_size: 9 does not split into 2 equal"):
        World(rank=0, size=2).check_batch("batch_size", 9)
    World(rank=1, size=2).check_batch("batch_size", 8)
    assert World(rank=1, size=2).rows(8) == slice(4, 8)


if __name__ == "__main__":
    worker(sys.argv[1])
