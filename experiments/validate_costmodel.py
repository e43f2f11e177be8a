"""Check the roofline cost model against published Jetson decode speeds (batch 1).

Data next to this script: validation/jetson-published.csv (copied from ../shared/reference, sources
per row) and validation/llm_shapes.yaml (model shapes, runtimes' 4-bit formats). Prints predicted vs
published tokens/s and the error per row.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

from clone.costmodel import CostShape, Workload, cost_model_for
from clone.model.config import ModelConfig
from clone.profiles import load_profile

HERE = Path(__file__).parent / "validation"
MODE_ALIASES = {"25W-super": "MAXN_SUPER"}


def shape_of(name: str, shapes: dict, bits: int, runtime: str) -> CostShape:
    s = dict(shapes[name])
    n_layers = s.pop("n_layers")
    cfg = ModelConfig.uniform(arch="llama", n_layers=n_layers, head_dim=s["dim"] // s["n_heads"], **s)
    fmt = shapes["runtimes"].get(runtime, {"group_size": 128, "symmetric": True, "head_bits": 16})
    return CostShape(cfg, weight_bits=bits, group_size=fmt["group_size"], symmetric=fmt["symmetric"],
                     head_bits=fmt["head_bits"])


def validate(prompt_tokens: int = 128, output_tokens: int = 128) -> pd.DataFrame:
    rows = pd.read_csv(HERE / "jetson-published.csv", comment="#")
    shapes = yaml.safe_load((HERE / "llm_shapes.yaml").read_text())
    out = []
    for r in rows.itertuples():
        profile = load_profile(r.board.replace("-super", ""))
        mode = MODE_ALIASES.get(r.power_mode, r.power_mode)
        if mode not in profile.mode_names:
            mode = profile.default_mode
        rep = cost_model_for(profile).predict(shape_of(r.model, shapes, int(r.weight_bits), r.runtime),
                                              Workload(prompt_tokens, output_tokens), profile.max_clocks(mode))
        pred = rep.decode_tokens_per_s
        out.append({"board": r.board, "mode": mode, "runtime": r.runtime, "model": r.model,
                    "published_tok_s": r.decode_tokens_per_s, "predicted_tok_s": round(pred, 1),
                    "error_pct": round(100 * (pred - r.decode_tokens_per_s) / r.decode_tokens_per_s, 1)})
    return pd.DataFrame(out)


if __name__ == "__main__":
    table = validate()
    print(table.to_string(index=False))
    print(f"mean |error| {table.error_pct.abs().mean():.1f}%, max |error| {table.error_pct.abs().max():.1f}%")
