"""28 nm energy model and operating points: data files in sim/data/, validated on load.

Energy of a run = sum over actions (counts from the simulator) of count x energy per action, with
every core (28 nm) energy scaled by (V / V_ref)^2 at the operating point, off-chip energies (host
DRAM, PCIe link) unscaled, plus leakage P_leak(V_ref) x V / V_ref x simulated time. Operating points
are the SFU's V/f table; each must run at or below the alpha-power-law f_max(V) = K (V - Vth)^alpha / V.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import yaml

from clone.errors import CloneError
from hw.params import AccelParams
from sim import actions as act

DATA = Path(__file__).resolve().parent / "data"
ENERGY_FILE = DATA / "energy_28nm.yaml"
POINTS_FILE = DATA / "operating_points_28nm.yaml"
LINK_FILE = DATA / "link_pcie.yaml"

# which report category each action's energy belongs to
CATEGORY = {
    "mac_int8": "compute", "mac_int4": "compute", "mac_lora_b": "compute", "iter_step": "compute",
    "abuf_rd": "sram", "abuf_wr": "sram", "wbuf_rd": "sram", "wbuf_wr": "sram", "obuf_rd": "sram",
    "obuf_wr": "sram", "emb_rd": "sram", "emb_wr": "sram",
    "envm_rd": "envm", "envm_wr": "envm",
    "link_in_B": "dram", "link_out_B": "dram",
    "ldo_step": "dvfs", "pll_relock": "dvfs",
    "command": "control", "cycle": "control",
}
CATEGORIES = ("compute", "sram", "envm", "dram", "link", "control", "dvfs", "leakage")


def _load_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise CloneError(f"{path}: cannot read ({exc})") from None
    if not isinstance(data, dict) or data.get("schema_version") != 1:
        raise CloneError(f"{path}: schema_version: must be 1")
    return data


def _num(path: Path, data: dict, dotted: str, positive: bool = True) -> float:
    cur: object = data
    for k in dotted.split("."):
        if not isinstance(cur, dict) or k not in cur:
            raise CloneError(f"{path}: {dotted}: missing")
        cur = cur[k]
    if isinstance(cur, bool) or not isinstance(cur, (int, float)) or (positive and cur <= 0) or cur < 0:
        raise CloneError(f"{path}: {dotted}: {cur!r} is not a {'positive' if positive else 'non-negative'} number")
    src = dotted + "_source"
    parent = data
    for k in dotted.split(".")[:-1]:
        parent = parent[k]
    if src.split(".")[-1] not in parent and "source" not in parent:
        raise CloneError(f"{path}: {dotted}: no source given ({src.split('.')[-1]} or source)")
    return float(cur)


# ------------------------------------------------------------------------- operating points
@dataclass(frozen=True)
class OperatingPoint:
    name: str
    voltage_V: float
    freq_MHz: float

    @property
    def label(self) -> str:
        return f"{self.voltage_V:.2f}V@{self.freq_MHz:g}MHz"


@dataclass(frozen=True)
class AlphaPowerLaw:
    vth_V: float
    alpha: float
    anchor_voltage_V: float
    anchor_freq_MHz: float

    def fmax_MHz(self, voltage_V: float) -> float:
        def shape(v: float) -> float:
            return (v - self.vth_V) ** self.alpha / v if v > self.vth_V else 0.0
        return self.anchor_freq_MHz * shape(voltage_V) / shape(self.anchor_voltage_V)


@dataclass(frozen=True)
class PointTable:
    points: tuple[OperatingPoint, ...]
    law: AlphaPowerLaw
    vcode_step_mV: float
    fcode_step_MHz: float

    def names(self) -> list[str]:
        return [p.name for p in self.points]

    def get(self, spec: str | OperatingPoint | dict | None) -> OperatingPoint:
        """A table entry by name ('l6'), by value ('0.76V@500MHz'), or a custom point 'V@f' that
        the SFU's V/f registers can hold (10 mV / 25 MHz codes) and that meets f <= f_max(V)."""
        if isinstance(spec, OperatingPoint):
            return self.check(spec)
        if spec is None:
            return self.points[len(self.points) // 2]
        if isinstance(spec, dict):
            if "point" in spec:
                return self.get(spec["point"])
            if "freq_MHz" in spec and "voltage_V" in spec:
                return self.check(OperatingPoint("custom", float(spec["voltage_V"]), float(spec["freq_MHz"])))
            raise CloneError(f"operating point {spec}: give point, or voltage_V and freq_MHz")
        text = str(spec).strip()
        for p in self.points:
            if p.name == text:
                return p
        m = re.fullmatch(r"([0-9.]+)\s*V\s*@\s*([0-9.]+)\s*MHz", text, re.IGNORECASE)
        if not m:
            raise CloneError(f"operating point '{text}': unknown (allowed: {', '.join(self.names())}, "
                             "or V@f such as 0.80V@500MHz)")
        v, f = float(m.group(1)), float(m.group(2))
        for p in self.points:
            if abs(p.voltage_V - v) < 1e-9 and abs(p.freq_MHz - f) < 1e-9:
                return p
        return self.check(OperatingPoint("custom", v, f))

    def check(self, p: OperatingPoint) -> OperatingPoint:
        vcode = p.voltage_V * 1000 / self.vcode_step_mV
        fcode = p.freq_MHz / self.fcode_step_MHz
        if abs(vcode - round(vcode)) > 1e-6 or not 1 <= round(vcode) <= 255:
            raise CloneError(f"operating point {p.label}: voltage_V must be a multiple of "
                             f"{self.vcode_step_mV:g} mV in 0.01..2.55 V (the SFU's 8-bit voltage code)")
        if abs(fcode - round(fcode)) > 1e-6 or not 1 <= round(fcode) <= 255:
            raise CloneError(f"operating point {p.label}: freq_MHz must be a multiple of "
                             f"{self.fcode_step_MHz:g} MHz in 25..6375 MHz (the ADPLL's 8-bit multiplier)")
        fmax = self.law.fmax_MHz(p.voltage_V)
        if p.freq_MHz > fmax + 1e-6:
            raise CloneError(f"operating point {p.label}: freq_MHz {p.freq_MHz:g} exceeds f_max "
                             f"{fmax:.0f} MHz at {p.voltage_V:.2f} V (alpha-power law, {POINTS_FILE.name})")
        return p


@lru_cache(maxsize=4)
def point_table(path: str = str(POINTS_FILE)) -> PointTable:
    file = Path(path)
    data = _load_yaml(file)
    law = AlphaPowerLaw(*(_num(file, data, f"alpha_power_law.{k}") for k in
                          ("vth_V", "alpha", "anchor_voltage_V", "anchor_freq_MHz")))
    raw = data.get("points")
    if not isinstance(raw, list) or not raw:
        raise CloneError(f"{file}: points: must be a non-empty list")
    pts = []
    for i, e in enumerate(raw):
        if not isinstance(e, dict) or set(e) != {"name", "voltage_V", "freq_MHz"}:
            raise CloneError(f"{file}: points[{i}]: needs exactly name, voltage_V, freq_MHz")
        pts.append(OperatingPoint(str(e["name"]), float(e["voltage_V"]), float(e["freq_MHz"])))
    table = PointTable(tuple(pts), law, _num(file, data, "vcode_step_mV"), _num(file, data, "fcode_step_MHz"))
    for p in pts:
        try:
            table.check(p)
        except CloneError as exc:
            raise CloneError(f"{file}: points: {exc}") from None
    return table


def rtl_points(p: AccelParams) -> list[OperatingPoint]:
    """The V/f table the RTL's SFU holds after reset (hw.reference.vf_reset)."""
    from hw.reference import vf_reset
    return [OperatingPoint(f"l{l}", v / 100, f * 25.0) for l, (v, f) in enumerate(vf_reset(p))]


# ------------------------------------------------------------------------- energy table
@dataclass(frozen=True)
class EnergyTable:
    v_ref: float
    int8_mac_pJ: float
    int4_mac_pJ: float
    lora_b_mac_pJ: float
    sram_sizes_KiB: tuple[float, ...]
    sram_read_64b_pJ: tuple[float, ...]
    sram_write_ratio: float
    envm_read_64b_pJ: float
    envm_write_64b_pJ: float
    dram_64b_pJ: float
    link_pJ_per_B: float
    iter_step_pJ: float
    command_pJ: float
    cycle_pJ: float
    ldo_step_pJ: float
    pll_relock_pJ: float
    leakage_mW: float

    def sram_64b_pJ(self, size_KiB: float) -> float:
        """Log-log interpolation of the 64-bit read energy in the array size."""
        xs = np.log(self.sram_sizes_KiB)
        ys = np.log(self.sram_read_64b_pJ)
        x = math.log(max(size_KiB, 1e-3))
        if x <= xs[0]:
            slope = (ys[1] - ys[0]) / (xs[1] - xs[0])
            return float(math.exp(ys[0] + slope * (x - xs[0])))
        if x >= xs[-1]:
            slope = (ys[-1] - ys[-2]) / (xs[-1] - xs[-2])
            return float(math.exp(ys[-1] + slope * (x - xs[-1])))
        return float(math.exp(np.interp(x, xs, ys)))


@lru_cache(maxsize=4)
def energy_table(path: str = str(ENERGY_FILE)) -> EnergyTable:
    f = Path(path)
    d = _load_yaml(f)
    sizes = d.get("sram", {}).get("read_64b_pJ_by_size")
    if not isinstance(sizes, list) or len(sizes) < 2:
        raise CloneError(f"{f}: sram.read_64b_pJ_by_size: needs at least two {{size_KiB, energy_pJ}} entries")
    try:
        xs = tuple(float(e["size_KiB"]) for e in sizes)
        ys = tuple(float(e["energy_pJ"]) for e in sizes)
    except (KeyError, TypeError, ValueError):
        raise CloneError(f"{f}: sram.read_64b_pJ_by_size: entries need size_KiB and energy_pJ numbers") from None
    if list(xs) != sorted(set(xs)) or min(ys) <= 0:
        raise CloneError(f"{f}: sram.read_64b_pJ_by_size: sizes must increase and energies be positive")
    n = lambda k, pos=True: _num(f, d, k, pos)
    return EnergyTable(
        v_ref=n("reference_voltage_V"), int8_mac_pJ=n("mac.int8_mac_pJ"), int4_mac_pJ=n("mac.int4_mac_pJ"),
        lora_b_mac_pJ=n("mac.lora_b_mac_pJ"), sram_sizes_KiB=xs, sram_read_64b_pJ=ys,
        sram_write_ratio=n("sram.write_to_read_ratio"), envm_read_64b_pJ=n("envm.read_64b_pJ"),
        envm_write_64b_pJ=n("envm.write_64b_pJ"), dram_64b_pJ=n("offchip.dram_64b_pJ"),
        link_pJ_per_B=n("offchip.link_pJ_per_B"), iter_step_pJ=n("control.iter_step_pJ"),
        command_pJ=n("control.command_pJ"), cycle_pJ=n("control.cycle_pJ"), ldo_step_pJ=n("dvfs.ldo_step_pJ"),
        pll_relock_pJ=n("dvfs.pll_relock_pJ"), leakage_mW=n("leakage.leakage_mW", False))


@dataclass(frozen=True)
class LinkSpec:
    bandwidth_GBps: float
    latency_ns: float


@lru_cache(maxsize=4)
def link_spec(path: str = str(LINK_FILE)) -> LinkSpec:
    f = Path(path)
    d = _load_yaml(f)
    return LinkSpec(_num(f, d, "bandwidth_GBps"), _num(f, d, "latency_ns", False))


# ------------------------------------------------------------------------- the model
class EnergyModel:
    """Per-action energies for one accelerator instance (buffer sizes set SRAM energies)."""

    def __init__(self, p: AccelParams, table: EnergyTable | None = None):
        self.p = p
        self.t = table or energy_table()
        t, n = self.t, p.n
        kib = lambda depth, nbytes: depth * nbytes / 1024
        word = lambda nbytes, size: t.sram_64b_pJ(size) * nbytes * 8 / 64
        sizes = {"abuf": (p.abuf_depth, n), "wbuf": (p.wbuf_depth, n * n), "obuf": (p.obuf_depth, 4 * n),
                 "emb": (p.emb_depth, n)}
        core = {"mac_int8": t.int8_mac_pJ, "mac_int4": t.int4_mac_pJ, "mac_lora_b": t.lora_b_mac_pJ,
                "iter_step": t.iter_step_pJ, "envm_rd": t.envm_read_64b_pJ * n / 8,
                "envm_wr": t.envm_write_64b_pJ * n / 8, "ldo_step": t.ldo_step_pJ,
                "pll_relock": t.pll_relock_pJ, "command": t.command_pJ, "cycle": t.cycle_pJ}
        for name, (depth, nbytes) in sizes.items():
            rd = word(nbytes, kib(depth, nbytes))
            core[f"{name}_rd"] = rd
            core[f"{name}_wr"] = rd * t.sram_write_ratio
        self.core_pJ = np.array([core.get(a, 0.0) for a in act.NAMES])
        per_byte = t.dram_64b_pJ / 8
        self.dram_pJ = np.array([per_byte if a in ("link_in_B", "link_out_B") else 0.0 for a in act.NAMES])
        self.link_pJ = np.array([t.link_pJ_per_B if a in ("link_in_B", "link_out_B") else 0.0 for a in act.NAMES])
        self._cat = {c: np.array([CATEGORY[a] == c for a in act.NAMES]) for c in CATEGORIES}

    def scale(self, point: OperatingPoint) -> float:
        return (point.voltage_V / self.t.v_ref) ** 2

    def leakage_W(self, point: OperatingPoint) -> float:
        return self.t.leakage_mW * 1e-3 * point.voltage_V / self.t.v_ref

    def split_J(self, counts: np.ndarray, time_s: float, point: OperatingPoint) -> dict[str, float]:
        """Energy in J per category for action counts (vector, or matrix rows x actions)."""
        counts = np.asarray(counts, dtype=np.float64)
        core = counts * self.core_pJ * self.scale(point) * 1e-12
        out = {c: float(core[..., self._cat[c]].sum()) for c in CATEGORIES if c not in ("link", "leakage")}
        out["dram"] = float((counts * self.dram_pJ).sum() * 1e-12)
        out["link"] = float((counts * self.link_pJ).sum() * 1e-12)
        out["leakage"] = self.leakage_W(point) * time_s
        return out

    def per_action_pJ(self, point: OperatingPoint) -> dict[str, float]:
        v = self.core_pJ * self.scale(point) + self.dram_pJ + self.link_pJ
        return {a: float(v[i]) for i, a in enumerate(act.NAMES)}
