"""The simulator as the cost model of the clone-accel-28nm profile (clone.costmodel's CostModel
protocol): predict(shape, workload, clocks) -> CostReport, registered for profiles of kind
"accelerator" when this module is imported.

Weights stored at 16 bits are costed as INT8 (the MAC array takes INT8 or packed INT4 weights; a
16-bit checkpoint is quantized to INT8 when it is deployed on the accelerator). `clocks` selects the
operating point: {"point": "l6"}, {"voltage_V": .., "freq_MHz": ..}, {"freq_MHz": ..} (lowest table
voltage whose alpha-power-law f_max reaches it), a point name or 'V@f' string, or None (profile
default).
"""
from __future__ import annotations

from dataclasses import dataclass

from clone.costmodel.base import CostReport, CostShape, PhaseCost, StepCost, Workload, register_cost_model
from clone.errors import CloneError
from hw.params import AccelParams
from sim.energy import OperatingPoint, link_spec, point_table
from sim.link import StreamLink
from sim.workload import PhaseReport, SimReport, accel_params, resolve_model, simulate


@dataclass
class AcceleratorCostModel:
    """Cost model of one accelerator instance (asic28 parameters, or a profile's array/buffers)."""

    params: AccelParams
    bandwidth_GBps: float
    latency_ns: float
    default_point: str | None = None
    lora_slots: int = 0
    name: str = "clone-accel-28nm"

    @classmethod
    def from_profile(cls, profile: object | None = None) -> "AcceleratorCostModel":
        link = link_spec()
        if profile is None:
            return cls(AccelParams.asic28(), link.bandwidth_GBps, link.latency_ns)
        array = getattr(profile, "array", {}) or {}
        bufs = getattr(profile, "buffers", {}) or {}
        rows, cols = int(array.get("rows", 16)), int(array.get("cols", 16))
        kib = {k: float(bufs[f"{name}_KiB"]) for k, name in (("abuf", "activation"), ("wbuf", "weight"),
                                                              ("obuf", "output")) if f"{name}_KiB" in bufs}
        params = accel_params(f"{rows}x{cols}", kib)
        bw = float((getattr(profile, "host_link", {}) or {}).get("link_bandwidth_GBps", link.bandwidth_GBps))
        return cls(params, bw, link.latency_ns, getattr(profile, "default_point", None),
                   name=getattr(profile, "name", "clone-accel-28nm"))

    def point(self, clocks) -> OperatingPoint:
        table = point_table()
        if clocks is None or clocks == {}:
            return table.get(self.default_point)
        if isinstance(clocks, (str, OperatingPoint)):
            return table.get(clocks)
        if isinstance(clocks, dict):
            if "point" in clocks or "voltage_V" in clocks:
                return table.get(clocks)
            if "freq_MHz" in clocks:
                f = float(clocks["freq_MHz"])
                for p in table.points:
                    if p.freq_MHz == f:
                        return p
                v = next((c / 100 for c in range(30, 256) if table.law.fmax_MHz(c / 100) >= f), None)
                if v is None:
                    raise CloneError(f"clocks: freq_MHz {f:g} is above f_max at every voltage code")
                return table.get(OperatingPoint("custom", v, f))
        raise CloneError(f"clocks {clocks!r}: give point, voltage_V and freq_MHz, or freq_MHz "
                         f"(allowed points: {', '.join(table.names())})")

    def simulate(self, shape, workload: Workload, clocks=None) -> SimReport:
        """shape: a CostShape, or a ModelConfig / model name (costed with INT8 weights)."""
        if not isinstance(shape, CostShape):
            shape = CostShape(resolve_model(shape), weight_bits=8, head_bits=8)
        pt = self.point(clocks)
        bits = 4 if shape.weight_bits == 4 else 8
        head = 4 if shape.head_bits == 4 else 8
        link = StreamLink.from_bandwidth(self.bandwidth_GBps, self.latency_ns, pt.freq_MHz)
        return simulate(shape.config, workload.prompt_tokens, workload.output_tokens, params=self.params,
                        point=pt, weight_bits=bits, head_bits=head, lora_slots=self.lora_slots, link=link,
                        model_name=shape.config.name)

    def predict(self, shape, workload: Workload, clocks=None) -> CostReport:
        rep = self.simulate(shape, workload, clocks)
        f_hz = rep.point.freq_MHz * 1e6
        macs_per_cycle = self.params.n * self.params.n
        bw = self.bandwidth_GBps * 1e9

        def step(row_time: float, energy: float, macs: int, link_b: int) -> StepCost:
            compute_s = macs / macs_per_cycle / f_hz
            memory_s = link_b / bw
            util = lambda x: min(x / row_time, 1.0) if row_time > 0 else 0.0
            return StepCost(row_time, energy, 2.0 * macs, float(link_b), compute_s, memory_s, 0.0,
                            util(compute_s), util(memory_s), 0.0, gpu_busy=util(compute_s))

        def phase(pr: PhaseReport, layers: bool) -> PhaseCost:
            pc = PhaseCost(pr.phase, pr.time_s, pr.total_J, 2.0 * pr.macs, float(pr.link_bytes))
            if layers:
                pc.layers = [step(r["time_s"], r["energy_J"], r["macs"], r["link_bytes"])
                             for r in pr.layers if r["layer"] != "lm_head"]
            return pc

        clocks = {"freq_MHz": rep.point.freq_MHz, "voltage_V": rep.point.voltage_V}
        return CostReport(workload, clocks, phase(rep.prefill, True), phase(rep.decode, False),
                          rep.decode_first_s, rep.decode_last_s)


    # ---------------------------------------------------------------- simulated-board interface
    def step(self, shape, layer: int | None, n_new: int, kv_len: int, clocks=None,
             contention=None) -> StepCost:
        """One forward pass of one decoder layer (layer=None: the LM head) for n_new tokens after
        kv_len cached positions, commands back to back. `contention` is ignored: the accelerator
        is not shared with the board's co-runners."""
        if not isinstance(shape, CostShape):
            shape = CostShape(resolve_model(shape), weight_bits=8, head_bits=8)
        if n_new < 1 or kv_len < 0:
            raise CloneError(f"cost model step: n_new {n_new} must be >= 1 and kv_len {kv_len} >= 0")
        from sim.workload import Cost, Gemm, _energy_model, _mapper, layer_gemms
        pt = self.point(clocks)
        link = StreamLink.from_bandwidth(self.bandwidth_GBps, self.latency_ns, pt.freq_MHz)
        mapper = _mapper(self.params, link)
        bits = 4 if shape.weight_bits == 4 else 8
        cost = Cost()
        if layer is None:
            cost += mapper.gemm(Gemm("lm_head", 1, shape.config.vocab_size, shape.config.dim,
                                     4 if shape.head_bits == 4 else 8))
        else:
            if not 0 <= layer < shape.n_layers:
                raise CloneError(f"cost model step: layer {layer} out of range (model has {shape.n_layers})")
            for g in layer_gemms(shape.config, layer, shape.layers[layer], n_new, kv_len + n_new, bits):
                cost += mapper.gemm(g)
        f_hz = pt.freq_MHz * 1e6
        t = cost.cycles / f_hz
        energy = sum(_energy_model(self.params).split_J(cost.actions, t, pt).values())
        from sim.workload import _link, _macs
        macs, link_b = _macs(cost.actions), _link(cost.actions)
        compute_s = macs / (self.params.n * self.params.n) / f_hz
        memory_s = link_b / (self.bandwidth_GBps * 1e9)
        util = lambda x: min(x / t, 1.0) if t > 0 else 0.0  # noqa: E731
        return StepCost(t, energy, 2.0 * macs, float(link_b), compute_s, memory_s, 0.0, util(compute_s),
                        util(memory_s), 0.0, gpu_busy=util(compute_s))

    def idle_power_W(self, clocks=None, contention=None) -> float:
        """Idle accelerator: clock gated, leakage only (at the operating point's voltage)."""
        from sim.workload import _energy_model
        return _energy_model(self.params).leakage_W(self.point(clocks))


def _factory(profile: object) -> AcceleratorCostModel:
    return AcceleratorCostModel.from_profile(profile)


register_cost_model("accelerator", _factory)
