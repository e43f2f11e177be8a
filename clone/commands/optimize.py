"""`clone optimize CHECKPOINT --profile PROFILE --out DIR`: tailor a checkpoint to an edge profile."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from clone.errors import CloneError

FLAGS = [  # (flag, recipe key, type, help)
    ("--profile", "profile", str, "edge profile name or YAML path (clone profiles list)"),
    ("--mode", "mode", str, "power mode of the profile (default: the profile's)"),
    ("--method", "method", str, "clone (searched), uniform, random, shortgpt, flap, or none"),
    ("--target-ratio", "target_ratio", float, "fraction of parameters to remove (default: from device memory)"),
    ("--importance", "importance", str, "taylor, magnitude, activation, fluctuation or random"),
    ("--split", "split", str, "attention/MLP split of a layer's ratio: importance (by score per parameter) or balanced"),
    ("--bits", "bits", int, "weight bits: 16, 8 or 4"),
    ("--group-size", "group_size", int, "quantization group size along the input (0 = per-channel)"),
    ("--quant-method", "quant_method", str, "rtn or gptq"),
    ("--nsamples", "nsamples", int, "calibration windows"),
    ("--seq-len", "seq_len", int, "calibration window length"),
    ("--seed", "seed", int, "random seed"),
    ("--app-class", "app_class", str, "latency budget class of the profile"),
    ("--budget-ttft-ms", "budget_ttft_ms", float, "TTFT budget (default: the profile's app class)"),
    ("--budget-tpot-ms", "budget_tpot_ms", float, "TPOT budget (default: the profile's app class)"),
    ("--budget-energy-j", "budget_energy_j", float, "energy budget per request"),
    ("--recover-steps", "recover_steps", int, "LoRA recovery steps (0 = none)"),
    ("--eval-tokens", "eval_tokens", int, "validation tokens scoring each search candidate"),
    ("--test-tokens", "test_tokens", int, "test tokens for the report's perplexity (0 = whole split)"),
    ("--workers", "workers", int, "parallel candidate evaluations"),
]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("optimize", help="tailor a checkpoint to an edge profile (prune, quantize, recover, export)")
    p.add_argument("checkpoint", help="built-in name, .gguf file, Hugging Face or clone model directory")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--recipe", help="YAML recipe file; flags override it")
    for flag, key, typ, text in FLAGS:
        p.add_argument(flag, dest=key, type=typ, default=None, help=text)
    p.add_argument("--fast", action="store_true", default=None, help="a small search for tests and demos")
    p.add_argument("--partial-groups", action="store_true", default=None,
                   help="allow a group size that does not divide a layer's width (shorter last group)")
    p.add_argument("--no-onnx", dest="onnx", action="store_false", default=None, help="skip the ONNX export")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from clone.optimize import Recipe, load_recipe, optimize

    recipe = load_recipe(args.recipe) if args.recipe else Recipe()
    overrides = {key: getattr(args, key) for _, key, _, _ in FLAGS}
    overrides.update(fast=args.fast, onnx=args.onnx, partial_groups=args.partial_groups)
    recipe = recipe.merged(overrides).validate("command line")
    out = Path(args.out)
    if out.exists() and not (out / "report.json").exists() and any(out.iterdir()):
        raise CloneError(f"--out {out}: exists and is not an earlier clone optimize output; choose another directory")
    res = optimize(args.checkpoint, recipe, out, log=lambda m: print(m, file=sys.stderr, flush=True))
    print((res.out_dir / "report.md").read_text())
    return 0
