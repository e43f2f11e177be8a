"""The request-wise router: cosine similarity of a request's embedding to each expert's embedding,
softmax with a temperature, then set_mix with one weight per request (parameter-free, as in the
paper). Modes: soft (default), top1 (one-hot: the expert most similar on average), uniform (1/n each).

Temperature: cosine similarities of pooled hidden states are all close to 1 (a shared dominant
direction), so similarities are centred on the mean expert embedding first and the softmax uses a
temperature `tau` (tau = inf is uniform averaging). Chunks: with `chunk` > 0 the prompt is pooled per
chunk of that many tokens, each chunk gets its own softmax, and the request's weights are the
token-weighted mean, so a request that mixes domains gets a mixture (clone.experts.embedding).
tau and chunk are chosen on validation windows by clone.experts.calibrate and kept in DIR/router.json.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from clone.errors import CloneError
from clone.experts.embedding import layer_states, pool_chunks
from clone.experts.expert_set import ExpertSet, load_experts
from clone.lora import set_mix

MODES = ("soft", "top1", "uniform")
ROUTER_FILE = "router.json"


def similarities(request_emb: Tensor, expert_embs: Tensor, center: Tensor | None = None) -> Tensor:
    """request_emb [..., d], expert_embs [n, d] -> cosine similarities [..., n] (after centring)."""
    if center is not None:
        request_emb, expert_embs = request_emb - center, expert_embs - center
    return F.cosine_similarity(request_emb[..., None, :].float(), expert_embs.float(), dim=-1)


def _check(mode: str, tau: float) -> None:
    if mode not in MODES:
        raise CloneError(f"router mode {mode!r} is not valid (allowed: {', '.join(MODES)})")
    if not tau > 0:
        raise CloneError(f"router temperature {tau} must be positive")


def mix_weights(chunk_embs: Tensor, counts: Tensor, expert_embs: Tensor, mode: str = "soft", tau: float = 0.05,
                center: Tensor | None = None) -> Tensor:
    """chunk_embs [B, C, d] with tokens per chunk counts [C] -> weights [B, n], each row summing to 1.
    soft: per-chunk softmax(sim / tau), averaged with token weights; top1: one-hot argmax of the
    token-weighted mean similarity; uniform: 1/n."""
    _check(mode, tau)
    B, n = chunk_embs.shape[0], expert_embs.shape[0]
    if mode == "uniform":
        return torch.full((B, n), 1.0 / n)
    share = (counts / counts.sum()).float()[None, :, None]
    sim = similarities(chunk_embs, expert_embs, center)  # [B, C, n]
    if mode == "top1":
        return F.one_hot((sim * share).sum(1).argmax(dim=1), n).float()
    return (torch.softmax(sim / tau, dim=-1) * share).sum(1)


def routing_weights(request_emb: Tensor, expert_embs: Tensor, mode: str = "soft", tau: float = 0.05,
                    center: Tensor | None = None) -> Tensor:
    """request_emb [B, d], expert_embs [n, d] -> weights [B, n]: one embedding per request."""
    return mix_weights(request_emb[:, None], torch.ones(1), expert_embs, mode, tau, center)


@dataclass
class RouterConfig:
    """What DIR/router.json keeps: the temperature and chunking chosen on validation windows."""

    tau: float = 0.1
    chunk: int = 0
    prefix: int = 128
    calibrated: bool = False
    objective: str = ""
    scores: list[dict[str, float]] = field(default_factory=list)  # {"chunk", "tau", "nll"} per grid point

    def best_for_chunk(self, chunk: int) -> float:
        """The best validation tau among grid points with this chunking (for ablations)."""
        rows = [r for r in self.scores if r["chunk"] == chunk]
        if not rows:
            raise CloneError(f"router config has no calibration scores for chunk={chunk}")
        return min(rows, key=lambda r: r["nll"])["tau"]

    def save(self, out_dir: str | os.PathLike) -> Path:
        path = Path(out_dir) / ROUTER_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1))  # tau = inf is written as Infinity
        tmp.rename(path)
        return path

    @classmethod
    def load(cls, out_dir: str | os.PathLike) -> "RouterConfig":
        """DIR/router.json, or the uncalibrated defaults if the set predates it."""
        path = Path(out_dir) / ROUTER_FILE
        if not path.exists():
            return cls()
        try:
            d = json.loads(path.read_text())
            return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})
        except (ValueError, TypeError) as exc:
            raise CloneError(f"{path}: not a router config ({exc})") from None


@dataclass
class Router:
    model: nn.Module
    experts: ExpertSet
    mode: str = "soft"
    tau: float = 0.05
    prefix: int = 128
    chunk: int = 0
    last_weights: Tensor | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        _check(self.mode, self.tau)

    @classmethod
    def from_dir(cls, model: nn.Module, out_dir: str | os.PathLike, mode: str = "soft") -> "Router":
        """Attach the expert set in `out_dir` to `model`, with its calibrated router settings."""
        cfg = RouterConfig.load(out_dir)
        return cls(model, load_experts(model, out_dir), mode, cfg.tau, cfg.prefix, cfg.chunk)

    @property
    def center(self) -> Tensor:
        return self.experts.embeddings().mean(dim=0)

    def chunk_embeddings(self, tokens: Tensor) -> tuple[Tensor, Tensor]:
        return pool_chunks(layer_states(self.model, tokens, self.experts.layer, self.prefix), self.chunk)

    def weights_from(self, chunk_embs: Tensor, counts: Tensor, tau: float | None = None) -> Tensor:
        return mix_weights(chunk_embs, counts, self.experts.embeddings(), self.mode,
                           self.tau if tau is None else tau, self.center)

    def weights_for(self, tokens: Tensor) -> Tensor:
        return self.weights_from(*self.chunk_embeddings(tokens))

    def install(self, weights: Tensor) -> None:
        """set_mix from weights [B, n]: floats for one request (zero-weight adapters are then skipped),
        one tensor per adapter for a batch."""
        cols = {name: weights[:, j] for j, name in enumerate(self.experts.names)}
        set_mix(self.model, {k: float(v[0]) for k, v in cols.items()} if len(weights) == 1
                else {k: v.clone() for k, v in cols.items()})
        self.last_weights = weights

    def route(self, tokens: Tensor) -> Tensor:
        """Compute per-request weights from the prompt(s) [B, T] and install them with set_mix."""
        w = self.weights_for(tokens)
        self.install(w)
        return w

    def named_weights(self, weights: Tensor) -> dict[str, float]:
        return {n: round(float(weights[0, j]), 6) for j, n in enumerate(self.experts.names)}
