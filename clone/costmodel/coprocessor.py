"""CLONE's 28 nm accelerator next to a Jetson, as the paper attaches it (a PCIe co-processor;
../shared/PAPER.md section 3), composed from the two cost models this project already has: the
board's roofline (clone.costmodel.roofline) and the hardware simulator (sim.costmodel / sim.workload,
cycle-exact with the RTL). Nothing here re-derives either; it decides which device does which work.

Two compositions (docs/table3.md discusses both):

1. `ExpertMixtureCostModel`: the Jetson GPU runs the (pruned, quantized) base model; the soft mixture
   of LoRA experts that CLONE serves with runs either on the GPU (unmerged adapter GEMMs: extra
   kernels and adapter bytes per adapted projection, costed by the roofline) or on the accelerator's
   LoRA Processing Unit (adapters resident in its eNVM; per token the input and the base output cross
   PCIe, LORA runs, the adapted output comes back: sim's `lora_commands` on its `Mapper`), or, with
   where="auto", on whichever finishes the pass first (the host's choice; prefill of many tokens
   stays on the GPU). The LPU's adapter geometry is fixed (D_in = D_out = KT*N = 576, q/o-shaped,
   docs/hw-spec.md), so only projections of that shape are adapted, on both devices alike: the
   comparison isolates where the mixture runs. The LPU call is serial with the GPU (the next kernel
   needs the adapted output); the board idles meanwhile. The SFU's operating point is the one with
   the least energy per adapted token, board idle power during the call included.
2. `HostedAcceleratorCostModel`: every GEMM on the accelerator's MAC array (sim's own mapping, weights
   and KV cache streamed over the PCIe link every pass), the Jetson as a host at fixed low clocks
   (norms, softmax and requantisation on its CPU, its DRAM serving the link). This is the literal
   "run the model on clone-accel-28nm" reading.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from clone.costmodel.base import CostShape, StepCost
from clone.costmodel.roofline import (
    NO_CONTENTION,
    Contention,
    RooflineCostModel,
    RuntimeCalibration,
    _Work,
)
from clone.errors import CloneError

WHERE = ("gpu", "lpu", "auto")


@dataclass(frozen=True)
class ExpertMixture:
    """The LoRA-expert mixture as the hardware sees it (docs/experts.md: rank 8, soft mixture)."""

    experts: int = 2  # experts mixed per request (the LPU's active slots)
    rank: int = 8
    adapter_bits: int = 16
    kernels_per_projection: int = 3  # GPU: A GEMM over the stacked experts, gate scaling, B GEMM + add
    kernels_per_layer_ref: int = 8  # kernels the calibration's per-layer gap and host figures cover

    def __post_init__(self) -> None:
        for key in ("experts", "rank", "kernels_per_projection", "kernels_per_layer_ref"):
            if int(getattr(self, key)) < 1:
                raise CloneError(f"expert mixture: {key}={getattr(self, key)!r} must be a positive integer")
        if self.adapter_bits not in (8, 16):
            raise CloneError(f"expert mixture: adapter_bits={self.adapter_bits!r} (allowed: 8, 16)")


def adapted(shape: CostShape, layer: int, width: int) -> bool:
    """Does this layer have a width x width attention output projection (the LPU's geometry)?"""
    s = shape.layers[layer]
    return bool(s.n_heads) and s.n_heads * shape.config.head_dim == width and shape.config.dim == width


def serial(a: StepCost, b: StepCost) -> StepCost:
    """Two steps one after the other, utilisations time-weighted."""
    t = a.time_s + b.time_s
    w = lambda x, y: (x * a.time_s + y * b.time_s) / t if t > 0 else 0.0
    return StepCost(t, a.energy_J + b.energy_J, a.flops + b.flops, a.bytes + b.bytes, a.compute_s + b.compute_s,
                    a.memory_s + b.memory_s, a.host_s + b.host_s, w(a.gpu_util, b.gpu_util),
                    w(a.emc_util, b.emc_util), w(a.cpu_util, b.cpu_util), w(a.gpu_busy, b.gpu_busy))


# ------------------------------------------------------------------------------------------ LPU
@dataclass
class LpuCall:
    """One adapted projection for one token on the LPU: time and accelerator energy."""

    time_s: float
    energy_J: float
    point: str


class Lpu:
    """The accelerator's LoRA path, costed by sim (no arithmetic of its own)."""

    def __init__(self, accel_profile: Any, slots: int) -> None:
        from sim.costmodel import AcceleratorCostModel
        from sim.energy import EnergyModel, point_table

        self.model = AcceleratorCostModel.from_profile(accel_profile)
        p = self.model.params
        if not 1 <= slots <= p.nslot:
            raise CloneError(f"expert mixture: experts={slots} exceeds the LPU's active slots (allowed: 1..{p.nslot})")
        self.slots, self.width = slots, p.kt * p.n
        self.energy = EnergyModel(p)
        self.points = point_table().points

    def call(self, point: Any) -> LpuCall:
        from sim.link import StreamLink
        from sim.workload import Mapper, lora_commands

        pt = self.model.point(point)
        link = StreamLink.from_bandwidth(self.model.bandwidth_GBps, self.model.latency_ns, pt.freq_MHz)
        cost = Mapper(self.model.params, link).run(lora_commands(self.model.params, 1, self.slots))
        t = cost.cycles / (pt.freq_MHz * 1e6)
        return LpuCall(t, sum(self.energy.split_J(cost.actions, t, pt).values()), pt.name)

    def least_energy(self, host_idle_W: float) -> LpuCall:
        """The SFU's choice: least accelerator energy plus host idle energy while the host waits."""
        calls = [self.call(p.name) for p in self.points]
        return min(calls, key=lambda c: c.energy_J + host_idle_W * c.time_s)

    def leakage_W(self, point: str) -> float:
        return self.energy.leakage_W(self.model.point(point))


# ------------------------------------------------------------------------------------------ composition 1
class ExpertMixtureCostModel(RooflineCostModel):
    """Roofline base model plus the expert mixture on the GPU, the LPU or the faster of the two."""

    def __init__(self, profile: Any, mixture: ExpertMixture, where: str = "gpu", accelerator: Any = None,
                 runtime: str | None = None, mode: str | None = None, calib: RuntimeCalibration | None = None) -> None:
        super().__init__(profile, runtime=runtime, mode=mode, calib=calib)
        if where not in WHERE:
            raise CloneError(f"expert mixture: where={where!r} (allowed: {', '.join(WHERE)})")
        if where != "gpu" and accelerator is None:
            raise CloneError(f"expert mixture: where={where!r} needs the accelerator profile (clone-accel-28nm)")
        self.mixture, self.where = mixture, where
        self.name = f"roofline+experts@{where}"
        self.lpu = Lpu(accelerator, mixture.experts) if accelerator is not None else None
        self.width = self.lpu.width if self.lpu else 576
        top = profile.max_clocks(self.mode.name)
        self.call = self.lpu.least_energy(self.idle_power_W(top)) if self.lpu and where != "gpu" else None

    def gpu_mixture(self, shape: CostShape, n_new: int, clocks: Any, cont: Contention) -> StepCost:
        """Unmerged adapters on the GPU: x A^T over the stacked experts, gate, B and add."""
        m, d, ab = self.mixture, self.width, shape.act_bits / 8
        er = m.experts * m.rank
        flops = 2.0 * n_new * er * 2 * d
        nbytes = er * 2 * d * m.adapter_bits / 8 + n_new * ab * (d + 2 * er + 2 * d)
        k = m.kernels_per_projection / m.kernels_per_layer_ref
        return self._cost(_Work(flops, nbytes), self.cal.host_us_per_layer * k, self.cal.kernel_gap_us_per_layer * k,
                          clocks, cont)

    def lpu_mixture(self, n_new: int, clocks: Any, cont: Contention) -> StepCost:
        """n_new tokens through the LPU, one after the other; the board idles while it waits."""
        assert self.call is not None
        t = self.call.time_s * n_new
        energy = self.call.energy_J * n_new + self.idle_power_W(clocks, cont) * t
        return StepCost(t, energy, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)

    def step(self, shape: CostShape, layer: int | None, n_new: int, kv_len: int, clocks: Any,
             contention: Contention = NO_CONTENTION) -> StepCost:
        base = super().step(shape, layer, n_new, kv_len, clocks, contention)
        if self.call is not None:  # the attached accelerator leaks whatever it does
            base = StepCost(**{**base.__dict__, "energy_J": base.energy_J + self.lpu.leakage_W(self.call.point) * base.time_s})
        if layer is None or not adapted(shape, layer, self.width):
            return base
        options = []
        if self.where in ("gpu", "auto"):
            options.append(self.gpu_mixture(shape, n_new, clocks, contention))
        if self.where in ("lpu", "auto"):
            options.append(self.lpu_mixture(n_new, clocks, contention))
        return serial(base, min(options, key=lambda s: s.time_s))

    def describe(self) -> dict[str, Any]:
        out = {"where": self.where, "experts": self.mixture.experts, "rank": self.mixture.rank}
        if self.call is not None:
            out.update(lpu_point=self.call.point, lpu_us_per_token=self.call.time_s * 1e6,
                       lpu_uJ_per_token=self.call.energy_J * 1e6)
        return out


# ------------------------------------------------------------------------------------------ composition 2
class HostedAcceleratorCostModel:
    """Every GEMM on the accelerator (sim), the Jetson as its host at fixed clocks (module docstring).
    Offers what the fast simulated board needs: step, idle_power_W, bandwidth_Bps."""

    name = "accelerator-hosted"

    def __init__(self, board_profile: Any, accel_profile: Any, host_clocks: dict[str, float],
                 mode: str | None = None, runtime: str | None = None, point: str | None = None) -> None:
        from sim.costmodel import AcceleratorCostModel

        self.board = RooflineCostModel(board_profile, runtime=runtime, mode=mode)
        self.acc = AcceleratorCostModel.from_profile(accel_profile)
        self.host_clocks = dict(host_clocks)
        self.lpu_energy = Lpu(accel_profile, 1).energy
        self.point = point
        self.mode = self.board.mode

    def _point(self, shape: CostShape) -> str:
        """The SFU's choice, made once: least energy (accelerator + host) per decode token."""
        if self.point is None:
            from sim.energy import point_table

            def token_J(name: str) -> float:
                steps = [self._step_at(shape, i, 1, 128, name) for i in range(shape.n_layers)]
                steps.append(self._step_at(shape, None, 1, 128, name))
                return sum(s.energy_J for s in steps)

            self.point = min(point_table().names(), key=token_J)
        return self.point

    def host_power_W(self, link_Bps: float) -> float:
        cores = max(self.mode.cpu_online_cores, 1)
        util = link_Bps / self.board.bandwidth_Bps(self.host_clocks["emc_MHz"])
        return self.board.power_W(self.host_clocks, 0.0, util, self.board.cal.host_busy_cores / cores)

    def _step_at(self, shape: CostShape, layer: int | None, n_new: int, kv_len: int, point: str) -> StepCost:
        s = self.acc.step(shape, layer, n_new, kv_len, {"point": point})
        host_W = self.host_power_W(s.bytes / s.time_s if s.time_s > 0 else 0.0)
        return StepCost(**{**s.__dict__, "energy_J": s.energy_J + host_W * s.time_s})

    def step(self, shape: CostShape, layer: int | None, n_new: int, kv_len: int, clocks: Any = None,
             contention: Contention = NO_CONTENTION) -> StepCost:
        return self._step_at(shape, layer, n_new, kv_len, self._point(shape))

    def idle_power_W(self, clocks: Any = None, contention: Contention = NO_CONTENTION) -> float:
        leak = self.lpu_energy.leakage_W(self.acc.point(self.point)) if self.point else 0.0
        return self.host_power_W(0.0) + leak

    def bandwidth_Bps(self, emc_MHz: float) -> float:
        return self.board.bandwidth_Bps(emc_MHz)

    def describe(self) -> dict[str, Any]:
        return {"point": self.point, "host_clocks": self.host_clocks,
                "link_GBps": self.acc.bandwidth_GBps, "array": f"{self.acc.params.n}x{self.acc.params.n}"}


__all__ = ["ExpertMixture", "ExpertMixtureCostModel", "HostedAcceleratorCostModel", "Lpu", "LpuCall", "adapted",
           "serial"]
