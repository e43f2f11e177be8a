"""Perplexity and weight memory of the embedded model with its decoder projections quantized to
`bits` in groups of `group_size` input columns (0 = per-channel), by RTN or GPTQ (clone.quant,
docs/compression.md). Memory is reported three ways: the bytes as stored by this code (fp32 for
everything not quantized), as deployed on a board (every float tensor in fp16), and the decoder
projections alone (what the group size changes).
"""

from __future__ import annotations

import copy
from typing import Any

from clone.sweep.kinds import _model as m
from clone.sweep.kinds.base import Kind, Param, PointContext, PointError

PARAMS = {
    "model": Param(str, "smollm2-135m"),
    "bits": Param(int, choices=(4, 8, 16), doc="16 = the float model"),
    "group_size": Param(int, 128, doc="input columns per scale; 0 = per-channel (ignored at 16 bits)"),
    "method": Param(str, "rtn", choices=("rtn", "gptq")),
    "symmetric": Param(bool, False),
    "act_order": Param(bool, False, doc="GPTQ column order by decreasing Hessian diagonal"),
    "corpus": Param(str, "shakespeare"),
    "split": Param(str, "test"),
    "seq_len": Param(int, 256),
    "max_tokens": Param(int, 2048, doc="first N tokens of the split (0 = all)"),
    "calib_samples": Param(int, 32, doc="GPTQ calibration windows (Shakespeare train)"),
    "calib_seq_len": Param(int, 128),
    "seed": Param(int, 0),
}
RESULTS = ("ppl", "model_MB", "deployed_MB", "projection_MB", "projection_bits_per_weight")


def prepare(p: dict[str, Any]) -> dict[str, Any]:
    m.check_checkpoint(p["model"])
    m.check_protocol(p)
    if p["group_size"] < 0:
        raise PointError("group_size", f"{p['group_size']} must be >= 0 (0 = per-channel)")
    if p["bits"] == 16:  # one float model, whatever the quantizer settings say
        p.update(group_size=0, method="rtn", symmetric=False, act_order=False)
    if p["act_order"] and p["method"] != "gptq":
        raise PointError("act_order", "act_order applies to GPTQ only (method gptq)")
    return p


def _projection_bytes(net: Any) -> tuple[int, int]:
    """(bytes, weights) of the decoder's seven projections, packed codes + scales + zeros if quantized."""
    from clone.quant.linear import QuantLinear
    from clone.quant.model import target_modules

    total = weights = 0
    for name in target_modules(net):
        mod = net.get_submodule(name)
        weights += mod.in_features * mod.out_features
        if isinstance(mod, QuantLinear):
            total += mod.nbytes() - (mod.bias.numel() * mod.bias.element_size() if mod.bias is not None else 0)
        else:
            total += mod.weight.numel() * 2  # fp16 as deployed
    return total, weights


def run(p: dict[str, Any], ctx: PointContext) -> dict[str, Any]:
    from clone.optimize.stages import deployed_bytes
    from clone.quant import model_nbytes, quantize_model
    from clone.quant.model import quantized_modules

    net = m.checkpoint(p["model"]).model
    if p["bits"] < 16:
        net = copy.deepcopy(net)
        calib = m.calib(p["model"], p["calib_samples"], p["calib_seq_len"], p["seed"]) if p["method"] == "gptq" else None
        quantize_model(net, bits=p["bits"], group_size=p["group_size"] or None, symmetric=p["symmetric"],
                       method=p["method"], calib=calib, act_order=p["act_order"], partial_groups=True)
        for mod in quantized_modules(net).values():
            mod.cache_weight(True)  # evaluate with one dequantized copy, not per-call unpacking (same values)
    proj, weights = _projection_bytes(net)
    return {"ppl": m.perplexity(net, p["model"], p), "model_MB": model_nbytes(net) / 1e6,
            "deployed_MB": deployed_bytes(net) / 1e6, "projection_MB": proj / 1e6,
            "projection_bits_per_weight": 8 * proj / weights}


KIND = Kind("quant", PARAMS, RESULTS, run, plots=("quant",), prepare=prepare, doc=__doc__ or "")
