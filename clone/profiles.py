"""Edge profiles: the YAML description of a target board (or of the CLONE accelerator), validated on load.

A profile is data, not code, so that the optimizer, the latency/energy cost model, the DVFS controller
and the deploy scripts all read one set of numbers with one set of sources. Units live in key names
(`dram_bandwidth_GBps`, `gpu_MHz`); a key with a wrong or missing unit is rejected rather than guessed.
Every error is a CloneError of the form ``FILE: key.path: reason (allowed: ...)``.

The power model is deliberately simple (docs/profiles.md): per clock domain d in {gpu, emc, cpu},

    P_dyn,d(f, u) = C_d * V_d(f)^2 * f * (a_d + (1 - a_d) * u)

with C_d fixed by the domain's full-load dynamic power at its highest listed clock, V_d(f) piecewise
linear, u the utilisation and a_d the fraction drawn by a clocked but idle domain. Module power is the
measured idle power plus the part of each domain's dynamic power above its idle-at-minimum-clock value,
so that the model reproduces the published idle figure exactly at minimum clocks.
"""

from __future__ import annotations

import math
import os
import re
from bisect import bisect_right
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from clone.errors import CloneError

SCHEMA_VERSION = 1
DOMAINS = ("gpu", "emc", "cpu")
PRECISIONS = ("int8_sparse", "int8", "int4", "fp16", "bf16", "fp32")
KINDS = ("board", "accelerator")

# Unit suffixes recognised in key names; longest first so `_GBps` wins over `_B`.
UNITS = sorted(
    ["GBps", "MBps", "GB", "MB", "KiB", "KB", "kB", "B", "bits", "GHz", "MHz", "kHz", "Hz", "TOPS",
     "TFLOPS", "W", "mW", "uW", "V", "mV", "s", "ms", "us", "ns", "mm2", "nm", "pJ", "nJ", "nF", "C"],
    key=len, reverse=True,
)
_UNIT_RE = re.compile(r"^(?P<stem>.+?)_(?P<unit>" + "|".join(UNITS) + r")$")


# --------------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MemorySpec:
    memory_GB: float
    reserved_GB: float
    dram_type: str
    bus_width_bits: int
    dram_bandwidth_GBps: float

    @property
    def usable_GB(self) -> float:
        """What a model, its KV cache and runtime buffers may occupy after OS and carve-outs."""
        return self.memory_GB - self.reserved_GB


@dataclass(frozen=True)
class ComputeSpec:
    gpu_arch: str
    cuda_cores: int
    tensor_cores: int
    cpu_arch: str
    cpu_cores: int
    peak_TOPS: dict[str, float]
    peak_TOPS_gpu_MHz: float


@dataclass(frozen=True)
class ClockTable:
    """Discrete clock steps per domain, ascending, in MHz (what devfreq/cpufreq/BPMP accept)."""

    gpu_MHz: tuple[float, ...]
    emc_MHz: tuple[float, ...]
    cpu_MHz: tuple[float, ...]

    def table(self, domain: str) -> tuple[float, ...]:
        _check_domain(domain)
        return getattr(self, f"{domain}_MHz")

    def min_MHz(self, domain: str) -> float:
        return self.table(domain)[0]

    def max_MHz(self, domain: str) -> float:
        return self.table(domain)[-1]

    def up_to(self, domain: str, cap_MHz: float) -> tuple[float, ...]:
        """The steps a governor may pick under a cap (a power mode's maximum)."""
        return tuple(f for f in self.table(domain) if f <= cap_MHz + 1e-6)

    def snap(self, domain: str, MHz: float) -> float:
        """Highest listed step not above MHz (the lowest step if MHz is below all of them)."""
        t = self.table(domain)
        i = bisect_right(t, MHz + 1e-6)
        return t[max(i - 1, 0)]


@dataclass(frozen=True)
class PowerMode:
    name: str
    nvpmodel_id: int
    power_budget_W: float
    gpu_max_MHz: float
    emc_max_MHz: float
    cpu_max_MHz: float
    cpu_online_cores: int
    min_jetpack: str | None = None
    note: str | None = None

    def max_MHz(self, domain: str) -> float:
        _check_domain(domain)
        return getattr(self, f"{domain}_max_MHz")

    def max_clocks(self) -> dict[str, float]:
        return {f"{d}_MHz": self.max_MHz(d) for d in DOMAINS}


