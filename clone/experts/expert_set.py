"""A set of per-domain LoRA experts on disk and in memory.

DIR/experts/<domain>/ holds the adapter (adapter.safetensors, adapter_config.json, from clone.lora)
plus embedding.safetensors: the domain's expert embedding, the mean request embedding
(clone.experts.embedding) of k train-split windows, the layer it was taken from and the pooling
version (embeddings of an older pooling are refused: `clone train-experts --recalibrate` remakes them).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor, nn

from clone.errors import CloneError
from clone.experts.embedding import POOLING_VERSION, embed_tokens, embedding_layer
from clone.lora import load_adapter, read_adapter_config, recover, save_adapter

DOMAINS = ("shakespeare", "bible", "fortunes", "techprose")
EMBEDDING_FILE = "embedding.safetensors"


@dataclass
class Expert:
    name: str
    embedding: Tensor  # [dim]
    losses: list[float] = field(default_factory=list)
    train_s: float = 0.0


@dataclass
class ExpertSet:
    experts: list[Expert]
    layer: int

    @property
    def names(self) -> list[str]:
        return [e.name for e in self.experts]

    def embeddings(self) -> Tensor:
        return torch.stack([e.embedding for e in self.experts])


def domain_embedding(model: nn.Module, windows: Tensor, layer: int, prefix: int = 128) -> Tensor:
    return torch.cat([embed_tokens(model, windows[i:i + 8], layer, prefix) for i in range(0, len(windows), 8)]).mean(0)


def expert_embedding(model: nn.Module, tokenizer, domain: str, k_embed: int = 32, seq_len: int = 128,
                     seed: int = 0) -> Tensor:
    """The domain's expert embedding: the mean request embedding of k seeded train-split windows."""
    from clone.data.calibration import calibration_samples

    windows = calibration_samples(tokenizer, domain, "train", k_embed, seq_len, seed + 1000)
    return domain_embedding(model, windows, embedding_layer(model))


def train_expert(model: nn.Module, tokenizer, domain: str, steps: int = 200, lr: float = 1e-3, *,
                 n_windows: int = 256, seq_len: int = 128, batch_size: int = 4, k_embed: int = 32,
                 seed: int = 0, progress: bool = True) -> Expert:
    """Train adapter `domain` (rank 8, alpha 16) on train-split windows; its embedding from k windows."""
    from clone.data.calibration import calibration_samples

    emb = expert_embedding(model, tokenizer, domain, k_embed, seq_len, seed)
    windows = calibration_samples(tokenizer, domain, "train", n_windows, seq_len + 1, seed)
    t0 = time.perf_counter()
    res = recover(model, windows, steps, lr, batch_size=batch_size, name=domain, rank=8, alpha=16.0,
                  seed=seed, progress=progress)
    return Expert(domain, emb, res.losses, time.perf_counter() - t0)


def save_expert(model: nn.Module, out_dir: str | os.PathLike, expert: Expert, layer: int) -> Path:
    target = save_adapter(model, Path(out_dir) / "experts" / expert.name, expert.name,
                          metadata={"kind": "expert", "embedding_layer": layer, "steps": len(expert.losses)})
    write_embedding(target, expert.embedding, layer)
    return target


def write_embedding(expert_dir: Path, embedding: Tensor, layer: int) -> None:
    from safetensors.torch import save_file

    tmp = expert_dir / (EMBEDDING_FILE + ".tmp")
    save_file({"embedding": embedding.contiguous(), "layer": torch.tensor(layer),
               "pooling_version": torch.tensor(POOLING_VERSION)}, str(tmp))
    tmp.rename(expert_dir / EMBEDDING_FILE)


def reembed_experts(model: nn.Module, tokenizer, out_dir: str | os.PathLike, k_embed: int = 32,
                    seq_len: int = 128, seed: int = 0) -> None:
    """Remake every expert's embedding with the current pooling (as train_expert makes it; adapters
    untouched): for sets saved before the pooling changed."""
    for d in _expert_dirs(Path(out_dir), None):
        _check_shape(model, d)
        write_embedding(d, expert_embedding(model, tokenizer, d.name, k_embed, seq_len, seed), embedding_layer(model))


