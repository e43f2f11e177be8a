"""Subcommands of `clone`; each module has `register(subparsers)` (see clone/cli.py)."""