@dataclass(frozen=True)
class DomainPower:
    """Dynamic power of one clock domain: C * V(f)^2 * f, scaled by activity."""

    domain: str
    dynamic_max_W: float
    idle_activity_fraction: float
    vf_MHz: tuple[float, ...]
    vf_V: tuple[float, ...]
    f_min_MHz: float
    f_max_MHz: float

    def voltage_V(self, MHz: float) -> float:
        """Piecewise-linear V(f), held flat outside the listed points."""
        xs, ys = self.vf_MHz, self.vf_V
        if MHz <= xs[0]:
            return ys[0]
        if MHz >= xs[-1]:
            return ys[-1]
        i = bisect_right(xs, MHz)
        x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
        return y0 + (y1 - y0) * (MHz - x0) / (x1 - x0)

    @property
    def ceff_nF(self) -> float:
        """Effective switched capacitance implied by the full-load power at the top clock."""
        v = self.voltage_V(self.f_max_MHz)
        return self.dynamic_max_W / (v * v * self.f_max_MHz * 1e-3)

    def dynamic_W(self, MHz: float, util: float = 1.0) -> float:
        if MHz <= 0:
            raise CloneError(f"{self.domain} clock: {MHz} MHz: must be > 0")
        u = min(max(float(util), 0.0), 1.0)
        v = self.voltage_V(MHz)
        activity = self.idle_activity_fraction + (1.0 - self.idle_activity_fraction) * u
        return self.ceff_nF * v * v * MHz * 1e-3 * activity


@dataclass(frozen=True)
class PowerModel:
    idle_W: float
    max_module_power_W: float
    cpu_cores: int
    gpu: DomainPower
    emc: DomainPower
    cpu: DomainPower

    def domain(self, name: str) -> DomainPower:
        _check_domain(name)
        return getattr(self, name)

    def breakdown_W(
        self,
        gpu_MHz: float,
        emc_MHz: float,
        cpu_MHz: float,
        gpu_util: float = 1.0,
        emc_util: float = 1.0,
        cpu_util: float = 1.0,
        cpu_online_cores: int | None = None,
    ) -> dict[str, float]:
        """Per-part module power: idle plus, per domain, dynamic power above idle-at-minimum-clock."""
        cores = self.cpu_cores if cpu_online_cores is None else cpu_online_cores
        core_share = min(max(cores, 0), self.cpu_cores) / self.cpu_cores
        parts = {"idle": self.idle_W}
        for name, f, u, share in (
            ("gpu", gpu_MHz, gpu_util, 1.0),
            ("emc", emc_MHz, emc_util, 1.0),
            ("cpu", cpu_MHz, cpu_util, core_share),
        ):
            d = self.domain(name)
            parts[name] = share * d.dynamic_W(f, u) - d.dynamic_W(d.f_min_MHz, 0.0)
        return parts

    def power_W(
        self,
        gpu_MHz: float,
        emc_MHz: float,
        cpu_MHz: float,
        gpu_util: float = 1.0,
        emc_util: float = 1.0,
        cpu_util: float = 1.0,
        cpu_online_cores: int | None = None,
    ) -> float:
        """Module (VDD_IN-equivalent) power in W at the given clocks and utilisations (0..1)."""
        parts = self.breakdown_W(
            gpu_MHz, emc_MHz, cpu_MHz, gpu_util, emc_util, cpu_util, cpu_online_cores
        )
        return max(sum(parts.values()), 0.0)


@dataclass(frozen=True)
class PowerRails:
    sensor: str
    module_rail: str | None
    rails: dict[str, str]


@dataclass(frozen=True)
class SysfsPaths:
    jetpack: int
    gpu_devfreq_dir: str
    gpu_devfreq_search_glob: str
    gpu_devfreq_of_node_names: tuple[str, ...]
    gpu_load_file: str
    gpu_load_full_scale: int
    devfreq_unit: str
    emc_rate_file: str
    emc_min_rate_file: str
    emc_max_rate_file: str
    emc_rate_locked_file: str
    emc_possible_rates_file: str
    emc_rate_unit: str
    cpufreq_dir_pattern: str
    cpufreq_unit: str
    hwmon_glob: str
    nvpmodel_conf: str

    def cpufreq_dir(self, cpu: int) -> str:
        return self.cpufreq_dir_pattern.format(cpu=cpu)


@dataclass(frozen=True)
class LatencyBudget:
    app_class: str
    ttft_ms: float
    tpot_ms: float
    description: str
    source: str

    def e2e_ms(self, output_tokens: int) -> float:
        """End-to-end budget for a response of N tokens: TTFT + TPOT * N (PAPER.md section 2)."""
        return self.ttft_ms + self.tpot_ms * output_tokens


