"""The request-wise router: cosine similarity of a request's embedding to each expert's embedding,
softmax with a temperature, then set_mix with one weight per request (parameter-free, as in the
paper). Modes: soft (default), top1 (one-hot argmax), uniform (plain average, 1/n each).

Temperature: cosine similarities of pooled hidden states are all close to 1 (a shared dominant
direction), so similarities are centred on the mean expert embedding first and the softmax uses a
temperature `tau`; `calibrate_temperature` picks tau on validation windows as the largest value whose
mean top weight on single-domain requests reaches a target confidence (0.9 by default).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from clone.errors import CloneError
from clone.experts.embedding import embed_tokens
from clone.experts.expert_set import ExpertSet
from clone.lora import set_mix

MODES = ("soft", "top1", "uniform")


def routing_weights(request_emb: Tensor, expert_embs: Tensor, mode: str = "soft", tau: float = 0.05,
                    center: Tensor | None = None) -> Tensor:
    """request_emb [B, d], expert_embs [n, d] -> weights [B, n], each row summing to 1."""
    if mode not in MODES:
        raise CloneError(f"router mode {mode!r} is not valid (allowed: {', '.join(MODES)})")
    if tau <= 0:
        raise CloneError(f"router temperature {tau} must be positive")
    B, n = request_emb.shape[0], expert_embs.shape[0]
    if mode == "uniform":
        return torch.full((B, n), 1.0 / n)
    if center is not None:
        request_emb, expert_embs = request_emb - center, expert_embs - center
    sim = F.cosine_similarity(request_emb[:, None, :].float(), expert_embs[None].float(), dim=-1)
    if mode == "top1":
        return F.one_hot(sim.argmax(dim=1), n).float()
    return torch.softmax(sim / tau, dim=1)


@dataclass
class Router:
    model: nn.Module
    experts: ExpertSet
    mode: str = "soft"
    tau: float = 0.05
    prefix: int = 128
    last_weights: Tensor | None = field(default=None, repr=False)

    @property
    def center(self) -> Tensor:
        return self.experts.embeddings().mean(dim=0)

    def weights_for(self, tokens: Tensor) -> Tensor:
        emb = embed_tokens(self.model, tokens, self.experts.layer, self.prefix)
        return routing_weights(emb, self.experts.embeddings(), self.mode, self.tau, self.center)

    def route(self, tokens: Tensor) -> Tensor:
        """Compute per-request weights from the prompt(s) [B, T] and install them with set_mix."""
        w = self.weights_for(tokens)
        set_mix(self.model, {name: w[:, j].clone() for j, name in enumerate(self.experts.names)})
        self.last_weights = w
        return w


def calibrate_temperature(router: Router, val_windows: dict[str, Tensor], target: float = 0.9,
                          grid: tuple[float, ...] = (0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005)) -> float:
    """Largest tau in `grid` whose mean weight on the correct expert, over validation windows of each
    domain, reaches `target` (the most confident grid value otherwise)."""
    embs = {d: embed_tokens(router.model, w, router.experts.layer, router.prefix) for d, w in val_windows.items()}
    names = router.experts.names
    for tau in grid:
        scores = []
        for d, e in embs.items():
            w = routing_weights(e, router.experts.embeddings(), "soft", tau, router.center)
            scores.append(float(w[:, names.index(d)].mean()))
        if sum(scores) / len(scores) >= target:
            router.tau = tau
            return tau
    router.tau = grid[-1]
    return router.tau
