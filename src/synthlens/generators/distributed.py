"""Data-parallel training of the generator harness under ``torchrun``.

When a process group is initialised (or ``torchrun`` set ``WORLD_SIZE`` > 1 and
:func:`join` initialises it: ``gloo`` on the CPU, ``nccl`` on CUDA), every rank draws the
same global minibatch (the same seeded sampler) and trains on its own contiguous share of
it; modules run wrapped in :class:`~torch.nn.parallel.DistributedDataParallel`, which
averages the gradients, so with equal shares the update is that of the loss averaged over
the global batch. Everything random that is drawn per sample is drawn for the global batch
and sliced (:func:`randn_like` and friends, :class:`ShardedDropout`; per-class models run
every class of the global batch, :func:`class_subsets`), so every rank's torch RNG stays in
step with the others and with a single-process run; a checkpoint therefore holds one state
that any world size can resume from.

Statistics over the batch are those of the global batch: BatchNorm layers are replaced by
:class:`SyncBatchNorm` (global mean and variance, on CPU and GPU alike), StyleGAN2's
minibatch standard deviation reads :func:`gather_rows`, and the VQ codebooks' EMA
statistics are all-reduced (``VectorQuantizer.synchronise``). On the CPU a fit by N ranks
thus ends where a single process's ends, to float rounding (tests/test_generators_ddp.py).
"""

from __future__ import annotations

import inspect
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from torch import distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from synthlens.errors import SettingError
from synthlens.nets.quantizer import VectorQuantizer


@dataclass(frozen=True)
class World:
    """This process's place in the process group (``size == 1``: no group)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """The rank that writes checkpoints, curves and model files and shows progress."""
        return self.rank == 0

    @property
    def parallel(self) -> bool:
        return self.size > 1

    def rows(self, n_global: int) -> slice:
        """This rank's share of a global batch of ``n_global`` rows."""
        share = n_global // self.size
        return slice(self.rank * share, (self.rank + 1) * share)

    def check_batch(self, what: str, batch_size: int) -> None:
        """Refuse a global batch that does not split into equal shares: only equal shares
        make the average of the ranks' mean losses the mean over the global batch."""
        if batch_size % self.size:
            raise SettingError(what, f"{batch_size} does not split into {self.size} equal "
                                     f"shares (one per rank); use a multiple of {self.size}")


SINGLE = World()


def join(device: str) -> World:
    """The world this process trains in: the initialised process group, else the one
    ``torchrun`` describes in ``WORLD_SIZE``/``RANK`` (initialised here, ``gloo`` for the
    CPU, ``nccl`` for CUDA), else a single process."""
    if not dist.is_available():
        return SINGLE
    if not dist.is_initialized():
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return SINGLE
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    size = dist.get_world_size()
    if size == 1:
        return SINGLE
    return World(rank=dist.get_rank(), size=size,
                 local_rank=int(os.environ.get("LOCAL_RANK", dist.get_rank())))


def rank_device(device: str, world: World) -> str:
    """``cuda`` without an index means this rank's GPU (``LOCAL_RANK``) in a group."""
    if world.parallel and device == "cuda":
        torch.cuda.set_device(world.local_rank)
        return f"cuda:{world.local_rank}"
    return device


