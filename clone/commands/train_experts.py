"""`clone train-experts MODEL --out DIR [--domains ...] [--steps N] [--recalibrate]`: one LoRA expert
per domain, then the router's chunking and temperature chosen on validation windows (DIR/router.json)."""

from __future__ import annotations

import argparse
import sys

from clone.commands._common import add_checkpoint_arg, load
from clone.errors import CloneError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train-experts", help="train one LoRA expert (rank 8, alpha 16) per domain, with its router embedding")
    add_checkpoint_arg(p)
    p.add_argument("--out", required=True, help="directory; experts go to OUT/experts/<domain>/, the router to OUT/router.json")
    p.add_argument("--domains", nargs="+", default=["shakespeare", "bible", "fortunes", "techprose"])
    p.add_argument("--steps", type=int, default=200, help="optimizer steps per expert (batch 4 x 128 tokens)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--val-windows", type=int, default=8, help="validation windows per domain and per mixed pair")
    p.add_argument("--recalibrate", action="store_true",
                   help="keep the adapters already in OUT; remake their embeddings and OUT/router.json")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from clone.data.corpora import CORPORA
    from clone.experts import load_experts, train_experts
    from clone.experts.expert_set import reembed_experts

    bad = [d for d in args.domains if d not in CORPORA]
    if bad:
        raise CloneError(f"--domains {bad} are not corpora (allowed: {', '.join(CORPORA)})")
    if args.steps < 1 or args.val_windows < 1:
        raise CloneError(f"--steps {args.steps} and --val-windows {args.val_windows} must be >= 1")
    ckpt = load(args)
    if args.recalibrate:
        reembed_experts(ckpt.model, ckpt.tokenizer, args.out)  # an expert that is not a corpus fails here
        experts = load_experts(ckpt.model, args.out)
    else:
        experts = train_experts(ckpt.model, ckpt.tokenizer, args.out, args.domains, args.steps, lr=args.lr)
        for e in experts.experts:
            tail = e.losses[-max(1, len(e.losses) // 10):]
            print(f"{e.name:12s} loss {e.losses[0]:.3f} -> {sum(tail) / len(tail):.3f}  {e.train_s:.0f} s", file=sys.stderr)
    cfg = calibrate_router(ckpt, experts, args.out, args.val_windows)
    print(f"wrote {len(experts.experts)} experts to {args.out}/experts/ and the router (chunk {cfg.chunk}, "
          f"tau {cfg.tau:g}) to {args.out}/router.json")
    return 0


def calibrate_router(ckpt, experts, out: str, val_windows: int):
    """Choose (chunk, tau) on the validation split of the experts' own domains and save router.json."""
    from clone.experts import Router, calibrate, validation_sets

    router = Router(ckpt.model, experts, "soft")
    cfg = calibrate(router, validation_sets(ckpt.tokenizer, experts.names, val_windows, router.prefix + 1))
    cfg.save(out)
    return cfg
