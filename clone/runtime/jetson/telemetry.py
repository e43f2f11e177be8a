"""Power telemetry: INA3221 rail sampling in a background thread, per-phase energy, tegrastats lines.

Energy is the trapezoid integral of sampled power. A phase is bounded by two samples taken in the
caller's thread at begin_phase and end_phase, so its time is exact and consecutive phases share no
interval; the thread only adds samples in between (a sample older than the last one is ignored, which
keeps the integral monotone under races). Module power is the profile's module rail (VDD_IN on Orin
NX/Nano) or, when the profile names none (AGX Orin), the sum of the rails found. The INA3221 figures
are about 5% accurate and exclude the carrier board (../shared/reference/jetson-clocks.md).
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Iterable

from clone.errors import CloneError
from clone.runtime.device import PhaseAccount
from clone.runtime.jetson.discovery import Rail
from clone.runtime.jetson.sysfs import SysfsRoot


class EnergyIntegrator:
    """Trapezoid integral of (t, P) samples; samples not after the last one are dropped."""

    def __init__(self) -> None:
        self.t0: float | None = None
        self.last: tuple[float, float] | None = None
        self.energy_J = 0.0
        self.samples = 0
        self.peak_W = 0.0

    def add(self, t_s: float, power_W: float) -> None:
        if self.last is not None:
            t1, p1 = self.last
            if t_s <= t1:
                return
            self.energy_J += 0.5 * (p1 + power_W) * (t_s - t1)
        else:
            self.t0 = t_s
        self.last = (t_s, power_W)
        self.samples += 1
        self.peak_W = max(self.peak_W, power_W)

    @property
    def time_s(self) -> float:
        return 0.0 if self.last is None or self.t0 is None else self.last[0] - self.t0

    @property
    def mean_W(self) -> float:
        return self.energy_J / self.time_s if self.time_s > 0 else (self.last[1] if self.last else 0.0)


def integrate(samples: Iterable[tuple[float, float]]) -> float:
    """Energy in J of (time s, power W) samples (trapezoid)."""
    acc = EnergyIntegrator()
    for t, p in samples:
        acc.add(t, p)
    return acc.energy_J


# --------------------------------------------------------------------------------------------------
# Rails
# --------------------------------------------------------------------------------------------------


def module_rails(rails: dict[str, Rail], module_rail: str | None) -> list[Rail]:
    """The rails whose sum is module power: the module rail alone if present, else every rail."""
    if module_rail and module_rail in rails:
        return [rails[module_rail]]
    return list(rails.values())


def rail_power_W(sysfs: SysfsRoot, rail: Rail) -> float:
    """One rail: in{N}_input (mV) x curr{N}_input (mA)."""
    return sysfs.read_int(rail.volt_file) * sysfs.read_int(rail.curr_file) / 1e6


def module_power_reader(sysfs: SysfsRoot, rails: list[Rail]) -> Callable[[], float]:
    if not rails:
        raise CloneError("power sampler: no INA3221 rails to read")

    def read() -> float:
        return sum(rail_power_W(sysfs, r) for r in rails)

    return read


class PowerSampler:
    """Reads module power every `interval_s` in a daemon thread and accounts energy per phase."""

    def __init__(
        self,
        read_W: Callable[[], float],
        interval_s: float = 0.05,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if interval_s <= 0:
            raise CloneError(f"power sampler: interval_s {interval_s} must be > 0")
        self.read_W, self.interval_s, self.clock = read_W, interval_s, clock
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._phase: str | None = None
        self._acc: EnergyIntegrator | None = None
        self.latest: tuple[float, float] | None = None
        self.read_errors = 0
        self.history: list[PhaseAccount] = []

    # -- thread ------------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="clone-power-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(1.0, 5 * self.interval_s))
        self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def sample(self) -> tuple[float, float] | None:
        """Take one sample now and add it to the open phase (if any)."""
        t = self.clock()
        try:
            p = float(self.read_W())
        except (OSError, ValueError):
            self.read_errors += 1
            return None
        with self._lock:
            self.latest = (t, p)
            if self._acc is not None:
                self._acc.add(t, p)
        return t, p

    # -- phases ------------------------------------------------------------------------------------

    @property
    def phase(self) -> str | None:
        return self._phase

    def begin_phase(self, phase: str) -> None:
        if self._phase is not None:
            self.end_phase()
        with self._lock:
            self._phase, self._acc = phase, EnergyIntegrator()
        self.sample()

    def end_phase(self) -> PhaseAccount:
        if self._phase is None:
            raise CloneError("end_phase() without begin_phase()")
        self.sample()
        with self._lock:
            acc, phase = self._acc, self._phase
            self._phase, self._acc = None, None
        assert acc is not None and phase is not None
        account = PhaseAccount(phase=phase, time_s=acc.time_s, energy_J=acc.energy_J,
                               samples=acc.samples,
                               extra={"power_W_mean": acc.mean_W, "power_W_peak": acc.peak_W})
        self.history.append(account)
        return account


# --------------------------------------------------------------------------------------------------
# tegrastats
# --------------------------------------------------------------------------------------------------

_TS_RE = re.compile(r"^\s*(\d{2}-\d{2}-\d{4} \d{2}:\d{2}:\d{2})\s+")
_RAM_RE = re.compile(r"\bRAM (\d+)/(\d+)MB")
_CPU_RE = re.compile(r"\bCPU \[([^\]]*)\](?:@(\d+))?")
_GR3D_RE = re.compile(r"\bGR3D_FREQ (\d+)%(?:@\[?(\d+)(?:,\d+)*\]?)?")
_EMC_RE = re.compile(r"\bEMC_FREQ (\d+)%(?:@(\d+))?")
_RAIL_RE = re.compile(r"\b([A-Z][A-Z0-9_]*) (\d+)(?:mW)?/(\d+)(?:mW)?\b")
_TEMP_RE = re.compile(r"\b([A-Za-z0-9_]+)@(-?\d+(?:\.\d+)?)C\b")


@dataclass
class TegrastatsSample:
    """One tegrastats line. Loads in %, frequencies in MHz, rails as (instant, average) mW."""

    timestamp: datetime | None
    ram_used_MB: int | None
    ram_total_MB: int | None
    cpu_load_pct: list[float | None] = field(default_factory=list)  # None: core off
    cpu_freq_MHz: list[float | None] = field(default_factory=list)
    gpu_load_pct: float | None = None
    gpu_freq_MHz: float | None = None
    emc_load_pct: float | None = None
    emc_freq_MHz: float | None = None
    rails_mW: dict[str, tuple[int, int]] = field(default_factory=dict)
    temps_C: dict[str, float] = field(default_factory=dict)

    def module_W(self, module_rail: str | None = None) -> float:
        """Module power: the named rail, else VDD_IN/POM_5V_IN if printed, else the sum of rails."""
        if not self.rails_mW:
            raise CloneError("tegrastats line has no power rails")
        for name in ((module_rail,) if module_rail else ()) + ("VDD_IN", "POM_5V_IN"):
            if name in self.rails_mW:
                return self.rails_mW[name][0] / 1000.0
        if module_rail:
            raise CloneError(f"tegrastats line has no rail {module_rail} "
                             f"(allowed: {', '.join(self.rails_mW)})")
        return sum(v[0] for v in self.rails_mW.values()) / 1000.0

    @property
    def cpu_load_mean_pct(self) -> float | None:
        on = [x for x in self.cpu_load_pct if x is not None]
        return sum(on) / len(on) if on else None


def parse_tegrastats(line: str) -> TegrastatsSample:
    """Parse a tegrastats line (JetPack 5/6 format, optional leading timestamp)."""
    if "RAM" not in line and "mW/" not in line:
        raise CloneError(f"not a tegrastats line: {line[:60]!r}")
    m = _TS_RE.match(line)
    ts = datetime.strptime(m.group(1), "%m-%d-%Y %H:%M:%S") if m else None
    ram = _RAM_RE.search(line)
    s = TegrastatsSample(ts, int(ram.group(1)) if ram else None, int(ram.group(2)) if ram else None)
    cpu = _CPU_RE.search(line)
    if cpu:
        shared = float(cpu.group(2)) if cpu.group(2) else None
        for item in cpu.group(1).split(","):
            item = item.strip()
            if item == "off" or not item:
                s.cpu_load_pct.append(None)
                s.cpu_freq_MHz.append(None)
                continue
            load, _, freq = item.partition("@")
            s.cpu_load_pct.append(float(load.rstrip("%")))
            s.cpu_freq_MHz.append(float(freq) if freq else shared)
    g = _GR3D_RE.search(line)
    if g:
        s.gpu_load_pct = float(g.group(1))
        s.gpu_freq_MHz = float(g.group(2)) if g.group(2) else None
    e = _EMC_RE.search(line)
    if e:
        s.emc_load_pct = float(e.group(1))
        s.emc_freq_MHz = float(e.group(2)) if e.group(2) else None
    for name, cur, avg in _RAIL_RE.findall(line):
        if name not in ("RAM", "SWAP", "IRAM"):
            s.rails_mW[name] = (int(cur), int(avg))
    s.temps_C = {k: float(v) for k, v in _TEMP_RE.findall(line) if not k.isdigit()}
    return s


def energy_from_tegrastats(
    lines: Iterable[str],
    interval_s: float | None = None,
    module_rail: str | None = None,
) -> tuple[float, float]:
    """(energy J, time s) over recorded tegrastats lines, trapezoid between consecutive lines.

    Line times come from their timestamps when every line has one and interval_s is None, else from
    a fixed interval (tegrastats --interval, default 1000 ms). Blank lines are skipped.
    """
    samples = [parse_tegrastats(x) for x in lines if x.strip()]
    if len(samples) < 2:
        raise CloneError(f"tegrastats: need at least 2 lines to integrate energy, got {len(samples)}")
    if interval_s is None and all(s.timestamp for s in samples):
        t0 = samples[0].timestamp
        times = [(s.timestamp - t0).total_seconds() for s in samples]  # type: ignore[operator]
    else:
        step = 1.0 if interval_s is None else float(interval_s)
        if step <= 0:
            raise CloneError(f"tegrastats: interval_s {step} must be > 0")
        times = [i * step for i in range(len(samples))]
    acc = EnergyIntegrator()
    for t, s in zip(times, samples):
        acc.add(t, s.module_W(module_rail))
    return acc.energy_J, acc.time_s
