"""A request trace served on a simulated Jetson (clone.dvfs.episode.FastBoard: the cost model, the
co-runner process and clock-switch stalls) under one clock policy: fixed clocks (`static`, one point
per setting, which traces the energy-latency trade-off the board offers) or a policy (max clocks,
the utilisation governor, the best fixed setting for the trace, the learned CLONE controller, the
oracle). Plotting energy against latency of all of them gives the Pareto front per profile and
where each policy lands relative to it (docs/dvfs.md describes the policies).
"""

from __future__ import annotations

import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any

from clone.sweep.kinds import _common as c
from clone.sweep.kinds.base import Kind, Param, PointContext, PointError

POLICIES = ("static", "max", "governor", "best-fixed", "clone", "oracle")
TRACES_DIR = Path(__file__).resolve().parents[3] / "experiments" / "traces"

PARAMS = {
    "profile": Param(str),
    "mode": Param(str, None),
    "model": Param(str, "llama-3.2-3b", doc="model shape (docs/dvfs.md: SmolLM2 meets every budget at the lowest clocks)"),
    "weight_bits": Param(int, 4, choices=(4, 8, 16)),
    "trace": Param(str, "dvfs-mixed-60", doc="a trace of experiments/traces/ by name, or a JSONL path"),
    "max_requests": Param(int, 0, doc="first N requests of the trace (0 = all)"),
    "interference": Param(str, "websearch", choices=("none", "websearch")),
    "seed": Param(int, 0, doc="co-runner timeline and controller training seed"),
    "policy": Param(str, choices=POLICIES),
    "gpu_MHz": Param(float, None, symbols=c.CLOCK_SYMBOLS, doc="static policy only"),
    "emc_MHz": Param(float, None, symbols=c.CLOCK_SYMBOLS),
    "cpu_MHz": Param(float, None, symbols=c.CLOCK_SYMBOLS),
    "cpu_steps": Param(int, 5, doc="CPU steps of the power-table grid the oracle, best-fixed and controller use"),
    "iterations": Param(int, 150, doc="controller training iterations (clone policy)"),
    "train_requests": Param(int, 400, doc="generated requests the controller and length predictor train on"),
}
RESULTS = ("energy_J", "J_per_token", "e2e_mean_s", "ttft_mean_s", "tpot_mean_s", "met_pct", "requests",
           "tokens", "clocks")


def trace_path(name: str) -> Path:
    shipped = TRACES_DIR / f"{name}.jsonl"
    return shipped if shipped.exists() else Path(name)


def prepare(p: dict[str, Any]) -> dict[str, Any]:
    prof = c.check_profile(p["profile"])
    p["mode"] = c.check_mode(prof, p["mode"])
    c.check_model(p["model"])
    if not trace_path(p["trace"]).is_file():
        shipped = sorted(f.stem for f in TRACES_DIR.glob("*.jsonl"))
        raise PointError("trace", f"{p['trace']!r} is neither a shipped trace nor a file", ", ".join(shipped))
    for key in ("max_requests", "cpu_steps"):
        if p[key] < 0:
            raise PointError(key, f"{p[key]} must be >= 0")
    c.positive(p, "iterations", "train_requests")
    for key in c.DOMAINS:
        if p["policy"] == "static":
            p[key] = c.check_clock(prof, p["mode"], key, p[key])
        elif p[key] is not None:
            raise PointError(key, f"{p[key]:g}: only the static policy takes clocks (policy {p['policy']})")
    return p


def resolve(key: str, symbol: str, p: dict[str, Any]) -> list[Any]:
    if p["policy"] != "static":
        raise PointError(key, f"{symbol!r}: only the static policy takes clocks (policy {p['policy']})")
    return c.clock_values(c.profile(p["profile"]), p["mode"], key, symbol)


# ------------------------------------------------------------------------------ shared per process
@lru_cache(maxsize=8)
def _shape(model: str, bits: int) -> Any:
    from clone.costmodel import CostShape

    return CostShape(c.model_config(model), weight_bits=bits)


@lru_cache(maxsize=8)
def _table(profile: str, mode: str, model: str, bits: int, cpu_steps: int) -> Any:
    from clone.dvfs.powertable import grid, measure_simulated
    from clone.runtime.simboard import SimulatedBoard

    prof = c.profile(profile)
    return measure_simulated(SimulatedBoard(prof, mode=mode), _shape(model, bits), grid(prof, mode, cpu_steps or None))


