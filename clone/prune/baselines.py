"""Baseline per-layer ratio generators, each meeting a global target of removed parameters.

The target is a fraction of the whole model's parameters (`ModelConfig.param_count()`: embeddings
included, tied embedding/lm_head counted once, norms included). Ratios are solved against the exact
parameter count after rounding to whole KV groups and FFN channels (`params_removed`), so the
achieved fraction is within a few FFN channels of the target (whole layers for ShortGPT).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from clone.errors import CloneError
from clone.model.config import LayerShape, ModelConfig
from clone.model.llama import Transformer
from clone.prune.importance import _progress, input_stats, iter_batches
from clone.prune.shapes import params_removed, removed_fraction

BASELINES = ("uniform", "random", "shortgpt", "flap")


def check_target(config: ModelConfig, target: float) -> float:
    target = float(target)
    if not (0.0 <= target < 1.0):
        raise CloneError(f"target ratio {target} is outside [0, 1) (fraction of the model's parameters to remove)")
    return target


def _solve(config: ModelConfig, target: float, make: Callable[[float], list[float]], hi: float, what: str,
           ffn_multiple: int = 1) -> list[float]:
    """Bisection on a scalar knob s (ratios = make(s), removal non-decreasing in s) for the target."""
    want = target * config.param_count()
    removed = lambda r: params_removed(config, r, ffn_multiple)
    if removed(make(hi)) < want:
        most = removed(make(hi)) / config.param_count()
        raise CloneError(f"target ratio {target} cannot be met by {what} (at most {most:.4f} of the parameters can be removed)")
    lo = 0.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if removed(make(mid)) < want:
            lo = mid
        else:
            hi = mid
    cands = [make(lo), make(hi)]
    return min(cands, key=lambda r: abs(removed(r) - want))


def uniform_ratios(config: ModelConfig, target: float, exempt_first: int = 3, exempt_last: int = 1,
                   ffn_multiple: int = 1) -> list[float]:
    """One ratio for every layer except the first `exempt_first` and last `exempt_last`, which stay
    intact (LLM-Pruner prunes only the middle blocks); the shared ratio is scaled up to meet the target."""
    check_target(config, target)
    n = config.n_layers
    if exempt_first < 0 or exempt_last < 0 or exempt_first + exempt_last >= n:
        raise CloneError(f"uniform pruning: exempting {exempt_first} first and {exempt_last} last layers leaves none of the {n} layers to prune")
    if target == 0:
        return [0.0] * n
    mask = [exempt_first <= i < n - exempt_last for i in range(n)]
    return _solve(config, target, lambda r: [r if m else 0.0 for m in mask], 1.0, "uniform pruning of the middle layers",
                  ffn_multiple)


def random_ratios(config: ModelConfig, target: float, seed: int = 0, concentration: float = 1.0,
                  max_ratio: float = 1.0, ffn_multiple: int = 1) -> list[float]:
    """A random direction w ~ Dirichlet(concentration) over layers, ratios min(max_ratio, s * n * w_i)
    with s solved for the target (exploration vectors and the Random baseline)."""
    check_target(config, target)
    n = config.n_layers
    if target == 0:
        return [0.0] * n
    w = np.random.default_rng(seed).dirichlet([concentration] * n) * n
    return _solve(config, target, lambda s: [float(min(max_ratio, s * wi)) for wi in w], float(max_ratio / w.min()),
                  f"random ratios capped at {max_ratio}", ffn_multiple)


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
                model(batch, last_only=True)  # hooks see every layer; skip full-vocab logits
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


def fluctuation_channels(model: Transformer, calib: Tensor, batch_size: int = 4,
                         progress: bool = False) -> list[dict[str, Tensor]]:
    """FLAP's per-channel fluctuation metric, per layer: Var(X_j) * ||W[:, j]||^2 over the input
    channels j of o_proj ("attn", squared as FLAP does for attention) and of down_proj ("ffn")."""
    stats = input_stats(model, calib, batch_size, progress, desc="fluctuation")
    out = []
    for i, layer in enumerate(model.layers):
        entry = {}
        if layer.self_attn is not None:
            w = layer.self_attn.o_proj.weight.detach().double()
            entry["attn"] = (stats[i]["o"].variance() * w.pow(2).sum(0)).pow(2)
        if layer.mlp is not None:
            w = layer.mlp.down_proj.weight.detach().double()
            entry["ffn"] = stats[i]["down"].variance() * w.pow(2).sum(0)
        out.append(entry)
    return out


def _standardise(v: Tensor) -> Tensor:
    return (v - v.mean()) / (v.std() + 1e-12) if v.numel() > 1 else torch.zeros_like(v)


def flap_config(config: ModelConfig, channels: list[dict[str, Tensor]], target: float) -> ModelConfig:
    """FLAP's adaptive structure search (AL-AM): standardise the fluctuation metric per layer and per
    kind over its channels, score a KV group by the mean over its query heads' channels, rank all
    KV groups and FFN channels of the model together, and remove the lowest-ranked structures until
    the removed parameters reach the target. Returns the pruned per-layer shapes."""
    check_target(config, target)
    d, hd = config.dim, config.head_dim
    entries: list[tuple[float, int, str, int]] = []  # (score, layer, kind, parameter cost)
    for i, (shape, ch) in enumerate(zip(config.layers, channels)):
        if "attn" in ch and shape.n_heads:
            g = shape.n_heads // shape.n_kv_heads
            z = _standardise(ch["attn"].double()).view(shape.n_kv_heads, -1).mean(1)
            cost = d * hd * (g + 2) + g * hd * d + (hd * (g + 2) if config.qkv_bias else 0)
            entries += [(float(v), i, "attn", cost) for v in z]
        if "ffn" in ch and shape.ffn_dim:
            entries += [(float(v), i, "ffn", 3 * d) for v in _standardise(ch["ffn"].double())]
    entries.sort(key=lambda e: e[0])
    want = target * config.param_count()
    kv = [s.n_kv_heads for s in config.layers]
    ffn = [s.ffn_dim for s in config.layers]
    total = 0.0
    for _, i, kind, cost in entries:
        if total >= want:
            break
        if kind == "attn":
            kv[i] -= 1
        else:
            ffn[i] -= 1
        total += cost
    layers = [LayerShape(k * (s.n_heads // s.n_kv_heads) if s.n_kv_heads else 0, k, f)
              for s, k, f in zip(config.layers, kv, ffn)]
    return dataclasses.replace(config, layers=layers, extra=dict(config.extra))


def flap_ratios(config: ModelConfig, channels: list[dict[str, Tensor]], target: float) -> list[float]:
    """FLAP's per-layer removed shares (`flap_config`) as a ratio vector. Note: pruning by ratio
    re-splits each layer between attention and MLP by the shape rule; prune with
    `prune_to_config(model, flap_config(...), scores)` to keep FLAP's own split."""
    pruned = flap_config(config, channels, target)
    return [1.0 - pruned.layer_params(b) / config.layer_params(a) if config.layer_params(a) else 0.0
            for a, b in zip(config.layers, pruned.layers)]


def baseline_ratios(method: str, model: Transformer, target: float, calib: Tensor | None = None, *,
                    seed: int = 0, batch_size: int = 4, ffn_multiple: int = 1, progress: bool = False) -> list[float]:
    """Dispatch by name (uniform, random, shortgpt, flap). ffn_multiple: solve uniform and random
    ratios for pruning with that channel multiple (pass the same value to prune_model)."""
    config = model.config
    if method not in BASELINES:
        raise CloneError(f"unknown baseline method {method!r} (allowed: {', '.join(BASELINES)})")
    check_target(config, target)
    if method == "uniform":
        return uniform_ratios(config, target, ffn_multiple=ffn_multiple)
    if method == "random":
        return random_ratios(config, target, seed=seed, ffn_multiple=ffn_multiple)
    if calib is None:
        raise CloneError(f"baseline {method!r} needs calibration tokens")
    if method == "shortgpt":
        return shortgpt_ratios(config, block_influence(model, calib, batch_size, progress), target)
    return flap_ratios(config, fluctuation_channels(model, calib, batch_size, progress), target)
