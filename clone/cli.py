"""The `clone` command line. Each subcommand lives in clone/commands/<name>.py and registers itself.

A subcommand module exposes `register(subparsers)`, which adds its parser and sets `func`
(a callable taking the parsed namespace and returning an exit code). Errors a user can fix are
raised as CloneError and printed here as one line with exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from clone.errors import CloneError

# Order is the order of `clone --help`. A module listed here that is not present is skipped, so
# subcommands can land one at a time.
COMMAND_MODULES = [
    "demo",
    "info",
    "eval",
    "generate",
    "profiles",
    "optimize",
    "deploy",
    "serve",
    "profile_power",
    "train_dvfs",
    "train_experts",
    "hw",
    "sweep",
    "plot",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clone",
        description="Tailor LLMs to edge boards (pruning, quantization, LoRA), serve them with DVFS, "
        "and model the CLONE accelerator.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"clone.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"clone.commands.{name}":
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except CloneError as exc:
        print(f"clone {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"clone {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and closed early
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