@dataclass(frozen=True)
class Profile:
    """A board profile (kind: board)."""

    name: str
    path: Path
    description: str
    placeholder: bool
    memory: MemorySpec
    compute: ComputeSpec
    clocks: ClockTable
    modes: tuple[PowerMode, ...]
    default_mode: str
    power_model: PowerModel
    power_rails: PowerRails
    sysfs: dict[int, SysfsPaths]
    budgets: dict[str, LatencyBudget]
    default_app_class: str
    sources: dict[str, str] = field(default_factory=dict)
    kind: str = "board"

    @property
    def mode_names(self) -> list[str]:
        return [m.name for m in self.modes]

    def mode(self, name: str | None = None) -> PowerMode:
        """A power mode by name (case-insensitive); the profile's default when name is None."""
        want = self.default_mode if name is None else str(name)
        for m in self.modes:
            if m.name.lower() == want.lower():
                return m
        raise CloneError(
            f"profile {self.name}: unknown power mode '{want}' (allowed: {', '.join(self.mode_names)})"
        )

    def budget(self, app_class: str | None = None) -> LatencyBudget:
        want = self.default_app_class if app_class is None else str(app_class)
        if want in self.budgets:
            return self.budgets[want]
        raise CloneError(
            f"profile {self.name}: unknown application class '{want}' "
            f"(allowed: {', '.join(self.budgets)})"
        )

    def max_clocks(self, mode: str | None = None) -> dict[str, float]:
        """Highest clock per domain allowed in a mode: {'gpu_MHz': .., 'emc_MHz': .., 'cpu_MHz': ..}."""
        return self.mode(mode).max_clocks()

    def clock_choices(self, domain: str, mode: str | None = None) -> tuple[float, ...]:
        return self.clocks.up_to(domain, self.mode(mode).max_MHz(domain))

    def bandwidth_GBps(self, mode: str | None = None) -> float:
        """Peak DRAM bandwidth under a mode's EMC cap (bandwidth scales with the EMC clock)."""
        emc = self.mode(mode).emc_max_MHz
        return self.memory.dram_bandwidth_GBps * emc / self.clocks.max_MHz("emc")

    def peak_TOPS(self, precision: str = "int8", mode: str | None = None) -> float:
        """Peak compute under a mode's GPU cap, scaled linearly from the quoted clock."""
        if precision not in self.compute.peak_TOPS:
            raise CloneError(
                f"profile {self.name}: no peak compute for '{precision}' "
                f"(allowed: {', '.join(self.compute.peak_TOPS)})"
            )
        gpu = self.mode(mode).gpu_max_MHz
        return self.compute.peak_TOPS[precision] * gpu / self.compute.peak_TOPS_gpu_MHz

    def max_power_W(self, mode: str | None = None) -> float:
        """Modelled module power with every domain at the mode's cap and fully busy."""
        m = self.mode(mode)
        return self.power_model.power_W(
            m.gpu_max_MHz, m.emc_max_MHz, m.cpu_max_MHz, cpu_online_cores=m.cpu_online_cores
        )

    def sysfs_paths(self, jetpack: int | str) -> SysfsPaths:
        """Control files for a JetPack major version (5 or 6; '6.1' is read as 6)."""
        try:
            major = int(str(jetpack).split(".")[0])
        except ValueError:
            major = -1
        if major in self.sysfs:
            return self.sysfs[major]
        raise CloneError(
            f"profile {self.name}: no sysfs paths for JetPack '{jetpack}' "
            f"(allowed: {', '.join(str(k) for k in self.sysfs)})"
        )


@dataclass(frozen=True)
class OperatingPoint:
    name: str
    freq_MHz: float
    voltage_V: float


@dataclass(frozen=True)
class AcceleratorProfile:
    """The CLONE accelerator (kind: accelerator). Numbers are placeholders until the hw issue lands."""

    name: str
    path: Path
    description: str
    placeholder: bool
    placeholder_note: str | None
    technology: dict[str, Any]
    host_link: dict[str, Any]
    operating_points: tuple[OperatingPoint, ...]
    default_point: str
    array: dict[str, Any]
    buffers: dict[str, float]
    energy: dict[str, Any]
    sources: dict[str, str] = field(default_factory=dict)
    kind: str = "accelerator"

    def point(self, name: str | None = None) -> OperatingPoint:
        want = self.default_point if name is None else str(name)
        for p in self.operating_points:
            if p.name == want:
                return p
        names = ", ".join(p.name for p in self.operating_points)
        raise CloneError(f"profile {self.name}: unknown operating point '{want}' (allowed: {names})")

    @property
    def macs_per_cycle(self) -> int:
        return int(self.array["rows"]) * int(self.array["cols"])

    def peak_TOPS(self, point: str | None = None) -> float:
        """2 ops per MAC per cycle at an operating point's clock."""
        return 2 * self.macs_per_cycle * self.point(point).freq_MHz * 1e6 / 1e12


AnyProfile = Profile | AcceleratorProfile


# --------------------------------------------------------------------------------------------------
# Schema
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class F:
    """One key's rule. kind: str, int, num, pos, frac, bool, freqs, nums, strs, section, list, map."""

    kind: str
    required: bool = True
    sub: dict[str, F] | None = None
    allowed: tuple[str, ...] = ()
    needs_source: bool = True

    def describe(self) -> str:
        return {
            "str": "a string", "int": "an integer", "num": "a number", "pos": "a number > 0",
            "frac": "a number in [0, 1]", "bool": "true or false", "strs": "a list of strings",
            "freqs": "an ascending list of distinct frequencies > 0",
            "nums": "a list of numbers > 0", "section": "a mapping", "list": "a list of mappings",
            "map": "a mapping",
        }[self.kind]


