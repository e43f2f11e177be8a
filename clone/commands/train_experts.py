"""`clone train-experts MODEL --out DIR [--domains ...] [--steps N]`: one LoRA expert per domain."""

from __future__ import annotations

import argparse
import sys

from clone.commands._common import add_checkpoint_arg, load
from clone.errors import CloneError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train-experts", help="train one LoRA expert (rank 8, alpha 16) per domain, with its router embedding")
    add_checkpoint_arg(p)
    p.add_argument("--out", required=True, help="directory; experts go to OUT/experts/<domain>/")
    p.add_argument("--domains", nargs="+", default=["shakespeare", "bible", "fortunes", "techprose"])
    p.add_argument("--steps", type=int, default=200, help="optimizer steps per expert (batch 4 x 128 tokens)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from clone.data.corpora import CORPORA
    from clone.experts import train_experts

    bad = [d for d in args.domains if d not in CORPORA]
    if bad:
        raise CloneError(f"--domains {bad} are not corpora (allowed: {', '.join(CORPORA)})")
    if args.steps < 1:
        raise CloneError(f"--steps {args.steps} must be >= 1")
    ckpt = load(args)
    experts = train_experts(ckpt.model, ckpt.tokenizer, args.out, args.domains, args.steps, lr=args.lr)
    for e in experts.experts:
        tail = e.losses[-max(1, len(e.losses) // 10):]
        print(f"{e.name:12s} loss {e.losses[0]:.3f} -> {sum(tail) / len(tail):.3f}  {e.train_s:.0f} s", file=sys.stderr)
    print(f"wrote {len(experts.experts)} experts to {args.out}/experts/")
    return 0
