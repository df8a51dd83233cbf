"""Vector quantiser with exponential-moving-average codebook updates.

The quantiser of VQ-VAE (van den Oord et al. 2017, appendix A.1) as used at both levels of
VQ-VAE-2 (Razavi et al. 2019) and by the VQ first stage of latent diffusion: each input
vector is replaced by its nearest codebook entry; the codebook follows the running mean of
the vectors assigned to each entry (no codebook gradient); the encoder is pulled towards
its codes by the commitment loss beta * ||z - sg(e)||^2; gradients pass straight through.

Codes whose running usage falls below ``dead_threshold`` are restarted on random encoder
outputs of the current batch (Dhariwal et al. 2020, Jukebox). All entries start unused, so
the first batch initialises the codebook from data; afterwards restarts keep short CPU
trainings from collapsing onto a handful of codes.

Under data-parallel training (``synchronise = True``, set by the generator harness) the
assignment counts and sums are all-reduced across ranks before the EMA step, so the
codebooks follow the global batch and stay the same on every rank; restarted entries are
drawn from the rows of the global batch.
"""

from __future__ import annotations

import torch
from torch import distributed as dist
from torch import nn
from torch.nn import functional as F

from synthlens.device import full_precision


class VectorQuantizer(nn.Module):
    """EMA vector quantiser over the channel axis of N×D×H×W maps.

    Parameters
    ----------
    num_codes, dim:
        Codebook size K and code dimension D.
    decay:
        EMA decay of the codebook statistics (0.99 in both papers).
    commitment:
        beta of the commitment loss (0.25 in both papers).
    dead_threshold:
        Restart entries whose EMA assignment count falls below this; 0 disables restarts.
    """

    def __init__(self, num_codes: int, dim: int, *, decay: float = 0.99,
                 commitment: float = 0.25, dead_threshold: float = 0.05,
                 eps: float = 1e-5) -> None:
        super().__init__()
        self.num_codes, self.dim = num_codes, dim
        self.decay, self.commitment, self.eps = decay, commitment, eps
        self.dead_threshold = dead_threshold
        self.register_buffer("embedding", torch.randn(num_codes, dim) * 0.1)
        self.register_buffer("cluster_size", torch.zeros(num_codes))
        self.register_buffer("embed_sum", self.embedding.clone())
        #: All-reduce the EMA statistics across the process group (data-parallel training).
        self.synchronise = False

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Quantise ``z``; returns (quantised map with straight-through gradient,
        commitment loss, code indices N×H×W)."""
        n, d, h, w = z.shape
        with full_precision(z):
            flat = z.float().permute(0, 2, 3, 1).reshape(-1, d)
            codes = self._nearest(flat)
            if self.training:
                self._update(flat.detach(), codes)
                codes = self._nearest(flat)  # restarted entries may now be nearest
            quantised = self.embedding[codes]
            commit = self.commitment * F.mse_loss(flat, quantised.detach())
            quantised = flat + (quantised - flat).detach()
        out = quantised.view(n, h, w, d).permute(0, 3, 1, 2).contiguous()
        return out, commit, codes.view(n, h, w)

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """Code indices N×H×W -> code vectors N×D×H×W."""
        return self.embedding[codes].permute(0, 3, 1, 2).contiguous()

    def _nearest(self, flat: torch.Tensor) -> torch.Tensor:
        dist = (flat.pow(2).sum(1, keepdim=True) - 2 * flat @ self.embedding.t()
                + self.embedding.pow(2).sum(1)[None])
        return dist.argmin(dim=1)

    @torch.no_grad()
    def _update(self, flat: torch.Tensor, codes: torch.Tensor) -> None:
        onehot = F.one_hot(codes, self.num_codes).type(flat.dtype)
        counts, sums = onehot.sum(0), onehot.t() @ flat
        synchronise = self.synchronise and dist.is_initialized()
        if synchronise:
            stats = torch.cat([counts[:, None], sums], dim=1)
            dist.all_reduce(stats)
            counts, sums = stats[:, 0], stats[:, 1:]
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.embed_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        total = self.cluster_size.sum()
        # Laplace smoothing keeps unused entries from dividing by zero.
        size = (self.cluster_size + self.eps) / (total + self.num_codes * self.eps) * total
        self.embedding.copy_(self.embed_sum / size[:, None])
        if self.dead_threshold > 0:
            dead = self.cluster_size < self.dead_threshold
            n_dead = int(dead.sum())
            if n_dead:
                chosen = self._restart_rows(flat, n_dead, synchronise)
                self.embedding[dead] = chosen
                self.embed_sum[dead] = chosen
                self.cluster_size[dead] = 1.0

    @staticmethod
    def _restart_rows(flat: torch.Tensor, n_dead: int, synchronise: bool) -> torch.Tensor:
        """``n_dead`` random rows of the batch's encoder outputs. Across ranks the rows
        are drawn from the global batch (rank 0's draw; each row sent by the rank that
        holds it), as a single process draws them from the whole batch."""
        if not synchronise:
            pick = torch.randint(0, flat.shape[0], (n_dead,), device=flat.device)
            return flat[pick]
        rows, rank = flat.shape[0], dist.get_rank()
        pick = torch.randint(0, rows * dist.get_world_size(), (n_dead,), device=flat.device)
        dist.broadcast(pick, 0)
        mine = pick // rows == rank
        chosen = torch.zeros(n_dead, flat.shape[1], dtype=flat.dtype, device=flat.device)
        chosen[mine] = flat[pick[mine] - rank * rows]
        dist.all_reduce(chosen)  # one non-zero contribution per row: exact
        return chosen

    def perplexity(self) -> float:
        """exp(entropy) of the running code usage: how many entries are in use."""
        p = self.cluster_size / self.cluster_size.sum().clamp_min(1e-12)
        return float(torch.exp(-(p * (p + 1e-12).log()).sum()))
