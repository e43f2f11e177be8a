"""Baseline per-layer ratio generators, each meeting a global target of removed parameters.

The target is a fraction of the whole model's parameters (`ModelConfig.param_count()`: embeddings
included, tied embedding/lm_head counted once, norms included). Ratios are solved against the exact
parameter count after rounding to whole KV groups and FFN channels (`params_removed`), so the
achieved fraction is within a few FFN channels of the target (whole layers for ShortGPT).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from clone.errors import CloneError
from clone.model.config import ModelConfig
from clone.model.llama import Transformer
from clone.prune.importance import Importance, activation_scores, iter_batches, _progress
from clone.prune.shapes import params_removed, removed_fraction

BASELINES = ("uniform", "random", "shortgpt", "flap")


def check_target(config: ModelConfig, target: float) -> float:
    target = float(target)
    if not (0.0 <= target < 1.0):
        raise CloneError(f"target ratio {target} is outside [0, 1) (fraction of the model's parameters to remove)")
    return target


def _solve(config: ModelConfig, target: float, make: Callable[[float], list[float]], hi: float, what: str) -> list[float]:
    """Bisection on a scalar knob s (ratios = make(s), removal non-decreasing in s) for the target."""
    want = target * config.param_count()
    if params_removed(config, make(hi)) < want:
        most = removed_fraction(config, make(hi))
        raise CloneError(f"target ratio {target} cannot be met by {what} (at most {most:.4f} of the parameters can be removed)")
    lo = 0.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if params_removed(config, make(mid)) < want:
            lo = mid
        else:
            hi = mid
    cands = [make(lo), make(hi)]
    return min(cands, key=lambda r: abs(params_removed(config, r) - want))


def uniform_ratios(config: ModelConfig, target: float, exempt_first: int = 3, exempt_last: int = 1) -> list[float]:
    """One ratio for every layer except the first `exempt_first` and last `exempt_last`, which stay
    intact (LLM-Pruner prunes only the middle blocks); the shared ratio is scaled up to meet the target."""
    check_target(config, target)
    n = config.n_layers
    if exempt_first < 0 or exempt_last < 0 or exempt_first + exempt_last >= n:
        raise CloneError(f"uniform pruning: exempting {exempt_first} first and {exempt_last} last layers leaves none of the {n} layers to prune")
    if target == 0:
        return [0.0] * n
    mask = [exempt_first <= i < n - exempt_last for i in range(n)]
    return _solve(config, target, lambda r: [r if m else 0.0 for m in mask], 1.0, "uniform pruning of the middle layers")


def random_ratios(config: ModelConfig, target: float, seed: int = 0, concentration: float = 1.0,
                  max_ratio: float = 1.0) -> list[float]:
    """A random direction w ~ Dirichlet(concentration) over layers, ratios min(max_ratio, s * n * w_i)
    with s solved for the target (exploration vectors and the Random baseline)."""
    check_target(config, target)
    n = config.n_layers
    if target == 0:
        return [0.0] * n
    w = np.random.default_rng(seed).dirichlet([concentration] * n) * n
    return _solve(config, target, lambda s: [float(min(max_ratio, s * wi)) for wi in w], float(max_ratio / w.min()),
                  f"random ratios capped at {max_ratio}")


@torch.no_grad()
def block_influence(model: Transformer, calib: Tensor, batch_size: int = 4, progress: bool = False) -> list[float]:
    """ShortGPT block influence per layer: 1 - mean over tokens of cos(layer input, layer output)."""
    n = len(model.layers)
    sums, counts = [0.0] * n, [0] * n
    handles = []
    for i, layer in enumerate(model.layers):
        def hook(module, args, out, i=i):
            cos = F.cosine_similarity(args[0].float(), out.float(), dim=-1)
            sums[i] += float(cos.sum())
            counts[i] += cos.numel()
        handles.append(layer.register_forward_hook(hook))
    batches = list(iter_batches(calib, batch_size))
    try:
        with _progress(len(batches), "block influence", progress) as bar:
            for batch in batches:
                model(batch)
                bar.update()
    finally:
        for h in handles:
            h.remove()
    return [1.0 - s / max(c, 1) for s, c in zip(sums, counts)]


def shortgpt_ratios(config: ModelConfig, influence: Sequence[float], target: float, fill: bool = False) -> list[float]:
    """Remove whole layers in increasing block influence; the number of layers is the one whose removed
    fraction is closest to the target. With fill, remove the largest count not above the target and
    give the remainder to the next least influential layer as a partial ratio."""
    check_target(config, target)
    n = config.n_layers
    if len(influence) != n:
        raise CloneError(f"block influence has {len(influence)} values, the model has {n} layers")
    order = sorted(range(n), key=lambda i: (influence[i], i))
    want = target * config.param_count()

    def ratios_for(k: int) -> list[float]:
        r = [0.0] * n
        for i in order[:k]:
            r[i] = 1.0
        return r

    removed = [params_removed(config, ratios_for(k)) for k in range(n + 1)]
    if removed[-1] < want:
        raise CloneError(f"target ratio {target} cannot be met by removing layers (at most {removed[-1] / config.param_count():.4f})")
    if not fill:
        k = min(range(n + 1), key=lambda k: (abs(removed[k] - want), k))
        return ratios_for(k)
    k = max(k for k in range(n + 1) if removed[k] <= want)
    base = ratios_for(k)
    if k == n or removed[k] == want:
        return base
    j = order[k]
    return _solve(config, target, lambda r: [r if i == j else base[i] for i in range(n)], 1.0, "ShortGPT with fill")


def flap_ratios(config: ModelConfig, scores: Importance, target: float) -> list[float]:
    """FLAP's adaptive structure (AL-AM): standardise fluctuation scores per layer and per kind
    (attention groups, FFN channels), rank all structures of the model together, and remove the
    lowest until the removed parameters reach the target; a layer's ratio is its removed share."""
    check_target(config, target)
    n, d, hd = config.n_layers, config.dim, config.head_dim
    if target == 0:
        return [0.0] * n
    entries: list[tuple[float, int, str, int]] = []  # (standardised score, layer, kind, cost)
    for i, (shape, ls) in enumerate(zip(config.layers, scores.layers)):
        for kind, vals in (("attn", ls.groups), ("ffn", ls.channels)):
            if vals is None or vals.numel() == 0:
                continue
            v = vals.double()
            z = (v - v.mean()) / (v.std() + 1e-12) if v.numel() > 1 else torch.zeros_like(v)
            if kind == "attn":
                g = shape.n_heads // shape.n_kv_heads
                cost = d * hd * (g + 2) + g * hd * d + (hd * (g + 2) if config.qkv_bias else 0)
            else:
                cost = 3 * d
            entries.extend((float(s), i, kind, cost) for s in z)
    entries.sort(key=lambda e: e[0])
    want = target * config.param_count()
    removed = [0.0] * n
    total = 0.0
    for score, i, kind, cost in entries:
        if total >= want:
            break
        removed[i] += cost
        total += cost
    ratios = [min(1.0, removed[i] / config.layer_params(s)) if config.layer_params(s) else 0.0
              for i, s in enumerate(config.layers)]
    # Whole-structure costs ignore the norms dropped with an emptied sub-block; rescale to the target.
    return _solve(config, target, lambda s: [min(1.0, s * r) for r in ratios], 1.0 / max(min(r for r in ratios if r > 0), 1e-9),
                  "FLAP ratios")


def fluctuation_scores(model: Transformer, calib: Tensor, batch_size: int = 4, progress: bool = False) -> Importance:
    return activation_scores(model, calib, "fluctuation", batch_size, progress)


def baseline_ratios(method: str, model: Transformer, target: float, calib: Tensor | None = None, *,
                    seed: int = 0, batch_size: int = 4, progress: bool = False) -> list[float]:
    """Dispatch by name (uniform, random, shortgpt, flap)."""
    config = model.config
    if method not in BASELINES:
        raise CloneError(f"unknown baseline method {method!r} (allowed: {', '.join(BASELINES)})")
    check_target(config, target)
    if method == "uniform":
        return uniform_ratios(config, target)
    if method == "random":
        return random_ratios(config, target, seed=seed)
    if calib is None:
        raise CloneError(f"baseline {method!r} needs calibration tokens")
    if method == "shortgpt":
        return shortgpt_ratios(config, block_influence(model, calib, batch_size, progress), target)
    return flap_ratios(config, fluctuation_scores(model, calib, batch_size, progress), target)
