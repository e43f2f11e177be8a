"""`clone demo`: the main job on the embedded default model, as `make demo` runs it.

Steps: load SmolLM2-135M-Instruct and print its architecture; its perplexity on the held-out
Shakespeare test split (protocol printed); a short greedy generation with TTFT/TPOT on this CPU.
"""

from __future__ import annotations

import argparse
import time

from clone.model.checkpoint import DEFAULT_MODEL, load_checkpoint
from clone.model.generate import generate
from clone.model.summary import summary_lines

DEMO_PROMPTS = ("What is the capital of France?", "Write one sentence about the sea.")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the main job on the embedded default model")
    p.add_argument("--checkpoint", default=DEFAULT_MODEL)
    p.add_argument("--ppl-tokens", type=int, default=16384,
                   help="evaluate the first N tokens of the Shakespeare test split (0 = the whole split)")
    p.set_defaults(func=run)


def banner(text: str) -> None:
    print(f"\n== {text} " + "=" * max(0, 72 - len(text)), flush=True)


def run(args: argparse.Namespace) -> int:
    from clone.eval.perplexity import perplexity

    banner(f"1. model: {args.checkpoint}")
    t0 = time.perf_counter()
    ckpt = load_checkpoint(args.checkpoint)
    print(f"loaded in {time.perf_counter() - t0:.1f} s")
    print("\n".join(summary_lines(ckpt.model.config, ckpt.model.param_count())))

    banner("2. perplexity on held-out Shakespeare")
    res = perplexity(ckpt.model, ckpt.tokenizer, corpus="shakespeare", split="test", seq_len=512,
                     max_tokens=args.ppl_tokens or None)
    print(f"perplexity {res.ppl:.2f}")
    print(f"protocol   {res.protocol()}")

    banner("3. greedy generation (chat format)")
    for prompt in DEMO_PROMPTS:
        ids = ckpt.tokenizer.encode(ckpt.tokenizer.chat_prompt(prompt))
        out = generate(ckpt.model, ckpt.tokenizer, ids, max_new_tokens=40)
        print(f"user> {prompt}\nmodel> {out.text.strip()}")
        print(f"       TTFT {out.ttft_s * 1e3:.0f} ms, TPOT {out.tpot_s * 1e3:.1f} ms on this CPU")
    return 0
