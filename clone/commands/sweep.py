"""`clone sweep CONFIG.yaml`: run a parameter sweep into a tidy, resumable table (docs/results.md)."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="run a sweep config (experiments/sweeps/*.yaml) into a resumable table",
                       description="Expand CONFIG's grid, check every point, run those not already in "
                       "OUT/<name>.csv (a local process pool or Ray) and write the table after each point.")
    p.add_argument("config", help="sweep config YAML (experiments/sweeps/)")
    p.add_argument("--out", default="out/sweeps", help="directory of the table (default out/sweeps)")
    p.add_argument("--quick", action="store_true", help="the config's small quick variant (table <name>.quick.csv)")
    p.add_argument("--executor", default="local", choices=("local", "ray"),
                   help="local process pool (default) or Ray (a cluster with --ray-address or RAY_ADDRESS, "
                   "else a one-node Ray on this machine)")
    p.add_argument("--workers", type=int, default=None,
                   help="parallel points (default: the config's workers, else the CPU count; 1 = in this process)")
    p.add_argument("--ray-address", default=None, help="Ray cluster address (e.g. auto or ray://host:10001)")
    p.add_argument("--fresh", action="store_true", help="ignore an existing table and run every point")
    p.add_argument("--retry-errors", action="store_true", help="run points that failed before again")
    p.add_argument("--dry-run", action="store_true", help="check the config and list its points; run nothing")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from clone.sweep.config import expand_points, load_config
    from clone.sweep.runner import run_sweep

    cfg = load_config(args.config)
    if args.dry_run:
        points = expand_points(cfg, args.quick)
        print(f"{cfg.name}: kind {cfg.kind.name}, {len(points)} points -> {Path(args.out) / cfg.table_name(args.quick)}")
        for pt in points:
            print(pt.id, " ".join(f"{k}={v}" for k, v in pt.params.items()))
        return 0
    res = run_sweep(cfg, args.out, quick=args.quick, executor=args.executor, workers=args.workers,
                    ray_address=args.ray_address, retry_errors=args.retry_errors, fresh=args.fresh,
                    progress=not args.no_progress)
    print(f"{res.path}: {res.n_points} points ({res.n_skipped} already done, {res.n_run} run, "
          f"{res.n_errors} with errors) in {res.seconds:.1f} s")
    if res.n_errors:
        from clone.sweep.runner import error_text

        err = res.table[[bool(e) for e in error_text(res.table)]]
        for _, row in err.head(5).iterrows():
            print(f"  point {row['point_id']}: {row['error']}", file=sys.stderr)
    return 0
