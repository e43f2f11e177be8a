"""FlexGen-like weight offloading on a Jetson board: the roofline model (clone.costmodel.roofline) plus
the time and energy of bringing the non-resident weights into the GPU's working set on every forward
pass. The paper's FlexGen baseline (../shared/PAPER.md, Table 3) is this kind of system; docs/table3.md
says how its numbers compare with ours.

Placement (per weight tensor, per forward pass; shares from clone/costmodel/offload.yaml):
- gpu share: read in place by the GPU kernels (the roofline's weight bytes, nothing extra);
- cpu share: held in FlexGen's CPU pool and copied into a GPU buffer before the layer runs. On a
  unified-memory Jetson both pools are the same LPDDR5, so the copy is DRAM read + DRAM write;
- disk share: read from storage (NVMe) into the CPU pool (a DRAM write), then copied like the cpu share.

Per layer: io_s = disk_bytes / storage bandwidth + copy_bytes / (DRAM bandwidth x copy efficiency).
With overlap (FlexGen loads layer i+1 while layer i computes) the layer takes
max(roofline time, io_s, roofline memory time + copy time) since the copy shares the DRAM; without,
roofline time + io_s. Energy: the roofline step's energy, the board's idle power over the extra time,
the EMC and CPU increments of the copy traffic and the I/O thread (the power model is affine in
utilisation at fixed clocks), and the storage device's active power while it reads.

The roofline code is reused, not copied: weight bytes come from the roofline's own work tables with
the KV cache and activations set to zero bits.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from clone.costmodel.base import CostShape, StepCost
from clone.costmodel.roofline import (
    NO_CONTENTION,
    Contention,
    RooflineCostModel,
    RuntimeCalibration,
    clock_values,
)
from clone.errors import CloneError

OFFLOAD_PATH = Path(__file__).with_name("offload.yaml")
PLACEMENTS = ("scaled", "fit", "all")


# ------------------------------------------------------------------------------------------ data
@dataclass(frozen=True)
class StorageTier:
    """Where offloaded weights live when they do not fit memory, and what reading them costs."""

    name: str
    description: str
    read_GBps: float
    link_GBps: float
    active_power_W: float

    @property
    def bandwidth_Bps(self) -> float:
        """The drive cannot read faster than its link carries."""
        return min(self.read_GBps, self.link_GBps) * 1e9


@dataclass(frozen=True)
class OffloadPolicy:
    """FlexGen-like placement rule (offload.yaml `policies.<name>`)."""

    name: str
    description: str
    weights_gpu_percent: float
    placement: str
    reference_model: str
    reference_weight_bits: int
    weight_memory_fraction: float
    copy_bandwidth_efficiency: float
    io_threads: float
    overlap_io: bool


@dataclass(frozen=True)
class OffloadData:
    path: Path
    storage: dict[str, StorageTier]
    boards: dict[str, str]
    policies: dict[str, OffloadPolicy]

    def policy(self, name: str) -> OffloadPolicy:
        if name not in self.policies:
            raise CloneError(f"{self.path}: policies: unknown offload policy {name!r} "
                             f"(allowed: {', '.join(self.policies)})")
        return self.policies[name]

    def storage_for(self, board: str) -> StorageTier:
        if board not in self.boards:
            raise CloneError(f"{self.path}: boards: no storage entry for profile {board!r} "
                             f"(allowed: {', '.join(self.boards)})")
        return self.storage[self.boards[board]]


def _mapping(where: str, value: Any) -> dict:
    if not isinstance(value, dict):
        raise CloneError(f"{where}: must be a mapping, got {type(value).__name__}")
    return value


def _number(where: str, entry: dict, key: str, lo: float = 0.0, hi: float = math.inf,
            lo_open: bool = True) -> float:
    """A sourced number in [lo, hi] (lo excluded when lo_open); one-line error naming key and value."""
    if key not in entry:
        raise CloneError(f"{where}.{key}: missing")
    value = entry[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise CloneError(f"{where}.{key}: {value!r} must be a finite number")
    if value < lo or (lo_open and value == lo) or value > hi:
        bound = f"> {lo:g}" if lo_open else f">= {lo:g}"
        raise CloneError(f"{where}.{key}: {value!r} out of range (allowed: {bound} and <= {hi:g})")
    if f"{key}_source" not in entry:
        raise CloneError(f"{where}.{key}_source: missing (every number names its source)")
    return float(value)


def _check_keys(where: str, entry: dict, known: set[str]) -> None:
    extra = sorted(k for k in entry if k not in known and not (k.endswith("_source") and k[:-7] in known))
    if extra:
        raise CloneError(f"{where}: unknown key {extra[0]!r} (allowed: {', '.join(sorted(known))})")


def _storage(where: str, name: str, entry: dict) -> StorageTier:
    _check_keys(where, entry, {"description", "read_GBps", "link_GBps", "active_power_W"})
    return StorageTier(name, str(entry.get("description", "")), _number(where, entry, "read_GBps"),
                       _number(where, entry, "link_GBps"), _number(where, entry, "active_power_W", lo_open=False))


_POLICY_KEYS = {"description", "weights_gpu_percent", "placement", "reference_model", "reference_weight_bits",
                "weight_memory_fraction", "copy_bandwidth_efficiency", "io_threads", "overlap_io"}


def _policy(where: str, name: str, entry: dict) -> OffloadPolicy:
    _check_keys(where, entry, _POLICY_KEYS)
    placement = entry.get("placement")
    if placement not in PLACEMENTS:
        raise CloneError(f"{where}.placement: {placement!r} is not allowed (allowed: {', '.join(PLACEMENTS)})")
    bits = _number(where, entry, "reference_weight_bits")
    if bits not in (4, 8, 16):
        raise CloneError(f"{where}.reference_weight_bits: {bits:g} is not allowed (allowed: 4, 8, 16)")
    overlap = entry.get("overlap_io")
    if not isinstance(overlap, bool):
        raise CloneError(f"{where}.overlap_io: {overlap!r} must be true or false")
    return OffloadPolicy(name, str(entry.get("description", "")),
                         _number(where, entry, "weights_gpu_percent", 0.0, 100.0, lo_open=False), placement,
                         str(entry.get("reference_model", "")), int(bits),
                         _number(where, entry, "weight_memory_fraction", 0.0, 1.0),
                         _number(where, entry, "copy_bandwidth_efficiency", 0.0, 1.0),
                         _number(where, entry, "io_threads", lo_open=False), overlap)


@functools.lru_cache(maxsize=8)
def load_offload_data(path: str = str(OFFLOAD_PATH)) -> OffloadData:
    """offload.yaml, validated: units in key names, a source for every number, known keys only."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise CloneError(f"{path}: cannot read offload data ({str(exc).splitlines()[0]})") from None
    raw = _mapping(path, raw)
    _check_keys(path, raw, {"schema_version", "storage", "boards", "policies"})
    storage = {n: _storage(f"{path}: storage.{n}", n, _mapping(f"{path}: storage.{n}", e))
               for n, e in _mapping(f"{path}: storage", raw.get("storage")).items()}
    boards = {}
    for board, e in _mapping(f"{path}: boards", raw.get("boards")).items():
        tier = _mapping(f"{path}: boards.{board}", e).get("storage")
        if tier not in storage:
            raise CloneError(f"{path}: boards.{board}.storage: {tier!r} is not a storage entry "
                             f"(allowed: {', '.join(storage)})")
        boards[board] = tier
    policies = {n: _policy(f"{path}: policies.{n}", n, _mapping(f"{path}: policies.{n}", e))
                for n, e in _mapping(f"{path}: policies", raw.get("policies")).items()}
    return OffloadData(Path(path), storage, boards, policies)


