"""Per-layer roofline cost model for Jetson-class boards (docs/costmodel.md has the derivation).

For each decoder layer and forward pass of n new tokens over a KV cache of p tokens:

    compute_s = FLOPs / (peak_TOPS[prec] * gpu_MHz / peak_TOPS_gpu_MHz * compute_efficiency)
    memory_s  = bytes / (dram_bandwidth_GBps * emc_MHz / emc_max_MHz * bandwidth_efficiency)
    host_s    = host_us_per_layer * host_ref_cpu_MHz / cpu_MHz
    time_s    = max(compute_s, memory_s, host_s) + kernel_gap

bytes = weights (at their stored bits, group scales included) + KV cache read and written +
activations. Energy = the profile's power model at the clocks, with per-domain utilisation taken
from the same roofline (GPU: compute occupancy plus a memory-stall activity; EMC: bandwidth used over
bandwidth available; CPU: the host thread). The head step (embedding gather, final norm, lm_head on
the last position, sampling) is costed the same way with layer=None.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from clone.costmodel.base import CostReport, CostShape, PhaseCost, StepCost, Workload
from clone.errors import CloneError

CALIBRATION_PATH = Path(__file__).with_name("calibration.yaml")


@dataclass(frozen=True)
class RuntimeCalibration:
    name: str
    description: str
    compute_precision: str
    compute_efficiency: float
    bandwidth_efficiency: float
    kernel_gap_us_per_layer: float
    host_us_per_layer: float
    host_ref_cpu_MHz: float
    pass_overhead_us: float
    gpu_activity_memory_bound: float
    host_busy_cores: float

    def replace(self, **changes: Any) -> "RuntimeCalibration":
        return RuntimeCalibration(**{**{f.name: getattr(self, f.name) for f in fields(self)}, **changes})


_FRACTIONS = ("compute_efficiency", "bandwidth_efficiency", "gpu_activity_memory_bound")


@functools.lru_cache(maxsize=8)
def load_calibrations(path: str = str(CALIBRATION_PATH)) -> tuple[str, dict[str, RuntimeCalibration]]:
    """(default runtime, {name: calibration}) from the YAML, validated: every number has a source."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise CloneError(f"{path}: cannot read calibration ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("runtimes"), dict):
        raise CloneError(f"{path}: runtimes: missing mapping")
    numeric = [f.name for f in fields(RuntimeCalibration) if f.name not in ("name", "description", "compute_precision")]
    out: dict[str, RuntimeCalibration] = {}
    for name, entry in data["runtimes"].items():
        where = f"{path}: runtimes.{name}"
        if not isinstance(entry, dict):
            raise CloneError(f"{where}: must be a mapping")
        known = {f.name for f in fields(RuntimeCalibration)} - {"name"}
        extra = {k for k in entry if k not in known and not k.endswith("_source")}
        if extra:
            raise CloneError(f"{where}: unknown keys {sorted(extra)} (allowed: {', '.join(sorted(known))})")
        values: dict[str, Any] = {"name": name}
        for key in known:
            if key not in entry:
                raise CloneError(f"{where}.{key}: missing")
            if key in numeric or key == "compute_precision":
                if f"{key}_source" not in entry:
                    raise CloneError(f"{where}.{key}_source: missing (every number names its source)")
            value = entry[key]
            if key in numeric:
                if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or not math.isfinite(value):
                    raise CloneError(f"{where}.{key}: {value!r} must be a number >= 0")
                if key in _FRACTIONS and not 0 < value <= 1:
                    raise CloneError(f"{where}.{key}: {value} must be in (0, 1]")
                value = float(value)
            values[key] = value
        out[name] = RuntimeCalibration(**values)
    default = data.get("default_runtime")
    if default not in out:
        raise CloneError(f"{path}: default_runtime {default!r} is not a runtime (allowed: {', '.join(out)})")
    return default, out


def calibration(runtime: str | None = None) -> RuntimeCalibration:
    default, table = load_calibrations()
    name = runtime or default
    if name not in table:
        raise CloneError(f"cost model: unknown runtime calibration {name!r} (allowed: {', '.join(table)})")
    return table[name]


