"""Clock domains of a Jetson: GPU devfreq, CPU cpufreq policies and the EMC through the BPMP debugfs.

Each domain reads its listed frequencies, pins itself to one listed value and can snapshot and
restore every file it may write. Units at the files: devfreq Hz, cpufreq kHz, BPMP rates Hz (its
possible_rates list is kHz on the boards we know of; the unit is inferred from magnitude, since EMC
rates are at least 204 MHz). Everything above this module speaks MHz.

Write order (../shared/reference/jetson-clocks.md): a [min, max] range is changed so that min <= max
holds after every single write, i.e. when the new minimum is above the current maximum (raising) max is
written first, otherwise (lowering, or inside the range) min first. Pinning a domain writes min = max
= f, which works under any governor (this is what jetson_clocks does for the GPU and CPUs), so the
governor is left as it is; it is still stored and restored in case something else changed it.

EMC: like jetson_clocks on tegra234 the rate is forced with mrq_rate_locked = 1 followed by a write to
`rate` (BPMP otherwise keeps choosing the rate itself); min_rate/max_rate are left alone (they hold the
nvpmodel cap). Restore writes the stored rate, then the stored lock flag, so an unlocked board goes back
to BPMP-driven scaling.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

from clone.errors import CloneError
from clone.runtime.jetson.discovery import CpuPolicy, EmcFiles
from clone.runtime.jetson.sysfs import SysfsRoot

# A requested MHz matches a listed step within this tolerance (profiles round 624.75 MHz to 625;
# listed steps are at least 12 MHz apart, so no request can match two of them).
MATCH_TOL_MHz = 0.5


def fmt_MHz(xs) -> str:
    return ", ".join(f"{x:g}" for x in xs)


def match_listed(domain: str, MHz: float, listed: tuple[float, ...], note: str = "") -> float:
    """The listed step a request names, or a CloneError naming the domain, value and the list."""
    if not isinstance(MHz, (int, float)) or math.isnan(MHz):
        raise CloneError(f"{domain} clock: {MHz!r} is not a frequency (allowed MHz: {fmt_MHz(listed)})")
    for f in listed:
        if abs(f - MHz) <= MATCH_TOL_MHz:
            return f
    raise CloneError(
        f"{domain} clock: {MHz:g} MHz is not a frequency this board lists{note} "
        f"(allowed MHz: {fmt_MHz(listed)})"
    )


def write_range(sysfs: SysfsRoot, lo_file: str, hi_file: str, lo: int, hi: int) -> None:
    """Set [lo, hi] keeping min <= max after each write: max first when raising past it."""
    cur_hi = sysfs.read_int(hi_file)
    if lo > cur_hi:
        sysfs.write(hi_file, hi)
        sysfs.write(lo_file, lo)
    else:
        sysfs.write(lo_file, lo)
        sysfs.write(hi_file, hi)


def _write(domain: str, fn, *args) -> None:
    try:
        fn(*args)
    except OSError as exc:
        path = exc.filename or "?"
        raise CloneError(f"{domain} clock: write to {path} refused: {exc.strerror or exc}") from None


@dataclass(frozen=True)
class RangeState:
    """Stored governor and [min, max] of one devfreq device or cpufreq policy (file units)."""

    governor: str | None
    lo: int
    hi: int


class ClockDomain(ABC):
    name: str
    sysfs: SysfsRoot

    @abstractmethod
    def listed_MHz(self) -> tuple[float, ...]: ...

    @abstractmethod
    def current_MHz(self) -> float: ...

    @abstractmethod
    def control_files(self) -> list[str]:
        """Files pin() and restore() write (checked for write permission)."""

    @abstractmethod
    def pin(self, MHz: float) -> None:
        """Fix the clock at a listed value (already matched), in the safe write order."""

    @abstractmethod
    def snapshot(self) -> object: ...

    @abstractmethod
    def restore(self, state: object) -> list[str]:
        """Write back a snapshot where it differs; returns the problems met (restore goes on)."""


class _RangeDomain(ClockDomain):
    """A governor plus [min, max] files: devfreq (Hz) and cpufreq (kHz) share the logic."""

    scale: float  # file units per MHz
    hw_range_files: tuple[str, str] = ("", "")
    gov_file: str
    lo_file: str
    hi_file: str
    cur_file: str
    avail_file: str

    def __init__(self, name: str, sysfs: SysfsRoot, dirs: list[str],
                 fallback_MHz: tuple[float, ...] = ()) -> None:
        self.name, self.sysfs, self.dirs, self.fallback_MHz = name, sysfs, dirs, fallback_MHz

    def listed_MHz(self) -> tuple[float, ...]:
        """The driver's list; without one (some cpufreq drivers), the profile's table within the
        [min, max] the hardware reports, and a CloneError when even that is unknown."""
        d = self.dirs[0]
        try:
            raw = self.sysfs.read_ints(f"{d}/{self.avail_file}")
            return tuple(sorted({round(v / self.scale, 4) for v in raw}))
        except (OSError, ValueError):
            pass
        hw = [self.sysfs.read_optional(f"{d}/{f}") for f in self.hw_range_files]
        if self.fallback_MHz and all(x and x.isdigit() for x in hw):
            lo, hi = (int(x) / self.scale for x in hw)  # type: ignore[union-attr]
            return tuple(f for f in self.fallback_MHz if lo - 1e-6 <= f <= hi + 1e-6)
        raise CloneError(f"{self.name} clock: cannot read {d}/{self.avail_file}")

    def current_MHz(self) -> float:
        return self.sysfs.read_int(f"{self.dirs[0]}/{self.cur_file}") / self.scale

    def range_MHz(self) -> tuple[float, float]:
        d = self.dirs[0]
        return (self.sysfs.read_int(f"{d}/{self.lo_file}") / self.scale,
                self.sysfs.read_int(f"{d}/{self.hi_file}") / self.scale)

    def governor(self) -> str | None:
        return self.sysfs.read_optional(f"{self.dirs[0]}/{self.gov_file}")

    def control_files(self) -> list[str]:
        return [f"{d}/{f}" for d in self.dirs for f in (self.lo_file, self.hi_file)]

    def pin(self, MHz: float) -> None:
        v = int(round(MHz * self.scale))
        for d in self.dirs:
            lo, hi = f"{d}/{self.lo_file}", f"{d}/{self.hi_file}"
            _write(self.name, write_range, self.sysfs, lo, hi, v, v)

    def snapshot(self) -> list[RangeState]:
        return [RangeState(self.sysfs.read_optional(f"{d}/{self.gov_file}"),
                           self.sysfs.read_int(f"{d}/{self.lo_file}"),
                           self.sysfs.read_int(f"{d}/{self.hi_file}")) for d in self.dirs]

    def restore(self, state: list[RangeState]) -> list[str]:
        problems = []
        for d, st in zip(self.dirs, state):
            try:
                gov = self.sysfs.read_optional(f"{d}/{self.gov_file}")
                if st.governor is not None and gov != st.governor:
                    self.sysfs.write(f"{d}/{self.gov_file}", st.governor)
                lo = self.sysfs.read_int(f"{d}/{self.lo_file}")
                hi = self.sysfs.read_int(f"{d}/{self.hi_file}")
                if (lo, hi) != (st.lo, st.hi):
                    write_range(self.sysfs, f"{d}/{self.lo_file}", f"{d}/{self.hi_file}", st.lo, st.hi)
            except OSError as exc:
                problems.append(f"{self.name}: restoring {d}: {exc.strerror or exc} ({exc.filename})")
        return problems


class GpuDevfreq(_RangeDomain):
    scale = 1e6
    gov_file, lo_file, hi_file, cur_file, avail_file = (
        "governor", "min_freq", "max_freq", "cur_freq", "available_frequencies")

    def __init__(self, sysfs: SysfsRoot, devfreq_dir: str,
                 fallback_MHz: tuple[float, ...] = ()) -> None:
        super().__init__("gpu", sysfs, [devfreq_dir], fallback_MHz)


class CpuFreq(_RangeDomain):
    """All active cpufreq policies (one per cluster) pinned together; reads come from the first."""

    scale = 1e3
    gov_file, lo_file, hi_file, cur_file, avail_file = (
        "scaling_governor", "scaling_min_freq", "scaling_max_freq", "scaling_cur_freq",
        "scaling_available_frequencies")

    hw_range_files = ("cpuinfo_min_freq", "cpuinfo_max_freq")

    def __init__(self, sysfs: SysfsRoot, policies: tuple[CpuPolicy, ...],
                 fallback_MHz: tuple[float, ...] = ()) -> None:
        super().__init__("cpu", sysfs, [p.dir for p in policies], fallback_MHz)


@dataclass(frozen=True)
class EmcState:
    rate: int
    locked: str | None


class EmcClock(ClockDomain):
    name = "emc"

    def __init__(self, sysfs: SysfsRoot, files: EmcFiles) -> None:
        self.sysfs, self.files = sysfs, files

    def listed_MHz(self) -> tuple[float, ...]:
        raw = self.sysfs.read_ints(self.files.possible_rates)
        per_MHz = 1e3 if raw and max(raw) < 10**7 else 1e6  # kHz vs Hz (EMC >= 204 MHz)
        return tuple(sorted({round(v / per_MHz, 4) for v in raw}))

    def current_MHz(self) -> float:
        return self.sysfs.read_int(self.files.rate) / 1e6

    def cap_MHz(self) -> float | None:
        text = self.sysfs.read_optional(self.files.max_rate)
        return int(text) / 1e6 if text else None

    def control_files(self) -> list[str]:
        return [self.files.rate_locked, self.files.rate]

    def pin(self, MHz: float) -> None:
        _write(self.name, self.sysfs.write, self.files.rate_locked, 1)
        _write(self.name, self.sysfs.write, self.files.rate, int(round(MHz * 1e6)))

    def snapshot(self) -> EmcState:
        return EmcState(self.sysfs.read_int(self.files.rate),
                        self.sysfs.read_optional(self.files.rate_locked))

    def restore(self, state: EmcState) -> list[str]:
        problems = []
        try:
            if self.sysfs.read_int(self.files.rate) != state.rate:
                self.sysfs.write(self.files.rate, state.rate)
        except OSError as exc:
            problems.append(f"emc: restoring rate {state.rate}: {exc.strerror or exc}")
        try:
            now = self.sysfs.read_optional(self.files.rate_locked)
            if state.locked is not None and now != state.locked:
                self.sysfs.write(self.files.rate_locked, state.locked)
        except OSError as exc:
            problems.append(f"emc: restoring mrq_rate_locked {state.locked}: {exc.strerror or exc}")
        return problems
