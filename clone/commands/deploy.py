"""`clone deploy MODEL_DIR --device auto|jetson|sim:PROFILE --policy max|governor|static:...
--trace FILE | --prompt TEXT`: serve requests with the real model on this CPU while the device backend
(the simulated board by default) keeps the time and energy account; per-request CSV and a summary."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from clone.errors import CloneError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("deploy", help="serve requests on a (simulated) board with a clock policy; per-request report")
    p.add_argument("model_dir", help="clone or Hugging Face model directory (or the built-in smollm2-135m)")
    p.add_argument("--device", default="auto", help="auto (a Jetson if found, else sim:jetson-orin-nano-8gb), "
                   "jetson, or sim:PROFILE")
    p.add_argument("--mode", default=None, help="power mode of the simulated board (default: the profile's)")
    p.add_argument("--policy", default="max", help="max | governor | static:gpu=MHz,emc=MHz,cpu=MHz | clone | clone-true-length | oracle | "
                   "best-fixed (clone and best-fixed read MODEL_DIR/dvfs/ from clone train-dvfs)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--trace", help="JSONL request trace (clone.runtime.traces)")
    src.add_argument("--prompt", help="one prompt")
    p.add_argument("--max-new-tokens", type=int, default=64, help="for --prompt")
    p.add_argument("--app-class", default=None, help="for --prompt: budget class of the profile (targets)")
    p.add_argument("--backend", choices=("torch", "onnx"), default="torch")
    p.add_argument("--onnx", default=None, help="ONNX file for --backend onnx (default: MODEL_DIR/model.onnx)")
    p.add_argument("--interference", default="none", help="simulated co-runner: none | websearch | constant:LOAD")
    p.add_argument("--seed", type=int, default=0, help="co-runner and sampling seed")
    p.add_argument("--runtime", default=None, help="cost-model runtime calibration (default: tuned)")
    p.add_argument("--weight-bits", type=int, default=None, choices=(16, 8, 4),
                   help="precision the board runs (default: the checkpoint's quantization, else 16)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--limit", type=int, default=None, help="serve only the first N trace requests")
    p.add_argument("--out", default=None, help="directory for requests.csv, outputs.jsonl, summary.json")
    p.add_argument("--quiet", action="store_true", help="no per-request lines")
    add_expert_args(p)
    p.set_defaults(func=run)


def add_expert_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--experts", default=None, metavar="DIR",
                   help="LoRA experts written by clone train-experts: each request is routed to a mixture of them")
    p.add_argument("--route", default=None, help="with --experts: soft (default) | top1 | uniform")


def check_expert_args(args: argparse.Namespace) -> None:
    """Cheap checks of --experts / --route, before the model loads."""
    from clone.experts.router import MODES

    if args.route is not None and not args.experts:
        raise CloneError("--route needs --experts DIR")
    if args.route is not None and args.route not in MODES:
        raise CloneError(f"--route {args.route!r} is not valid (allowed: {', '.join(MODES)})")
    if not args.experts:
        return
    if args.backend != "torch":
        raise CloneError("--experts needs --backend torch (the ONNX graph has no per-request LoRA mixing)")
    if not (Path(args.experts) / "experts").is_dir():
        raise CloneError(f"--experts {args.experts}: no experts/ directory (train one with clone train-experts)")


def load_router(args: argparse.Namespace, backend: Any) -> Any:
    """The request router over the experts in --experts, attached to the backend's model (None without
    --experts). Expert shapes that do not fit the model fail here, before any request is served."""
    from clone.experts import Router, RouterConfig

    if not args.experts:
        return None
    router = Router.from_dir(backend.model, args.experts, args.route or "soft")
    if not RouterConfig.load(args.experts).calibrated:
        print(f"note: {args.experts}/router.json is missing, so the router is not calibrated (tau "
              f"{RouterConfig.tau:g}, whole prompt); `clone train-experts MODEL --out DIR --recalibrate` writes it", file=sys.stderr)
    print(f"routing each request ({router.mode}) over {len(router.experts.names)} LoRA experts "
          f"{', '.join(router.experts.names)} (tau {router.tau:g}, chunk {router.chunk or 'whole prompt'}, "
          f"embedding after layer {router.experts.layer + 1})", file=sys.stderr)
    return router


def fmt_weights(weights_json: str) -> str:
    return " ".join(f"{k}:{v:.2f}" for k, v in json.loads(weights_json).items()) if weights_json else ""


def load_model(model_dir: str, backend: str, onnx_path: str | None, max_len: int = 2048) -> tuple[Any, Any, Any]:
    """(generation backend, tokenizer, CostShape) for a model directory."""
    from clone.costmodel.base import CostShape
    from clone.model.checkpoint import load_checkpoint
    from clone.runtime.backends import TorchBackend

    path = Path(model_dir)
    if not path.exists() and model_dir not in ("smollm2-135m",):
        raise CloneError(f"{model_dir}: no such model directory")
    if path.is_dir() and not (path / "config.json").exists():
        raise CloneError(f"{model_dir}: not a model directory (no config.json)")
    ckpt = load_checkpoint(model_dir)
    quant = None
    if path.is_dir():
        try:
            quant = json.loads((path / "config.json").read_text()).get("quantization")
        except (OSError, ValueError):
            quant = None
    shape = CostShape.from_config(ckpt.model.config, quant)
    if backend == "onnx":
        from clone.runtime.backends import OrtBackend

        onnx = Path(onnx_path) if onnx_path else path / "model.onnx"
        if not onnx.exists():
            raise CloneError(f"--backend onnx: {onnx} does not exist (export with clone optimize, or give --onnx FILE)")
        return OrtBackend(onnx, max_len=min(max_len, ckpt.model.config.max_seq_len)), ckpt.tokenizer, shape
    if quant:  # serving speed over memory on the host: keep each packed layer's dequantized copy
        from clone.quant.linear import QuantLinear

        for m in ckpt.model.modules():
            if isinstance(m, QuantLinear):
                m.cache_weight(True)
    return TorchBackend(ckpt.model, max_len=min(max_len, ckpt.model.config.max_seq_len)), ckpt.tokenizer, shape


def fmt_summary(s: dict[str, Any]) -> str:
    def f(x: Any, spec: str = ".3g") -> str:
        return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)

    return (f"{s['requests']} requests, {s['output_tokens']} tokens on {s['device']} with policy {s['policy']}: "
            f"energy {f(s['energy_J'])} J ({f(s['J_per_token'])} J/token; prefill {f(s['prefill_J'])} J, decode "
            f"{f(s['decode_J'])} J), TTFT mean {f(s['ttft_ms_mean'], '.1f')} ms (p90 {f(s['ttft_ms_p90'], '.1f')}), "
            f"TPOT mean {f(s['tpot_ms_mean'], '.1f')} ms (p90 {f(s['tpot_ms_p90'], '.1f')}), targets met "
            f"{f(100 * s['target_attainment'], '.0f')}% (TTFT {f(100 * s['ttft_attainment'], '.0f')}%, TPOT "
            f"{f(100 * s['tpot_attainment'], '.0f')}%), {s['clock_switches']} clock switches, engine overhead "
            f"{f(100 * s['overhead_fraction_of_token_time'], '.2f')}% of token time")


def run(args: argparse.Namespace) -> int:
    import torch

    from clone.runtime.deploy import Deployment, write_outputs
    from clone.dvfs.registry import make_policy
    from clone.runtime.simboard import parse_device
    from clone.runtime.traces import TraceRequest, load_trace

    if args.max_new_tokens < 1:
        raise CloneError(f"--max-new-tokens must be at least 1, got {args.max_new_tokens}")
    check_expert_args(args)
    policy = make_policy(args.policy, args.model_dir)  # cheap checks first: bad input fails before the model loads
    board = parse_device(args.device, mode=args.mode, interference=args.interference, seed=args.seed,
                         runtime=args.runtime)
    policy.bind(board)  # a frequency the board does not list fails here, before the model loads
    profile = getattr(board, "profile", None)
    if args.trace:
        requests = load_trace(args.trace, profile)
        if args.limit:
            requests = requests[: args.limit]
    else:
        if not args.prompt.strip():
            raise CloneError("--prompt is empty")
        ttft = tpot = None
        if profile is not None:
            b = profile.budget(args.app_class)
            ttft, tpot = b.ttft_ms, b.tpot_ms
        requests = [TraceRequest(args.prompt, args.max_new_tokens, args.app_class or "default", ttft, tpot, 0.0, None, "r0000")]
    if args.threads:
        torch.set_num_threads(args.threads)
    max_len = max(len(r.prompt) for r in requests) + max(r.max_new_tokens for r in requests) + 8
    backend, tokenizer, shape = load_model(args.model_dir, args.backend, args.onnx, max_len)
    router = load_router(args, backend)
    if args.weight_bits:
        from dataclasses import replace

        shape = replace(shape, weight_bits=args.weight_bits)
    with board, Deployment(backend, tokenizer, board, policy, shape, router=router) as dep:
        from tqdm import tqdm

        bar = tqdm(requests, desc="deploy", unit="req", file=sys.stderr, disable=len(requests) < 3)
        for tr in bar:
            rec = dep.serve(tr, seed=args.seed)
            if not args.quiet:
                tqdm.write(f"{rec.id} {rec.app_class:16} prompt {rec.prompt_tokens:4d} out {rec.output_tokens:4d}  "
                           f"TTFT {rec.ttft_ms:8.1f} ms  TPOT {rec.tpot_ms:7.1f} ms  {rec.energy_J:7.2f} J  "
                           f"{rec.J_per_token:6.3f} J/tok  gpu {rec.gpu_MHz_mean:6.0f} emc {rec.emc_MHz_mean:6.0f}  "
                           f"met {'yes' if rec.met else 'NO'}  {fmt_weights(rec.expert_weights)}".rstrip(), file=sys.stderr)
            if args.prompt and not args.quiet:
                print(args.prompt + rec.text)
    summary = dep.summary()
    print(fmt_summary(summary))
    if args.out:
        out = write_outputs(dep.records, summary, args.out)
        print(f"wrote {out / 'requests.csv'}, {out / 'summary.json'}", file=sys.stderr)
    return 0
