"""Adapters on disk, apart from the base model: adapter.safetensors + adapter_config.json.

adapter.safetensors holds `<module path>.lora_A` [rank, in] and `<module path>.lora_B` [out, rank]
for every wrapped projection (paths as in the model, e.g. `layers.3.self_attn.q_proj`);
adapter_config.json holds format, name, rank, alpha, dropout, targets, the module list and the base
model's per-layer shapes, so an adapter is only applied to the model shape it was trained on.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from clone.atomic import atomic_path
from clone.errors import CloneError
from clone.lora.adapter import LoRALinear, _set, adapter_names, lora_modules

FORMAT = "clone-lora-v1"


def save_adapter(model: nn.Module, directory: str | os.PathLike, name: str = "default",
                 metadata: dict[str, Any] | None = None) -> Path:
    from safetensors.torch import save_file

    mods = {p: m for p, m in lora_modules(model).items() if name in m.lora_adapters}
    if not mods:
        raise CloneError(f"no LoRA adapter named {name!r} (loaded: {', '.join(adapter_names(model)) or 'none'})")
    tensors, first = {}, None
    for path, m in mods.items():
        a = m.lora_adapters[name]
        first = first or a
        tensors[f"{path}.lora_A"] = a.A.detach().contiguous()
        tensors[f"{path}.lora_B"] = a.B.detach().contiguous()
    targets = sorted({p.rsplit(".", 1)[1] for p in mods})
    config = {"format": FORMAT, "name": name, "rank": first.rank, "alpha": first.alpha, "dropout": first.dropout_p,
              "targets": targets, "modules": sorted(mods),
              "base_layers": [[s.n_heads, s.n_kv_heads, s.ffn_dim] for s in model.config.layers],
              "dim": model.config.dim, "metadata": metadata or {}}
    target = Path(directory)
    with atomic_path(target, directory=True) as tmp:
        save_file(tensors, str(tmp / "adapter.safetensors"))
        (tmp / "adapter_config.json").write_text(json.dumps(config, indent=1))
    return target


def read_adapter_config(directory: str | os.PathLike) -> dict[str, Any]:
    path = Path(directory) / "adapter_config.json"
    if not path.exists():
        raise CloneError(f"{directory}: not a LoRA adapter directory (no adapter_config.json)")
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CloneError(f"{path}: invalid JSON ({exc.msg} at line {exc.lineno})") from None
    if config.get("format") != FORMAT:
        raise CloneError(f"{path}: format {config.get('format')!r} is not supported (supported: {FORMAT})")
    return config


@torch.no_grad()
def load_adapter(model: nn.Module, directory: str | os.PathLike, name: str | None = None) -> str:
    """Attach a saved adapter (under `name`, default its saved name) with mixing weight 1."""
    from safetensors.torch import load_file

    config = read_adapter_config(directory)
    name = name or config["name"]
    shapes = [[s.n_heads, s.n_kv_heads, s.ffn_dim] for s in model.config.layers]
    if config["base_layers"] != shapes or config["dim"] != model.config.dim:
        raise CloneError(f"{directory}: adapter was trained on another model shape (layers or width differ)")
    tensors = load_file(str(Path(directory) / "adapter.safetensors"))
    for path in config["modules"]:
        mod = model.get_submodule(path)
        if not isinstance(mod, LoRALinear):
            mod = LoRALinear(mod)
            _set(model, path, mod)
        adapter = mod.add_adapter(name, config["rank"], config["alpha"], config["dropout"])
        A, B = tensors[f"{path}.lora_A"], tensors[f"{path}.lora_B"]
        if A.shape != adapter.A.shape or B.shape != adapter.B.shape:
            raise CloneError(f"{directory}: tensor shapes of {path} do not match the model")
        adapter.to(A.dtype)
        adapter.A.copy_(A)
        adapter.B.copy_(B)
    return name
