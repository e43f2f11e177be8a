"""Choosing the router's temperature and chunking on validation windows by the mixture's own
validation loss (the test split is never read).

Why the loss and not routing confidence: a temperature picked so that single-domain requests put
0.9 of their weight on the right expert also makes a request that mixes two domains nearly one-sided,
and on such requests uniform averaging then wins (docs/experts.md). The validation set therefore holds
both kinds of request, single-domain windows and windows whose first half is one domain and second
half another, and the chosen (chunk, tau) minimises the mean of the two kinds' mean token NLL (each
kind weighs half: the traffic mix of a deployment is unknown). The grid includes tau = inf, which is
uniform averaging, so the choice is at least as good as uniform on validation.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

from clone.experts.embedding import layer_states, pool_chunks
from clone.experts.router import Router, RouterConfig
from clone.lora import lm_loss

TAUS = (0.02, 0.05, 0.1, 0.2, 0.5, 1.0, math.inf)
CHUNKS = (0, 32)  # 0 = one mean over the whole prompt


def mixed_windows(first: Tensor, second: Tensor) -> Tensor:
    """Windows whose first half comes from `first` and second half from `second` (same shape)."""
    half = first.shape[1] // 2
    return torch.cat([first[:, :half], second[:, half:]], dim=1)


def validation_sets(tokenizer, domains: Sequence[str], n: int = 8, seq_len: int = 129,
                    seed: int = 12) -> dict[str, Tensor]:
    """{domain: windows} for each domain and {"a+b": mixed windows} for each pair, validation split."""
    from clone.data.calibration import calibration_samples

    single = {d: calibration_samples(tokenizer, d, "validation", n, seq_len, seed) for d in domains}
    other = {d: calibration_samples(tokenizer, d, "validation", n, seq_len, seed + 1) for d in domains}
    mixed = {f"{a}+{b}": mixed_windows(single[a], other[b])
             for i, a in enumerate(domains) for b in domains[i + 1:]}
    return {**single, **mixed}


@torch.no_grad()
def _objective(router: Router, sets: dict[str, Tensor], pooled: dict[str, tuple[Tensor, Tensor]],
               tau: float) -> float:
    nll = {}
    for name, windows in sets.items():
        router.install(router.weights_from(*pooled[name], tau=tau))
        nll[name] = float(lm_loss(router.model, windows))
    kinds = [[v for k, v in nll.items() if ("+" in k) == mixed] for mixed in (False, True)]
    return sum(sum(k) / len(k) for k in kinds if k) / sum(1 for k in kinds if k)


def calibrate(router: Router, sets: dict[str, Tensor], taus: Sequence[float] = TAUS,
              chunks: Sequence[int] = CHUNKS, progress: bool = True) -> RouterConfig:
    """Grid-search (chunk, tau) for the soft router on `sets`; sets router.tau / router.chunk to the
    best and returns the config to save (all grid scores included, so the choice can be audited)."""
    from tqdm import tqdm

    assert router.mode == "soft", "calibrate the soft router"
    states = {k: layer_states(router.model, w, router.experts.layer, router.prefix) for k, w in sets.items()}
    grid = [(c, t) for c in chunks for t in taus if not (math.isinf(t) and c != chunks[0])]  # uniform: once
    scores: dict[tuple[int, float], float] = {}
    for chunk, tau in tqdm(grid, desc="router calibration", unit="setting", disable=not progress):
        pooled = {k: pool_chunks(s, chunk) for k, s in states.items()}
        scores[(chunk, tau)] = _objective(router, sets, pooled, tau)
    router.chunk, router.tau = min(scores, key=scores.get)
    n = len(next(iter(sets.values())))
    return RouterConfig(router.tau, router.chunk, router.prefix, True,
                        f"mean token NLL on validation: mean of single-domain and mixed-domain sets "
                        f"({len(sets)} sets x {n} windows)", [{"chunk": c, "tau": t, "nll": v} for (c, t), v in scores.items()])
