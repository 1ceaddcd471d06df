"""A tiny decoder-only transformer over bytes: the proxy model whose mixture the service optimises.

Pre-LN blocks with causal self-attention through ``scaled_dot_product_attention`` (a fused kernel on CUDA,
a plain one on CPU), learned positional embeddings and an output layer tied to the byte embedding, so the
parameter count is dominated by the blocks and grows predictably with width and depth, which is what a
``params`` fidelity axis needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

VOCAB = 256  # byte-level: every file on the machine is already "tokenised"


@dataclass(frozen=True)
class Size:
    """One model size of the fidelity ladder."""

    name: str
    width: int
    layers: int
    heads: int


#: Sizes by name. xxs is for smoke tests; xs and s train in seconds on a CPU core; m and up need a GPU.
SIZES: dict[str, Size] = {
    s.name: s
    for s in (
        Size("xxs", 32, 1, 2),
        Size("xs", 64, 2, 2),
        Size("xs2", 96, 2, 3),
        Size("s", 128, 3, 4),
        Size("m", 256, 4, 4),
        Size("l", 384, 6, 6),
        Size("xl", 512, 8, 8),
    )
}


class Block(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.ln2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(c, dim=2)
        q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))
        att = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(att.transpose(1, 2).reshape(b, t, c))
        return x + self.mlp(self.ln2(x))


class TinyLM(nn.Module):
    """Next-byte predictor: ``forward(idx)`` returns logits of shape ``(batch, time, 256)``."""

    def __init__(self, size: Size, context: int, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.size = size
        self.context = context
        self.tok = nn.Embedding(VOCAB, size.width)
        self.pos = nn.Embedding(context, size.width)
        self.blocks = nn.ModuleList(Block(size.width, size.heads) for _ in range(size.layers))
        self.ln_f = nn.LayerNorm(size.width)
        self.head = nn.Linear(size.width, VOCAB, bias=False)
        self.head.weight = self.tok.weight  # tied
        for module in self.modules():
            _init(module, generator)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        t = idx.shape[1]
        x = self.tok(idx) + self.pos(torch.arange(t, device=idx.device))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))

    def n_params(self) -> int:
        """Trainable parameters, counting the tied embedding once."""
        return sum(p.numel() for p in self.parameters())


def _init(module: nn.Module, generator: torch.Generator | None) -> None:
    """GPT-2's initialisation: small normal weights, zero biases, so an untrained model predicts ~uniform.

    A per-model generator (not the global seed) keeps runs reproducible when several train in threads.
    """
    if isinstance(module, nn.Linear | nn.Embedding):
        nn.init.normal_(module.weight, std=0.02, generator=generator)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


def n_params(size: Size, context: int) -> int:
    """Parameter count of a size at a context length, without keeping the model (for the fidelity axis)."""
    with torch.device("meta"):
        return TinyLM(size, context).n_params()
