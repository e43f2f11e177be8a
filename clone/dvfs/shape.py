"""Which model shape DVFS profiles, trains and benchmarks with. Default: Llama-3.2-3B with 4-bit
weights (group 128), a model an 8 GB Orin Nano runs whose decode TPOT (28 ms at max clocks, ~430 ms at
the lowest EMC clock) straddles the profiles' latency budgets, so clock choice matters. SmolLM2-135M
meets every budget at the lowest clocks, which leaves nothing to control (docs/dvfs.md)."""

from __future__ import annotations

import json
from pathlib import Path

from clone.costmodel.base import CostShape
from clone.costmodel.validation import model_shape

DEFAULT_SHAPE = "llama-3.2-3b"
DEFAULT_BITS = 4


def resolve_shape(name: str | None = None, weight_bits: int | None = None, model_dir: str | Path | None = None) -> CostShape:
    """--shape NAME (model_shapes.yaml) wins; else MODEL_DIR's config.json if it has one; else the default."""
    if name is None and model_dir is not None and (Path(model_dir) / "config.json").exists():
        shape = CostShape.from_model_dir(model_dir)
        if weight_bits:
            from dataclasses import replace

            shape = replace(shape, weight_bits=weight_bits)
        return shape
    return CostShape(model_shape(name or DEFAULT_SHAPE), weight_bits=weight_bits or DEFAULT_BITS)


def describe(shape: CostShape) -> str:
    return f"{getattr(shape.config, 'name', 'model') or 'model'} w{shape.weight_bits}"


def shape_record(shape: CostShape) -> str:
    return json.dumps({"name": describe(shape), "layers": shape.n_layers, "dim": shape.config.dim})
