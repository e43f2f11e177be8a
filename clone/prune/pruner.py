"""Structured pruning: build a new, genuinely smaller model that keeps the most important structures.

The input model is never modified (the search prunes one base model many times). Kept KV groups and
FFN channels stay in their original order; weights are copied, so the result owns its tensors.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from clone.errors import CloneError
from clone.model.checkpoint import build_model
from clone.model.config import LayerShape, ModelConfig
from clone.model.llama import Transformer
from clone.prune.importance import Importance, _check_plain, compute_importance
from clone.prune.shapes import pruned_config


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


def prune_to_config(model: Transformer, config: ModelConfig, importance: Importance | None) -> Transformer:
    """A new model with `config`'s per-layer shapes (each no larger than the model's), keeping the
    highest-scoring KV groups and FFN channels. `importance` may be None if no layer shrinks."""
    old = model.config
    if len(config.layers) != old.n_layers:
        raise CloneError(f"pruned config has {len(config.layers)} layers, the model has {old.n_layers}")
    state = model.state_dict()
    new_state: dict[str, Tensor] = {k: v.detach().clone() for k, v in state.items() if not k.startswith("layers.")}
    for i, (a, b) in enumerate(zip(old.layers, config.layers)):
        if b.n_kv_heads > a.n_kv_heads or b.ffn_dim > a.ffn_dim or (b.n_heads and b.n_heads // b.n_kv_heads != a.n_heads // a.n_kv_heads):
            raise CloneError(f"layer {i}: cannot prune {a} to {b} (whole KV groups and channels only)")
        prefix = f"layers.{i}."
        if a == b:
            new_state.update({k: v.detach().clone() for k, v in state.items() if k.startswith(prefix)})
            continue
        if importance is None:
            raise CloneError("importance scores are needed to prune")
        scores = importance.layers[i]
        new_state.update(_layer_state(state, prefix, a, b, old.head_dim, scores.groups, scores.channels))
    return build_model(config, new_state, "pruned model")


def prune_model(model: Transformer, ratios: Sequence[float], importance: str | Importance = "taylor",
                calib: Tensor | None = None, *, batch_size: int = 4, seed: int = 0, ffn_multiple: int = 1,
                progress: bool = False) -> Transformer:
    """Remove `ratios[i]` of layer i's parameters (0 = intact, 1 = layer removed) as whole KV groups and
    FFN channels; returns a new smaller model. `importance` is a method name (taylor, magnitude,
    activation, fluctuation, random) or precomputed scores from `compute_importance`, which lets one
    set of scores serve many ratio vectors. ffn_multiple: pruned MLPs keep a multiple of it channels."""
    _check_plain(model)
    config = pruned_config(model.config, ratios, ffn_multiple)
    scores = None
    if config.layers != model.config.layers:
        if isinstance(importance, Importance):
            scores = importance
        else:
            scores = compute_importance(model, importance, calib, batch_size=batch_size, seed=seed, progress=progress)
    return prune_to_config(model, config, scores)
