"""Proxy training: one tiny LM on one mixture for a token budget, scored per domain on validation bytes.

The device is chosen in one place (:func:`pick_device`: CUDA when present, else CPU). Every run owns its
random generators (initialisation and batch sampling), so its result depends only on its mixture, size,
budget and seed, whether it trains alone or in a thread next to others.

Several runs at once (:func:`train_many`): each worker thread trains on its own CUDA stream, so small
models that cannot fill the GPU alone overlap their kernels; each run is charged ``1/parallel`` of its wall
time as device-seconds, its share of the device while ``parallel`` runs share it. On CPU the threads only
split the same cores, so the command-line tools default to one run at a time there.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch
from torch.nn import functional as F

from examples.tiny_lm.corpus import Domain
from examples.tiny_lm.model import SIZES, TinyLM


def pick_device(threads: int | None = None) -> torch.device:
    """CUDA if available, else CPU with ``threads`` intra-op threads.

    The default is half the cores: an embedded service fits its laws in this same process, and tiny models
    gain little from more threads (on a busy 2-core machine, 2 threads ran slower than 1).
    """
    if torch.cuda.is_available():
        return torch.device("cuda")
    torch.set_num_threads(threads or max(1, (os.cpu_count() or 2) // 2))
    return torch.device("cpu")


def default_parallel(device: torch.device) -> int:
    """Runs to train at once: 4 share a GPU well at these sizes; on CPU threads would split the same cores."""
    return 4 if device.type == "cuda" else 1


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({torch.get_num_threads()} threads)"


@dataclass(frozen=True)
class TrainConfig:
    """Everything but the mixture that determines a run."""

    size: str
    tokens: int
    context: int = 128
    batch: int = 16
    lr: float | None = None  # default: 3e-3 scaled by 64/width above width 64
    warmup: float = 0.1  # fraction of steps
    weight_decay: float = 0.1
    eval_windows: int = 32  # validation windows per domain
    seed: int = 0

    @property
    def steps(self) -> int:
        return max(1, math.ceil(self.tokens / (self.batch * self.context)))

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else 3e-3 * min(1.0, 64 / SIZES[self.size].width)


class DeviceCorpus:
    """All domains' bytes on the device once, shared read-only by every run, with fixed validation windows."""

    def __init__(
        self, domains: Sequence[Domain], device: torch.device, context: int, eval_windows: int
    ) -> None:
        self.names = [d.name for d in domains]
        self.device = device
        self.context = context
        self.data = torch.cat([d.train for d in domains]).to(device=device, dtype=torch.long)
        lengths = torch.tensor([len(d.train) for d in domains])
        if int(lengths.min()) <= context + 1:
            raise ValueError(f"a domain has fewer than {context + 2} training bytes")
        self.starts = torch.cumsum(lengths, 0) - lengths
        self.spans = lengths - context - 1
        self.val = {d.name: self._windows(d.val, eval_windows).to(device) for d in domains}
        if device.type == "cuda":
            torch.cuda.synchronize(device)  # the data must be ready before other streams read it

    def _windows(self, val: torch.Tensor, n: int) -> torch.Tensor:
        """``n`` evenly spaced windows of ``context + 1`` bytes (fewer if the split is short)."""
        span = len(val) - self.context - 1
        if span < 0:
            raise ValueError(f"a validation split has fewer than {self.context + 1} bytes")
        offsets = torch.linspace(0, span, min(n, span + 1)).long()
        return torch.stack([val[o : o + self.context + 1] for o in offsets.tolist()]).long()

    def batch(
        self, weights: torch.Tensor, size: int, gen: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``size`` sequences, each from a domain drawn by ``weights``, at a uniform offset within it."""
        dom = torch.multinomial(weights, size, replacement=True, generator=gen)
        offsets = self.starts[dom] + (torch.rand(size, generator=gen) * self.spans[dom]).long()
        idx = (offsets[:, None] + torch.arange(self.context + 1)[None, :]).to(self.device, non_blocking=True)
        seq = self.data[idx]
        return seq[:, :-1], seq[:, 1:]

    def weights(self, mixture: dict[str, float]) -> torch.Tensor:
        return torch.tensor([max(0.0, float(mixture.get(n, 0.0))) for n in self.names], dtype=torch.float64)


class Trainer:
    """A model, its optimiser and schedule, stepped in chunks (the online variant changes weights between)."""

    def __init__(self, corpus: DeviceCorpus, cfg: TrainConfig, total_steps: int | None = None) -> None:
        self.corpus = corpus
        self.cfg = cfg
        self.total_steps = total_steps or cfg.steps
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.model = TinyLM(SIZES[cfg.size], cfg.context, generator=self.gen).to(corpus.device)
        decay = [p for p in self.model.parameters() if p.dim() >= 2]
        rest = [p for p in self.model.parameters() if p.dim() < 2]
        self.opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": rest, "weight_decay": 0.0}],
            lr=cfg.learning_rate,
            betas=(0.9, 0.95),
        )
        self.step = 0
        cuda = corpus.device.type == "cuda"
        self.autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if cuda else nullcontext

    def lr_at(self, step: int) -> float:
        """Linear warm-up, then cosine decay to 10% of the peak over ``total_steps``."""
        warm = max(1, int(self.cfg.warmup * self.total_steps))
        if step < warm:
            return self.cfg.learning_rate * (step + 1) / warm
        progress = min(1.0, (step - warm) / max(1, self.total_steps - warm))
        return self.cfg.learning_rate * (0.1 + 0.45 * (1 + math.cos(math.pi * progress)))

    def train(self, steps: int, mixture: dict[str, float]) -> float:
        """``steps`` optimiser steps sampling batches by ``mixture``; returns the last batch's loss."""
        weights = self.corpus.weights(mixture)
        if not float(weights.sum()) > 0:
            raise ValueError("a mixture needs positive weight on at least one domain")
        self.model.train()
        loss = torch.zeros(())
        for _ in range(steps):
            for group in self.opt.param_groups:
                group["lr"] = self.lr_at(self.step)
            x, y = self.corpus.batch(weights, self.cfg.batch, self.gen)
            with self.autocast():
                logits = self.model(x)
            loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1))
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            self.opt.step()
            self.step += 1
        return float(loss.detach())

    @torch.no_grad()
    def evaluate(self, windows: int | None = None) -> dict[str, float]:
        """Mean next-byte cross-entropy (nats) per domain over its fixed validation windows."""
        self.model.eval()
        out = {}
        for name, val in self.corpus.val.items():
            val = val[:windows] if windows else val
            with self.autocast():
                logits = self.model(val[:, :-1])
            out[name] = float(
                F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), val[:, 1:].reshape(-1))
            )
        return out


