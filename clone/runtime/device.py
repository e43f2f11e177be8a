"""The device-backend interface every clock policy talks to: a real Jetson or the simulated board.

Clocks are named by domain ("gpu", "emc", "cpu") and given in MHz; a backend only accepts values its
board lists. Energy is accounted per phase ("prefill", "decode", "idle") so a policy's reward and the
deploy report can split it. A backend is a context manager: entering stores the clock state, leaving
restores it on every exit path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

DOMAINS = ("gpu", "emc", "cpu")


@dataclass(frozen=True)
class Clocks:
    gpu_MHz: float
    emc_MHz: float
    cpu_MHz: float

    def as_dict(self) -> dict[str, float]:
        return {"gpu_MHz": self.gpu_MHz, "emc_MHz": self.emc_MHz, "cpu_MHz": self.cpu_MHz}

    def get(self, domain: str) -> float:
        return getattr(self, f"{domain}_MHz")


@dataclass
class PhaseAccount:
    """Time and energy spent in one phase of one request."""

    phase: str
    time_s: float = 0.0
    energy_J: float = 0.0
    samples: int = 0
    extra: dict[str, float] = field(default_factory=dict)


@runtime_checkable
class DeviceBackend(Protocol):
    name: str
    read_only: bool

    def available_MHz(self, domain: str) -> tuple[float, ...]:
        """Frequencies the board lists for a domain, ascending."""

    def get_clocks(self) -> Clocks: ...

    def set_clocks(self, clocks: Clocks) -> None:
        """Apply clocks (in the safe write order); raise CloneError for a value the board does not list."""

    def begin_phase(self, phase: str) -> None:
        """Start accounting time and energy for a phase ("prefill", "decode", ...)."""

    def end_phase(self) -> PhaseAccount:
        """Stop the current phase and return its time and energy."""

    def __enter__(self) -> "DeviceBackend": ...

    def __exit__(self, *exc: object) -> None: ...
