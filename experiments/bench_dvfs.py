"""DVFS benchmark (issue 5): on the simulated Orin Nano (25W) and Orin NX (MAXN) with the shipped mixed
trace (experiments/traces/dvfs-mixed-60.jsonl, targets from the profiles' latency budgets) and the
websearch co-runner, per policy: energy, energy per token, % of requests meeting both targets (and of
the feasible ones: those max clocks would meet from the time the request started in that run,
clone.dvfs.episode.feasible_flags). Model shape: Llama-3.2-3B, 4-bit weights
(clone.dvfs.shape: with SmolLM2-135M every budget is met at the lowest clocks).

The controller and length predictor are trained here on a separate generated trace (seeds differ from
the benchmark's), the best fixed clocks are searched on the benchmark trace itself, and the oracle
knows true lengths and the co-runner's future. Runs on the fast simulated board (clone.dvfs.episode).
Usage: python experiments/bench_dvfs.py [--iterations N] [--trace FILE]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

from clone.dvfs.controller import ControllerPolicy
from clone.dvfs.episode import FastBoard, feasible_flags, run_trace, summarize
from clone.dvfs.length import LengthPredictor, errors
from clone.dvfs.powertable import grid, measure_simulated
from clone.dvfs.reference import OraclePolicy, best_fixed_clocks
from clone.dvfs.requests import generate_dvfs_trace
from clone.dvfs.shape import describe, resolve_shape
from clone.dvfs.train import TrainConfig, train_controller
from clone.profiles import load_board
from clone.runtime.policies import GovernorPolicy, MaxPolicy
from clone.runtime.simboard import SimulatedBoard
from clone.runtime.traces import load_trace

BOARDS = (("jetson-orin-nano-8gb", "25W"), ("jetson-orin-nx-16gb", "MAXN"))


def bench_board(name: str, mode: str, trace: str, iterations: int, seed: int) -> dict:
    profile = load_board(name)
    shape = resolve_shape()
    table = measure_simulated(SimulatedBoard(profile, mode=mode), shape, grid(profile, mode))
    train_reqs = generate_dvfs_trace(400, seed=1000 + seed, profile=profile)
    predictor = LengthPredictor.fit(train_reqs)
    t0 = time.perf_counter()
    spec, rep = train_controller(profile, mode, FastBoard(profile, shape, mode, "websearch", seed=seed + 7,
                                                          power_table=table),
                                 table, train_reqs, predictor, TrainConfig(iterations=iterations, seed=seed))
    train_s = time.perf_counter() - t0
    reqs = load_trace(trace, profile)
    fresh = lambda: FastBoard(profile, shape, mode, "websearch", seed=seed, power_table=table)  # noqa: E731
    fixed, fixed_outs = best_fixed_clocks(fresh, grid(profile, mode), reqs)
    results = {}
    ctrl = {}
    for label, pol in (("max clocks", MaxPolicy()), ("governor", GovernorPolicy()),
                       (f"best fixed {fixed[0]:g}/{fixed[1]:g}/{fixed[2]:g}", None),
                       ("clone (predicted lengths)", ControllerPolicy(spec)),
                       ("clone (true lengths)", ControllerPolicy(spec, use_true_length=True)),
                       ("oracle", OraclePolicy(grid(profile, mode)))):
        if pol is None:
            results[label] = fixed_outs
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            results[label] = run_trace(fresh(), pol, reqs)
        if isinstance(pol, ControllerPolicy):
            ctrl[label] = pol
    flags = {k: feasible_flags(fresh(), reqs, v) for k, v in results.items()}
    rows = {k: summarize(k, v, flags[k]) for k, v in results.items()}
    feasible = flags["clone (predicted lengths)"]
    pred = [predictor.predict_request(r) for r in reqs]
    return {"rows": rows, "report": rep, "train_s": train_s, "feasible": sum(feasible), "n": len(reqs),
            "pred": errors(pred, [r.expected_output_tokens for r in reqs]),
            "const": errors([int(np.median([r.expected_output_tokens for r in train_reqs]))] * len(reqs),
                            [r.expected_output_tokens for r in reqs]),
            "decision_us": {k: 1e6 * float(np.median(p.decision_s)) for k, p in ctrl.items()},
            "decision_us_p99": {k: 1e6 * float(np.percentile(p.decision_s, 99)) for k, p in ctrl.items()},
            "infeasible": {k: p.infeasible for k, p in ctrl.items()}, "shape": describe(shape)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trace", default="experiments/traces/dvfs-mixed-60.jsonl")
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    for name, mode in BOARDS:
        r = bench_board(name, mode, a.trace, a.iterations, a.seed)
        rows = r["rows"]
        e_max, e_or = rows["max clocks"].energy_J, rows["oracle"].energy_J
        print(f"\n== {name} {mode}, {r['shape']}, websearch co-runner, {r['n']} requests "
              f"({r['feasible']} feasible for the controller) ==")
        print(f"{'policy':28} {'energy J':>9} {'J/token':>8} {'met %':>6} {'met % feas.':>11} {'/oracle':>8} {'vs max':>7}")
        for k, s in rows.items():
            print(f"{k:28} {s.energy_J:9.1f} {s.J_per_token:8.4f} {s.met_pct:6.1f} {s.feasible_met_pct:11.1f} "
                  f"{s.energy_J / e_or:8.3f} {100 * (s.energy_J / e_max - 1):+6.1f}%")
        rep = r["report"]
        print(f"controller: {rep['n_params']} parameters, {rep['actions']} clock settings, {rep['algorithm']}, "
              f"{rep['iterations']} iterations in {r['train_s']:.1f} s, greedy reward {rep['reward_before']:.3f} -> "
              f"{rep['reward_after']:.3f}")
        print("decision time (median / p99 us): " + ", ".join(
            f"{k}: {r['decision_us'][k]:.1f} / {r['decision_us_p99'][k]:.1f}" for k in r["decision_us"]))
        print("decisions with unreachable targets (fastest setting used): " + ", ".join(
            f"{k}: {v}" for k, v in r["infeasible"].items()))
        p, c = r["pred"], r["const"]
        print(f"length predictor on the benchmark trace: MAE {p['mae_tokens']:.1f} tokens, {100 * p['within_20pct']:.0f}% "
              f"within 20% (constant median: MAE {c['mae_tokens']:.1f}, {100 * c['within_20pct']:.0f}%)")
        ok = (rows["clone (predicted lengths)"].feasible_met_pct >= 99.0,
              rows["clone (predicted lengths)"].energy_J <= 1.05 * e_or,
              rows["clone (predicted lengths)"].energy_J <= 0.80 * e_max)
        print(f"targets: >=99% of feasible met {'yes' if ok[0] else 'NO'}, <=1.05x oracle {'yes' if ok[1] else 'NO'}, "
              f">=20% below max {'yes' if ok[2] else 'NO'}")


if __name__ == "__main__":
    main()
