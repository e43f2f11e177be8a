"""Weight-only quantization of a whole decoder: RTN, or GPTQ calibrated layer by layer.

GPTQ runs the decoder one layer at a time on the calibration tokens: the inputs of layer i (outputs
of the already quantized layers before it) are kept for the calibration set only, so memory is the
model plus one layer's activations for the calibration tokens plus one Hessian. Inside a layer the
projections are quantized in execution order (q/k/v, then o, then gate/up, then down), each with the
Hessian of its inputs as produced by the already-quantized projections before it ("true sequential").
"""

from __future__ import annotations

from typing import Iterable, Sequence

import torch
from torch import Tensor, nn

from clone.errors import CloneError
from clone.model.llama import Transformer
from clone.quant.gptq import HessianAccumulator, gptq_quantize
from clone.quant.linear import QuantLinear
from clone.quant.quantizer import QuantSpec, check_width, make_spec

METHODS = ("rtn", "gptq")
TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
SEQUENTIAL = (("self_attn", ("q_proj", "k_proj", "v_proj")), ("self_attn", ("o_proj",)),
              ("mlp", ("gate_proj", "up_proj")), ("mlp", ("down_proj",)))
RECORD_FORMAT = "clone-affine-v1"


def _set_module(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, attr = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, attr, module)


def target_modules(model: Transformer, targets: Sequence[str] = TARGETS, include_lm_head: bool = False) -> list[str]:
    unknown = set(targets) - set(TARGETS)
    if unknown:
        raise CloneError(f"unknown quantization target(s) {sorted(unknown)} (allowed: {', '.join(TARGETS)})")
    names = []
    for i, layer in enumerate(model.layers):
        for owner, projs in SEQUENTIAL:
            parent = getattr(layer, owner)
            if parent is None:
                continue
            names += [f"layers.{i}.{owner}.{p}" for p in projs if p in targets]
    if include_lm_head:
        names.append("lm_head")
    return names


def _quantize_rtn(model: Transformer, names: list[str], spec: QuantSpec, progress: bool) -> None:
    from tqdm import tqdm

    for name in tqdm(names, desc="quantize (RTN)", disable=not progress, leave=False):
        _set_module(model, name, QuantLinear.from_linear(model.get_submodule(name), spec))


def _iter(calib: Tensor, batch_size: int) -> Iterable[Tensor]:
    for s in range(0, calib.shape[0], batch_size):
        yield calib[s : s + batch_size]


@torch.no_grad()
def _quantize_gptq(model: Transformer, names: list[str], spec: QuantSpec, calib: Tensor, *, act_order: bool,
                   damp: float, block_size: int, batch_size: int, progress: bool) -> None:
    from tqdm import tqdm

    wanted = set(names)
    T = calib.shape[1]
    cos, sin = model._rope(0, T)
    xs = [model.embed_tokens(b) for b in _iter(calib, batch_size)]

    def gptq_group(module_names: list[str], run) -> None:
        first = model.get_submodule(module_names[0])
        acc = HessianAccumulator(first.in_features)
        handle = first.register_forward_pre_hook(lambda m, args: acc.add(args[0]))
        try:
            for x in xs:
                run(x)
        finally:
            handle.remove()
        H = acc.hessian()
        # Projections sharing an input (q/k/v, gate/up) share H; GPTQ treats rows independently, so
        # their stacked rows are quantized in one pass.
        linears = [model.get_submodule(name) for name in module_names]
        stacked = torch.cat([lin.weight.detach() for lin in linears], dim=0)
        codes, scale, zero = gptq_quantize(stacked, H, spec, act_order=act_order, damp=damp, block_size=block_size)
        start = 0
        for name, lin in zip(module_names, linears):
            rows = slice(start, start + lin.out_features)
            start += lin.out_features
            _set_module(model, name, QuantLinear.from_codes(codes[rows], scale[rows], None if zero is None else zero[rows],
                                                            spec, lin.bias))

    for i, layer in enumerate(tqdm(model.layers, desc="quantize (GPTQ)", disable=not progress, leave=False)):
        run = lambda x, layer=layer, i=i: layer(x, cos, sin, None, i)
        for owner, projs in SEQUENTIAL:
            group = [f"layers.{i}.{owner}.{p}" for p in projs if f"layers.{i}.{owner}.{p}" in wanted]
            if group:
                gptq_group(group, run)
        xs = [run(x) for x in xs]
    if "lm_head" in wanted:
        gptq_group(["lm_head"], lambda x: model.lm_head(model.norm(x)))


def quantize_model(model: Transformer, bits: int = 4, group_size: int | None = 128, symmetric: bool = False,
                   method: str = "rtn", calib: Tensor | None = None, *, include_lm_head: bool = False,
                   targets: Sequence[str] = TARGETS, act_order: bool = False, damp: float = 0.01,
                   block_size: int = 128, batch_size: int = 4, scale_dtype: str = "float16",
                   partial_groups: bool = False, progress: bool = False) -> Transformer:
    """Replace the decoder's Linear projections (and optionally lm_head) by QuantLinear, in place.
    group_size None/0/-1 = per-channel; a group size that does not divide a projection's input width
    is an error unless partial_groups (then each row's last group is shorter). Returns the model."""
    if method not in METHODS:
        raise CloneError(f"unknown quantization method {method!r} (allowed: {', '.join(METHODS)})")
    spec = make_spec(bits, group_size, symmetric, scale_dtype)
    names = target_modules(model, targets, include_lm_head)
    for name in names:
        mod = model.get_submodule(name)
        if type(mod) is not nn.Linear:
            raise CloneError(f"cannot quantize {name}: it is a {type(mod).__name__}, not a plain Linear "
                             "(merge LoRA adapters first; a model is quantized once)")
        check_width(spec, mod.in_features, name, partial_groups)
    if method == "gptq":
        if calib is None or calib.dim() != 2:
            raise CloneError("GPTQ needs calibration tokens (calib: a [n_samples, seq_len] tensor)")
        _quantize_gptq(model, names, spec, calib, act_order=act_order, damp=damp, block_size=block_size,
                       batch_size=batch_size, progress=progress)
    else:
        _quantize_rtn(model, names, spec, progress)
    settings = {"method": method}
    if method == "gptq":
        settings.update(act_order=act_order, damp=damp, block_size=block_size, n_samples=int(calib.shape[0]),
                        seq_len=int(calib.shape[1]))
    model.quant_settings = settings
    return model


def quantized_modules(model: nn.Module) -> dict[str, QuantLinear]:
    return {name: m for name, m in model.named_modules() if isinstance(m, QuantLinear)}


def quantization_record(model: nn.Module) -> dict | None:
    """The "quantization" entry of config.json: format, how it was made, and each quantized module."""
    mods = quantized_modules(model)
    if not mods:
        return None
    return {
        "format": RECORD_FORMAT,
        "settings": dict(getattr(model, "quant_settings", {})),
        "modules": {name: {**m.spec.to_dict(), "in_features": m.in_features, "out_features": m.out_features,
                           "bias": m.bias is not None} for name, m in mods.items()},
    }


def model_nbytes(model: nn.Module) -> int:
    """Bytes of the model's weights as stored: packed bytes for QuantLinear, tensors counted once."""
    seen: set[int] = set()
    total = 0
    tensors = list(model.parameters())
    for mod in model.modules():  # persistent buffers only (not RoPE tables or caches)
        tensors += [b for n, b in mod._buffers.items() if b is not None and n not in mod._non_persistent_buffers_set]
    for t in tensors:
        if id(t) in seen or t.numel() == 0:
            continue
        seen.add(id(t))
        total += t.numel() * t.element_size()
    return total
