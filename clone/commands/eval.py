"""`clone eval CHECKPOINT --data CORPUS --seq-len N`: perplexity with its protocol spelled out."""

from __future__ import annotations

import argparse
import json

from clone.commands._common import add_checkpoint_arg, load
from clone.errors import CloneError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="perplexity on a corpus split (protocol printed with the number)")
    add_checkpoint_arg(p)
    p.add_argument("--data", default="shakespeare", help="corpus: shakespeare, fortunes, bible, techprose")
    p.add_argument("--split", default="test", help="train, validation or test (default: test)")
    p.add_argument("--seq-len", type=int, default=512, help="window length in tokens (default 512)")
    p.add_argument("--stride", type=int, default=None, help="window start spacing (default: seq-len, no overlap)")
    p.add_argument("--max-tokens", type=int, default=None, help="evaluate only the first N tokens of the split")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from clone.eval.perplexity import perplexity

    from clone.data.corpora import CORPORA, SPLITS

    if args.data not in CORPORA:
        raise CloneError(f"--data {args.data!r} is not a corpus (allowed: {', '.join(CORPORA)})")
    if args.split not in SPLITS:
        raise CloneError(f"--split {args.split!r} is not a split (allowed: {', '.join(SPLITS)})")
    if args.max_tokens is not None and args.max_tokens <= args.seq_len:
        raise CloneError(f"--max-tokens {args.max_tokens} must exceed --seq-len {args.seq_len}")
    ckpt = load(args)
    res = perplexity(ckpt.model, ckpt.tokenizer, corpus=args.data, split=args.split, seq_len=args.seq_len,
                     stride=args.stride, max_tokens=args.max_tokens, batch_size=args.batch_size)
    if args.json:
        print(json.dumps({**res.__dict__, "protocol": res.protocol()}))
    else:
        print(f"perplexity {res.ppl:.3f}")
        print(f"protocol   {res.protocol()}")
    return 0
