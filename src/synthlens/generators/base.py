"""The one interface every generator follows, and the training harness they share.

A generator is configured by keyword parameters (architecture knobs, as in scikit-learn)
and learns from one labelled :class:`~synthlens.data.dataset.ImageSet` under a
:class:`Budget` (data, not code branches: see ``configs/budgets.yaml``)::

    gen = ConditionalVAE(latent_dim=32)
    gen.fit(train, budget, device="cpu", seed=0, workdir=run / "generators" / "cvae")
    synthetic = gen.sample(n_per_class=train.class_counts(), seed=1)

Every family declares its knobs once, as a frozen dataclass (``Generator.Knobs``): names,
types and defaults. A knob takes the constructor's parameter when one is given, else the
budget's ``options[knob]``, else the dataclass default (:attr:`Generator.knobs`); knobs
marked with :func:`sample_knob` may also be set per draw (``sample(truncation=0.7)``). The
harness checks parameters, budget options and sample knobs against that declaration, and
so does the run config (:mod:`synthlens.config`), before anything trains.

Training is a sequence of *stages* (a GAN has one, a VQ-VAE or latent diffusion model
trains its autoencoder and then its prior) of ``steps`` minibatch updates each. The harness
draws the minibatches, logs training curves, shows a progress bar and writes checkpoints
(model, optimisers, EMA, step and RNG state) atomically, so that a killed ``fit`` called
again with the same ``workdir`` continues from its last checkpoint and ends where an
uninterrupted run would have. Checkpoints load with ``weights_only=True``.

Under ``torchrun`` the same ``fit`` trains data-parallel (:mod:`.distributed`): every rank
draws the same global minibatch of ``batch_size`` rows and trains on its equal share, the
modules a family trains run in DistributedDataParallel (:meth:`Generator._parallel`),
per-sample noise is drawn for the global batch and sliced, and rank 0 alone writes
checkpoints, curves and model files and shows the progress bar. A checkpoint holds no
trace of the world size: any world size resumes it.
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

import numpy as np
import torch

from synthlens.data.dataset import ImageSet
from synthlens.data.tensors import from_model_range, to_model_range
from synthlens.device import autocast, resolve_device
from synthlens.errors import SettingError
from synthlens.generators import distributed
from synthlens.io import atomic_path, write_json
from synthlens.progress import progress_bar
from synthlens.settings import build, check_names, names, setting_fields, update

K = TypeVar("K")


@dataclass(frozen=True)
class Budget:
    """How much training a generator gets.

    ``steps`` counts minibatch updates of the main stage; families with extra stages scale
    them with ``stage_fractions`` (stage name -> share of ``steps``). ``options`` carries
    family-specific settings from the config (widths, learning rates, sampler steps...).
    """

    steps: int = 1000
    batch_size: int = 64
    lr: float = 2e-4
    checkpoint_every: int = 250
    log_every: int = 10
    stage_fractions: Mapping[str, float] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "checkpoint_every", "log_every"):
            if getattr(self, name) < 1:
                raise SettingError(name, f"must be at least 1, got {getattr(self, name)!r}")
        if not self.lr > 0:
            raise SettingError("lr", f"must be positive, got {self.lr!r}")
        for stage, share in self.stage_fractions.items():
            if not share >= 0:
                raise SettingError(f"stage_fractions.{stage}",
                                   f"must be a share >= 0, got {share!r}")

    def stage_steps(self, stage: str) -> int:
        return max(1, round(self.steps * float(self.stage_fractions.get(stage, 1.0))))

    def stage_batch_size(self, stage: str) -> int:
        """``options.stage_batch_sizes[stage]`` when given (an autoencoder and the prior
        trained on its codes want different batches), else ``batch_size``."""
        sizes = self.options.get("stage_batch_sizes") or {}
        return int(sizes.get(stage, self.batch_size))

    def option(self, name: str, default: Any) -> Any:
        return self.options.get(name, default)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["stage_fractions"] = dict(self.stage_fractions)
        out["options"] = dict(self.options)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Budget:
        """A budget from a ``budgets.yaml`` entry; names and value types are checked, the
        values kept as written (they enter the stage fingerprint and the checkpoints)."""
        build(cls, data, what="budget key")  # raises SettingError naming the key
        return cls(**dict(data))


@dataclass(frozen=True)
class HarnessOptions:
    """Budget ``options`` the harness reads itself; every other option is a family knob.

    Parameters
    ----------
    stage_batch_sizes:
        Batch size of a named stage (an autoencoder and the prior trained on its codes
        want different batches); other stages use ``batch_size``.
    mixed_precision:
        bfloat16 autocast on a GPU that supports it [true]; no effect on the CPU.
    """

    stage_batch_sizes: Mapping[str, int] = field(default_factory=dict)
    mixed_precision: bool = True

    def __post_init__(self) -> None:
        for stage, size in self.stage_batch_sizes.items():
            if size < 1:
                raise SettingError(f"stage_batch_sizes.{stage}", f"must be at least 1, "
                                                                 f"got {size!r}")


def sample_knob(default: Any) -> Any:
    """A knob field that ``sample()`` may also set for one draw (its value in the knob
    dataclass is the default of every draw)."""
    return field(default=default, metadata={"sample": True})


def sample_knob_names(knobs: type) -> tuple[str, ...]:
    """The knobs of a knob dataclass that ``sample()`` takes."""
    return tuple(f.name for f in setting_fields(knobs) if f.metadata.get("sample", False))


@dataclass(frozen=True)
class NoKnobs:
    """The knobs of a family that has none."""


def counts_per_class(n_per_class: int | Sequence[int] | np.ndarray, n_classes: int) -> np.ndarray:
    """Normalise ``sample``'s request to one count per class."""
    if isinstance(n_per_class, int | np.integer):
        counts = np.full(n_classes, int(n_per_class), dtype=np.int64)
    else:
        counts = np.asarray(n_per_class, dtype=np.int64)
    if counts.shape != (n_classes,) or (counts < 0).any():
        raise ValueError(f"n_per_class must be one non-negative count per class "
                         f"({n_classes}), got {n_per_class!r}")
    return counts


