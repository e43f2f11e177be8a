"""Benchmark: `clone deploy` on the embedded SmolLM2 over a shipped trace, on the simulated Orin Nano,
with max clocks vs fixed lower clocks vs the governor. Prints energy per token and target attainment
per policy, and the engine's own overhead (hooks + board accounting + policy) as a fraction of the
token time on this CPU (target < 5%). The model really runs here; the board keeps time and energy.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from clone.commands.deploy import load_model
from clone.profiles import load_profile
from clone.runtime.deploy import Deployment
from clone.runtime.policies import make_policy
from clone.runtime.simboard import SimulatedBoard
from clone.runtime.traces import load_trace

HERE = Path(__file__).parent
POLICIES = ("max", "static:gpu=510", "static:gpu=306,emc=2133", "governor")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--trace", default=str(HERE / "traces" / "small-8.jsonl"))
    ap.add_argument("--profile", default="jetson-orin-nano-8gb")
    ap.add_argument("--mode", default=None)
    ap.add_argument("--interference", default="websearch")
    ap.add_argument("--runtime", default=None, help="cost-model runtime calibration (default: tuned)")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    profile = load_profile(args.profile)
    reqs = load_trace(args.trace, profile)[: args.limit]
    backend, tok, shape = load_model(args.model, "torch", None, 1024)
    rows = []
    for spec in POLICIES:
        board = SimulatedBoard(profile, mode=args.mode, interference=args.interference, seed=0, runtime=args.runtime)
        dep = Deployment(backend, tok, board, make_policy(spec), shape)
        t0 = time.perf_counter()
        with board, dep:
            for r in reqs:
                dep.serve(r)
        s = dep.summary()
        s["bench_wall_s"] = time.perf_counter() - t0
        rows.append(s)
        print(f"  done {spec}: {s['bench_wall_s']:.0f} s on this CPU", flush=True)
    print(f"\n{len(reqs)} requests from {Path(args.trace).name} on sim:{args.profile} "
          f"(mode {board.mode.name}, interference {args.interference}), model {args.model} at fp16 on the board")
    print(f"{'policy':26} {'tokens':>6} {'J/token':>8} {'energy J':>9} {'TTFT ms':>8} {'TPOT ms':>8} "
          f"{'TTFT ok':>7} {'TPOT ok':>7} {'all ok':>6} {'switches':>8} {'overhead %':>10}")
    base = rows[0]["J_per_token"]
    for s in rows:
        print(f"{s['policy']:26} {s['output_tokens']:6d} {s['J_per_token']:8.4f} {s['energy_J']:9.3f} "
              f"{s['ttft_ms_mean']:8.2f} {s['tpot_ms_mean']:8.2f} {100 * s['ttft_attainment']:6.0f}% "
              f"{100 * s['tpot_attainment']:6.0f}% {100 * s['target_attainment']:5.0f}% {s['clock_switches']:8d} "
              f"{100 * s['overhead_fraction_of_token_time']:9.2f}%   (J/token x{s['J_per_token'] / base:.2f})")
    print("overhead = wall time in hooks, board accounting and policy / wall time of generation on this CPU "
          "(target < 5%)")


if __name__ == "__main__":
    main()
