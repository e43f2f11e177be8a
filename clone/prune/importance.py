"""Importance of each prunable structure: KV groups of attention and FFN channels, per layer.

A structure's score sums over all the weights that go with it: a KV group g owns the q_proj rows of
its query heads, the k_proj and v_proj rows of KV head g (and their biases) and the o_proj columns of
its query heads; an FFN channel c owns row c of gate_proj and up_proj and column c of down_proj.
Higher is more important; pruning keeps the highest-scoring structures.

Methods (formulas in docs/compression.md):
- taylor: first-order Taylor, sum over calibration batches b of |w * dL_b/dw| (LLM-Pruner, element-wise
  first order, summed over the structure). Gradients are consumed parameter by parameter as autograd
  produces them, so no gradient buffer outlives its parameter's backward step.
- magnitude: sum of |w| over the structure (no data).
- activation: Wanda-sp, sum over the output projection's input channels j of the structure of
  sum_i |W_ij| * ||X_j||_2, with X the inputs of o_proj / down_proj on calibration data.
- fluctuation: FLAP, sum over those channels of Var(X_j) * sum_i W_ij^2.
- random: seeded uniform scores.
Activation statistics come from forward pre-hooks on o_proj and down_proj during plain no-grad
forwards, so only running sums per channel are kept, never the activations themselves.
"""

from __future__ import annotations

import functools
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from clone.errors import CloneError
from clone.model.config import LayerShape
from clone.model.llama import Transformer

METHODS = ("taylor", "magnitude", "activation", "fluctuation", "random")
NEEDS_DATA = ("taylor", "activation", "fluctuation")
ROW_PROJ = {"q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj",
            "gate": "mlp.gate_proj", "up": "mlp.up_proj"}
COL_PROJ = {"o": "self_attn.o_proj", "down": "mlp.down_proj"}


@dataclass
class LayerScores:
    groups: Tensor | None  # [n_kv_heads] per KV group, None if the layer has no attention
    channels: Tensor | None  # [ffn_dim] per FFN channel, None if the layer has no MLP


@dataclass
class Importance:
    method: str
    layers: list[LayerScores]


def iter_batches(calib: Tensor, batch_size: int) -> Iterator[Tensor]:
    if calib.dim() != 2 or calib.shape[1] < 2:
        raise CloneError(f"calibration tokens must be a [n_samples, seq_len >= 2] tensor, got shape {tuple(calib.shape)}")
    for start in range(0, calib.shape[0], batch_size):
        yield calib[start : start + batch_size]


def _progress(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, leave=False)


def _check_plain(model: Transformer) -> None:
    """Pruning slices plain nn.Linear weights: quantize and add LoRA only after pruning."""
    for i in range(len(model.layers)):
        for key, mod in _modules(model, i).items():
            if type(mod) is not nn.Linear:
                raise CloneError(f"cannot prune layer {i} {key}_proj: it is a {type(mod).__name__}, not a plain "
                                 "Linear (prune first, then merge LoRA adapters and quantize)")


def combine(shape: LayerShape, head_dim: int, parts: dict[str, Tensor]) -> LayerScores:
    """Sum per-row / per-column scores of the projections into per-group and per-channel scores."""
    groups = channels = None
    if shape.n_heads:
        kv = shape.n_kv_heads
        groups = torch.zeros(kv, dtype=torch.float64)
        for key in ("q", "o"):
            if key in parts:
                groups += parts[key].double().view(kv, -1).sum(1)
        for key in ("k", "v"):
            if key in parts:
                groups += parts[key].double().view(kv, head_dim).sum(1)
    if shape.ffn_dim:
        channels = torch.zeros(shape.ffn_dim, dtype=torch.float64)
        for key in ("gate", "up", "down"):
            if key in parts:
                channels += parts[key].double()
    return LayerScores(groups, channels)


def _row_col(key: str, elem: Tensor) -> Tensor:
    """Element scores of a weight [out, in] -> per-row (row projections) or per-column sums."""
    return elem.sum(1) if key in ROW_PROJ else elem.sum(0)