# ------------------------------------------------------------------------------------------ placement
@dataclass(frozen=True)
class Placement:
    """Share of every weight tensor held in each tier (they sum to 1)."""

    gpu: float
    cpu: float
    disk: float


def weight_budget_GB(profile: Any, policy: OffloadPolicy) -> float:
    return profile.memory.usable_GB * policy.weight_memory_fraction


def reference_weights_GB(policy: OffloadPolicy) -> float:
    """Weights of the paper's model: the pressure the scaled placement reproduces."""
    from clone.costmodel.validation import model_shape

    return model_shape(policy.reference_model).param_count() * policy.reference_weight_bits / 8 / 1e9


def placement_for(profile: Any, policy: OffloadPolicy, own_weights_GB: float) -> Placement:
    """gpu share from the policy; disk share by the placement rule; the rest in the CPU pool."""
    gpu = policy.weights_gpu_percent / 100
    budget = weight_budget_GB(profile, policy)
    if policy.placement == "all":
        disk = 1.0
    else:
        need = reference_weights_GB(policy) if policy.placement == "scaled" else own_weights_GB
        disk = max(0.0, 1.0 - budget / need) if need > 0 else 0.0
    disk = min(disk, 1.0 - gpu)
    return Placement(gpu, 1.0 - gpu - disk, disk)


# ------------------------------------------------------------------------------------------ cost model
@dataclass(frozen=True)
class IoCost:
    time_s: float
    disk_s: float
    copy_s: float
    dram_bytes: float


