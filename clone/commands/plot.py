"""`clone plot RESULTS.csv [--kind KIND ...]`: figures (PNG and SVG) from a sweep table."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from clone.sweep.plot import PLOT_KINDS

    p = sub.add_parser("plot", help="draw figures (PNG, SVG) from a sweep table",
                       description="Draw the figures of a `clone sweep` table. Without --kind, the figures of "
                       "the table's sweep kind.")
    p.add_argument("results", help="table written by clone sweep (CSV)")
    p.add_argument("--kind", nargs="+", default=None, choices=list(PLOT_KINDS), metavar="KIND",
                   help=f"plot kind(s): {', '.join(PLOT_KINDS)}")
    p.add_argument("--out", default=None, help="directory of the figures (default: the table's)")
    p.add_argument("--format", default="png,svg", help="comma-separated: png, svg (default both)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from clone.sweep.plot import plot_results

    formats = tuple(f.strip() for f in args.format.split(",") if f.strip())
    for path in plot_results(args.results, args.kind, args.out, formats):
        print(path)
    return 0