def _modules(model: Transformer, i: int) -> dict[str, nn.Module]:
    layer = model.layers[i]
    found = {}
    for key, path in {**ROW_PROJ, **COL_PROJ}.items():
        owner, attr = path.split(".")
        parent = getattr(layer, owner)
        if parent is not None:
            found[key] = getattr(parent, attr)
    return found


def magnitude_scores(model: Transformer) -> Importance:
    layers = []
    for i, shape in enumerate(model.config.layers):
        parts = {}
        for key, mod in _modules(model, i).items():
            parts[key] = _row_col(key, mod.weight.detach().abs().float())
            if getattr(mod, "bias", None) is not None:
                parts[key] = parts[key] + mod.bias.detach().abs().float()
        layers.append(combine(shape, model.config.head_dim, parts))
    return Importance("magnitude", layers)


def random_scores(model: Transformer, seed: int = 0) -> Importance:
    gen = torch.Generator().manual_seed(seed)
    layers = []
    for shape in model.config.layers:
        groups = torch.rand(shape.n_kv_heads, generator=gen, dtype=torch.float64) if shape.n_heads else None
        channels = torch.rand(shape.ffn_dim, generator=gen, dtype=torch.float64) if shape.ffn_dim else None
        layers.append(LayerScores(groups, channels))
    return Importance("random", layers)


def fresh_rope(model: Transformer) -> None:
    """RoPE tables cached under torch.inference_mode (e.g. by a perplexity run) cannot take part in
    autograd; drop them so the next forward rebuilds ordinary tensors."""
    cos = getattr(model, "rope_cos", None)
    if cos is not None and cos.is_inference():
        model._rope_len = 0
        model.rope_cos, model.rope_sin = torch.empty(0), torch.empty(0)


def causal_lm_loss(model: Transformer, tokens: Tensor) -> Tensor:
    logits = model(tokens[:, :-1])
    return F.cross_entropy(logits.flatten(0, 1).float(), tokens[:, 1:].flatten())


@contextmanager
def checkpointed_layers(model: Transformer) -> Iterator[None]:
    """Activation checkpointing per decoder layer: autograd keeps only each layer's input and
    recomputes one layer at a time in the backward pass, so the graph costs one layer's
    activations instead of all of them (about 4x the weights of a 1B model for a 4 x 256 batch)
    for one extra forward pass."""
    from torch.utils.checkpoint import checkpoint

    for layer in model.layers:
        layer.forward = functools.partial(checkpoint, type(layer).forward.__get__(layer), use_reentrant=False)
    try:
        yield
    finally:
        for layer in model.layers:
            del layer.forward


def taylor_scores(model: Transformer, calib: Tensor, batch_size: int = 4, progress: bool = False) -> Importance:
    """|w * dL/dw| per element, summed over calibration batches and over each structure."""
    sums: list[dict[str, Tensor]] = [{} for _ in model.layers]
    handles, saved = [], {p: p.requires_grad for p in model.parameters()}
    for p in model.parameters():
        p.requires_grad_(False)

    def hook_for(i: int, key: str):
        def hook(param: Tensor) -> None:
            elem = (param.detach() * param.grad).abs().float()
            part = _row_col(key, elem) if elem.dim() == 2 else elem
            sums[i][key] = sums[i].get(key, 0) + part
            param.grad = None

        return hook

    for i in range(len(model.layers)):
        for key, mod in _modules(model, i).items():
            for pname in ("weight", "bias"):
                param = getattr(mod, pname, None)
                if param is not None:
                    param.requires_grad_(True)
                    handles.append(param.register_post_accumulate_grad_hook(hook_for(i, key)))
    batches = list(iter_batches(calib, batch_size))
    fresh_rope(model)
    try:
        with torch.enable_grad(), checkpointed_layers(model), _progress(len(batches), "taylor importance", progress) as bar:
            for batch in batches:
                causal_lm_loss(model, batch).backward()
                bar.update()
    finally:
        for h in handles:
            h.remove()
        for p, flag in saved.items():
            p.requires_grad_(flag)
            p.grad = None
    layers = [combine(s, model.config.head_dim, sums[i]) for i, s in enumerate(model.config.layers)]
    return Importance("taylor", layers)