class OffloadCostModel(RooflineCostModel):
    """The roofline board model with FlexGen-like weight streaming (module docstring)."""

    name = "offload"

    def __init__(self, profile: Any, policy: str = "flexgen", runtime: str | None = None, mode: str | None = None,
                 calib: RuntimeCalibration | None = None, data: OffloadData | None = None,
                 storage: str | None = None) -> None:
        super().__init__(profile, runtime=runtime, mode=mode, calib=calib)
        self.data = data or load_offload_data()
        self.policy = self.data.policy(policy)
        self.storage = self.data.storage_for(profile.name) if storage is None else self._tier(storage)
        self._placements: dict[tuple, Placement] = {}

    def _tier(self, name: str) -> StorageTier:
        if name not in self.data.storage:
            raise CloneError(f"{self.data.path}: storage: unknown tier {name!r} (allowed: {', '.join(self.data.storage)})")
        return self.data.storage[name]

    # -- what is streamed
    @staticmethod
    def weights_only(shape: CostShape) -> CostShape:
        """The same shape with KV cache and activations at zero bits: the roofline's bytes are then
        exactly the stored weights (group scales included)."""
        return replace(shape, kv_bits=0, act_bits=0)

    def weight_bytes(self, shape: CostShape, layer: int | None) -> float:
        w = self.weights_only(shape)
        if layer is None:
            return self.head_work(w, 1).bytes
        return self.layer_work(w, layer, 1, 0).bytes

    def model_weight_GB(self, shape: CostShape) -> float:
        return (sum(self.weight_bytes(shape, i) for i in range(shape.n_layers)) + self.weight_bytes(shape, None)) / 1e9

    def placement(self, shape: CostShape) -> Placement:
        key = shape.key()
        if key not in self._placements:
            self._placements[key] = placement_for(self.profile, self.policy, self.model_weight_GB(shape))
        return self._placements[key]

    def io_cost(self, weight_bytes: float, place: Placement, emc_MHz: float, cont: Contention) -> IoCost:
        """Bring one layer's non-resident weights into the GPU buffer: disk read, then the copy."""
        staged = (place.cpu + place.disk) * weight_bytes
        disk = place.disk * weight_bytes
        disk_s = disk / self.storage.bandwidth_Bps
        copy_bytes = 2.0 * staged  # DRAM read of the CPU pool + DRAM write of the GPU buffer
        copy_s = copy_bytes / (self.bandwidth_Bps(emc_MHz) * self.policy.copy_bandwidth_efficiency) * cont.memory_slowdown
        return IoCost(disk_s + copy_s, disk_s, copy_s, copy_bytes + disk)  # + the DMA write of disk data

    # -- one layer
    def step(self, shape: CostShape, layer: int | None, n_new: int, kv_len: int, clocks: Any,
             contention: Contention = NO_CONTENTION) -> StepCost:
        base = super().step(shape, layer, n_new, kv_len, clocks, contention)
        place = self.placement(shape)
        if place.gpu >= 1.0:
            return base
        _, emc, _ = clock_values(clocks)
        io = self.io_cost(self.weight_bytes(shape, layer), place, emc, contention)
        return self.merge(base, io, clocks, contention)

    def merge(self, base: StepCost, io: IoCost, clocks: Any, cont: Contention) -> StepCost:
        """One step with its weight I/O: overlapped or serial, energy from the affine power model."""
        if io.time_s <= 0:
            return base
        g, e, c = clock_values(clocks)
        if self.policy.overlap_io:
            time_s = max(base.time_s, io.time_s, base.memory_s + io.copy_s)
        else:
            time_s = base.time_s + io.time_s
        _, _, ke, kc = self._power_coeffs(g, e, c)
        io_cpu = self.policy.io_threads / max(self.mode.cpu_online_cores, 1)
        extra_J = (ke * io.dram_bytes / self.bandwidth_Bps(e) + kc * io_cpu * io.time_s
                   + self.storage.active_power_W * io.disk_s)
        energy = base.energy_J + self.idle_power_W(clocks, cont) * (time_s - base.time_s) + extra_J
        nbytes = base.bytes + io.dram_bytes
        frac = base.time_s / time_s
        return StepCost(time_s=time_s, energy_J=energy, flops=base.flops, bytes=nbytes,
                        compute_s=base.compute_s, memory_s=base.memory_s + io.copy_s, host_s=base.host_s,
                        gpu_util=base.gpu_util * frac, emc_util=min(1.0, nbytes / time_s / self.bandwidth_Bps(e)),
                        cpu_util=min(1.0, base.cpu_util * frac + io_cpu * io.time_s / time_s),
                        gpu_busy=base.gpu_busy * frac)

    def describe(self, shape: CostShape) -> dict[str, Any]:
        p = self.placement(shape)
        return {"policy": self.policy.name, "storage": self.storage.name,
                "storage_GBps": self.storage.bandwidth_Bps / 1e9, "gpu_share": p.gpu, "cpu_share": p.cpu,
                "disk_share": p.disk, "placement": self.policy.placement,
                "weight_budget_GB": weight_budget_GB(self.profile, self.policy)}


__all__ = ["IoCost", "OffloadCostModel", "OffloadData", "OffloadPolicy", "Placement", "StorageTier",
           "load_offload_data", "placement_for"]