def train_experts(model: nn.Module, tokenizer, out_dir: str | os.PathLike, domains: Sequence[str] = DOMAINS,
                  steps: int = 200, progress: bool = True, **kw) -> ExpertSet:
    from clone.lora import set_mix

    experts = []
    for d in domains:
        set_mix(model, {})  # other experts off while this one trains
        e = train_expert(model, tokenizer, d, steps, progress=progress, **kw)
        save_expert(model, out_dir, e, embedding_layer(model))
        experts.append(e)
    return ExpertSet(experts, embedding_layer(model))


def _expert_dirs(out_dir: Path, names: Sequence[str] | None) -> list[Path]:
    root = out_dir / "experts"
    if not root.is_dir():
        raise CloneError(f"{out_dir}: no experts/ directory (train one with `clone train-experts`)")
    dirs = sorted(p for p in root.iterdir() if (p / "adapter_config.json").exists())
    if names is not None:
        have = {p.name for p in dirs}
        missing = [n for n in names if n not in have]
        if missing:
            raise CloneError(f"{root}: no expert(s) {missing} (found: {', '.join(sorted(have)) or 'none'})")
        dirs = [root / n for n in names]
    if not dirs:
        raise CloneError(f"{root}: holds no experts")
    return dirs


def _check_shape(model: nn.Module, d: Path) -> None:
    cfg = read_adapter_config(d)
    shapes = [[s.n_heads, s.n_kv_heads, s.ffn_dim] for s in model.config.layers]
    if cfg["dim"] != model.config.dim or cfg["base_layers"] != shapes:
        why = (f"width {cfg['dim']} vs the model's {model.config.dim}" if cfg["dim"] != model.config.dim
               else f"{len(cfg['base_layers'])} layers [heads, kv_heads, ffn] {cfg['base_layers'][:1]}... "
                    f"vs the model's {len(shapes)} layers {shapes[:1]}...")
        raise CloneError(f"expert {d.name!r} ({d}) was trained on another model shape: {why}")


def read_embedding(model: nn.Module, d: Path) -> tuple[Tensor, int]:
    """(embedding [dim], layer) of expert directory `d`, checked against the model and the pooling."""
    from safetensors.torch import load_file

    path = d / EMBEDDING_FILE
    if not path.exists():
        raise CloneError(f"expert {d.name!r}: {path} is missing")
    t = load_file(str(path))
    if t["embedding"].shape != (model.config.dim,):
        raise CloneError(f"expert {d.name!r}: embedding has shape {tuple(t['embedding'].shape)}, "
                         f"the model's width is {model.config.dim}")
    if int(t.get("pooling_version", torch.tensor(1))) != POOLING_VERSION:
        raise CloneError(f"expert {d.name!r}: embedding made with an older pooling; remake it with "
                         f"`clone train-experts MODEL --out {d.parent.parent} --recalibrate`")
    if not 0 <= int(t["layer"]) < len(model.layers):
        raise CloneError(f"expert {d.name!r}: embedding layer {int(t['layer'])} is not a layer of the model")
    return t["embedding"].float(), int(t["layer"])


def load_experts(model: nn.Module, out_dir: str | os.PathLike, names: Sequence[str] | None = None) -> ExpertSet:
    """Attach every expert under DIR/experts/ to `model`; shape mismatches name the expert. Everything
    is checked before the first adapter is attached."""
    dirs = _expert_dirs(Path(out_dir), names)
    embs = []
    for d in dirs:
        _check_shape(model, d)
        embs.append(read_embedding(model, d))
    layers = {layer for _, layer in embs}
    if len(layers) > 1:
        raise CloneError(f"{out_dir}: experts embedded at different layers {sorted(layers)}")
    for d in dirs:
        load_adapter(model, d, d.name)
    return ExpertSet([Expert(d.name, e) for d, (e, _) in zip(dirs, embs)], layers.pop())