class _AllReduceSum(torch.autograd.Function):
    """Sum over the ranks, differentiable (the gradient is summed over the ranks too, and
    that again differentiably, for the double backward of an R1 penalty)."""

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor) -> torch.Tensor:
        out = tensor.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return _AllReduceSum.apply(grad)


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` summed over the ranks, with its gradient summed over the ranks."""
    return _AllReduceSum.apply(tensor)


# --------------------------------------------------------------------------- shares of a batch
@dataclass(frozen=True)
class _Share:
    """Which rows of a global batch this rank holds: its even share (``subset`` None), or
    rows ``[offset, offset + n)`` of a subset of ``total`` rows (one class's samples)."""

    world: World
    subset: tuple[int, int] | None = None  # (offset, total)

    def rows(self, n: int) -> tuple[int, slice]:
        """(global rows, this rank's slice of them) for ``n`` local rows."""
        if self.subset is None:
            return n * self.world.size, slice(self.world.rank * n, (self.world.rank + 1) * n)
        offset, total = self.subset
        return total, slice(offset, offset + n)


class _Shares(threading.local):
    """The shares in force, innermost last, per thread (units may train side by side)."""

    def __init__(self) -> None:
        self.stack = [_Share(SINGLE)]


_SHARES = _Shares()


def _current() -> _Share:
    return _SHARES.stack[-1]


@contextmanager
def _pushed(share: _Share) -> Iterator[None]:
    _SHARES.stack.append(share)
    try:
        yield
    finally:
        _SHARES.stack.pop()


def sharded(world: World) -> AbstractContextManager[None]:
    """Within the block, the per-sample draws below draw for the global batch (``size``
    times the local rows) and return this rank's rows; so do dropout masks
    (:class:`ShardedDropout`) and :func:`gather_rows` gathers the global batch."""
    return _pushed(_Share(world))


def class_subsets(labels: torch.Tensor, n_classes: int
                  ) -> list[tuple[int, torch.Tensor, AbstractContextManager[None]]]:
    """(class, mask of its rows, context) for every class in the global batch, in order,
    also where this rank holds none of its rows: per-class models run for each, and within
    the context their per-sample draws are those of the class's rows in the global batch
    (their offset among the class's rows: the counts of the ranks before this one)."""
    world = _current().world
    if not world.parallel:
        return [(c, labels == c, nullcontext()) for c in labels.unique().tolist()]
    counts = torch.zeros(world.size, n_classes, dtype=torch.long, device=labels.device)
    counts[world.rank] = torch.bincount(labels, minlength=n_classes)
    dist.all_reduce(counts)
    totals = counts.sum(0).tolist()
    offsets = counts[:world.rank].sum(0).tolist()
    return [(c, labels == c, _pushed(_Share(world, (offsets[c], totals[c]))))
            for c in range(n_classes) if totals[c]]


def _global(shape: tuple[int, ...], draw: Callable[[tuple[int, ...]], torch.Tensor]
            ) -> torch.Tensor:
    share = _current()
    if not share.world.parallel:
        return draw(shape)
    total, rows = share.rows(shape[0])
    return draw((total, *shape[1:]))[rows]


def gather_rows(x: torch.Tensor) -> torch.Tensor:
    """The global batch of ``x`` (every rank's rows, in order; differentiable: each rank's
    rows get the gradient of every rank's loss), for statistics over the batch such as
    StyleGAN2's minibatch standard deviation. ``x`` itself in a single process."""
    share = _current()
    if not share.world.parallel:
        return x
    total, rows = share.rows(x.shape[0])
    before = x.new_zeros((rows.start, *x.shape[1:]))
    after = x.new_zeros((total - rows.stop, *x.shape[1:]))
    return all_reduce_sum(torch.cat([before, x, after]))  # one non-zero term per row: exact


def local_rows(x: torch.Tensor, n: int) -> torch.Tensor:
    """This rank's ``n`` rows of a global-batch tensor (as from :func:`gather_rows`)."""
    share = _current()
    return x[share.rows(n)[1]] if share.world.parallel else x


def randn(*shape: int, device: torch.device | str, dtype: torch.dtype | None = None
          ) -> torch.Tensor:
    """``torch.randn(shape)`` per sample (rows = samples of this rank's share)."""
    return _global(tuple(shape), lambda s: torch.randn(s, device=device, dtype=dtype))


def randn_like(x: torch.Tensor) -> torch.Tensor:
    """``torch.randn_like(x)`` per sample (rows of ``x`` = samples of this rank's share)."""
    return _global(tuple(x.shape), lambda s: torch.randn(s, device=x.device, dtype=x.dtype))


def rand(n: int, *, device: torch.device | str) -> torch.Tensor:
    """``torch.rand(n)``, one value per sample."""
    return _global((n,), lambda s: torch.rand(s, device=device))


def randint(high: int, n: int, *, device: torch.device | str) -> torch.Tensor:
    """``torch.randint(0, high, (n,))``, one value per sample."""
    return _global((n,), lambda s: torch.randint(0, high, s, device=device))


# --------------------------------------------------------------------------- modules
class _Forward(nn.Module):
    """``fn`` as the forward of a module holding ``module``'s parameters, so that DDP can
    wrap a loss computed by any method (``net.loss``, a family's own function)."""

    def __init__(self, module: nn.Module, fn: Callable[..., Any]) -> None:
        super().__init__()
        self.module = module
        self.fn = fn

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)


def wrap(module: nn.Module, fn: Callable[..., Any] | None, *,
         find_unused: bool = False) -> nn.Module:
    """``module`` (or ``fn`` over its parameters) in DistributedDataParallel. The module
    sits on this rank's device already, and inputs are passed through as they are (no
    ``device_ids``: a tensor an R1 penalty differentiates against stays the same tensor).
    Buffers are not broadcast from rank 0 at each forward: batch statistics and codebooks
    are reduced across ranks instead, so every rank's buffers are already the same."""
    target = _Forward(module, fn if fn is not None else module)
    return DistributedDataParallel(target, find_unused_parameters=find_unused, **_NO_SYNC)


# torch 2.13 renamed DDP's buffer broadcast (and keeps the old name, with a warning)
_NO_SYNC = ({"forward_sync_buffers": False}
            if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
            else {"broadcast_buffers": False})


class SyncBatchNorm(nn.BatchNorm2d):
    """BatchNorm over the global batch, for any backend (``torch.nn.SyncBatchNorm`` needs
    a GPU): in training the mean and (two-pass) variance are all-reduced across ranks,
    and so are their gradients; running statistics follow the global batch as
    ``nn.BatchNorm`` does over a single process's batch. Same parameters, buffers and
    state-dict keys as ``nn.BatchNorm1d``/``2d``."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() not in (2, 3, 4, 5):
            raise ValueError(f"expected 2D to 5D input (got {input.dim()}D input)")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(input)
        dims = [0, *range(2, input.dim())]
        shape = [1, -1] + [1] * (input.dim() - 2)
        x = input.float()
        count = torch.tensor(float(x.numel() // x.shape[1]), device=x.device)
        total = all_reduce_sum(torch.cat([x.sum(dims), count[None]]))
        n = total[-1].detach()
        mean = total[:-1] / n
        centred = x - mean.view(shape)
        var = all_reduce_sum(centred.square().sum(dims)) / n
        out = centred * (var + self.eps).rsqrt().view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats and self.running_mean is not None \
                and self.running_var is not None and self.num_batches_tracked is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = (1.0 / float(self.num_batches_tracked) if self.momentum is None
                            else self.momentum)
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), momentum)
                unbiased = var.detach() * n / (n - 1).clamp_min(1)
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), momentum)
        return out.to(input.dtype)


class ShardedDropout(nn.Dropout):
    """Dropout whose mask is drawn for the global batch and sliced (rows = this rank's
    share), as :func:`randn_like`: on the CPU the mask of every sample is the one a single
    process draws (``torch.nn.Dropout`` draws ``bernoulli_(1 - p)`` over its input and
    divides by ``1 - p``: so does this). A dropout over a subset of the rows (one class's
    samples) gets a valid mask too, but not a single process's."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0 or not _current().world.parallel:
            return super().forward(input)
        if self.p == 1:
            return input * 0
        noise = _global(tuple(input.shape), lambda s: torch.empty(
            s, dtype=input.dtype, device=input.device).bernoulli_(1 - self.p))
        return input * noise.div_(1 - self.p)


def synchronise(module: nn.Module) -> nn.Module:
    """Make ``module`` data-parallel in place: BatchNorm layers become
    :class:`SyncBatchNorm` (the same parameters and statistics), dropout layers
    :class:`ShardedDropout`, and VQ codebooks all-reduce their EMA statistics."""
    for name, child in module.named_children():
        if type(child) is nn.Dropout and child.p > 0:
            setattr(module, name, ShardedDropout(child.p).train(child.training))
        elif isinstance(child, nn.BatchNorm1d | nn.BatchNorm2d) \
                and not isinstance(child, SyncBatchNorm):
            replacement = SyncBatchNorm(child.num_features, child.eps, child.momentum,
                                        child.affine, child.track_running_stats)
            # the same Parameter and buffer objects: optimisers built on them stay valid
            for key, value in child.named_parameters(recurse=False):
                setattr(replacement, key, value)
            for key, value in child.named_buffers(recurse=False):
                setattr(replacement, key, value)
            replacement.train(child.training)
            setattr(module, name, replacement)
        else:
            if isinstance(child, VectorQuantizer):
                child.synchronise = True
            synchronise(child)
    return module


def mean_over_ranks(logs: dict[str, float], world: World, device: str) -> dict[str, float]:
    """Logged losses averaged over the ranks (the mean over the global batch for a mean
    loss); every rank must call this at the same steps with the same keys."""
    if not world.parallel or not logs:
        return logs
    values = torch.tensor([float(v) for v in logs.values()], dtype=torch.float64,
                          device=device)
    dist.all_reduce(values)
    return dict(zip(logs, (values / world.size).tolist(), strict=True))


def barrier(world: World) -> None:
    if world.parallel:
        dist.barrier()
