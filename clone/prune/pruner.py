"""Structured pruning: build a new, genuinely smaller model that keeps the most important structures.

The input model is never modified (the search prunes one base model many times). Kept KV groups and
FFN channels stay in their original order; weights are copied, so the result owns its tensors.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import torch
from torch import Tensor

from clone.errors import CloneError
from clone.model.checkpoint import build_model
from clone.model.config import LayerShape, ModelConfig
from clone.model.llama import DecoderLayer, Transformer
from clone.prune.importance import Importance, _check_plain, compute_importance
from clone.prune.shapes import pruned_config

SPLITS = ("balanced", "importance")


def _top(scores: Tensor | None, keep: int, size: int) -> Tensor:
    """Indices of the `keep` highest scores, in ascending index order (ties -> lower index)."""
    if keep >= size:
        return torch.arange(size)
    if scores is None or scores.numel() != size:
        raise CloneError(f"importance scores have {None if scores is None else scores.numel()} entries, expected {size}")
    order = sorted(range(size), key=lambda j: (-float(scores[j]), j))
    return torch.tensor(sorted(order[:keep]), dtype=torch.long)


def _layer_state(state: dict[str, Tensor], prefix: str, old: LayerShape, new: LayerShape, head_dim: int,
                 groups: Tensor | None, channels: Tensor | None) -> dict[str, Tensor]:
    out: dict[str, Tensor] = {}
    take = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if new.n_heads:
        per_group = old.n_heads // old.n_kv_heads
        kv_idx = _top(groups, new.n_kv_heads, old.n_kv_heads)
        heads = (kv_idx[:, None] * per_group + torch.arange(per_group)[None, :]).flatten()
        q_rows = (heads[:, None] * head_dim + torch.arange(head_dim)[None, :]).flatten()
        kv_rows = (kv_idx[:, None] * head_dim + torch.arange(head_dim)[None, :]).flatten()
        out["input_layernorm.weight"] = take["input_layernorm.weight"]
        for name, rows in (("q_proj", q_rows), ("k_proj", kv_rows), ("v_proj", kv_rows)):
            out[f"self_attn.{name}.weight"] = take[f"self_attn.{name}.weight"].index_select(0, rows)
            if f"self_attn.{name}.bias" in take:
                out[f"self_attn.{name}.bias"] = take[f"self_attn.{name}.bias"].index_select(0, rows)
        out["self_attn.o_proj.weight"] = take["self_attn.o_proj.weight"].index_select(1, q_rows)
    if new.ffn_dim:
        ch = _top(channels, new.ffn_dim, old.ffn_dim)
        out["post_attention_layernorm.weight"] = take["post_attention_layernorm.weight"]
        out["mlp.gate_proj.weight"] = take["mlp.gate_proj.weight"].index_select(0, ch)
        out["mlp.up_proj.weight"] = take["mlp.up_proj.weight"].index_select(0, ch)
        out["mlp.down_proj.weight"] = take["mlp.down_proj.weight"].index_select(1, ch)
    return {prefix + k: v.detach().clone().contiguous() for k, v in out.items()}


def _check_shrinks(i: int, a: LayerShape, b: LayerShape) -> None:
    if b.n_kv_heads > a.n_kv_heads or b.ffn_dim > a.ffn_dim or (b.n_heads and b.n_heads // b.n_kv_heads != a.n_heads // a.n_kv_heads):
        raise CloneError(f"layer {i}: cannot prune {a} to {b} (whole KV groups and channels only)")


def prune_layer(model: Transformer, i: int, shape: LayerShape, importance: Importance | None) -> DecoderLayer:
    """Layer i of `model` cut to `shape` as a new module (the layer itself when its shape is kept).

    The unit of layer-by-layer work: evaluating a candidate or pruning in place needs one pruned
    layer at a time, never a second copy of the whole model."""
    old = model.config.layers[i]
    _check_shrinks(i, old, shape)
    layer = model.layers[i]
    if old == shape:
        return layer
    if importance is None:
        raise CloneError("importance scores are needed to prune")
    scores = importance.layers[i]
    state = _layer_state(layer.state_dict(), "", old, shape, model.config.head_dim, scores.groups, scores.channels)
    with torch.device("meta"):
        new = DecoderLayer(model.config, shape)
    new.load_state_dict(state, strict=True, assign=True)
    return new.train(layer.training)


def prune_to_config(model: Transformer, config: ModelConfig, importance: Importance | None) -> Transformer:
    """A new model with `config`'s per-layer shapes (each no larger than the model's), keeping the
    highest-scoring KV groups and FFN channels. `importance` may be None if no layer shrinks."""
    old = model.config
    if len(config.layers) != old.n_layers:
        raise CloneError(f"pruned config has {len(config.layers)} layers, the model has {old.n_layers}")
    state = model.state_dict()
    new_state: dict[str, Tensor] = {k: v.detach().clone() for k, v in state.items() if not k.startswith("layers.")}
    for i, (a, b) in enumerate(zip(old.layers, config.layers)):
        _check_shrinks(i, a, b)
        prefix = f"layers.{i}."
        if a == b:
            new_state.update({k: v.detach().clone() for k, v in state.items() if k.startswith(prefix)})
            continue
        if importance is None:
            raise CloneError("importance scores are needed to prune")
        scores = importance.layers[i]
        new_state.update(_layer_state(state, prefix, a, b, old.head_dim, scores.groups, scores.channels))
    return build_model(config, new_state, "pruned model")


@torch.no_grad()
def prune_model_inplace(model: Transformer, ratios: Sequence[float], importance: Importance,
                        ffn_multiple: int = 1, split: str = "balanced") -> Transformer:
    """Prune `model` itself, one layer at a time: each layer is replaced by its pruned copy and the
    old one is freed before the next, so peak memory is the model plus one layer (prune_model
    holds the input and the whole result at once). For callers that no longer need the dense
    model, such as `clone optimize` on a checkpoint it loaded itself."""
    _check_plain(model)
    config = split_config(model, ratios, importance, split, ffn_multiple)
    for i, shape in enumerate(config.layers):
        model.layers[i] = prune_layer(model, i, shape, importance)
        model.config = dataclasses.replace(model.config, layers=[*config.layers[: i + 1], *model.config.layers[i + 1:]])
    model.config = config
    return model


def split_config(model: Transformer, ratios: Sequence[float], importance: Importance | None, split: str,
                 ffn_multiple: int = 1) -> ModelConfig:
    """The pruned shapes for `ratios`: split "balanced" (the fixed rule) or "importance" (each layer's
    attention/MLP split follows the scores, `shape_by_importance`)."""
    if split not in SPLITS:
        raise CloneError(f"unknown split {split!r} (allowed: {', '.join(SPLITS)})")
    if split == "importance" and importance is None:
        raise CloneError('split="importance" needs importance scores')
    return pruned_config(model.config, ratios, ffn_multiple, importance if split == "importance" else None)


def prune_model(model: Transformer, ratios: Sequence[float], importance: str | Importance = "taylor",
                calib: Tensor | None = None, *, batch_size: int = 4, seed: int = 0, ffn_multiple: int = 1,
                split: str = "balanced", progress: bool = False) -> Transformer:
    """Remove `ratios[i]` of layer i's parameters (0 = intact, 1 = layer removed) as whole KV groups and
    FFN channels; returns a new smaller model. `importance` is a method name (taylor, magnitude,
    activation, fluctuation, random) or precomputed scores from `compute_importance`, which lets one
    set of scores serve many ratio vectors. ffn_multiple: pruned MLPs keep a multiple of it channels.
    split: how a layer's ratio divides between KV groups and channels (`split_config`)."""
    _check_plain(model)
    scores = importance if isinstance(importance, Importance) else None
    if scores is None and (split == "importance" or any(float(r) > 0 for r in ratios)):
        scores = compute_importance(model, importance, calib, batch_size=batch_size, seed=seed, progress=progress)
    return prune_to_config(model, split_config(model, ratios, scores, split, ffn_multiple), scores)
