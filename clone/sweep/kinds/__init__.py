"""Point kinds: one module per kind, imported on first use (the pruning kind pulls torch and a model,
the accelerator kind only the simulator)."""

from __future__ import annotations

import importlib

from clone.errors import CloneError
from clone.sweep.kinds.base import Kind, Param, PointContext, PointError

KIND_MODULES = {
    "clocks": "clone.sweep.kinds.clocks",
    "pruning": "clone.sweep.kinds.pruning",
    "quant": "clone.sweep.kinds.quant",
    "accel": "clone.sweep.kinds.accel",
    "pareto": "clone.sweep.kinds.pareto",
}
_EXTRA: dict[str, Kind] = {}


def register_kind(kind: Kind) -> None:
    """Add a kind at run time (tests, plug-ins). Only the inline executor and processes that import
    the registering module see it."""
    _EXTRA[kind.name] = kind


def kind_names() -> list[str]:
    return list(KIND_MODULES) + [k for k in _EXTRA if k not in KIND_MODULES]


def get_kind(name: str) -> Kind:
    if name in _EXTRA:
        return _EXTRA[name]
    if name not in KIND_MODULES:
        raise CloneError(f"unknown sweep kind {name!r} (allowed: {', '.join(kind_names())})")
    return importlib.import_module(KIND_MODULES[name]).KIND


__all__ = ["Kind", "Param", "PointContext", "PointError", "get_kind", "kind_names", "register_kind"]
