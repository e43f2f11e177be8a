"""`clone generate CHECKPOINT --prompt ...`: stream tokens and report TTFT / TPOT on this machine."""

from __future__ import annotations

import argparse
import sys

from clone.commands._common import add_checkpoint_arg, load
from clone.errors import CloneError
from clone.model.generate import generate


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="generate text, streaming, with TTFT and TPOT")
    add_checkpoint_arg(p)
    p.add_argument("--prompt", required=True)
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--chat", action="store_true", help="wrap the prompt in the model's chat format")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.max_new_tokens < 1:
        raise CloneError(f"--max-new-tokens must be at least 1, got {args.max_new_tokens}")
    if args.temperature < 0:
        raise CloneError(f"--temperature must be >= 0, got {args.temperature}")
    ckpt = load(args)
    text = ckpt.tokenizer.chat_prompt(args.prompt) if args.chat else args.prompt
    ids = ckpt.tokenizer.encode(text)
    if not ids:
        raise CloneError("--prompt is empty after tokenization")
    print(args.prompt, end="", flush=True)

    def emit(delta: str) -> None:
        print(delta, end="", flush=True)

    res = generate(ckpt.model, ckpt.tokenizer, ids, args.max_new_tokens, args.temperature, args.top_k,
                   args.seed, on_text=emit)
    print()
    print(f"[{res.prompt_tokens} prompt tokens, {len(res.tokens)} generated, stop: {res.stop_reason}] "
          f"TTFT {res.ttft_s * 1e3:.1f} ms, TPOT {res.tpot_s * 1e3:.1f} ms "
          f"({1 / res.tpot_s if res.tpot_s else 0:.1f} tokens/s) on this CPU", file=sys.stderr)
    return 0