@lru_cache(maxsize=8)
def _requests(trace: str, profile: str, max_requests: int) -> tuple:
    from clone.runtime.traces import load_trace

    reqs = load_trace(trace_path(trace), c.profile(profile))
    return tuple(reqs[:max_requests] if max_requests else reqs)


def _board(p: dict[str, Any]) -> Any:
    from clone.dvfs.episode import FastBoard

    table = _table(p["profile"], p["mode"], p["model"], p["weight_bits"], p["cpu_steps"])
    return FastBoard(c.profile(p["profile"]), _shape(p["model"], p["weight_bits"]), p["mode"], p["interference"],
                     seed=p["seed"], power_table=table)


@lru_cache(maxsize=8)
def _controller(profile: str, mode: str, model: str, bits: int, cpu_steps: int, interference: str, seed: int,
                iterations: int, train_requests: int) -> Any:
    """Trained as experiments/bench_dvfs.py does: on a generated trace whose seed differs from the
    benchmark's, on a co-runner timeline of its own."""
    from clone.dvfs.episode import FastBoard
    from clone.dvfs.length import LengthPredictor
    from clone.dvfs.requests import generate_dvfs_trace
    from clone.dvfs.train import TrainConfig, train_controller

    prof = c.profile(profile)
    table = _table(profile, mode, model, bits, cpu_steps)
    reqs = generate_dvfs_trace(train_requests, seed=1000 + seed, profile=prof)
    board = FastBoard(prof, _shape(model, bits), mode, interference, seed=seed + 7, power_table=table)
    spec, _ = train_controller(prof, mode, board, table, reqs, LengthPredictor.fit(reqs),
                               TrainConfig(iterations=iterations, seed=seed))
    return spec


def _policy(p: dict[str, Any], reqs: tuple) -> tuple[Any, str]:
    from clone.dvfs.controller import ControllerPolicy
    from clone.dvfs.powertable import grid
    from clone.dvfs.reference import OraclePolicy, best_fixed_clocks
    from clone.runtime.policies import GovernorPolicy, MaxPolicy, StaticPolicy

    name = p["policy"]
    settings = grid(c.profile(p["profile"]), p["mode"], p["cpu_steps"] or None)
    if name == "static":
        return StaticPolicy(p["gpu_MHz"], p["emc_MHz"], p["cpu_MHz"]), _fmt((p["gpu_MHz"], p["emc_MHz"], p["cpu_MHz"]))
    if name == "max":
        return MaxPolicy(), ""
    if name == "governor":
        return GovernorPolicy(), ""
    if name == "best-fixed":
        setting, _ = best_fixed_clocks(lambda: _board(p), settings, list(reqs))
        return StaticPolicy(*setting), _fmt(setting)
    if name == "oracle":
        return OraclePolicy(settings), ""
    spec = _controller(p["profile"], p["mode"], p["model"], p["weight_bits"], p["cpu_steps"], p["interference"],
                       p["seed"], p["iterations"], p["train_requests"])
    return ControllerPolicy(spec), ""


def _fmt(setting: tuple) -> str:
    return "/".join(f"{x:g}" for x in setting)


def run(p: dict[str, Any], ctx: PointContext) -> dict[str, Any]:
    from clone.dvfs.episode import run_trace, summarize

    reqs = _requests(p["trace"], p["profile"], p["max_requests"])
    with warnings.catch_warnings():  # "targets cannot be met under the current load" is counted in met_pct
        warnings.simplefilter("ignore")
        policy, clocks = _policy(p, reqs)
        outs = run_trace(_board(p), policy, list(reqs))
    s = summarize(p["policy"], outs)
    n = len(outs)
    e2e = [o.ttft_s + o.tpot_s * max(o.output_tokens - 1, 0) for o in outs]
    return {"energy_J": s.energy_J, "J_per_token": s.J_per_token, "e2e_mean_s": sum(e2e) / n,
            "ttft_mean_s": sum(o.ttft_s for o in outs) / n, "tpot_mean_s": sum(o.tpot_s for o in outs) / n,
            "met_pct": s.met_pct, "requests": n, "tokens": s.tokens, "clocks": clocks}


KIND = Kind("pareto", PARAMS, RESULTS, run, plots=("pareto",), prepare=prepare, resolve=resolve, doc=__doc__ or "")