def _sec(needs_source: bool = True, required: bool = True, **sub: F) -> F:
    return F("section", required=required, sub=sub, needs_source=needs_source)


_MODE = _sec(
    needs_source=False,
    name=F("str"),
    nvpmodel_id=F("int"),
    power_budget_W=F("pos"),
    gpu_max_MHz=F("pos"),
    emc_max_MHz=F("pos"),
    cpu_max_MHz=F("pos"),
    cpu_online_cores=F("int"),
    min_jetpack=F("str", required=False),
    note=F("str", required=False),
)
_DOMAIN = _sec(
    needs_source=False,
    dynamic_max_W=F("pos"),
    idle_activity_fraction=F("frac"),
    vf_MHz=F("freqs"),
    vf_V=F("nums"),
)
_SYSFS = _sec(
    needs_source=False,
    gpu_devfreq_dir=F("str"),
    gpu_devfreq_search_glob=F("str"),
    gpu_devfreq_of_node_names=F("strs"),
    gpu_load_file=F("str"),
    gpu_load_full_scale=F("int"),
    devfreq_unit=F("str", allowed=("Hz",)),
    emc_rate_file=F("str"),
    emc_min_rate_file=F("str"),
    emc_max_rate_file=F("str"),
    emc_rate_locked_file=F("str"),
    emc_possible_rates_file=F("str"),
    emc_rate_unit=F("str", allowed=("Hz",)),
    cpufreq_dir_pattern=F("str"),
    cpufreq_unit=F("str", allowed=("kHz",)),
    hwmon_glob=F("str"),
    nvpmodel_conf=F("str"),
)
_BUDGET = _sec(needs_source=False, ttft_ms=F("pos"), tpot_ms=F("pos"), description=F("str"))

_COMMON = dict(
    schema_version=F("int"),
    name=F("str"),
    kind=F("str", allowed=KINDS),
    description=F("str"),
    placeholder=F("bool", required=False),
    placeholder_note=F("str", required=False),
)

BOARD_SCHEMA: dict[str, F] = dict(
    _COMMON,
    memory=_sec(
        memory_GB=F("pos"),
        reserved_GB=F("num"),
        dram_type=F("str"),
        bus_width_bits=F("int"),
        dram_bandwidth_GBps=F("pos"),
    ),
    compute=_sec(
        gpu_arch=F("str"),
        cuda_cores=F("int"),
        tensor_cores=F("int"),
        cpu_arch=F("str"),
        cpu_cores=F("int"),
        peak_TOPS=F("map", sub={"*": F("pos")}, allowed=PRECISIONS),
        peak_TOPS_gpu_MHz=F("pos"),
    ),
    clocks=_sec(gpu_MHz=F("freqs"), emc_MHz=F("freqs"), cpu_MHz=F("freqs")),
    power_modes=_sec(default=F("str"), modes=F("list", sub=_MODE.sub)),
    power_model=_sec(
        idle_W=F("pos"),
        max_module_power_W=F("pos"),
        domains=F("map", sub={"*": _DOMAIN}, allowed=DOMAINS),
    ),
    power_rails=_sec(
        sensor=F("str"),
        module_rail=F("str", required=False),
        rails=F("map", sub={"*": F("str")}),
    ),
    sysfs=_sec(jetpack=F("map", sub={"*": _SYSFS}, allowed=("5", "6"))),
    latency_budgets=_sec(default_class=F("str"), classes=F("map", sub={"*": _BUDGET})),
)

ACCEL_SCHEMA: dict[str, F] = dict(
    _COMMON,
    technology=_sec(process_nm=F("pos"), core_area_mm2=F("pos"), nominal_voltage_V=F("pos")),
    host_link=_sec(
        interface=F("str"), pcie_gen=F("int"), pcie_lanes=F("int"), link_bandwidth_GBps=F("pos")
    ),
    operating_points=_sec(
        default=F("str"),
        points=F("list", sub=_sec(needs_source=False, name=F("str"), freq_MHz=F("pos"),
                                   voltage_V=F("pos")).sub),
    ),
    array=_sec(rows=F("int"), cols=F("int"), weight_bits=F("int"), activation_bits=F("int"),
               accumulator_bits=F("int")),
    buffers=_sec(activation_KiB=F("pos"), weight_KiB=F("pos"), output_KiB=F("pos"),
                 adapter_envm_KiB=F("pos"), dvfs_levels=F("int")),
    energy=_sec(int8_mac_pJ=F("pos"), sram_read_64b_pJ=F("pos"), envm_read_64b_pJ=F("pos"),
                dram_access_64b_pJ=F("pos"), leakage_mW=F("pos")),
)


