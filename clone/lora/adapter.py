"""LoRA adapters on the decoder's projections, built for one adapter or a weighted mixture of many.

LoRALinear wraps a projection (nn.Linear or QuantLinear) and holds any number of named adapters plus
a mixing weight per adapter:

    y = base(x) + sum_j w_j * (alpha_j / r_j) * B_j A_j dropout(x)

w_j is a float, or a tensor [batch] for per-request weights (the router's soft mixture). A is
initialised Kaiming-uniform and B to zero, so a new adapter is a no-op. The frozen base weights are
never modified, except by `merge_lora`, which folds adapters into plain fp Linear weights.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import torch
from torch import Tensor, nn

from clone.errors import CloneError

TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
_OWNER = {"q_proj": "self_attn", "k_proj": "self_attn", "v_proj": "self_attn", "o_proj": "self_attn",
          "gate_proj": "mlp", "up_proj": "mlp", "down_proj": "mlp"}


class LoRAAdapter(nn.Module):
    def __init__(self, in_features: int, out_features: int, rank: int = 8, alpha: float = 16.0,
                 dropout: float = 0.0, generator: torch.Generator | None = None) -> None:
        super().__init__()
        if rank <= 0:
            raise CloneError(f"LoRA rank {rank} must be positive")
        if not 0.0 <= dropout < 1.0:
            raise CloneError(f"LoRA dropout {dropout} is outside [0, 1)")
        self.rank, self.alpha, self.dropout_p = int(rank), float(alpha), float(dropout)
        self.A = nn.Parameter(torch.empty(rank, in_features))
        self.B = nn.Parameter(torch.zeros(out_features, rank))
        bound = 1.0 / math.sqrt(in_features)  # kaiming_uniform_(a=sqrt(5)), as nn.Linear and PEFT
        with torch.no_grad():
            self.A.uniform_(-bound, bound, generator=generator)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    @property
    def scaling(self) -> float:
        return self.alpha / self.rank

    def forward(self, x: Tensor) -> Tensor:
        return (self.dropout(x) @ self.A.T) @ self.B.T * self.scaling

    def delta_weight(self) -> Tensor:
        return (self.B @ self.A) * self.scaling


class LoRALinear(nn.Module):
    def __init__(self, base: nn.Module) -> None:
        super().__init__()
        self.base = base
        self.in_features, self.out_features = base.in_features, base.out_features
        self.lora_adapters = nn.ModuleDict()
        self.mix: dict[str, float | Tensor] = {}

    def add_adapter(self, name: str, rank: int = 8, alpha: float = 16.0, dropout: float = 0.0,
                    generator: torch.Generator | None = None) -> LoRAAdapter:
        if name in self.lora_adapters:
            raise CloneError(f"LoRA adapter {name!r} already exists")
        adapter = LoRAAdapter(self.in_features, self.out_features, rank, alpha, dropout, generator)
        self.lora_adapters[name] = adapter
        self.mix[name] = 1.0
        return adapter

    def forward(self, x: Tensor) -> Tensor:
        y = self.base(x)
        for name, adapter in self.lora_adapters.items():
            w = self.mix.get(name, 0.0)
            if isinstance(w, Tensor):
                w = w.to(y.dtype).view(-1, *([1] * (y.dim() - 1)))  # one weight per request in the batch
            elif w == 0.0:
                continue
            y = y + w * adapter(x.to(adapter.A.dtype)).to(y.dtype)
        return y

    def extra_repr(self) -> str:
        return f"adapters={list(self.lora_adapters)}"


def lora_modules(model: nn.Module) -> dict[str, LoRALinear]:
    return {name: m for name, m in model.named_modules() if isinstance(m, LoRALinear)}


def adapter_names(model: nn.Module) -> list[str]:
    names: list[str] = []
    for m in lora_modules(model).values():
        names += [n for n in m.lora_adapters if n not in names]
    return names


def _set(model: nn.Module, path: str, module: nn.Module) -> None:
    parent, _, attr = path.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, attr, module)


def target_paths(model: nn.Module, targets: Sequence[str] = TARGETS) -> list[str]:
    unknown = set(targets) - set(TARGETS)
    if unknown or not targets:
        raise CloneError(f"LoRA targets {sorted(unknown) or list(targets)} are not valid (allowed: {', '.join(TARGETS)})")
    paths = []
    for i, layer in enumerate(model.layers):
        for t in TARGETS:
            if t in targets and getattr(layer, _OWNER[t]) is not None:
                paths.append(f"layers.{i}.{_OWNER[t]}.{t}")
    return paths


def add_lora(model: nn.Module, name: str = "default", rank: int = 8, alpha: float = 16.0, dropout: float = 0.0,
             targets: Sequence[str] = TARGETS, seed: int = 0) -> list[str]:
    """Add adapter `name` to every targeted projection (wrapping it in LoRALinear on first use);
    returns the wrapped module paths. The new adapter's mixing weight is 1."""
    gen = torch.Generator().manual_seed(seed)
    paths = target_paths(model, targets)
    for path in paths:
        mod = model.get_submodule(path)
        if not isinstance(mod, LoRALinear):
            if not hasattr(mod, "in_features"):
                raise CloneError(f"cannot add LoRA to {path}: {type(mod).__name__} is not a linear layer")
            mod = LoRALinear(mod)
            _set(model, path, mod)
        adapter = mod.add_adapter(name, rank, alpha, dropout, gen)
        ref = getattr(mod.base, "weight", None)
        if ref is not None and ref.dtype.is_floating_point and ref.dtype != torch.float32:
            adapter.to(ref.dtype)
    return paths


