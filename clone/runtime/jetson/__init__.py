"""The real Jetson backend: sysfs root, discovery, clock domains, telemetry and fake board trees.

Public entry points:
  JetsonBackend(profile=None, root=None, jetpack=None, *, read_only=False, dry_run=False,
                sample_interval_s=0.05, handle_signals=True)
  auto_backend(root=None, **kw) -> JetsonBackend | None    # `--device auto`
  detect(sysfs=None) -> Discovery | None
  build_fake_board(board, jetpack, dest, ...) -> FakeBoard  # tests, `--fake-board`
See docs/jetson.md.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "backend": ("ClockState", "JetsonBackend", "auto_backend"),
    "discovery": ("Discovery", "detect", "discover"),
    "faketree": ("FakeBoard", "build_fake_board", "parse_fake_spec"),
    "sysfs": ("ENV_ROOT", "SysfsRoot"),
    "telemetry": ("EnergyIntegrator", "PowerSampler", "TegrastatsSample", "energy_from_tegrastats",
                  "parse_tegrastats"),
}
__all__ = [name for names in _EXPORTS.values() for name in names]


def __getattr__(name: str) -> Any:
    """Lazy exports, so `python -m clone.runtime.jetson.faketree` does not import itself twice."""
    for module, names in _EXPORTS.items():
        if name in names:
            return getattr(importlib.import_module(f"clone.runtime.jetson.{module}"), name)
    raise AttributeError(f"module 'clone.runtime.jetson' has no attribute '{name}'")
