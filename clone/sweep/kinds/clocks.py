"""Latency and energy of prefill and decode at one (GPU, EMC, CPU) clock setting of a Jetson profile,
from the roofline cost model (docs/costmodel.md): the paper's Figure 7 with the memory clock added.

Why the cost model and not the simulated board: a clock sweep asks what the hardware costs at each
setting without interference, which is exactly CostModel.predict; the board adds a co-runner and a
virtual clock that a static sweep does not need.
"""

from __future__ import annotations

from typing import Any

from clone.sweep.kinds import _common as c
from clone.sweep.kinds.base import Kind, Param, PointContext, PointError

PARAMS = {
    "profile": Param(str, doc="a board profile (edge_profiles/)"),
    "mode": Param(str, None, doc="power mode (default: the profile's)"),
    "model": Param(str, "llama-3.2-3b", doc="model shape (model_shapes.yaml or a built-in model)"),
    "weight_bits": Param(int, 4, choices=(4, 8, 16)),
    "group_size": Param(int, 128),
    "prompt_tokens": Param(int, 512),
    "output_tokens": Param(int, 128),
    "gpu_MHz": Param(float, None, symbols=c.CLOCK_SYMBOLS, doc="default: the mode's top clock"),
    "emc_MHz": Param(float, None, symbols=c.CLOCK_SYMBOLS),
    "cpu_MHz": Param(float, None, symbols=c.CLOCK_SYMBOLS),
    "runtime": Param(str, "tuned", choices=("tuned", "paper-eager"), doc="cost-model calibration class"),
}
RESULTS = ("ttft_s", "prefill_J", "prefill_W", "tpot_s", "decode_J_per_token", "decode_W", "e2e_s",
           "energy_J")


def prepare(p: dict[str, Any]) -> dict[str, Any]:
    prof = c.check_profile(p["profile"])
    p["mode"] = c.check_mode(prof, p["mode"])
    c.check_model(p["model"])
    c.positive(p, "prompt_tokens", "output_tokens")
    if p["group_size"] < 0:
        raise PointError("group_size", f"{p['group_size']} must be >= 0 (0 = per-channel)")
    for key in c.DOMAINS:
        p[key] = c.check_clock(prof, p["mode"], key, p[key])
    return p


def resolve(key: str, symbol: str, p: dict[str, Any]) -> list[Any]:
    return c.clock_values(c.profile(p["profile"]), p["mode"], key, symbol)


def run(p: dict[str, Any], ctx: PointContext) -> dict[str, Any]:
    from clone.costmodel import CostShape, RooflineCostModel, Workload

    model = RooflineCostModel(c.profile(p["profile"]), runtime=p["runtime"], mode=p["mode"])
    shape = CostShape(c.model_config(p["model"]), weight_bits=p["weight_bits"], group_size=p["group_size"])
    rep = model.predict(shape, Workload(p["prompt_tokens"], p["output_tokens"]),
                        {"gpu_MHz": p["gpu_MHz"], "emc_MHz": p["emc_MHz"], "cpu_MHz": p["cpu_MHz"]})
    steps = max(rep.decode_steps, 1)
    return {"ttft_s": rep.ttft_s, "prefill_J": rep.prefill.energy_J, "prefill_W": rep.prefill.power_W,
            "tpot_s": rep.tpot_s, "decode_J_per_token": rep.decode.energy_J / steps, "decode_W": rep.decode.power_W,
            "e2e_s": rep.e2e_s, "energy_J": rep.energy_J}


KIND = Kind("clocks", PARAMS, RESULTS, run, plots=("clocks",), prepare=prepare, resolve=resolve,
            doc=__doc__ or "")
