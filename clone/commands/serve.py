"""`clone serve MODEL_DIR --port N`: an OpenAI-completions-compatible HTTP endpoint (streaming), with
the device backend (simulated board by default) keeping the time and energy account per request."""

from __future__ import annotations

import argparse
import sys

from clone.commands.deploy import add_expert_args
from clone.errors import CloneError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="OpenAI-compatible /v1/completions endpoint (streaming) on a (simulated) board")
    p.add_argument("model_dir", help="clone or Hugging Face model directory (or the built-in smollm2-135m)")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (0 = any free port)")
    p.add_argument("--device", default="auto", help="auto | jetson | sim:PROFILE")
    p.add_argument("--mode", default=None)
    p.add_argument("--policy", default="max", help="max | governor | static:gpu=MHz,emc=MHz,cpu=MHz")
    p.add_argument("--backend", choices=("torch", "onnx"), default="torch")
    p.add_argument("--onnx", default=None)
    p.add_argument("--interference", default="none")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-len", type=int, default=2048, help="KV cache length (prompt + max_tokens)")
    p.add_argument("--threads", type=int, default=None)
    add_expert_args(p)
    p.set_defaults(func=run)


def build(args: argparse.Namespace):
    from clone.commands.deploy import check_expert_args, load_model, load_router
    from clone.runtime.deploy import Deployment
    from clone.dvfs.registry import make_policy
    from clone.runtime.simboard import parse_device

    if not 0 <= args.port <= 65535:
        raise CloneError(f"--port {args.port}: must be in 0..65535")
    check_expert_args(args)
    policy = make_policy(args.policy, args.model_dir)
    board = parse_device(args.device, mode=args.mode, interference=args.interference, seed=args.seed)
    policy.bind(board)
    backend, tokenizer, shape = load_model(args.model_dir, args.backend, args.onnx, args.max_len)
    return board, Deployment(backend, tokenizer, board, policy, shape, router=load_router(args, backend))


def run(args: argparse.Namespace) -> int:
    import torch

    from clone.runtime.server import make_server

    if args.threads:
        torch.set_num_threads(args.threads)
    board, dep = build(args)
    with board, dep:
        try:
            server = make_server(dep, args.host, args.port, model_name=str(args.model_dir))
        except OSError as exc:
            raise CloneError(f"cannot listen on {args.host}:{args.port} ({exc.strerror})") from None
        host, port = server.server_address[:2]
        print(f"serving {args.model_dir} on http://{host}:{port}/v1/completions (device {board.name}, "
              f"policy {dep.policy.name}); Ctrl-C stops", file=sys.stderr, flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
    return 0
