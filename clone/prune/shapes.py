"""From a per-layer pruning ratio to a per-layer shape, and parameter accounting.

The ratio of a layer is the fraction of that layer's own parameters (attention projections, MLP
projections and their RMSNorm weights, `ModelConfig.layer_params`) to remove. The units that can go
are whole KV groups (one KV head with its n_heads / n_kv_heads query heads, so grouped-query
attention keeps a valid layout) and single FFN channels (a row of gate and up, a column of down).

Rule (see docs/compression.md): among all (kept KV groups k, kept FFN channels f), take the ones whose
removed parameter count is within one FFN channel (3 * dim parameters) of ratio * layer_params; among
those, take the one that splits the removal most evenly between attention and MLP (smallest
|attention fraction removed - MLP fraction removed|, as LLM-Pruner prunes both at one ratio); then the
smallest error. Ratio 0 keeps the layer intact, ratio 1 removes it (LayerShape(0, 0, 0), ShortGPT).
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Sequence

from clone.errors import CloneError
from clone.model.config import LayerShape, ModelConfig

if TYPE_CHECKING:
    from clone.prune.importance import Importance, LayerScores


def check_ratios(config: ModelConfig, ratios: Sequence[float]) -> list[float]:
    values = [float(r) for r in ratios]
    if len(values) != config.n_layers:
        raise CloneError(f"pruning ratios: got {len(values)} values, the model has {config.n_layers} layers (one ratio per layer)")
    for i, r in enumerate(values):
        if not (0.0 <= r <= 1.0) or math.isnan(r):
            raise CloneError(f"pruning ratio of layer {i} is {r} (allowed: 0 <= ratio <= 1)")
    return values


def shape_for_ratio(config: ModelConfig, shape: LayerShape, ratio: float, ffn_multiple: int = 1) -> LayerShape:
    """The layer shape whose removed parameters best match `ratio` of the layer (rule in module doc).
    With ffn_multiple m > 1 a pruned MLP keeps a multiple of m channels (e.g. the quantization group
    size, so a pruned down_proj still splits into whole groups); an intact MLP keeps its width."""
    if ffn_multiple < 1:
        raise CloneError(f"ffn_multiple {ffn_multiple} must be a positive integer")
    if ratio <= 0.0:
        return shape
    if ratio >= 1.0:
        return LayerShape(0, 0, 0)
    total = config.layer_params(shape)
    target = ratio * total
    d = config.dim
    group = shape.n_heads // shape.n_kv_heads if shape.n_kv_heads else 0
    candidates: list[tuple[float, float, LayerShape]] = []  # (error, balance, shape)
    for k in range(shape.n_kv_heads + 1):
        attn_kept = config.layer_params(LayerShape(k * group, k, 0))
        want_ffn = total - target - attn_kept  # parameters the MLP should keep
        f_exact = (want_ffn - d) / (3 * d) / ffn_multiple
        options = {0, shape.ffn_dim}
        for f in (math.floor(f_exact), math.ceil(f_exact)):
            f *= ffn_multiple
            options.add(min(max(f, 0), shape.ffn_dim - shape.ffn_dim % ffn_multiple))
        for f in options:
            new = LayerShape(k * group, k, f)
            error = abs(total - config.layer_params(new) - target)
            attn_frac = 1 - k / shape.n_kv_heads if shape.n_kv_heads else None
            ffn_frac = 1 - f / shape.ffn_dim if shape.ffn_dim else None
            balance = abs(attn_frac - ffn_frac) if attn_frac is not None and ffn_frac is not None else 0.0
            candidates.append((error, balance, new))
    best_error = min(c[0] for c in candidates)
    close = [c for c in candidates if c[0] <= best_error + 3 * d * ffn_multiple]
    return min(close, key=lambda c: (c[1], c[0]))[2]


def group_params(config: ModelConfig, shape: LayerShape) -> int:
    """Parameters of one KV group: q rows of its query heads, k and v rows, o columns (and biases)."""
    per = shape.n_heads // shape.n_kv_heads
    return config.dim * config.head_dim * (2 * per + 2) + (config.head_dim * (per + 2) if config.qkv_bias else 0)


def _channel_runs(scores: "LayerScores", group_cost: int, channel_cost: int) -> list[int]:
    """The layer's units in increasing importance per parameter, as the number of FFN channels
    before each KV group (and after the last): all a greedy walk needs. Cached on the scores object,
    because the search asks for thousands of shapes from one set of scores."""
    cache = scores.__dict__.setdefault("_channel_runs", {})
    key = (group_cost, channel_cost)
    if key not in cache:
        units = [(float(v) / group_cost, 0, j) for j, v in enumerate((scores.groups if scores.groups is not None else []).tolist())]
        units += [(float(v) / channel_cost, 1, j) for j, v in enumerate((scores.channels if scores.channels is not None else []).tolist())]
        runs = [0]
        for _, kind, _ in sorted(units):
            if kind == 0:
                runs.append(0)
            else:
                runs[-1] += 1
        cache[key] = runs
    return cache[key]


def shape_by_importance(config: ModelConfig, shape: LayerShape, ratio: float, scores: "LayerScores",
                        ffn_multiple: int = 1) -> LayerShape:
    """The layer shape that removes `ratio` of the layer's parameters taking the units with the least
    importance per parameter first (KV groups and FFN channels in one ranking, a greedy knapsack:
    a unit that no longer fits the budget is skipped).

    Why: the balanced rule cuts attention and MLP at one fraction, so on a model with few KV groups
    (SmolLM2: 3) almost every pruned layer loses a third of its attention. With additive importance
    scores (Taylor, magnitude, and the FLAP / Wanda-sp output metrics) score per parameter says which
    kind is cheaper to lose, layer by layer; FLAP's global ranking mostly removes MLP channels too."""
    if ratio <= 0.0:
        return shape
    if ratio >= 1.0:
        return LayerShape(0, 0, 0)
    d, m = config.dim, ffn_multiple
    group_cost = group_params(config, shape) if shape.n_kv_heads else 0
    channel_cost = 3 * d
    runs = _channel_runs(scores, group_cost or 1, channel_cost) if (shape.n_kv_heads or shape.ffn_dim) else [0]
    budget = ratio * config.layer_params(shape) + 1.5 * d * m  # slack: half a block of channels
    removed, groups, channels = 0, 0, 0
    for i, run in enumerate(runs):
        take = min(run, max(0, int((budget - removed) // channel_cost)))
        removed, channels = removed + take * channel_cost, channels + take
        if take < run:
            break  # a channel no longer fits, so no later unit does
        if i < len(runs) - 1 and removed + group_cost <= budget:
            removed, groups = removed + group_cost, groups + 1
    kv = shape.n_kv_heads - groups
    ffn = shape.ffn_dim - channels
    if ffn != shape.ffn_dim and m > 1:
        ffn = min(m * round(ffn / m), shape.ffn_dim - shape.ffn_dim % m)
    per = shape.n_heads // shape.n_kv_heads if shape.n_kv_heads else 0
    return LayerShape(kv * per, kv, ffn)


def pruned_config(config: ModelConfig, ratios: Sequence[float], ffn_multiple: int = 1,
                  importance: "Importance | None" = None) -> ModelConfig:
    """The config of the model `prune_model(model, ratios)` would return (no weights needed). With
    `importance`, each layer's split between KV groups and FFN channels follows the scores
    (`shape_by_importance`, prune with split="importance"); otherwise the balanced rule."""
    values = check_ratios(config, ratios)
    if importance is None:
        layers = [shape_for_ratio(config, s, r, ffn_multiple) for s, r in zip(config.layers, values)]
    else:
        if len(importance.layers) != config.n_layers:
            raise CloneError(f"importance has {len(importance.layers)} layers, the model has {config.n_layers}")
        layers = [shape_by_importance(config, s, r, sc, ffn_multiple)
                  for s, r, sc in zip(config.layers, values, importance.layers)]
    return dataclasses.replace(config, layers=layers, extra=dict(config.extra))


def params_removed(config: ModelConfig, ratios: Sequence[float], ffn_multiple: int = 1,
                   importance: "Importance | None" = None) -> int:
    """Parameters removed by pruning with `ratios`, after rounding to whole KV groups and channels."""
    return config.param_count() - pruned_config(config, ratios, ffn_multiple, importance).param_count()


def removed_fraction(config: ModelConfig, ratios: Sequence[float], ffn_multiple: int = 1,
                     importance: "Importance | None" = None) -> float:
    """Removed parameters over the whole model's parameters (embeddings included, tied ones once)."""
    return params_removed(config, ratios, ffn_multiple, importance) / config.param_count()