class _Checker:
    """Walks a parsed YAML tree against a schema and raises the first problem as a CloneError."""

    def __init__(self, file: str) -> None:
        self.file = file

    def fail(self, path: str, reason: str, allowed: str | None = None) -> None:
        tail = f" (allowed: {allowed})" if allowed else ""
        where = f"{path}: " if path else ""
        raise CloneError(f"{self.file}: {where}{reason}{tail}")

    def section(self, data: Any, spec: dict[str, F], path: str, needs_source: bool) -> None:
        if not isinstance(data, dict):
            self.fail(path, f"expected a mapping, got {_typename(data)}")
        keys = [k for k in spec]
        for key, value in data.items():
            kpath = _join(path, key)
            if not isinstance(key, str):
                self.fail(kpath, "keys must be strings")
            if key == "source" or key.endswith("_source"):
                base = key[: -len("_source")] if key != "source" else None
                if base is not None and base not in spec:
                    self.fail(kpath, f"'{key}' names no key of this section", ", ".join(keys))
                if not isinstance(value, str) or not value.strip():
                    self.fail(kpath, "a source must be a non-empty string")
                continue
            if key not in spec:
                self.unknown(kpath, key, value, spec)
            self.value(value, spec[key], kpath)
        for key, rule in spec.items():
            if rule.required and key not in data:
                self.fail(_join(path, key), "missing key", ", ".join(keys))
        if needs_source and "source" not in data:
            numeric = [k for k in data if k in spec and spec[k].kind not in ("str", "bool", "strs")]
            unsourced = [k for k in numeric if f"{k}_source" not in data]
            if unsourced:
                self.fail(
                    _join(path, "source"),
                    "missing key: every number needs a source (a 'source' key for the section or "
                    f"'<key>_source' keys; unsourced: {', '.join(unsourced)})",
                )

    def unknown(self, kpath: str, key: str, value: Any, spec: dict[str, F]) -> None:
        keys = ", ".join(spec)
        m = _UNIT_RE.match(key)
        stem = m.group("stem") if m else key
        for expected in spec:
            em = _UNIT_RE.match(expected)
            if em and em.group("stem") == stem:
                self.fail(kpath, f"wrong unit: expected '{expected}' (unit {em.group('unit')})", keys)
        if m is None and _numeric(value):
            hint = " (frequencies in _MHz)" if re.search(r"freq|clock|clk", key) else ""
            self.fail(kpath, f"numeric key without a unit suffix{hint}", keys)
        self.fail(kpath, "unknown key", keys)

    def value(self, v: Any, rule: F, path: str) -> None:
        k = rule.kind
        if k == "str":
            if not isinstance(v, str):
                self.fail(path, f"expected {rule.describe()}, got {_typename(v)} {v!r}")
            if rule.allowed and v not in rule.allowed:
                self.fail(path, f"'{v}' is not allowed", ", ".join(rule.allowed))
        elif k == "bool":
            if not isinstance(v, bool):
                self.fail(path, f"expected {rule.describe()}, got {_typename(v)} {v!r}")
        elif k == "int":
            if isinstance(v, bool) or not isinstance(v, int):
                self.fail(path, f"expected {rule.describe()}, got {_typename(v)} {v!r}")
        elif k in ("num", "pos", "frac"):
            self.number(v, rule, path)
        elif k in ("freqs", "nums"):
            if not isinstance(v, list) or not v:
                self.fail(path, f"expected {rule.describe()}, got {_typename(v)}")
            for i, x in enumerate(v):
                self.number(x, F("pos"), f"{path}[{i}]", freq=k == "freqs")
            if k == "freqs":
                for i in range(1, len(v)):
                    if v[i] == v[i - 1]:
                        self.fail(f"{path}[{i}]", f"duplicate frequency {v[i]}")
                    if v[i] < v[i - 1]:
                        self.fail(f"{path}[{i}]", f"{v[i]} after {v[i - 1]}: table not sorted ascending")
        elif k == "strs":
            if not isinstance(v, list) or not all(isinstance(x, str) for x in v) or not v:
                self.fail(path, f"expected {rule.describe()}")
        elif k == "section":
            self.section(v, rule.sub or {}, path, rule.needs_source)
        elif k == "list":
            if not isinstance(v, list) or not v:
                self.fail(path, f"expected {rule.describe()} (non-empty), got {_typename(v)}")
            for i, item in enumerate(v):
                self.section(item, rule.sub or {}, f"{path}[{i}]", needs_source=False)
        elif k == "map":
            if not isinstance(v, dict) or not v:
                self.fail(path, f"expected a non-empty mapping, got {_typename(v)}")
            inner = (rule.sub or {})["*"]
            for key, item in v.items():
                kp = _join(path, str(key))
                if rule.allowed and str(key) not in rule.allowed:
                    self.fail(kp, "unknown key", ", ".join(rule.allowed))
                self.value(item, inner, kp)

    def number(self, v: Any, rule: F, path: str, freq: bool = False) -> None:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            self.fail(path, f"expected {rule.describe()}, got {_typename(v)} {v!r}")
        if rule.kind == "pos" and v <= 0:
            what = "frequency" if freq or path.endswith("MHz") else "value"
            self.fail(path, f"{what} {v} must be > 0")
        if rule.kind == "frac" and not 0 <= v <= 1:
            self.fail(path, f"{v} must be in [0, 1]")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _typename(v: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean",
            type(None): "nothing"}.get(type(v), type(v).__name__)


