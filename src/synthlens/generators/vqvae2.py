"""VQ-VAE-2 (Razavi, van den Oord and Vinyals 2019, "Generating Diverse High-Fidelity
Images with VQ-VAE-2").

The two-level autoencoder is :class:`synthlens.nets.vqvae2.VQVAE2Net` (shared with the
``vqvae_codes`` feature extractor): the bottom encoder downsamples by 4, the top encoder by
a further 2, and both code maps use EMA codebooks with commitment loss beta = 0.25.

Generation never touches real images: an autoregressive prior draws the top code map, a
second one draws the bottom map conditioned on the top map, and the decoder renders them.
As in the study, each class gets its own pair of priors (``prior_per_class``; the
autoencoder and its codebooks are shared, so the code maps of all classes live in one
space); ``prior_per_class=False`` trains one pair conditioned on a class token. The priors
are gated PixelCNNs (``prior="pixelcnn"``, the paper's family without PixelSNAIL's
attention) or small causal transformers with cached sampling (``prior="transformer"``, the
default: on a CPU it samples a few thousand maps in seconds instead of minutes).

At 28×28 the image is reflect-padded to 32×32, giving 4×4 top and 8×8 bottom code maps
(64 / 256 px inputs give 8×8 / 16×16 and 32×32 / 64×64, as in the paper).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Literal

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from synthlens.data.dataset import ImageSet
from synthlens.data.tensors import crop_to, frozen_outputs, pad_to, to_model_range, working_size
from synthlens.generators import distributed
from synthlens.generators.base import Budget, Generator, sample_knob
from synthlens.generators.pixelcnn import GatedPixelCNN
from synthlens.generators.transformer import CodeTransformer
from synthlens.nets.schedule import cosine_lr
from synthlens.nets.vqvae2 import VQVAE2Net


@dataclass(frozen=True)
class VQVAE2Knobs:
    """Knobs of :class:`VQVAE2`.

    Parameters
    ----------
    channels, res_channels, n_res_blocks:
        Encoder/decoder width [128], residual-block width [32] and count [2].
    num_codes, code_dim:
        Codebook size K [512] and code dimension [64] (both levels).
    commitment, ema_decay:
        Commitment weight beta [0.25] and codebook EMA decay [0.99].
    prior:
        ``transformer`` [default] or ``pixelcnn``.
    prior_per_class:
        One pair of priors per class, each trained on its class's codes only [True, as the
        study trained one model per class]; False: one pair conditioned on a class token.
    balanced_priors:
        With per-class priors, draw prior minibatches class-balanced [True], so that a
        minority class's priors see as many code maps per step as the majority's.
    prior_channels, prior_layers, prior_layers_bottom, prior_kernel:
        Prior width [128], depth of the top prior [None: 4 transformer blocks / 8 PixelCNN
        layers] and of the bottom prior [None: the top prior's + 2], PixelCNN kernel [5].
    prior_dropout:
        Dropout in the transformer prior [0.1]: the priors see only a few thousand maps.
    prior_lr:
        Adam learning rate of the priors [None: ``budget.lr``]; the autoencoder uses
        ``budget.lr`` (the study used 3e-4).
    temperature:
        Softmax temperature of prior sampling [1.0] (a sample knob); below 1 trades
        variety for fidelity.
    """

    channels: int = 128
    res_channels: int = 32
    n_res_blocks: int = 2
    num_codes: int = 512
    code_dim: int = 64
    commitment: float = 0.25
    ema_decay: float = 0.99
    prior: Literal["transformer", "pixelcnn"] = "transformer"
    prior_per_class: bool = True
    balanced_priors: bool = True
    prior_channels: int = 128
    prior_layers: int | None = None
    prior_layers_bottom: int | None = None
    prior_kernel: int = 5
    prior_dropout: float = 0.1
    prior_lr: float | None = None
    temperature: float = sample_knob(1.0)

    @property
    def top_layers(self) -> int:
        """Depth of the top prior (``prior_layers``, else the default of ``prior``)."""
        if self.prior_layers is not None:
            return self.prior_layers
        return 8 if self.prior == "pixelcnn" else 4

    @property
    def bottom_layers(self) -> int:
        """Depth of the bottom prior (``prior_layers_bottom``, else the top's + 2)."""
        if self.prior_layers_bottom is not None:
            return self.prior_layers_bottom
        return self.top_layers + 2


class VQVAE2(Generator[VQVAE2Knobs]):
    """Two-level VQ-VAE with class-conditional autoregressive priors; knobs:
    :class:`VQVAE2Knobs` (each left out comes from the budget's ``options``, else its
    default).

    Stages: ``vqvae`` (autoencoder, ``budget.steps`` scaled by ``stage_fractions``),
    ``top_prior`` and ``bottom_prior``.
    """

    family = "vqvae2"
    Knobs = VQVAE2Knobs
    # Reflect-padded to a multiple of 8 inside; 4 as the other families.
    size_multiple = 4
    checkpointed = ("net", "top_prior", "bottom_prior", "optimisers")

    def stages(self) -> list[str]:
        return ["vqvae", "top_prior", "bottom_prior"]

    def _build(self, budget: Budget) -> None:
        assert self.image_shape is not None
        size = self.image_shape[0]
        knobs = self.knobs
        self.size = size
        self.work_size = working_size(size, 8)
        num_codes = knobs.num_codes
        self.net = VQVAE2Net(
            self.channels, channels=knobs.channels, res_channels=knobs.res_channels,
            n_res_blocks=knobs.n_res_blocks, num_codes=num_codes, code_dim=knobs.code_dim,
            decay=knobs.ema_decay, commitment=knobs.commitment).to(self.device)
        dim = knobs.prior_channels
        top, bottom = self.work_size // 8, self.work_size // 4
        self.top_shape, self.bottom_shape = (top, top), (bottom, bottom)
        # One prior pair per class (the study's set-up), or one pair conditioned on the class.
        self.per_class = knobs.prior_per_class
        n_models = self.n_classes if self.per_class else 1
        classes = 1 if self.per_class else self.n_classes
        top_layers, bottom_layers = knobs.top_layers, knobs.bottom_layers
        if knobs.prior == "pixelcnn":
            kernel = knobs.prior_kernel

            def make_top() -> nn.Module:
                return GatedPixelCNN(num_codes, dim=dim, n_layers=top_layers, kernel=kernel,
                                     n_classes=classes)

            def make_bottom() -> nn.Module:
                return GatedPixelCNN(num_codes, dim=dim, n_layers=bottom_layers, kernel=kernel,
                                     n_classes=classes, cond_codes=num_codes, cond_upsample=2)
        else:
            dropout = knobs.prior_dropout

            def make_top() -> nn.Module:
                return CodeTransformer(num_codes, self.top_shape, dim=dim, n_layers=top_layers,
                                       dropout=dropout, n_classes=classes)

            def make_bottom() -> nn.Module:
                return CodeTransformer(num_codes, self.bottom_shape, dim=dim,
                                       n_layers=bottom_layers, dropout=dropout,
                                       n_classes=classes, cond_codes=num_codes,
                                       cond_shape=self.top_shape)
        self.top_prior = nn.ModuleList([make_top() for _ in range(n_models)]).to(self.device)
        self.bottom_prior = nn.ModuleList([make_bottom() for _ in range(n_models)]).to(
            self.device)
        prior_lr = knobs.prior_lr if knobs.prior_lr is not None else budget.lr
        self.optimisers = {
            "vqvae": torch.optim.Adam(self.net.parameters(), lr=budget.lr),
            "top_prior": torch.optim.Adam(self.top_prior.parameters(), lr=prior_lr),
            "bottom_prior": torch.optim.Adam(self.bottom_prior.parameters(), lr=prior_lr),
        }
        self._base_lr = {"vqvae": budget.lr, "top_prior": prior_lr, "bottom_prior": prior_lr}

    def _balanced_stages(self) -> tuple[str, ...]:
        # Per-class priors learn only from their class's share of each batch: balanced
        # batches give the minority class's priors as many examples as the majority's.
        if self.per_class and self.knobs.balanced_priors:
            return ("top_prior", "bottom_prior")
        return ()

    def _begin_stage(self, stage: str, train: ImageSet) -> None:
        self.net.train(stage == "vqvae")

    def _stage_inputs(self, stage: str, images: torch.Tensor) -> torch.Tensor:
        # The autoencoder is frozen while the priors train: encode the split once per
        # stage (one row per image: top codes, then bottom codes) instead of every batch.
        if stage == "vqvae":
            return images
        return self._code_rows(images).int()

    def _train_step(self, stage: str, inputs: torch.Tensor, labels: torch.Tensor,
                    step: int) -> dict[str, float]:
        assert self.budget is not None
        optimiser = self.optimisers[stage]
        total = self.budget.stage_steps(stage)
        for group in optimiser.param_groups:
            group["lr"] = self._base_lr[stage] * cosine_lr(step, total,
                                                           warmup=min(100, total // 10))
        if stage == "vqvae":
            self.net.train()
            loss, parts = self._parallel(self.net, self.net.loss)(pad_to(inputs, self.work_size))
            logs = {"loss": float(loss.detach()), **parts}
        else:
            id_t, id_b = self._split_rows(inputs.long())  # rows of _stage_inputs
            # per-class priors: a class missing from one rank's share leaves its priors
            # unused there (find_unused)
            if stage == "top_prior":
                self.top_prior.train()
                logits = self._parallel(self.top_prior, partial(self._prior_logits,
                                                                self.top_prior),
                                        find_unused=self.per_class)(id_t, labels)
                loss = F.cross_entropy(logits, id_t)
            else:
                self.bottom_prior.train()
                logits = self._parallel(self.bottom_prior, partial(self._prior_logits,
                                                                   self.bottom_prior),
                                        find_unused=self.per_class)(id_b, labels, id_t)
                loss = F.cross_entropy(logits, id_b)
            logs = {"nll": float(loss.detach())}
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        return logs

    def _generate(self, labels: torch.Tensor, generator: torch.Generator,
                  knobs: VQVAE2Knobs) -> torch.Tensor:
        temperature = knobs.temperature
        for module in (self.net, self.top_prior, self.bottom_prior):
            module.eval()
        id_t = self._prior_sample(self.top_prior, labels, self.top_shape, generator,
                                  None, temperature)
        id_b = self._prior_sample(self.bottom_prior, labels, self.bottom_shape, generator,
                                  id_t, temperature)
        return crop_to(self.net.decode_codes(id_t, id_b), self.size)

    def _prior_logits(self, priors: nn.ModuleList, codes: torch.Tensor, labels: torch.Tensor,
                      cond: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of every code under its class's prior (or the shared conditional one)."""
        if not self.per_class:
            return priors[0](codes, labels, cond_codes=cond)
        out: torch.Tensor | None = None
        # every class of the global batch, in order (data-parallel: also a class of which
        # this rank holds no row, with dropout masks drawn as for the whole batch's rows)
        for label, mask, rows in distributed.class_subsets(labels, len(priors)):
            with rows:
                logits = priors[label](codes[mask], torch.zeros_like(labels[mask]),
                                       cond_codes=None if cond is None else cond[mask])
            if out is None:
                out = logits.new_empty((len(labels), *logits.shape[1:]))
            out[mask] = logits
        assert out is not None
        return out

    def _prior_sample(self, priors: nn.ModuleList, labels: torch.Tensor,
                      shape: tuple[int, int], generator: torch.Generator,
                      cond: torch.Tensor | None, temperature: float) -> torch.Tensor:
        if not self.per_class:
            return priors[0].sample(labels, shape, generator=generator, cond_codes=cond,
                                    temperature=temperature)
        out = torch.empty(len(labels), *shape, dtype=torch.long, device=labels.device)
        for label in labels.unique().tolist():  # sorted: a fixed order of random draws
            mask = labels == label
            out[mask] = priors[label].sample(
                torch.zeros_like(labels[mask]), shape, generator=generator,
                cond_codes=None if cond is None else cond[mask], temperature=temperature)
        return out

    @torch.no_grad()
    def encode_codes(self, images: np.ndarray | ImageSet,
                     batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """Discrete code maps of images (uint8, the training shape): (top N×h×w,
        bottom N×2h×2w), int64. The privacy metrics compare these by Hamming distance."""
        if not self._fitted:
            raise RuntimeError("VQVAE2 is not fitted; call fit() or load()")
        array = images.images if isinstance(images, ImageSet) else np.asarray(images)
        if tuple(array.shape[1:]) != self.image_shape:
            raise ValueError(f"images have shape {array.shape[1:]}, the model was trained on "
                             f"{self.image_shape}")
        rows = torch.cat([self._code_rows(to_model_range(array[start:start + batch_size]),
                                          batch_size)
                          for start in range(0, len(array), batch_size)])
        top, bottom = self._split_rows(rows)
        return top.numpy(), bottom.numpy()

    def _code_rows(self, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """Code maps of model-range images N×C×H×W as rows (int64, CPU): the top map, then
        the bottom map, flattened."""
        self.net.eval()
        return frozen_outputs(self.net.code_rows, x, self.work_size, self.device, batch_size)

    def _split_rows(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(top, bottom) code maps from :meth:`_code_rows`."""
        n_top = self.top_shape[0] * self.top_shape[1]
        return (rows[:, :n_top].reshape(-1, *self.top_shape),
                rows[:, n_top:].reshape(-1, *self.bottom_shape))

    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        """Autoencoder reconstruction of model-range images (for diagnostics)."""
        self.net.eval()
        with torch.no_grad():
            return crop_to(self.net(pad_to(images, self.work_size))[0], self.size)
