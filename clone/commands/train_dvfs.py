"""`clone train-dvfs --profile PROFILE [--mode M] [--trace FILE] [--out MODEL_DIR]`: fit the output-length
predictor, train the DVFS controller (REINFORCE, leave-one-out baseline) on the simulated board with the
websearch co-runner, find the best fixed clocks for the trace, and save all of it with the power table
in MODEL_DIR/dvfs/ (what `clone deploy --policy clone|best-fixed` loads)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from clone.errors import CloneError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train-dvfs", help="train the DVFS controller and length predictor into MODEL_DIR/dvfs/",
                       description=__doc__)
    p.add_argument("--profile", required=True, help="board profile (e.g. jetson-orin-nano-8gb)")
    p.add_argument("--mode", default=None, help="power mode (default: the profile's)")
    p.add_argument("--trace", default=None, help="JSONL training trace with expected_output_tokens "
                   "(default: 400 generated requests, clone.dvfs.requests)")
    p.add_argument("--power-table", default=None, help="power table CSV (default: measured on the simulated board)")
    p.add_argument("--out", default=None, help="model directory; writes MODEL_DIR/dvfs/ (default out/dvfs-PROFILE)")
    p.add_argument("--iterations", type=int, default=150, help="policy-gradient iterations (default 150)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--shape", default=None, help="model shape (default: MODEL_DIR's config, else llama-3.2-3b)")
    p.add_argument("--weight-bits", type=int, default=None, choices=(16, 8, 4))
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from clone.dvfs.episode import FastBoard
    from clone.dvfs.length import LengthPredictor, evaluate
    from clone.dvfs.powertable import grid, load_power_table, measure_simulated
    from clone.dvfs.reference import best_fixed_clocks, save_best_fixed
    from clone.dvfs.requests import generate_dvfs_trace
    from clone.dvfs.shape import describe, resolve_shape
    from clone.dvfs.train import TrainConfig, train_controller
    from clone.profiles import load_board
    from clone.runtime.simboard import SimulatedBoard
    from clone.runtime.traces import load_trace

    if args.iterations < 1:
        raise CloneError(f"--iterations {args.iterations}: must be at least 1")
    profile = load_board(args.profile)
    mode = profile.mode(args.mode).name
    out = Path(args.out or f"out/dvfs-{profile.name}")
    shape = resolve_shape(args.shape, args.weight_bits, out)
    if args.trace:
        reqs = load_trace(args.trace, profile)
        if sum(1 for r in reqs if r.expected_output_tokens) < 10:
            raise CloneError(f"{args.trace}: needs at least 10 requests with expected_output_tokens (true lengths)")
        reqs = [r for r in reqs if r.expected_output_tokens]
    else:
        reqs = generate_dvfs_trace(400, seed=1000 + args.seed, profile=profile)
    if args.power_table:
        table = load_power_table(args.power_table, profile, mode)
    else:
        table = measure_simulated(SimulatedBoard(profile, mode=mode), shape, grid(profile, mode))
    n_hold = max(len(reqs) // 5, 2)
    predictor = LengthPredictor.fit(reqs[:-n_hold])
    pred_err = evaluate(predictor, reqs[-n_hold:])
    predictor = LengthPredictor.fit(reqs)
    board = FastBoard(profile, shape, mode, "websearch", seed=args.seed + 7, power_table=table)
    bar = tqdm(total=args.iterations, desc="train-dvfs", unit="it", file=sys.stderr)

    def progress(it: int, reward: float) -> None:
        bar.update(1)
        bar.set_postfix(reward=f"{reward:.3f}")

    spec, report = train_controller(profile, mode, board, table, reqs, predictor,
                                    TrainConfig(iterations=args.iterations, seed=args.seed), progress)
    bar.close()
    dvfs = out / "dvfs"
    spec.meta.update({"shape": describe(shape), "power_table": "power_table.csv", "predictor_heldout": pred_err})
    spec.save(dvfs)
    table.save(dvfs / "power_table.csv")
    fixed, _ = best_fixed_clocks(lambda: FastBoard(profile, shape, mode, "websearch", seed=args.seed + 7,
                                                   power_table=table), grid(profile, mode), reqs[:80])
    save_best_fixed(dvfs, fixed, args.trace or "generated")
    (dvfs / "train_report.json").write_text(json.dumps({**report, "predictor_heldout": pred_err}, indent=1))
    print(f"wrote {dvfs}/: controller ({report['n_params']} parameters, {report['actions']} clock settings, "
          f"{report['algorithm']}), reward {report['reward_before']:.3f} -> {report['reward_after']:.3f} in "
          f"{report['train_s']:.0f} s; length predictor held-out MAE {pred_err['mae_tokens']:.1f} tokens, "
          f"{100 * pred_err['within_20pct']:.0f}% within 20%; best fixed clocks {fixed}")
    return 0