def _numeric(v: Any) -> bool:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return True
    return isinstance(v, list) and bool(v) and all(_numeric(x) for x in v)


def _check_domain(domain: str) -> None:
    if domain not in DOMAINS:
        raise CloneError(f"unknown clock domain '{domain}' (allowed: {', '.join(DOMAINS)})")


# --------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (PyYAML silently keeps the last one)."""


def _mapping_no_dups(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict:
    seen: set = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key '{key}'", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_no_dups)


def profiles_dir() -> Path:
    """edge_profiles/ next to the package in this source tree; CLONE_PROFILES_DIR overrides it."""
    env = os.environ.get("CLONE_PROFILES_DIR")
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parent.parent / "edge_profiles"


def list_profiles() -> list[str]:
    d = profiles_dir()
    if not d.is_dir():
        raise CloneError(f"{d}: profiles directory not found (set CLONE_PROFILES_DIR)")
    return sorted(p.stem for p in d.glob("*.yaml"))


def resolve_profile(name_or_path: str | os.PathLike) -> Path:
    """A profile name from profiles_dir(), or a path to a YAML file."""
    text = str(name_or_path)
    p = Path(text).expanduser()
    if p.suffix in (".yaml", ".yml") or os.sep in text or p.is_file():
        if not p.is_file():
            raise CloneError(f"{text}: profile file not found")
        return p
    candidate = profiles_dir() / f"{text}.yaml"
    if candidate.is_file():
        return candidate
    names = list_profiles()
    raise CloneError(
        f"unknown profile '{text}' in {profiles_dir()} (allowed: {', '.join(names) or 'none'})"
    )


_CACHE: dict[tuple[str, int, int], AnyProfile] = {}


def load_profile(name_or_path: str | os.PathLike) -> AnyProfile:
    """Load and validate a profile; a board gives Profile, the accelerator AcceleratorProfile."""
    path = resolve_profile(name_or_path)
    st = path.stat()
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    if key not in _CACHE:
        _CACHE[key] = _load_uncached(path)
    return _CACHE[key]


def load_board(name_or_path: str | os.PathLike) -> Profile:
    """Like load_profile, but only a board profile (with clocks, modes, power model) will do."""
    prof = load_profile(name_or_path)
    if not isinstance(prof, Profile):
        boards = [n for n in list_profiles() if isinstance(load_profile(n), Profile)]
        raise CloneError(
            f"{_display(prof.path)}: kind: '{prof.kind}' is not a board profile "
            f"(allowed: {', '.join(boards)})"
        )
    return prof


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _load_uncached(path: Path) -> AnyProfile:
    file = _display(path)
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise CloneError(f"{file}: not valid YAML: {where}{problem}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CloneError(f"{file}: cannot read: {exc}") from None
    check = _Checker(file)
    if not isinstance(data, dict):
        check.fail("", f"expected a mapping at the top level, got {_typename(data)}")
    kind = data.get("kind")
    if kind not in KINDS:
        check.fail("kind", f"{'missing key' if kind is None else repr(kind) + ' is not allowed'}",
                   ", ".join(KINDS))
    schema = BOARD_SCHEMA if kind == "board" else ACCEL_SCHEMA
    check.section(data, schema, "", needs_source=False)
    if data["schema_version"] != SCHEMA_VERSION:
        check.fail("schema_version", f"{data['schema_version']} is not supported", str(SCHEMA_VERSION))
    if data["name"] != path.stem:
        check.fail("name", f"'{data['name']}' does not match the file name", path.stem)
    if data.get("placeholder") and not data.get("placeholder_note"):
        check.fail("placeholder_note", "missing key: a placeholder profile says what is missing")
    build: Callable[[dict, Path, _Checker], AnyProfile] = (
        _build_board if kind == "board" else _build_accelerator
    )
    return build(data, path, check)


def _sources(data: dict) -> dict[str, str]:
    out = {}
    for section, body in data.items():
        if isinstance(body, dict):
            for k, v in body.items():
                if k == "source":
                    out[section] = v
                elif k.endswith("_source"):
                    out[f"{section}.{k[: -len('_source')]}"] = v
    return out


def _in_table(x: float, table: list[float]) -> bool:
    return any(abs(x - t) < 1e-6 for t in table)


def _fmt_list(xs: list[float]) -> str:
    return ", ".join(f"{x:g}" for x in xs)


def _build_board(data: dict, path: Path, check: _Checker) -> Profile:
    mem, comp, clk = data["memory"], data["compute"], data["clocks"]
    pm, model, rails = data["power_modes"], data["power_model"], data["power_rails"]

    if not 0 <= mem["reserved_GB"] < mem["memory_GB"]:
        check.fail("memory.reserved_GB", f"{mem['reserved_GB']} must be in [0, memory_GB)")
    for key in ("cuda_cores", "tensor_cores", "cpu_cores"):
        if comp[key] <= 0:
            check.fail(f"compute.{key}", f"{comp[key]} must be > 0")
    if mem["bus_width_bits"] <= 0:
        check.fail("memory.bus_width_bits", f"{mem['bus_width_bits']} must be > 0")

    clocks = ClockTable(*(tuple(float(x) for x in clk[f"{d}_MHz"]) for d in DOMAINS))

    modes: list[PowerMode] = []
    names: set[str] = set()
    ids: set[int] = set()
    for i, m in enumerate(pm["modes"]):
        where = f"power_modes.modes[{i}]"
        if m["name"].lower() in names:
            check.fail(f"{where}.name", f"duplicate mode name '{m['name']}'")
        if m["nvpmodel_id"] in ids or m["nvpmodel_id"] < 0:
            check.fail(f"{where}.nvpmodel_id", f"{m['nvpmodel_id']} is negative or used twice")
        names.add(m["name"].lower())
        ids.add(m["nvpmodel_id"])
        for d in DOMAINS:
            cap = m[f"{d}_max_MHz"]
            table = list(clocks.table(d))
            if not _in_table(cap, table):
                check.fail(f"{where}.{d}_max_MHz", f"{cap:g} is not in clocks.{d}_MHz",
                           _fmt_list(table))
        if not 1 <= m["cpu_online_cores"] <= comp["cpu_cores"]:
            check.fail(f"{where}.cpu_online_cores", f"{m['cpu_online_cores']} is out of range",
                       f"1..{comp['cpu_cores']}")
        modes.append(PowerMode(
            name=m["name"], nvpmodel_id=m["nvpmodel_id"], power_budget_W=float(m["power_budget_W"]),
            gpu_max_MHz=float(m["gpu_max_MHz"]), emc_max_MHz=float(m["emc_max_MHz"]),
            cpu_max_MHz=float(m["cpu_max_MHz"]), cpu_online_cores=m["cpu_online_cores"],
            min_jetpack=m.get("min_jetpack"), note=m.get("note"),
        ))
    mode_names = [m.name for m in modes]
    if pm["default"] not in mode_names:
        check.fail("power_modes.default", f"'{pm['default']}' is not a mode", ", ".join(mode_names))

    doms = model["domains"]
    for d in DOMAINS:
        if d not in doms:
            check.fail(f"power_model.domains.{d}", "missing key", ", ".join(DOMAINS))
    domain_power = {}
    for d in DOMAINS:
        dm, where = doms[d], f"power_model.domains.{d}"
        fs, vs = dm["vf_MHz"], dm["vf_V"]
        if len(fs) != len(vs):
            check.fail(f"{where}.vf_V", f"{len(vs)} voltages for {len(fs)} frequencies in vf_MHz")
        for j in range(1, len(vs)):
            if vs[j] < vs[j - 1]:
                check.fail(f"{where}.vf_V[{j}]", f"voltage falls from {vs[j-1]} to {vs[j]} V "
                           "as frequency rises")
        if fs[0] > clocks.min_MHz(d) + 1e-6 or fs[-1] < clocks.max_MHz(d) - 1e-6:
            check.fail(f"{where}.vf_MHz", f"{fs[0]:g}..{fs[-1]:g} MHz does not cover clocks.{d}_MHz",
                       f"a range covering {clocks.min_MHz(d):g}..{clocks.max_MHz(d):g}")
        domain_power[d] = DomainPower(
            domain=d, dynamic_max_W=float(dm["dynamic_max_W"]),
            idle_activity_fraction=float(dm["idle_activity_fraction"]),
            vf_MHz=tuple(float(x) for x in fs), vf_V=tuple(float(x) for x in vs),
            f_min_MHz=clocks.min_MHz(d), f_max_MHz=clocks.max_MHz(d),
        )
    power_model = PowerModel(
        idle_W=float(model["idle_W"]), max_module_power_W=float(model["max_module_power_W"]),
        cpu_cores=comp["cpu_cores"], **domain_power,
    )
    if power_model.idle_W >= power_model.max_module_power_W:
        check.fail("power_model.idle_W", f"{power_model.idle_W} W is not below max_module_power_W")

    if rails.get("module_rail") is not None and rails["module_rail"] not in rails["rails"]:
        check.fail("power_rails.module_rail", f"'{rails['module_rail']}' is not a listed rail",
                   ", ".join(rails["rails"]))

    sysfs = {}
    for jp, paths in data["sysfs"]["jetpack"].items():
        for k, v in paths.items():
            if k.endswith(("_dir", "_file", "_glob", "_pattern", "_conf")) and not v.startswith("/"):
                check.fail(f"sysfs.jetpack.{jp}.{k}", f"'{v}' is not an absolute path")
        if "{cpu}" not in paths["cpufreq_dir_pattern"]:
            check.fail(f"sysfs.jetpack.{jp}.cpufreq_dir_pattern", "must contain '{cpu}'")
        sysfs[int(jp)] = SysfsPaths(
            jetpack=int(jp),
            **{k: (tuple(v) if isinstance(v, list) else v) for k, v in paths.items()},
        )

    lb = data["latency_budgets"]
    budgets = {}
    for cls, b in lb["classes"].items():
        budgets[cls] = LatencyBudget(
            app_class=cls, ttft_ms=float(b["ttft_ms"]), tpot_ms=float(b["tpot_ms"]),
            description=b["description"], source=b.get("source", lb.get("source", "")),
        )
    if lb["default_class"] not in budgets:
        check.fail("latency_budgets.default_class", f"'{lb['default_class']}' is not a class",
                   ", ".join(budgets))

    memory = MemorySpec(
        memory_GB=float(mem["memory_GB"]), reserved_GB=float(mem["reserved_GB"]),
        dram_type=mem["dram_type"], bus_width_bits=mem["bus_width_bits"],
        dram_bandwidth_GBps=float(mem["dram_bandwidth_GBps"]),
    )
    compute = ComputeSpec(
        gpu_arch=comp["gpu_arch"], cuda_cores=comp["cuda_cores"], tensor_cores=comp["tensor_cores"],
        cpu_arch=comp["cpu_arch"], cpu_cores=comp["cpu_cores"],
        peak_TOPS={k: float(v) for k, v in comp["peak_TOPS"].items()},
        peak_TOPS_gpu_MHz=float(comp["peak_TOPS_gpu_MHz"]),
    )
    return Profile(
        name=data["name"], path=path, description=data["description"],
        placeholder=bool(data.get("placeholder", False)), memory=memory, compute=compute,
        clocks=clocks, modes=tuple(modes), default_mode=pm["default"], power_model=power_model,
        power_rails=PowerRails(sensor=rails["sensor"], module_rail=rails.get("module_rail"),
                               rails=dict(rails["rails"])),
        sysfs=sysfs, budgets=budgets, default_app_class=lb["default_class"],
        sources=_sources(data),
    )


def _build_accelerator(data: dict, path: Path, check: _Checker) -> AcceleratorProfile:
    ops = data["operating_points"]
    points: list[OperatingPoint] = []
    for i, p in enumerate(ops["points"]):
        where = f"operating_points.points[{i}]"
        if points and p["freq_MHz"] <= points[-1].freq_MHz:
            check.fail(f"{where}.freq_MHz", f"{p['freq_MHz']} after {points[-1].freq_MHz}: "
                       "points not sorted by ascending frequency")
        if points and p["voltage_V"] < points[-1].voltage_V:
            check.fail(f"{where}.voltage_V", "voltage falls as frequency rises")
        if any(q.name == p["name"] for q in points):
            check.fail(f"{where}.name", f"duplicate operating point '{p['name']}'")
        points.append(OperatingPoint(p["name"], float(p["freq_MHz"]), float(p["voltage_V"])))
    if ops["default"] not in [p.name for p in points]:
        check.fail("operating_points.default", f"'{ops['default']}' is not a point",
                   ", ".join(p.name for p in points))
    for key in ("rows", "cols", "weight_bits", "activation_bits", "accumulator_bits"):
        if data["array"][key] <= 0:
            check.fail(f"array.{key}", f"{data['array'][key]} must be > 0")

    def strip(section: dict) -> dict:
        return {k: v for k, v in section.items() if k != "source" and not k.endswith("_source")}

    return AcceleratorProfile(
        name=data["name"], path=path, description=data["description"],
        placeholder=bool(data.get("placeholder", False)),
        placeholder_note=data.get("placeholder_note"),
        technology=strip(data["technology"]), host_link=strip(data["host_link"]),
        operating_points=tuple(points), default_point=ops["default"],
        array=strip(data["array"]), buffers=strip(data["buffers"]), energy=strip(data["energy"]),
        sources=_sources(data),
    )