def clock_values(clocks: Any) -> tuple[float, float, float]:
    """(gpu, emc, cpu) MHz from a Clocks object or a {'gpu_MHz': ..} mapping."""
    if hasattr(clocks, "as_dict"):
        clocks = clocks.as_dict()
    try:
        vals = tuple(float(clocks[f"{d}_MHz"]) for d in ("gpu", "emc", "cpu"))
    except (KeyError, TypeError, ValueError):
        raise CloneError(f"clocks {clocks!r}: need gpu_MHz, emc_MHz and cpu_MHz") from None
    if any(v <= 0 or not math.isfinite(v) for v in vals):
        raise CloneError(f"clocks {clocks!r}: every clock must be a finite number > 0")
    return vals  # type: ignore[return-value]


@dataclass(frozen=True)
class Contention:
    """What a co-running application does to the inference: slowdown per roof, and the utilisation
    it adds to each power domain (the simulated board derives it from the co-runner's load)."""

    compute_slowdown: float = 1.0
    memory_slowdown: float = 1.0
    host_slowdown: float = 1.0
    gpu_util: float = 0.0
    emc_util: float = 0.0
    cpu_util: float = 0.0


NO_CONTENTION = Contention()


@dataclass(frozen=True)
class _Work:
    flops: float
    bytes: float