@dataclass
class RunResult:
    losses: dict[str, float]
    cost_s: float  # device-seconds charged to this run
    wall_s: float
    steps: int
    tokens: int
    params: int
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def mean_loss(self) -> float:
        return sum(self.losses.values()) / len(self.losses)


def train_run(
    corpus: DeviceCorpus, mixture: dict[str, float], cfg: TrainConfig, share: float = 1.0
) -> RunResult:
    """Train from scratch on ``mixture`` for ``cfg.tokens`` tokens, then evaluate every domain."""
    t0 = time.perf_counter()
    stream = torch.cuda.Stream(corpus.device) if corpus.device.type == "cuda" else None
    with torch.cuda.stream(stream) if stream is not None else nullcontext():
        trainer = Trainer(corpus, cfg)
        trainer.train(cfg.steps, mixture)
        losses = trainer.evaluate()
    wall = time.perf_counter() - t0
    return RunResult(
        losses, wall * share, wall, cfg.steps, cfg.steps * cfg.batch * cfg.context, trainer.model.n_params()
    )


Job = tuple[dict[str, float], TrainConfig]


def train_many(
    corpus: DeviceCorpus,
    jobs: Sequence[Job],
    parallel: int = 1,
    done: Callable[[int, RunResult], None] | None = None,
) -> list[RunResult]:
    """Train ``jobs``, ``parallel`` at a time (threads; one CUDA stream each on a GPU).

    ``done(index, result)`` is called as each run finishes (report it to the service right away, so a crash
    later loses nothing).
    """
    parallel = max(1, min(parallel, len(jobs)))
    results: list[RunResult | None] = [None] * len(jobs)

    def one(i: int) -> None:
        mixture, cfg = jobs[i]
        result = results[i] = train_run(corpus, mixture, cfg, share=1.0 / parallel)
        if done is not None:
            done(i, result)

    if parallel == 1:
        for i in range(len(jobs)):
            one(i)
    else:
        with ThreadPoolExecutor(parallel, thread_name_prefix="tiny-lm") as pool:
            list(pool.map(one, range(len(jobs))))
    return [r for r in results if r is not None]
