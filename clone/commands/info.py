"""`clone info CHECKPOINT`: architecture, parameters, bytes per precision, per-layer shapes."""

from __future__ import annotations

import argparse

from clone.commands._common import add_checkpoint_arg, load
from clone.model.summary import summary_lines


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="print a checkpoint's architecture and per-layer shapes")
    add_checkpoint_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    ckpt = load(args)
    for line in summary_lines(ckpt.model.config, ckpt.model.param_count()):
        print(line)
    return 0