class InputStats:
    """Running per-channel sums of a module's input: count, sum x, sum x^2 (float64)."""

    def __init__(self, width: int) -> None:
        self.n = 0
        self.s1 = torch.zeros(width, dtype=torch.float64)
        self.s2 = torch.zeros(width, dtype=torch.float64)

    def add(self, x: Tensor) -> None:
        flat = x.detach().reshape(-1, x.shape[-1]).double()
        self.n += flat.shape[0]
        self.s1 += flat.sum(0)
        self.s2 += flat.pow(2).sum(0)

    def sq_norm(self) -> Tensor:
        return self.s2

    def mean(self) -> Tensor:
        return self.s1 / max(self.n, 1)

    def variance(self) -> Tensor:
        n = max(self.n, 2)
        return ((self.s2 - self.s1.pow(2) / n) / (n - 1)).clamp_min(0)


@torch.no_grad()
def input_stats(model: Transformer, calib: Tensor, batch_size: int = 4, progress: bool = False,
                desc: str = "activation statistics") -> list[dict[str, InputStats]]:
    """Per layer, the input statistics of o_proj and down_proj over the calibration tokens."""
    stats: list[dict[str, InputStats]] = [{} for _ in model.layers]
    handles = []
    for i in range(len(model.layers)):
        for key, mod in _modules(model, i).items():
            if key in COL_PROJ:
                stats[i][key] = InputStats(mod.in_features)
                handles.append(mod.register_forward_pre_hook(lambda m, args, st=stats[i][key]: st.add(args[0])))
    batches = list(iter_batches(calib, batch_size))
    try:
        with _progress(len(batches), desc, progress) as bar:
            for batch in batches:
                model(batch, last_only=True)  # hooks see every layer; skip full-vocab logits
                bar.update()
    finally:
        for h in handles:
            h.remove()
    return stats


def activation_scores(model: Transformer, calib: Tensor, method: str = "activation", batch_size: int = 4,
                      progress: bool = False, stats: list[dict[str, InputStats]] | None = None) -> Importance:
    """Wanda-sp (|W| * ||X||) or FLAP fluctuation (Var X * ||W_col||^2) on o_proj / down_proj inputs."""
    stats = stats if stats is not None else input_stats(model, calib, batch_size, progress)
    layers = []
    for i, shape in enumerate(model.config.layers):
        parts = {}
        for key, mod in _modules(model, i).items():
            if key not in COL_PROJ:
                continue
            w = mod.weight.detach().double()
            st = stats[i][key]
            if method == "activation":
                parts[key] = (w.abs() * st.sq_norm().sqrt()).sum(0)
            else:
                parts[key] = st.variance() * w.pow(2).sum(0)
        layers.append(combine(shape, model.config.head_dim, parts))
    return Importance(method, layers)


def compute_importance(model: Transformer, method: str = "taylor", calib: Tensor | None = None, *,
                       batch_size: int = 4, seed: int = 0, progress: bool = False) -> Importance:
    """Scores for every KV group and FFN channel of every layer (higher = keep)."""
    if method not in METHODS:
        raise CloneError(f"unknown importance method {method!r} (allowed: {', '.join(METHODS)})")
    _check_plain(model)
    if method in NEEDS_DATA and calib is None:
        raise CloneError(f"importance method {method!r} needs calibration tokens (calib)")
    if method == "magnitude":
        return magnitude_scores(model)
    if method == "random":
        return random_scores(model, seed)
    if method == "taylor":
        return taylor_scores(model, calib, batch_size, progress)
    return activation_scores(model, calib, method, batch_size, progress)
