"""One request (prefill + decode) of a model on the CLONE accelerator at an operating point and array
size, from the cycle-level simulator and 28 nm energy model (sim/, docs/sim.md), with the instance's
area (sim/area.py). A board profile instead costs the same model shape on that Jetson at its mode's top
clocks with the roofline model, so a figure can put the accelerator next to the board it serves.
"""

from __future__ import annotations

from typing import Any

from clone.errors import CloneError
from clone.sweep.kinds import _common as c
from clone.sweep.kinds.base import Kind, Param, PointContext, PointError

ACCEL = "clone-accel-28nm"
PARAMS = {
    "profile": Param(str, ACCEL, doc="the accelerator profile, or a board profile for a reference row"),
    "mode": Param(str, None, doc="board power mode (boards only; default: the profile's)"),
    "model": Param(str, "smollm2-135m"),
    "array": Param(str, None, doc="RxC MAC array (accelerator only; default: the profile's)"),
    "point": Param(str, None, symbols=("all",), doc="operating point l0..l15 or V@f (default: the profile's; 'max' on a board)"),
    "weight_bits": Param(int, 8, choices=(4, 8)),
    "prompt_tokens": Param(int, 128),
    "output_tokens": Param(int, 128),
}
RESULTS = ("freq_MHz", "voltage_V", "ttft_s", "tpot_s", "prefill_J", "decode_J_per_token", "energy_J",
           "tok_compute_mJ", "tok_sram_mJ", "tok_dram_mJ", "tok_link_mJ", "tok_leakage_mJ",
           "area_mm2", "area_array_mm2", "area_memory_mm2")


def _points() -> Any:
    from sim.energy import point_table

    return point_table()


def prepare(p: dict[str, Any]) -> dict[str, Any]:
    prof = c.check_profile(p["profile"], kinds=("accelerator", "board"))
    c.check_model(p["model"])
    c.positive(p, "prompt_tokens", "output_tokens")
    if prof.kind == "board":
        p["mode"] = c.check_mode(prof, p["mode"])
        if p["array"] is not None:
            raise PointError("array", f"{p['array']!r}: a board profile has no MAC array (leave it empty)")
        if p["point"] not in (None, "max"):
            raise PointError("point", f"{p['point']!r}: a board row runs at its mode's top clocks", "max")
        p["point"] = "max"
        return p
    if p["mode"] is not None:
        raise PointError("mode", f"{p['mode']!r}: the accelerator has operating points, not power modes")
    from sim.workload import accel_params

    p["array"] = p["array"] or f"{prof.array['rows']}x{prof.array['cols']}"
    try:
        accel_params(p["array"])
    except CloneError as exc:
        raise PointError("array", str(exc).split(": ", 1)[-1]) from None
    try:
        pt = _points().get(p["point"] or prof.default_point)
    except CloneError as exc:
        raise PointError("point", str(exc)) from None
    p["point"] = p["point"] if pt.name == "custom" else pt.name
    return p


def resolve(key: str, symbol: str, p: dict[str, Any]) -> list[Any]:
    if c.profile(p["profile"]).kind != "accelerator":
        raise PointError(key, f"{symbol!r}: operating points belong to the accelerator profile", ACCEL)
    return _points().names()


def _board(p: dict[str, Any]) -> dict[str, Any]:
    from clone.costmodel import CostShape, RooflineCostModel, Workload

    prof = c.profile(p["profile"])
    model = RooflineCostModel(prof, mode=p["mode"])
    clocks = prof.max_clocks(p["mode"])
    rep = model.predict(CostShape(c.model_config(p["model"]), weight_bits=p["weight_bits"]),
                        Workload(p["prompt_tokens"], p["output_tokens"]), clocks)
    steps = max(rep.decode_steps, 1)
    return {"freq_MHz": clocks["gpu_MHz"], "ttft_s": rep.ttft_s, "tpot_s": rep.tpot_s,
            "prefill_J": rep.prefill.energy_J, "decode_J_per_token": rep.decode.energy_J / steps,
            "energy_J": rep.energy_J}


def run(p: dict[str, Any], ctx: PointContext) -> dict[str, Any]:
    if c.profile(p["profile"]).kind == "board":
        return _board(p)
    from sim.area import area
    from sim.costmodel import AcceleratorCostModel
    from sim.energy import link_spec
    from sim.link import StreamLink
    from sim.workload import accel_params, simulate

    cm = AcceleratorCostModel.from_profile(c.profile(p["profile"]))
    params = accel_params(p["array"])
    pt = _points().get(p["point"])
    link = StreamLink.from_bandwidth(cm.bandwidth_GBps, link_spec().latency_ns, pt.freq_MHz)
    rep = simulate(c.model_config(p["model"]), p["prompt_tokens"], p["output_tokens"], params=params, point=pt,
                   weight_bits=p["weight_bits"], link=link, model_name=p["model"])
    s = rep.summary()
    a = area(params)
    return {"freq_MHz": pt.freq_MHz, "voltage_V": pt.voltage_V, "ttft_s": rep.prefill.time_s,
            "tpot_s": rep.decode.time_s / max(rep.decode_steps, 1), "prefill_J": rep.prefill.total_J,
            "decode_J_per_token": rep.energy_per_token_J, "energy_J": rep.prefill.total_J + rep.decode.total_J,
            **{f"tok_{k}_mJ": s[f"tok_{k}_mJ"] for k in ("compute", "sram", "dram", "link", "leakage")},
            "area_mm2": a.total_mm2, "area_array_mm2": a.array_mm2, "area_memory_mm2": a.memory_mm2}


KIND = Kind("accel", PARAMS, RESULTS, run, plots=("accel-points", "accel-arrays"), prepare=prepare,
            resolve=resolve, doc=__doc__ or "")
