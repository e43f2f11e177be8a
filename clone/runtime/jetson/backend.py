"""The real Jetson behind the DeviceBackend interface: clock control, restore, power per phase.

Entering the context stores the full clock state (GPU and CPU governors and [min, max], EMC rate and
lock flag) and starts the power sampler; leaving restores that state on every exit path: normal end,
exception, and SIGINT/SIGTERM (handlers installed on entry restore, then hand the signal to the handler
that was there before, or re-raise it with the default action; the old handlers come back on exit).
Restore writes only files that differ from the stored state, so running it twice is harmless.

Without write permission (not root, a read-only root, or `read_only=True`) the backend still reads
clocks, loads and power, says once that it is read-only, and refuses set_clocks with a CloneError.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import threading
from dataclasses import dataclass
from typing import Any

from clone.errors import CloneError
from clone.profiles import Profile, load_board
from clone.runtime.device import DOMAINS, Clocks, PhaseAccount
from clone.runtime.jetson.clocks import (
    ClockDomain, CpuFreq, EmcClock, GpuDevfreq, fmt_MHz, match_listed,
)
from clone.runtime.jetson.discovery import Discovery, detect, discover
from clone.runtime.jetson.sysfs import SysfsRoot
from clone.runtime.jetson.telemetry import PowerSampler, module_power_reader, module_rails

log = logging.getLogger("clone.runtime.jetson")
_WARNED_READ_ONLY: set[str] = set()
HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass(frozen=True)
class ClockState:
    """Everything restore() puts back, per domain (opaque snapshots from the clock domains)."""

    domains: dict[str, Any]


def _as_root(root: SysfsRoot | str | os.PathLike | None, dry_run: bool) -> SysfsRoot:
    if isinstance(root, SysfsRoot):
        root.dry_run = root.dry_run or dry_run
        return root
    return SysfsRoot(root, dry_run=dry_run)


class JetsonBackend:
    """DeviceBackend for a Jetson Orin board (or a fake tree of one)."""

    name = "jetson"

    def __init__(
        self,
        profile: Profile | str | None = None,
        root: SysfsRoot | str | os.PathLike | None = None,
        jetpack: int | str | None = None,
        *,
        read_only: bool = False,
        dry_run: bool = False,
        sample_interval_s: float = 0.05,
        handle_signals: bool = True,
    ) -> None:
        self.sysfs = _as_root(root, dry_run)
        if read_only:
            self.sysfs.forced_read_only = True
        self.discovery: Discovery = discover(self.sysfs, profile, jetpack)
        d = self.discovery
        d.require("profile", "gpu", "cpu")
        self.profile: Profile = d.profile  # type: ignore[assignment]
        self.jetpack = d.jetpack
        self.domains: dict[str, ClockDomain] = {
            "gpu": GpuDevfreq(self.sysfs, d.gpu.devfreq_dir),  # type: ignore[union-attr]
            "cpu": CpuFreq(self.sysfs, d.cpu, self.profile.clocks.table("cpu")),
        }
        if d.emc is not None:
            self.domains["emc"] = EmcClock(self.sysfs, d.emc)
        self.handle_signals = handle_signals
        self.read_only, self.read_only_reason = self._check_writable()
        if self.read_only:
            key = str(self.sysfs.root)
            if key not in _WARNED_READ_ONLY:
                _WARNED_READ_ONLY.add(key)
                log.warning("Jetson backend is read-only (%s): clocks are read and power is measured, "
                            "but set_clocks is refused", self.read_only_reason)
        rails = module_rails(d.rails, self.profile.power_rails.module_rail)
        self.power_rails = [r.name for r in rails]
        self.sampler = (PowerSampler(module_power_reader(self.sysfs, rails), sample_interval_s)
                        if rails else None)
        self._stored: ClockState | None = None
        self._old_handlers: dict[int, Any] = {}
        self._applied: dict[str, float] = {}
        self._restore_lock = threading.RLock()
        self.restore_problems: list[str] = []

    # -- discovery-derived facts -------------------------------------------------------------------

    def _check_writable(self) -> tuple[bool, str]:
        if self.sysfs.forced_read_only:
            return True, "opened read-only"
        for dom in self.domains.values():
            for f in dom.control_files():
                if not self.sysfs.writable(f):
                    not_root = hasattr(os, "geteuid") and os.geteuid() != 0
                    who = "not root" if not_root else "no write permission"
                    return True, f"{who}: cannot write {f}"
        return False, ""

    def caps_MHz(self) -> dict[str, float | None]:
        """Per-domain cap of the current nvpmodel mode (None: uncapped or unknown)."""
        nvp = self.discovery.nvpmodel
        mode = nvp.current if nvp else None
        caps: dict[str, float | None] = {d: None for d in DOMAINS}
        if mode is not None:
            caps["gpu"] = mode.gpu_max_Hz / 1e6 if mode.gpu_max_Hz else None
            caps["emc"] = mode.emc_max_Hz / 1e6 if mode.emc_max_Hz else None
            caps["cpu"] = mode.cpu_max_kHz / 1e3 if mode.cpu_max_kHz else None
        return caps

    @property
    def nvpmodel_mode(self) -> str | None:
        nvp = self.discovery.nvpmodel
        return nvp.current.name if nvp and nvp.current else None

    def _domain(self, domain: str) -> ClockDomain:
        if domain not in DOMAINS:
            raise CloneError(f"unknown clock domain '{domain}' (allowed: {', '.join(DOMAINS)})")
        if domain not in self.domains:
            why = "; ".join(p for p in self.discovery.problems
                            if p.startswith(domain.upper())) or "not found"
            raise CloneError(f"{domain} clock: not available on this board ({why})")
        return self.domains[domain]

    def listed_MHz(self, domain: str) -> tuple[float, ...]:
        """Every step the board lists for a domain, ignoring the power mode's cap."""
        return self._domain(domain).listed_MHz()

    def available_MHz(self, domain: str) -> tuple[float, ...]:
        """Listed steps up to the current nvpmodel mode's cap, ascending."""
        cap = self.caps_MHz()[domain]
        listed = self.listed_MHz(domain)
        return tuple(f for f in listed if cap is None or f <= cap + 1e-6)

    # -- reads -------------------------------------------------------------------------------------

    def get_clocks(self) -> Clocks:
        vals = {}
        for d in DOMAINS:
            try:
                vals[d] = self.domains[d].current_MHz() if d in self.domains else math.nan
            except (OSError, ValueError):
                vals[d] = math.nan
        return Clocks(gpu_MHz=vals["gpu"], emc_MHz=vals["emc"], cpu_MHz=vals["cpu"])

    def gpu_load(self) -> float | None:
        """GPU load in [0, 1] from the load file (per mille), None when unreadable."""
        g = self.discovery.gpu
        if g is None or g.load_file is None:
            return None
        try:
            return self.sysfs.read_int(g.load_file) / g.load_full_scale
        except (OSError, ValueError):
            return None

    def power_W(self) -> float | None:
        """Module power now (one synchronous rail read)."""
        if self.sampler is None:
            return None
        try:
            return self.sampler.read_W()
        except (OSError, ValueError):
            return None

    # -- writes ------------------------------------------------------------------------------------

    def set_clocks(self, clocks: Clocks) -> None:
        """Pin all three domains to listed values; nothing is written unless every value is valid."""
        if self.read_only:
            raise CloneError(f"Jetson backend is read-only ({self.read_only_reason}): cannot set "
                             f"clocks {clocks.as_dict()}; run as root for clock control")
        targets = {d: self._validate(d, clocks.get(d)) for d in DOMAINS}
        for d, f in targets.items():
            if self._applied.get(d) == f:
                continue
            self._domain(d).pin(f)
            self._applied[d] = f

    def set_clock(self, domain: str, MHz: float) -> None:
        """Pin one domain (the others stay as they are)."""
        if self.read_only:
            raise CloneError(f"Jetson backend is read-only ({self.read_only_reason}): cannot set "
                             f"{domain} to {MHz} MHz")
        f = self._validate(domain, MHz)
        self._domain(domain).pin(f)
        self._applied[domain] = f

    def _validate(self, domain: str, MHz: float) -> float:
        listed = self.listed_MHz(domain)
        f = match_listed(domain, MHz, listed)
        cap = self.caps_MHz()[domain]
        if cap is not None and f > cap + 1e-6:
            raise CloneError(
                f"{domain} clock: {MHz:g} MHz is above the {cap:g} MHz cap of nvpmodel mode "
                f"{self.nvpmodel_mode} (allowed MHz: {fmt_MHz(self.available_MHz(domain))}; "
                "a higher mode is chosen with `sudo nvpmodel -m ID`)")
        return f

    # -- store / restore ---------------------------------------------------------------------------

    def store(self) -> ClockState:
        return ClockState({d: dom.snapshot() for d, dom in self.domains.items()})

    def restore(self, state: ClockState | None = None) -> list[str]:
        """Write back a stored state (default: the one taken on entry); returns problems met."""
        state = state or self._stored
        if state is None or self.read_only:
            return []
        with self._restore_lock:
            problems: list[str] = []
            for d, snap in state.domains.items():
                problems += self.domains[d].restore(snap)
            self._applied.clear()
        for p in problems:
            log.error("restore: %s", p)
        self.restore_problems += problems
        return problems

    # -- phases ------------------------------------------------------------------------------------

    def begin_phase(self, phase: str) -> None:
        if self.sampler is None:
            self._phase_t0 = (phase, _now())
            return
        self.sampler.begin_phase(phase)

    def end_phase(self) -> PhaseAccount:
        if self.sampler is None:
            phase, t0 = getattr(self, "_phase_t0", (None, None))
            if phase is None:
                raise CloneError("end_phase() without begin_phase()")
            self._phase_t0 = (None, None)
            return PhaseAccount(phase=phase, time_s=_now() - t0, energy_J=math.nan,
                                extra={"power_measured": 0.0})
        return self.sampler.end_phase()

    # -- context -----------------------------------------------------------------------------------

    def __enter__(self) -> "JetsonBackend":
        self._stored = self.store()
        if self.handle_signals and threading.current_thread() is threading.main_thread():
            for sig in HANDLED_SIGNALS:
                self._old_handlers[sig] = signal.getsignal(sig)
                signal.signal(sig, self._on_signal)
        if self.sampler is not None:
            self.sampler.start()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self.sampler is not None:
                self.sampler.stop()
            self.restore()
        finally:
            self._put_back_handlers()
            self._stored = None

    def _put_back_handlers(self) -> None:
        for sig, old in self._old_handlers.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)
        self._old_handlers = {}

    def _on_signal(self, signum: int, frame: Any) -> None:
        """Restore, then let the previous handler (or the default action) deal with the signal."""
        old = self._old_handlers.get(signum, signal.SIG_DFL)
        self.restore()
        self._put_back_handlers()
        if callable(old):
            old(signum, frame)
        elif old == signal.SIG_IGN:
            return
        else:
            signal.raise_signal(signum)


def _now() -> float:
    import time

    return time.monotonic()


def auto_backend(root: SysfsRoot | str | os.PathLike | None = None, **kw: Any) -> JetsonBackend | None:
    """`--device auto`: a JetsonBackend when the root looks like a Jetson, else None (use the sim)."""
    sysfs = _as_root(root, kw.pop("dry_run", False))
    found = detect(sysfs)
    if found is None:
        return None
    if found.profile is None:
        raise CloneError("found a Jetson but no profile for it: " + "; ".join(found.problems))
    return JetsonBackend(found.profile, sysfs, **kw)
