"""Per-layer roofline cost model for Jetson boards.

For each decoder layer and each forward pass: FLOPs against the GPU's peak (scaled by the GPU
clock, times an achievable efficiency), bytes (weights at their stored precision, KV cache read and
written, activations) against DRAM bandwidth (scaled by the EMC clock, times an efficiency), a CPU
launch floor (scaled by the CPU clock) and a fixed GPU-side gap per kernel:

    t = max(flops / (peak * eff_c), bytes / (bw * eff_b), kernels * launch_cpu) + kernels * gap

Power comes from the profile's power model with per-domain activity from the same terms (GPU:
compute share plus a fraction of the memory share; EMC: memory share; CPU: launch share), so
energy = P * t. Prefill computes logits for the last position only, as serving engines do.
Derivation and validation: docs/costmodel.md, experiments/validate_costmodel.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import yaml

from clone.costmodel.base import CostReport, CostShape, PhaseCost, StepCost, Workload
from clone.errors import CloneError
from clone.model.config import LayerShape

CALIBRATION = Path(__file__).with_name("roofline.yaml")


@dataclass(frozen=True)
class Efficiency:
    bandwidth_efficiency: float
    compute_efficiency: float
    kernels_per_layer: int
    kernel_gap_us: float
    launch_cpu_us: float
    activation_io_factor: float
    gpu_activity_when_memory_bound: float


@lru_cache(maxsize=8)
def load_efficiency(runtime: str | None = None, path: str = str(CALIBRATION)) -> Efficiency:
    data = yaml.safe_load(Path(path).read_text())["runtimes"]
    name = runtime or "default"
    if name not in data:
        raise CloneError(f"{path}: unknown runtime {name!r} (allowed: {', '.join(data)})")
    merged = {**data["default"], **data[name]}
    try:
        return Efficiency(**merged)
    except TypeError as exc:
        raise CloneError(f"{path}: runtimes.{name}: {exc}") from None


@dataclass(frozen=True)
class LayerWork:
    """Per-token work of one layer that does not depend on the context length."""

    weight_flops: float  # 2 * linear params
    weight_bytes: float
    kv_bytes_per_pos: float  # K and V for one position
    attn_flops_per_pos: float  # QK^T and AV for one query against one key position
    act_bytes: float


class RooflineCostModel:
    name = "roofline"

    def __init__(self, profile, runtime: str | None = None) -> None:
        self.profile = profile
        self.eff = load_efficiency(runtime)
        self.name = f"roofline ({runtime or 'default'})"

    # -- work tables --------------------------------------------------------------------------
    def layer_work(self, shape: CostShape, layer: LayerShape) -> LayerWork:
        c = shape.config
        d, hd = c.dim, c.head_dim
        act = shape.act_bits / 8
        linear = 0.0
        weight_bytes = 0.0
        if layer.n_heads:
            qkv = d * hd * (layer.n_heads + 2 * layer.n_kv_heads)
            o = layer.n_heads * hd * d
            linear += qkv + o
            weight_bytes += qkv * shape.bits_per_weight(shape.weight_bits, d) / 8
            weight_bytes += o * shape.bits_per_weight(shape.weight_bits, layer.n_heads * hd) / 8
        if layer.ffn_dim:
            up = 2 * d * layer.ffn_dim
            down = layer.ffn_dim * d
            linear += up + down
            weight_bytes += up * shape.bits_per_weight(shape.weight_bits, d) / 8
            weight_bytes += down * shape.bits_per_weight(shape.weight_bits, layer.ffn_dim) / 8
        kv = 2 * layer.n_kv_heads * hd * shape.kv_bits / 8
        attn = 4 * layer.n_heads * hd
        acts = self.eff.activation_io_factor * d * act if (layer.n_heads or layer.ffn_dim) else 0.0
        return LayerWork(2 * linear, weight_bytes, kv, attn, acts)

    def head_work(self, shape: CostShape) -> LayerWork:
        c = shape.config
        params = c.vocab_size * c.dim
        return LayerWork(2 * params, params * shape.bits_per_weight(shape.head_bits, c.dim) / 8, 0.0, 0.0,
                         c.vocab_size * 4)

    # -- rates at the current clocks ------------------------------------------------------------
    def _rates(self, clocks: dict[str, float]) -> tuple[float, float, float]:
        p = self.profile
        for key in ("gpu_MHz", "emc_MHz", "cpu_MHz"):
            if key not in clocks or not clocks[key] > 0:
                raise CloneError(f"clocks: {key} missing or not positive in {clocks}")
        peak = p.compute.peak_TOPS.get("fp16", p.compute.peak_TOPS.get("int8", 1.0) / 2)
        flops_per_s = peak * 1e12 * clocks["gpu_MHz"] / p.compute.peak_TOPS_gpu_MHz * self.eff.compute_efficiency
        bw = p.memory.dram_bandwidth_GBps * 1e9 * clocks["emc_MHz"] / p.clocks.max_MHz("emc")
        bytes_per_s = bw * self.eff.bandwidth_efficiency
        cpu_scale = p.clocks.max_MHz("cpu") / clocks["cpu_MHz"]
        return flops_per_s, bytes_per_s, cpu_scale

    def _cost(self, work: LayerWork, tokens: int, contexts: np.ndarray, clocks: dict[str, float],
              compute_slowdown: float = 1.0, memory_slowdown: float = 1.0, logits_tokens: int | None = None) -> dict:
        """Vectorised over `contexts` (total attended positions per pass)."""
        flops_per_s, bytes_per_s, cpu_scale = self._rates(clocks)
        t = logits_tokens if logits_tokens is not None else tokens
        # causal attention: the T new queries attend on average to (context - T) + (T + 1) / 2 keys
        attended = np.maximum(contexts - tokens, 0) + (tokens + 1) / 2
        flops = work.weight_flops * t + work.attn_flops_per_pos * tokens * attended
        nbytes = work.weight_bytes + work.kv_bytes_per_pos * (contexts + tokens) + work.act_bytes * t
        compute_s = flops / flops_per_s * compute_slowdown
        memory_s = nbytes / bytes_per_s * memory_slowdown
        kernels = self.eff.kernels_per_layer if work.kv_bytes_per_pos or work.weight_flops else 0
        host_s = kernels * self.eff.launch_cpu_us * 1e-6 * cpu_scale * np.ones_like(compute_s)
        time_s = np.maximum(np.maximum(compute_s, memory_s), host_s) + kernels * self.eff.kernel_gap_us * 1e-6
        gpu_util = np.minimum(1.0, (compute_s + self.eff.gpu_activity_when_memory_bound * memory_s) / time_s)
        emc_util = np.minimum(1.0, memory_s / time_s)
        cpu_util = np.minimum(1.0, host_s / time_s) / self.profile.power_model.cpu_cores
        return dict(time_s=time_s, flops=flops, bytes=nbytes, compute_s=compute_s, memory_s=memory_s,
                    host_s=host_s, gpu_util=gpu_util, emc_util=emc_util, cpu_util=cpu_util)

    def _power(self, clocks: dict[str, float], g: np.ndarray, e: np.ndarray, c: np.ndarray,
               extra_W: float = 0.0) -> np.ndarray:
        pm = self.profile.power_model
        out = [pm.power_W(clocks["gpu_MHz"], clocks["emc_MHz"], clocks["cpu_MHz"], float(gu), float(eu), float(cu))
               for gu, eu, cu in zip(np.atleast_1d(g), np.atleast_1d(e), np.atleast_1d(c))]
        return np.array(out) + extra_W

    def idle_power_W(self, clocks: dict[str, float]) -> float:
        return float(self.profile.power_model.power_W(clocks["gpu_MHz"], clocks["emc_MHz"], clocks["cpu_MHz"], 0, 0, 0))

    # -- public ---------------------------------------------------------------------------------
    def step(self, shape: CostShape, layer: int | None, tokens: int, context: int, clocks: dict[str, float],
             compute_slowdown: float = 1.0, memory_slowdown: float = 1.0, extra_power_W: float = 0.0,
             logits_tokens: int | None = None) -> StepCost:
        """One forward pass of one layer (layer=None: the output head) over `tokens` new tokens with
        `context` positions already cached."""
        work = self.head_work(shape) if layer is None else self.layer_work(shape, shape.layers[layer])
        ctx = np.array([context + tokens], dtype=float)
        if layer is None:
            lt = 1 if logits_tokens is None else logits_tokens
            r = self._cost(work, tokens, ctx, clocks, compute_slowdown, memory_slowdown, logits_tokens=lt)
        else:
            r = self._cost(work, tokens, ctx, clocks, compute_slowdown, memory_slowdown)
        p = self._power(clocks, r["gpu_util"], r["emc_util"], r["cpu_util"], extra_power_W)
        f = {k: float(np.asarray(v).reshape(-1)[0]) for k, v in r.items()}
        return StepCost(f["time_s"], float(p[0]) * f["time_s"], f["flops"], f["bytes"], f["compute_s"],
                        f["memory_s"], f["host_s"], f["gpu_util"], f["emc_util"], f["cpu_util"])

    def predict(self, shape: CostShape, workload: Workload, clocks: dict[str, float]) -> CostReport:
        P, N = workload.prompt_tokens, workload.output_tokens
        prefill, decode = PhaseCost("prefill"), PhaseCost("decode")
        for i in range(shape.n_layers):
            step = self.step(shape, i, P, 0, clocks)
            prefill.add(step)
            prefill.layers.append(step)
        prefill.add(self.step(shape, None, P, 0, clocks))
        steps = max(N - 1, 0)
        per_step = np.zeros(max(steps, 1))
        if steps:
            contexts = P + np.arange(steps, dtype=float) + 1  # positions attended by decode step k
            works = [self.layer_work(shape, l) for l in shape.layers] + [self.head_work(shape)]
            t = np.zeros(steps)
            e = np.zeros(steps)
            for w in works:
                r = self._cost(w, 1, contexts - 1, clocks)
                pw = self._power(clocks, r["gpu_util"], r["emc_util"], r["cpu_util"])
                t += r["time_s"]
                e += pw * r["time_s"]
                decode.flops += float(np.sum(r["flops"]))
                decode.bytes += float(np.sum(r["bytes"]))
            decode.time_s, decode.energy_J = float(t.sum()), float(e.sum())
            per_step = t
        first = float(per_step[0])
        return CostReport(workload, dict(clocks), prefill, decode, first, float(per_step[-1]))