class RooflineCostModel:
    """The `t_i`, `e_i` model for one board profile (and one power mode, for the online CPU cores)."""

    name = "roofline"

    def __init__(self, profile: Any, runtime: str | None = None, mode: str | None = None,
                 calib: RuntimeCalibration | None = None) -> None:
        if getattr(profile, "kind", None) != "board":
            raise CloneError(f"profile {getattr(profile, 'name', profile)}: the roofline model needs a board profile")
        self.profile = profile
        self.mode = profile.mode(mode)
        self.cal = calib or calibration(runtime)
        prec = self.cal.compute_precision
        if prec not in profile.compute.peak_TOPS:
            raise CloneError(f"profile {profile.name}: no peak compute for {prec!r} "
                             f"(allowed: {', '.join(profile.compute.peak_TOPS)})")
        self._peak_flops_per_MHz = profile.compute.peak_TOPS[prec] * 1e12 / profile.compute.peak_TOPS_gpu_MHz
        self._bw_per_MHz = profile.memory.dram_bandwidth_GBps * 1e9 / profile.clocks.max_MHz("emc")
        self._power_cache: dict[tuple, tuple[float, float, float, float]] = {}

    # ---------------------------------------------------------------- work (hardware-independent)
    @staticmethod
    def layer_work(shape: CostShape, layer: int, n_new: int, kv_len: int) -> _Work:
        """FLOPs and DRAM bytes of one decoder layer for n_new tokens after kv_len cached ones."""
        c = shape.config
        s = c.layers[layer]
        d, hd = c.dim, c.head_dim
        wbits, ab, kvb = shape.weight_bits, shape.act_bits / 8, shape.kv_bits / 8
        flops = weight_bytes = act = kv = 0.0
        n, p = n_new, kv_len
        if s.n_heads:
            qkv_out = (s.n_heads + 2 * s.n_kv_heads) * hd
            attn_w = d * qkv_out + s.n_heads * hd * d
            weight_bytes += d * qkv_out * shape.bits_per_weight(wbits, d) / 8
            weight_bytes += s.n_heads * hd * d * shape.bits_per_weight(wbits, s.n_heads * hd) / 8
            flops += 2 * n * attn_w
            # QK^T and PV over the causal window: query i (0-based) sees p + i + 1 keys.
            flops += 4 * s.n_heads * hd * (n * p + n * (n + 1) / 2)
            kv += 2 * s.n_kv_heads * hd * (p + n) * kvb + 2 * s.n_kv_heads * hd * n * kvb
            act += n * ab * (2 * d + qkv_out + 2 * s.n_heads * hd + d)
        if s.ffn_dim:
            f = s.ffn_dim
            weight_bytes += 2 * d * f * shape.bits_per_weight(wbits, d) / 8
            weight_bytes += f * d * shape.bits_per_weight(wbits, f) / 8
            flops += 2 * n * 3 * d * f
            act += n * ab * (2 * d + 2 * f + f + d)
        return _Work(flops, weight_bytes + kv + act)

    @staticmethod
    def head_work(shape: CostShape, n_new: int) -> _Work:
        """Embedding gather for n_new tokens, final norm and lm_head on the last position only."""
        c = shape.config
        ab = shape.act_bits / 8
        head_bytes = c.vocab_size * c.dim * shape.bits_per_weight(shape.head_bits, c.dim) / 8
        emb_row = c.dim * (16 if c.tie_embeddings else shape.bits_per_weight(shape.head_bits, c.dim)) / 8
        return _Work(2.0 * c.vocab_size * c.dim, head_bytes + n_new * emb_row + ab * (2 * n_new * c.dim + c.vocab_size * 2))

    # ---------------------------------------------------------------- hardware
    def peak_flops(self, gpu_MHz: float) -> float:
        return self._peak_flops_per_MHz * gpu_MHz

    def bandwidth_Bps(self, emc_MHz: float) -> float:
        return self._bw_per_MHz * emc_MHz

    def _power_coeffs(self, gpu: float, emc: float, cpu: float) -> tuple[float, float, float, float]:
        """Module power is affine in each domain's utilisation at fixed clocks: P = P0 + sum k_d u_d."""
        key = (gpu, emc, cpu)
        hit = self._power_cache.get(key)
        if hit is None:
            pm, cores = self.profile.power_model, self.mode.cpu_online_cores
            base = pm.breakdown_W(gpu, emc, cpu, 0.0, 0.0, 0.0, cores)
            full = pm.breakdown_W(gpu, emc, cpu, 1.0, 1.0, 1.0, cores)
            hit = (sum(base.values()), full["gpu"] - base["gpu"], full["emc"] - base["emc"], full["cpu"] - base["cpu"])
            if len(self._power_cache) > 4096:
                self._power_cache.clear()
            self._power_cache[key] = hit
        return hit

    def power_W(self, clocks: Any, gpu_util: float, emc_util: float, cpu_util: float) -> float:
        g, e, c = clock_values(clocks)
        p0, kg, ke, kc = self._power_coeffs(g, e, c)
        clip = lambda u: min(max(u, 0.0), 1.0)  # noqa: E731
        return max(p0 + kg * clip(gpu_util) + ke * clip(emc_util) + kc * clip(cpu_util), 0.0)

    def idle_power_W(self, clocks: Any, contention: Contention = NO_CONTENTION) -> float:
        """Board power with the inference idle (the co-runner may still load it)."""
        return self.power_W(clocks, contention.gpu_util, contention.emc_util, contention.cpu_util)

    def _cost(self, work: _Work, host_us: float, gap_us: float, clocks: Any, cont: Contention) -> StepCost:
        g, e, c = clock_values(clocks)
        cal = self.cal
        compute_s = work.flops / (self.peak_flops(g) * cal.compute_efficiency) * cont.compute_slowdown
        memory_s = work.bytes / (self.bandwidth_Bps(e) * cal.bandwidth_efficiency) * cont.memory_slowdown
        host_s = host_us * 1e-6 * cal.host_ref_cpu_MHz / c * cont.host_slowdown
        time_s = max(compute_s, memory_s, host_s) + gap_us * 1e-6
        gpu_util = min(1.0, (compute_s + cal.gpu_activity_memory_bound * memory_s) / time_s)
        emc_util = min(1.0, work.bytes / time_s / self.bandwidth_Bps(e))
        cpu_util = min(1.0, cal.host_busy_cores / max(self.mode.cpu_online_cores, 1))
        p0, kg, ke, kc = self._power_coeffs(g, e, c)
        clip = lambda u: min(max(u, 0.0), 1.0)  # noqa: E731
        power = max(p0 + kg * clip(gpu_util + cont.gpu_util) + ke * clip(emc_util + cont.emc_util)
                    + kc * clip(cpu_util + cont.cpu_util), 0.0)
        return StepCost(time_s=time_s, energy_J=power * time_s, flops=work.flops, bytes=work.bytes,
                        compute_s=compute_s, memory_s=memory_s, host_s=host_s,
                        gpu_util=gpu_util, emc_util=emc_util, cpu_util=cpu_util,
                        gpu_busy=min(1.0, max(compute_s, memory_s) / time_s))

    def step(self, shape: CostShape, layer: int | None, n_new: int, kv_len: int, clocks: Any,
             contention: Contention = NO_CONTENTION) -> StepCost:
        """One forward pass of one decoder layer (layer=None: embedding + head + sampling)."""
        if n_new < 1 or kv_len < 0:
            raise CloneError(f"cost model step: n_new {n_new} must be >= 1 and kv_len {kv_len} >= 0")
        if layer is None:
            return self._cost(self.head_work(shape, n_new), self.cal.pass_overhead_us,
                              self.cal.kernel_gap_us_per_layer, clocks, contention)
        if not 0 <= layer < shape.n_layers:
            raise CloneError(f"cost model step: layer {layer} out of range (model has {shape.n_layers})")
        s = shape.config.layers[layer]
        if not s.n_heads and not s.ffn_dim:  # a removed layer (ShortGPT) launches no kernels at all
            return StepCost(time_s=0.0, energy_J=0.0, flops=0.0, bytes=0.0, compute_s=0.0, memory_s=0.0,
                            host_s=0.0, gpu_util=0.0, emc_util=0.0, cpu_util=0.0, gpu_busy=0.0)
        return self._cost(self.layer_work(shape, layer, n_new, kv_len), self.cal.host_us_per_layer,
                          self.cal.kernel_gap_us_per_layer, clocks, contention)

    def forward_pass(self, shape: CostShape, n_new: int, kv_len: int, clocks: Any,
                     contention: Contention = NO_CONTENTION, keep_layers: bool = False,
                     phase: str = "pass") -> PhaseCost:
        """All layers plus the head; identical layer shapes are costed once."""
        out = PhaseCost(phase)
        memo: dict[Any, StepCost] = {}
        for i, s in enumerate(shape.layers):
            step = memo.get(s)
            if step is None:
                step = memo[s] = self.step(shape, i, n_new, kv_len, clocks, contention)
            out.add(step)
            if keep_layers:
                out.layers.append(step)
        out.add(self.step(shape, None, n_new, kv_len, clocks, contention))
        return out

    def predict(self, shape: CostShape, workload: Workload, clocks: Any) -> CostReport:
        """TTFT (prefill of the prompt), per-token decode time growing with the KV length, energy."""
        clock_values(clocks)
        P, N = workload.prompt_tokens, workload.output_tokens
        prefill = self.forward_pass(shape, P, 0, clocks, keep_layers=True, phase="prefill")
        decode = PhaseCost("decode")
        # Decode step t (t = 1..N-1) feeds the token produced by the previous pass: KV length P+t-1.
        # Cost is piecewise linear in the KV length, so long outputs are integrated on a coarse grid.
        steps = list(range(1, N))
        stride = max(1, len(steps) // 64)
        grid = steps[::stride]
        for t in grid:
            span = min(stride, N - t)
            cost = self.forward_pass(shape, 1, P + t - 1 + (span - 1) / 2, clocks)
            decode.time_s += cost.time_s * span
            decode.energy_J += cost.energy_J * span
            decode.flops += cost.flops * span
            decode.bytes += cost.bytes * span
        first = self.forward_pass(shape, 1, P, clocks).time_s
        last = self.forward_pass(shape, 1, P + max(N - 2, 0), clocks).time_s
        return CostReport(workload, dict(zip(("gpu_MHz", "emc_MHz", "cpu_MHz"), clock_values(clocks))),
                          prefill, decode, float(first), float(last))