def set_mix(model: nn.Module, weights: Mapping[str, float | Tensor]) -> None:
    """Set the mixing weight of every adapter (adapters not named get weight 0)."""
    known = set(adapter_names(model))
    unknown = set(weights) - known
    if unknown:
        raise CloneError(f"unknown LoRA adapter(s) {sorted(unknown)} (loaded: {', '.join(sorted(known)) or 'none'})")
    for m in lora_modules(model).values():
        m.mix = {n: weights.get(n, 0.0) for n in m.lora_adapters}


def lora_parameters(model: nn.Module, name: str | None = None) -> list[nn.Parameter]:
    params = []
    for m in lora_modules(model).values():
        for n, adapter in m.lora_adapters.items():
            if name is None or n == name:
                params += [adapter.A, adapter.B]
    return params


def _unwrap_if_empty(model: nn.Module, path: str, mod: LoRALinear) -> None:
    if len(mod.lora_adapters) == 0:
        _set(model, path, mod.base)


def remove_lora(model: nn.Module, name: str | None = None) -> None:
    """Drop adapter `name` (all adapters if None); projections left without adapters are unwrapped."""
    for path, mod in lora_modules(model).items():
        for n in list(mod.lora_adapters):
            if name is None or n == name:
                del mod.lora_adapters[n]
                mod.mix.pop(n, None)
        _unwrap_if_empty(model, path, mod)


@torch.no_grad()
def merge_lora(model: nn.Module, name: str | None = None) -> None:
    """Fold adapter `name` (all if None), at its current scalar mixing weight, into the fp base weights,
    then drop it. A quantized base cannot absorb an adapter: merge before quantizing, or keep it apart."""
    mods = lora_modules(model)
    if name is not None and name not in adapter_names(model):
        raise CloneError(f"unknown LoRA adapter {name!r} (loaded: {', '.join(adapter_names(model)) or 'none'})")
    for path, mod in mods.items():
        if type(mod.base) is not nn.Linear:
            raise CloneError(f"cannot merge LoRA into {path}: its base is a {type(mod.base).__name__} "
                             "(merge adapters before quantizing, or keep them separate)")
    for path, mod in mods.items():
        for n in list(mod.lora_adapters):
            if name is not None and n != name:
                continue
            w = mod.mix.get(n, 0.0)
            if isinstance(w, Tensor):
                raise CloneError(f"cannot merge adapter {n!r}: its mixing weight is per request")
            weight = mod.base.weight
            weight.add_((float(w) * mod.lora_adapters[n].delta_weight()).to(weight.dtype))
            del mod.lora_adapters[n]
            mod.mix.pop(n, None)
        _unwrap_if_empty(model, path, mod)