class Generator(ABC, Generic[K]):
    """Base class of every generator family.

    Subclasses set ``family``, ``Knobs`` (the dataclass of their knobs), ``size_multiple``
    and ``checkpointed``, and implement :meth:`_build` (create modules and optimisers from
    the data's shape and :attr:`knobs`), :meth:`stages`, :meth:`_train_step` and
    :meth:`_generate`.

    Parameters
    ----------
    **params:
        Knobs to pin, by name (see the family's ``Knobs``); a knob left out or ``None``
        takes the budget's ``options[knob]``, else its default.
    """

    family: ClassVar[str] = ""
    #: The family's knobs: a frozen dataclass (names, types, defaults, range checks).
    Knobs: ClassVar[type[Any]] = NoKnobs
    #: Images the family takes: square, with a side that is a multiple of this.
    size_multiple: ClassVar[int] = 4
    #: Attributes saved in checkpoints and model files: modules and optimisers (by their
    #: state dicts), dicts of them, and floats.
    checkpointed: ClassVar[tuple[str, ...]] = ()

    def __init__(self, **params: Any) -> None:
        knob_names = names(self.Knobs)
        check_names(params, knob_names, f"parameter of {self.family}")
        # Types and ranges are checked now, not when fit() builds the networks.
        build(self.Knobs, {k: v for k, v in params.items() if v is not None},
              what=f"parameter of {self.family}")
        # JSON round trip (checkpoints) turns tuples into lists: store lists from the start.
        self.params: dict[str, Any] = {
            name: list(params[name]) if isinstance(params.get(name), tuple)
            else params.get(name) for name in knob_names}
        self._knobs: tuple[Budget | None, K] | None = None
        self.image_shape: tuple[int, ...] | None = None
        self.class_names: tuple[str, ...] = ()
        self.device = "cpu"
        self.curves: dict[str, list[float]] = {}
        self.budget: Budget | None = None
        self.train_counts: list[int] | None = None  # class counts of the training set
        # (stage, step) where the last fit picked up a checkpoint; None for a fresh start
        self.resumed_from: tuple[str, int] | None = None
        #: The process group of the last fit (rank 0 of 1 outside ``torchrun``).
        self.world: distributed.World = distributed.SINGLE
        self._wrapped: dict[int, torch.nn.Module] = {}
        self._fitted = False

    # ----------------------------------------------------------------- family hooks
    @abstractmethod
    def _build(self, budget: Budget) -> None:
        """Create modules and optimisers; ``self.image_shape`` and classes are set."""

    def stages(self) -> list[str]:
        """Names of the training stages, in order."""
        return ["main"]

    @abstractmethod
    def _train_step(self, stage: str, images: torch.Tensor, labels: torch.Tensor,
                    step: int) -> dict[str, float]:
        """One update on a minibatch (images in [-1, 1], N×C×H×W, or the rows of
        :meth:`_stage_inputs`); returns losses to log."""

    @abstractmethod
    def _generate(self, labels: torch.Tensor, generator: torch.Generator,
                  knobs: K) -> torch.Tensor:
        """Images in [-1, 1] (N×C×H×W) for the given class labels, drawn with ``knobs``
        (:attr:`knobs` with this draw's sample knobs applied)."""

    def _trained(self) -> dict[str, Any]:
        """The ``checkpointed`` attributes (modules, optimisers, floats) by name."""
        return {name: getattr(self, name) for name in self.checkpointed}

    def _state(self) -> dict[str, Any]:
        """Everything to checkpoint: the state of each attribute in ``checkpointed``."""
        return {name: _state_of(getattr(self, name)) for name in self.checkpointed}

    def _load_state(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`_state` returned (after :meth:`_build`)."""
        for name in self.checkpointed:
            setattr(self, name, _restore(getattr(self, name), state[name]))

    def _balanced_stages(self) -> tuple[str, ...]:
        """Stages whose minibatches draw every class equally often (with replacement), e.g.
        per-class models that would otherwise see the minority class rarely."""
        return ()

    def _stage_inputs(self, stage: str, images: torch.Tensor) -> torch.Tensor:
        """What ``_train_step`` receives for a stage, one row per training image (called
        once per stage, after :meth:`_begin_stage`, also on resume). Default: the images;
        a family whose stage trains on a frozen model's outputs returns them here, so that
        the frozen model runs once per stage instead of once per step. It must be a
        deterministic function of ``images`` and the trained state."""
        return images

    def _begin_stage(self, stage: str, train: ImageSet) -> None:
        """Called before a stage's first step (also on resume); optional. It must not draw
        from the global RNG, or a resumed run would differ from an uninterrupted one."""

    def _parallel(self, module: torch.nn.Module, fn: Any = None, *,
                  find_unused: bool = False) -> Any:
        """What a training step calls for a forward whose loss updates ``module``:
        ``fn`` (default: ``module`` itself) as it is in a single process, the same in
        DistributedDataParallel over ``module``'s parameters under ``torchrun`` (gradients
        averaged over the ranks in the backward pass). One wrapper per module and fit;
        ``find_unused`` for a forward that leaves some parameters unused on some ranks."""
        if not self.world.parallel:
            return fn if fn is not None else module
        key = id(module)
        if key not in self._wrapped:
            self._wrapped[key] = distributed.wrap(module, fn, find_unused=find_unused)
        return self._wrapped[key]

    # ----------------------------------------------------------------- declarations
    @classmethod
    def sample_knobs(cls) -> tuple[str, ...]:
        """The knobs ``sample()`` takes per draw."""
        return sample_knob_names(cls.Knobs)

    @classmethod
    def check_image_shape(cls, shape: Sequence[int]) -> None:
        """Raise ``ValueError`` for images (``ImageSet.image_shape``) the family cannot take."""
        height, width = int(shape[0]), int(shape[1])
        if height != width or height % cls.size_multiple:
            raise ValueError(f"{cls.family} takes square images whose side is a multiple "
                             f"of {cls.size_multiple}, not {height}×{width}")

    def check_options(self, budget: Budget) -> None:
        """Refuse budget settings the family does not declare: an option that is neither
        one of its knobs nor a harness option (a misspelt option would otherwise be
        silently ignored), an option value of the wrong type or range, a stage it does
        not have (``stage_fractions``, ``options.stage_batch_sizes``)."""
        knob_names, harness = names(self.Knobs), names(HarnessOptions)
        check_names(budget.options, (*knob_names, *harness),
                    f"budget option of {self.family}", "options")
        build(self.Knobs, {k: v for k, v in budget.options.items() if k in knob_names},
              "options")
        options = build(HarnessOptions, {k: v for k, v in budget.options.items()
                                         if k in harness}, "options")
        stages = self.stages()
        check_names(budget.stage_fractions, stages, f"stage of {self.family}",
                    "stage_fractions")
        check_names(options.stage_batch_sizes, stages, f"stage of {self.family}",
                    "options.stage_batch_sizes")

    @property
    def knobs(self) -> K:
        """The knobs in force: each parameter given to the constructor (not ``None``),
        else the budget's ``options[knob]``, else the default of ``Knobs``. Budgets scale
        architectures this way while a run config can still pin any knob."""
        if self._knobs is None or self._knobs[0] is not self.budget:
            self._knobs = (self.budget, self.knobs_for(self.budget))
        return self._knobs[1]

    def knobs_for(self, budget: Budget | None, **sample: Any) -> K:
        """The knobs under ``budget``, with the sample knobs in ``sample`` applied (one
        draw's settings; anything else is refused)."""
        knob_names = names(self.Knobs)
        options = {} if budget is None else {k: v for k, v in budget.options.items()
                                             if k in knob_names}
        given = {k: v for k, v in self.params.items() if v is not None}
        knobs: K = build(self.Knobs, {**options, **given}, what=f"knob of {self.family}")
        if sample:
            check_names(sample, self.sample_knobs(), f"sample knob of {self.family}")
            knobs = update(knobs, sample)
        return knobs

    # ----------------------------------------------------------------- public API
    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def channels(self) -> int:
        assert self.image_shape is not None
        return 3 if len(self.image_shape) == 3 else 1

    def fit(self, train: ImageSet, budget: Budget, *, device: str = "cpu", seed: int = 0,
            workdir: str | os.PathLike[str] | None = None, progress: bool = True) -> Generator:
        """Train on ``train``; resume from ``workdir/checkpoint.pt`` when it exists."""
        self.image_shape = train.image_shape
        self.class_names = train.class_names
        self.train_counts = train.class_counts().tolist()
        self.device = resolve_device(device)
        self.budget = budget
        self.check_image_shape(train.image_shape)
        self.check_options(budget)
        world = self.world = distributed.join(self.device)
        self.device = distributed.rank_device(self.device, world)
        stages = self.stages()
        for stage in stages:
            world.check_batch("batch_size" if budget.stage_batch_size(stage) == budget.batch_size
                              else f"options.stage_batch_sizes.{stage}",
                              budget.stage_batch_size(stage))
        torch.manual_seed(seed)  # the same on every rank: the same initial weights
        self._build(budget)
        self._wrapped = {}
        if world.parallel:
            for module in _modules(self._trained()):
                distributed.synchronise(module)
        workdir = Path(workdir) if workdir is not None else None
        start_stage, start_step = 0, 0
        batch_rng = torch.Generator().manual_seed(seed)
        self.curves = {}
        self.resumed_from = None
        checkpoint = workdir / "checkpoint.pt" if workdir else None
        if checkpoint is not None and checkpoint.exists():
            saved = torch.load(checkpoint, map_location=self.device, weights_only=True)
            if (saved["meta"]["budget"] != budget.to_dict() or saved["meta"]["seed"] != seed
                    or saved["meta"]["params"] != self._meta()["params"]):
                raise RuntimeError(f"{checkpoint} was written with another budget, seed or "
                                   "parameters; use --force to start again")
            self._load_state(saved["state"])
            start_stage, start_step = saved["stage_index"], saved["step"]
            batch_rng.set_state(saved["batch_rng"])
            torch.set_rng_state(saved["torch_rng"])
            if "cuda_rng" in saved and self.device.startswith("cuda"):
                torch.cuda.set_rng_state(saved["cuda_rng"].cpu(), self.device)
            self.curves = json.loads(saved["curves"])
            # a checkpoint written after the last step points one past the last stage
            self.resumed_from = ((stages[start_stage], start_step) if start_stage < len(stages)
                                 else (stages[-1], budget.stage_steps(stages[-1])))
        images = to_model_range(train.images)
        labels = torch.from_numpy(train.labels)
        mixed = bool(budget.option("mixed_precision", True))
        counts = torch.bincount(labels, minlength=len(self.class_names)).double()
        balanced_weights = 1.0 / counts[labels]  # each class's images share weight 1
        for stage_index in range(start_stage, len(stages)):
            stage = stages[stage_index]
            n_steps = budget.stage_steps(stage)
            batch_size = budget.stage_batch_size(stage)
            first = start_step if stage_index == start_stage else 0
            self._begin_stage(stage, train)
            inputs = self._stage_inputs(stage, images)
            bar = progress_bar(range(first, n_steps), desc=f"{self.family}:{stage}",
                               leave=False, disable=not progress or not world.main,
                               initial=first, total=n_steps)
            rows = world.rows(batch_size)  # this rank's share of every global batch
            balanced = stage in self._balanced_stages()
            for step in bar:
                if balanced:
                    idx = torch.multinomial(balanced_weights, batch_size, replacement=True,
                                            generator=batch_rng)
                else:
                    idx = torch.randint(0, len(images), (batch_size,), generator=batch_rng)
                idx = idx[rows]
                with autocast(self.device, mixed), distributed.sharded(world):
                    logs = self._train_step(stage, inputs[idx].to(self.device),
                                            labels[idx].to(self.device), step)
                if step % budget.log_every == 0 or step == n_steps - 1:
                    logs = distributed.mean_over_ranks(logs, world, self.device)
                    self._log(stage, step, logs)
                    bar.set_postfix({k: f"{v:.3g}" for k, v in logs.items()})
                done = step + 1
                if checkpoint is not None and world.main and (
                        done % budget.checkpoint_every == 0 or done == n_steps):
                    next_stage, next_step = ((stage_index, done) if done < n_steps
                                             else (stage_index + 1, 0))
                    self._write_checkpoint(checkpoint, seed, next_stage, next_step, batch_rng)
                    write_json(checkpoint.parent / "curves.json", self.curves)
        self._fitted = True
        self._wrapped = {}
        if workdir is not None and world.main:
            write_json(workdir / "curves.json", self.curves)
        distributed.barrier(world)  # every rank leaves fit with the files written
        return self

    @torch.no_grad()
    def sample(self, n_per_class: int | Sequence[int] | np.ndarray | None = None, *,
               seed: int = 0, batch_size: int = 256, name: str | None = None,
               **kwargs: Any) -> ImageSet:
        """Draw ``n_per_class`` images of every class (an int, or one count per class;
        default: the class counts of the set the model was trained on).

        The same seed and batch size give the same images (noise is drawn batch by batch, so
        another batch size draws other images).
        The family's sample knobs (``truncation``, ``guidance_scale``...: see
        :meth:`sample_knobs`) pass through ``kwargs``; any other name is refused.
        """
        if not self._fitted:
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit() or load()")
        if n_per_class is None:  # default: the training set's class counts
            if self.train_counts is None:
                raise ValueError("n_per_class is needed: this model does not record the "
                                 "class counts it was trained on")
            n_per_class = self.train_counts
        knobs = self.knobs_for(self.budget, **kwargs)
        counts = counts_per_class(n_per_class, self.n_classes)
        labels = torch.repeat_interleave(torch.arange(self.n_classes), torch.from_numpy(counts))
        generator = torch.Generator(device="cpu").manual_seed(seed)
        mixed = self.budget is None or bool(self.budget.option("mixed_precision", True))
        chunks = []
        for start in range(0, len(labels), batch_size):
            batch = labels[start:start + batch_size].to(self.device)
            with autocast(self.device, mixed):
                chunks.append(from_model_range(self._generate(batch, generator, knobs)))
        assert self.image_shape is not None
        images = (np.concatenate(chunks) if chunks
                  else np.zeros((0, *self.image_shape), dtype=np.uint8))
        return ImageSet(images, labels.numpy(), self.class_names,
                        split=name or self.family, source=f"generator:{self.family}")

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the fitted generator (weights + what is needed to rebuild it) atomically;
        after a data-parallel fit only rank 0 writes (every rank holds the same weights)."""
        if not self._fitted or self.budget is None:
            raise RuntimeError("save() needs a fitted generator")
        if not self.world.main:
            return
        payload = {"meta": self._meta(), "state": self._state(),
                   "curves": json.dumps(self.curves)}
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)

    @classmethod
    def load(cls, path: str | os.PathLike[str], device: str = "cpu") -> Generator:
        """Rebuild a generator saved with :meth:`save` (``weights_only=True``)."""
        payload = torch.load(path, map_location=resolve_device(device), weights_only=True)
        meta = payload["meta"]
        if cls.family and meta["family"] != cls.family:
            raise ValueError(f"{path} holds a {meta['family']} generator, not {cls.family}")
        self = cls(**json.loads(meta["params"]))
        self.image_shape = tuple(meta["image_shape"])
        self.class_names = tuple(meta["class_names"])
        self.train_counts = meta.get("train_counts")
        self.device = resolve_device(device)
        self.budget = Budget.from_dict(json.loads(meta["budget_json"]))
        self._build(self.budget)
        self._load_state(payload["state"])
        self.curves = json.loads(payload["curves"])
        self._fitted = True
        return self

    # ----------------------------------------------------------------- internals
    def _meta(self) -> dict[str, Any]:
        assert self.budget is not None and self.image_shape is not None
        return {"family": self.family, "params": json.dumps(self.params, sort_keys=True),
                "image_shape": list(self.image_shape), "class_names": list(self.class_names),
                "train_counts": self.train_counts,
                "budget_json": json.dumps(self.budget.to_dict(), sort_keys=True)}

    def _log(self, stage: str, step: int, logs: Mapping[str, float]) -> None:
        prefix = "" if len(self.stages()) == 1 else f"{stage}/"
        self.curves.setdefault(f"{prefix}step", []).append(step)
        for key, value in logs.items():
            self.curves.setdefault(f"{prefix}{key}", []).append(float(value))

    def _write_checkpoint(self, path: Path, seed: int, stage_index: int, step: int,
                          batch_rng: torch.Generator) -> None:
        assert self.budget is not None
        meta = self._meta()
        meta.update(seed=seed, budget=self.budget.to_dict())
        payload = {"meta": meta, "state": self._state(), "stage_index": stage_index,
                   "step": step, "batch_rng": batch_rng.get_state(),
                   "torch_rng": torch.get_rng_state(), "curves": json.dumps(self.curves)}
        if self.device.startswith("cuda"):
            payload["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)


def _modules(value: Any) -> list[torch.nn.Module]:
    """The modules in a ``checkpointed`` attribute (a module, or a dict of them)."""
    if isinstance(value, torch.nn.Module):
        return [value]
    if isinstance(value, dict):
        return [m for item in value.values() for m in _modules(item)]
    return []


def _state_of(value: Any) -> Any:
    """What a checkpoint stores for one ``checkpointed`` attribute."""
    if hasattr(value, "state_dict"):
        return value.state_dict()
    if isinstance(value, dict):
        return {key: _state_of(item) for key, item in value.items()}
    if isinstance(value, float):
        return torch.tensor(value, dtype=torch.float64)
    raise TypeError(f"cannot checkpoint a {type(value).__name__}")


def _restore(current: Any, saved: Any) -> Any:
    """``current`` (a built module, optimiser, dict of them, or float) loaded from ``saved``."""
    if hasattr(current, "load_state_dict"):
        current.load_state_dict(saved)
        return current
    if isinstance(current, dict):
        return {key: _restore(item, saved[key]) for key, item in current.items()}
    if isinstance(current, float):
        return float(saved)
    raise TypeError(f"cannot restore a {type(current).__name__}")


def ema_update(target: torch.nn.Module, source: torch.nn.Module, decay: float) -> None:
    """Exponential moving average of parameters (buffers copied), as used for GAN and
    diffusion sampling weights."""
    with torch.no_grad():
        for t, s in zip(target.parameters(), source.parameters(), strict=True):
            t.lerp_(s, 1.0 - decay)
        for t, s in zip(target.buffers(), source.buffers(), strict=True):
            t.copy_(s)
