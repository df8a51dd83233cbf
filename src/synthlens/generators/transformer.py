"""A small causal transformer prior over raster-ordered code maps (as the VQGAN prior of
Esser et al. 2021, and the "small transformer" alternative to VQ-VAE-2's PixelSNAIL).

Same interface as :class:`~synthlens.generators.pixelcnn.GatedPixelCNN`: ``forward`` gives
the logits of every position given the earlier ones, ``sample`` draws a map. Sampling
caches keys and values, so a map of L codes costs L single-token passes, against L passes
over the whole map for a PixelCNN: on a CPU that is the difference between seconds and
minutes for a few thousand images.

Sequence: [class token, conditioning-map tokens..., x_0, ..., x_{L-1}], where x_q, the
input that predicts code q, is the embedding of code q - 1 (nothing for q = 0) plus an
embedding of position q and, for a bottom prior, of the top-level code above position q.
The class and the whole conditioning map come first, so every code attends to them.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class _Block(nn.Module):
    """Pre-norm transformer block with causal self-attention and a key/value cache."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor,
                cache: list[torch.Tensor] | None = None) -> torch.Tensor:
        n, length, dim = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(n, length, 3, self.heads, dim // self.heads) \
            .permute(2, 0, 3, 1, 4).unbind(0)
        if cache is not None:
            if cache:
                k = torch.cat([cache[0], k], dim=2)
                v = torch.cat([cache[1], v], dim=2)
            cache[:] = [k, v]
        # Causal within the new tokens; new tokens see every cached one.
        past = k.shape[2] - length
        if past == 0:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=length > 1)
        elif length == 1:
            out = F.scaled_dot_product_attention(q, k, v)
        else:
            mask = torch.ones(length, k.shape[2], dtype=torch.bool, device=x.device).tril(past)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = x + self.dropout(self.proj(out.transpose(1, 2).reshape(n, length, dim)))
        return x + self.dropout(self.mlp(self.norm2(x)))


class CodeTransformer(nn.Module):
    """p(codes | class [, top codes]) over an H×W map, autoregressive in raster order.

    Parameters
    ----------
    num_codes:
        Alphabet size.
    shape:
        (H, W) of the map it models.
    dim, n_layers, heads, dropout:
        Transformer size.
    n_classes:
        Classes of the global conditioning.
    cond_codes, cond_shape:
        Alphabet and (h, w) of a conditioning (top) map whose cells each cover a block of
        this map (VQ-VAE-2: half the size); 0 / None for none.
    """

    def __init__(self, num_codes: int, shape: tuple[int, int], *, dim: int = 128,
                 n_layers: int = 4, heads: int = 4, dropout: float = 0.0, n_classes: int = 1,
                 cond_codes: int = 0, cond_shape: tuple[int, int] | None = None) -> None:
        super().__init__()
        self.num_codes = num_codes
        self.shape = tuple(shape)
        self.length = shape[0] * shape[1]
        self.tok_emb = nn.Embedding(num_codes + 1, dim)  # last row: "no previous code"
        self.pos_emb = nn.Parameter(torch.zeros(self.length, dim))
        self.class_emb = nn.Embedding(n_classes, dim)
        self.cond_codes = cond_codes
        if cond_codes:
            assert cond_shape is not None
            ch, cw = cond_shape
            self.cond_len = ch * cw
            self.cond_tok_emb = nn.Embedding(cond_codes, dim)
            self.cond_pos_emb = nn.Parameter(torch.zeros(self.cond_len, dim))
            self.parent_emb = nn.Embedding(cond_codes, dim)
            rows = torch.arange(shape[0]) * ch // shape[0]
            cols = torch.arange(shape[1]) * cw // shape[1]
            parent = (rows[:, None] * cw + cols[None]).flatten()
            self.register_buffer("parent", parent, persistent=False)
        else:
            self.cond_len = 0
        self.blocks = nn.ModuleList([_Block(dim, heads, dropout) for _ in range(n_layers)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_codes)
        nn.init.normal_(self.pos_emb, std=0.02)
        if cond_codes:
            nn.init.normal_(self.cond_pos_emb, std=0.02)

    def _prefix(self, labels: torch.Tensor, cond_codes: torch.Tensor | None) -> torch.Tensor:
        parts = [self.class_emb(labels)[:, None]]
        if self.cond_codes:
            if cond_codes is None:
                raise ValueError("this prior needs the conditioning (top) code map")
            parts.append(self.cond_tok_emb(cond_codes.flatten(1)) + self.cond_pos_emb)
        return torch.cat(parts, dim=1)

    def _inputs(self, prev: torch.Tensor, positions: slice,
                cond_codes: torch.Tensor | None) -> torch.Tensor:
        """Embeddings x_q for q in ``positions``; ``prev`` holds code q - 1 (or the
        start symbol)."""
        x = self.tok_emb(prev) + self.pos_emb[positions]
        if self.cond_codes:
            assert cond_codes is not None
            parents = cond_codes.flatten(1)[:, self.parent[positions]]
            x = x + self.parent_emb(parents)
        return x

    def forward(self, codes: torch.Tensor, labels: torch.Tensor,
                cond_codes: torch.Tensor | None = None) -> torch.Tensor:
        """Logits N×K×H×W of every position given the positions before it."""
        n = codes.shape[0]
        flat = codes.flatten(1)
        start = torch.full((n, 1), self.num_codes, dtype=torch.long, device=codes.device)
        prev = torch.cat([start, flat[:, :-1]], dim=1)
        x = torch.cat([self._prefix(labels, cond_codes),
                       self._inputs(prev, slice(0, self.length), cond_codes)], dim=1)
        for block in self.blocks:
            x = block(x)
        logits = self.head(self.norm(x[:, -self.length:]))
        return logits.transpose(1, 2).reshape(n, self.num_codes, *self.shape)

    @torch.no_grad()
    def sample(self, labels: torch.Tensor, shape: tuple[int, int], *,
               generator: torch.Generator, cond_codes: torch.Tensor | None = None,
               temperature: float = 1.0) -> torch.Tensor:
        """Draw code maps (N×H×W int64) token by token with a key/value cache; draws use
        ``generator`` on the CPU so that a seed gives the same codes on any device."""
        if tuple(shape) != self.shape:
            raise ValueError(f"this prior models {self.shape} maps, not {tuple(shape)}")
        n, device = len(labels), labels.device
        caches: list[list[torch.Tensor]] = [[] for _ in self.blocks]
        prev = torch.full((n, 1), self.num_codes, dtype=torch.long, device=device)
        x = torch.cat([self._prefix(labels, cond_codes),
                       self._inputs(prev, slice(0, 1), cond_codes)], dim=1)
        out = torch.empty(n, self.length, dtype=torch.long, device=device)
        for q in range(self.length):
            if q > 0:
                x = self._inputs(out[:, q - 1:q], slice(q, q + 1), cond_codes)
            for block, cache in zip(self.blocks, caches, strict=True):
                x = block(x, cache)
            logits = self.head(self.norm(x[:, -1])).float().cpu()
            probs = F.softmax(logits / max(temperature, 1e-6), dim=1)
            out[:, q] = torch.multinomial(probs, 1, generator=generator)[:, 0].to(device)
        return out.view(n, *self.shape)
