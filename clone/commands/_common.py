"""Helpers shared by subcommands: checkpoint argument, model loading with a status line, threads."""

from __future__ import annotations

import argparse
import sys
import time

import torch

from clone.model.checkpoint import DEFAULT_MODEL, Checkpoint, load_checkpoint


def add_checkpoint_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", nargs="?", default=DEFAULT_MODEL,
                        help=f"built-in name ({DEFAULT_MODEL}), .gguf file, Hugging Face or clone model directory")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")


def load(args: argparse.Namespace, quiet: bool = False) -> Checkpoint:
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    ckpt = load_checkpoint(args.checkpoint)
    if not quiet:
        print(f"loaded {args.checkpoint} ({ckpt.kind}) in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return ckpt
