"""`clone demo`: the main job on the embedded default model, as `make demo` runs it.

Steps: load SmolLM2-135M-Instruct and print its architecture; its perplexity on the held-out
Shakespeare test split (protocol printed); a short greedy generation with TTFT/TPOT on this CPU;
`clone optimize --fast` for the Orin Nano and its report; then the dense and the optimized model serve
a shipped request trace on the simulated Orin Nano under max clocks and the oracle DVFS policy, so the
user sees what tailoring and clock control each save.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from clone.model.checkpoint import DEFAULT_MODEL, load_checkpoint
from clone.model.generate import generate
from clone.model.summary import summary_lines

DEMO_PROMPTS = ("What is the capital of France?", "Write one sentence about the sea.")
DEMO_PROFILE = "jetson-orin-nano-8gb"
DEMO_TRACE = Path(__file__).resolve().parents[2] / "experiments" / "traces" / "small-8.jsonl"
DEMO_POLICIES = ("max", "oracle")
DEMO_RECOVER_STEPS = 20  # a taste of LoRA recovery; `clone optimize` without --fast runs the full schedule


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the main job on the embedded default model")
    p.add_argument("--checkpoint", default=DEFAULT_MODEL)
    p.add_argument("--ppl-tokens", type=int, default=16384,
                   help="evaluate the first N tokens of the Shakespeare test split (0 = the whole split)")
    p.add_argument("--out", default="out/demo", help="directory for the optimized model and deploy reports")
    p.add_argument("--skip-optimize", action="store_true", help="stop after the generation step")
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
    if args.skip_optimize:
        return 0

    out_dir = Path(args.out)
    banner(f"4. clone optimize {args.checkpoint} --profile {DEMO_PROFILE} --fast --bits 4 --recover-steps {DEMO_RECOVER_STEPS}")
    opt_dir = optimize_fast(ckpt, out_dir / "optimized")
    print((opt_dir / "report.md").read_text())

    banner(f"5. clone deploy on sim:{DEMO_PROFILE}, trace {DEMO_TRACE.name}")
    rows = [deploy_row(model, name, policy) for model, name in ((args.checkpoint, "dense"), (str(opt_dir), "optimized"))
            for policy in DEMO_POLICIES]
    print_deploy_table(rows)
    return 0


def optimize_fast(ckpt: Any, out: Path) -> Path:
    """The same pipeline as `clone optimize --fast`, on the already loaded checkpoint."""
    import sys

    from clone.optimize import Recipe, optimize

    recipe = Recipe().merged({"profile": DEMO_PROFILE, "fast": True, "bits": 4, "recover_steps": DEMO_RECOVER_STEPS})
    recipe = recipe.validate("demo")
    res = optimize(ckpt, recipe, out, log=lambda m: print(m, file=sys.stderr, flush=True))
    return res.out_dir


def deploy_row(model_dir: str, name: str, policy_spec: str) -> dict[str, Any]:
    """Serve the demo trace on the simulated board; the model runs for real on this CPU."""
    from clone.commands.deploy import load_model
    from clone.dvfs.registry import make_policy
    from clone.runtime.deploy import Deployment
    from clone.runtime.simboard import parse_device
    from clone.runtime.traces import load_trace

    board = parse_device(f"sim:{DEMO_PROFILE}", interference="websearch", seed=0)
    requests = load_trace(DEMO_TRACE, board.profile)
    backend, tokenizer, shape = load_model(model_dir, "torch", None, 1024)
    with board, Deployment(backend, tokenizer, board, make_policy(policy_spec, model_dir), shape) as dep:
        for tr in requests:
            dep.serve(tr)
    s = dep.summary()
    return {"model": name, "policy": policy_spec, "J": s["energy_J"], "J/token": s["J_per_token"],
            "TTFT ms": s["ttft_ms_mean"], "TPOT ms": s["tpot_ms_mean"], "met %": 100 * s["target_attainment"]}


def print_deploy_table(rows: list[dict[str, Any]]) -> None:
    ref = rows[0]["J"]
    print(f"{'model':10} {'policy':7} {'energy J':>9} {'J/token':>8} {'TTFT ms':>8} {'TPOT ms':>8} {'met %':>6} {'vs dense/max':>12}")
    for r in rows:
        print(f"{r['model']:10} {r['policy']:7} {r['J']:9.2f} {r['J/token']:8.3f} {r['TTFT ms']:8.1f} "
              f"{r['TPOT ms']:8.1f} {r['met %']:6.0f} {ref / r['J']:11.2f}x")
    print("energy and time are the simulated board's (the profile's cost and power model with a web-search "
          "co-runner); tokens come from the real model on this CPU")
