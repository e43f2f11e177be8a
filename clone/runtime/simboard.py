"""A simulated Jetson-class board: the DeviceBackend interface over the shared cost model, with a
virtual clock.

The real model runs on this CPU; the engine's hooks tell the board what was computed (layer i, n new
tokens over a KV cache of p tokens) and the board advances its own time and energy by what the cost
model (clone.costmodel, the same one the optimizer scores shapes with) predicts at the current clocks
and under the current co-runner load. So TTFT, TPOT and joules are the board's, not this CPU's.

Clock switches cost time (SWITCH_LATENCY_MS, estimates: a GPU devfreq change re-locks a PLL; an EMC
change goes through the BPMP firmware and retrains the DRAM interface, a few ms during which memory
traffic stalls; cpufreq is fastest). The co-runner is a seeded on/off Markov process with bursty load
levels, like the paper's web-search load (docs/costmodel.md, "simulated board").
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from clone.costmodel.base import CostShape, StepCost
from clone.costmodel.roofline import NO_CONTENTION, Contention, RooflineCostModel
from clone.errors import CloneError
from clone.profiles import Profile, load_profile
from clone.runtime.device import DOMAINS, Clocks, PhaseAccount

# Estimates (no Orin figure in ../shared/reference): see the module docstring.
SWITCH_LATENCY_MS = {"gpu": 2.0, "emc": 5.0, "cpu": 0.5}


@dataclass(frozen=True)
class InterferenceSpec:
    """A co-running application. Load L in [0, 1] slows each roof by (1 + coef * L) and adds coef * L
    to each power domain's utilisation. Defaults model a web-search service: off/on periods with
    exponential durations, and during "on" bursts whose level is redrawn every burst_s on average.
    The slowdown coefficient makes a long response under the default process take about 1.44x as
    long, the paper's 42.6 s -> 61.4 s stretch (PAPER.md section 4). Work advances at rate 1/s(L), so
    the stretch is 1 / E_t[1 / (1 + c L)] = 1 / (0.4 + 0.6 * mean over {0.3, 0.6, 0.9}) = 1.44 at
    c = 1.9 (the on-fraction is mean_on / (mean_on + mean_off) = 0.6)."""

    kind: str = "none"  # none | websearch | constant
    mean_off_s: float = 2.0
    mean_on_s: float = 3.0
    burst_s: float = 0.5
    levels: tuple[float, ...] = (0.3, 0.6, 0.9)
    constant_load: float = 0.0
    compute_coef: float = 1.9
    memory_coef: float = 1.9
    host_coef: float = 1.9
    gpu_util_coef: float = 0.5
    emc_util_coef: float = 0.4
    cpu_util_coef: float = 0.6

    @classmethod
    def parse(cls, text: str | None) -> "InterferenceSpec":
        """'none', 'websearch', 'constant:0.6'."""
        t = (text or "none").strip().lower()
        if t == "none":
            return cls("none")
        if t == "websearch":
            return cls("websearch")
        if t.startswith("constant:"):
            try:
                load = float(t.split(":", 1)[1])
            except ValueError:
                load = -1.0
            if not 0 <= load <= 1:
                raise CloneError(f"interference {text!r}: constant load must be in [0, 1]")
            return cls("constant", constant_load=load)
        raise CloneError(f"interference {text!r}: unknown (allowed: none, websearch, constant:LOAD)")


class Interference:
    """The co-runner's load as a function of virtual time. The timeline is generated lazily from the
    seed in time order, so the load at time t does not depend on when or how often it is asked."""

    def __init__(self, spec: InterferenceSpec | str | None = None, seed: int = 0) -> None:
        self.spec = spec if isinstance(spec, InterferenceSpec) else InterferenceSpec.parse(spec)
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self._ends: list[float] = []
        self._levels: list[float] = []
        self._on = bool(self._rng.random() < self.spec.mean_on_s / (self.spec.mean_on_s + self.spec.mean_off_s))
        self._on_left = 0.0

    def _extend(self, t: float) -> None:
        s, rng = self.spec, self._rng
        end = self._ends[-1] if self._ends else 0.0
        while end <= t:
            if not self._on:
                end += rng.exponential(s.mean_off_s)
                self._ends.append(end)
                self._levels.append(0.0)
                self._on, self._on_left = True, rng.exponential(s.mean_on_s)
                continue
            dur = min(rng.exponential(s.burst_s), self._on_left)
            self._on_left -= dur
            end += max(dur, 1e-4)
            self._ends.append(end)
            self._levels.append(float(rng.choice(s.levels)))
            if self._on_left <= 0:
                self._on = False

    def load_at(self, t: float) -> float:
        if self.spec.kind == "none":
            return 0.0
        if self.spec.kind == "constant":
            return self.spec.constant_load
        if not self._ends or t >= self._ends[-1]:
            self._extend(t)
        return self._levels[bisect_right(self._ends, t)]

    def contention(self, load: float) -> Contention:
        if load <= 0:
            return NO_CONTENTION
        s = self.spec
        return Contention(1 + s.compute_coef * load, 1 + s.memory_coef * load, 1 + s.host_coef * load,
                          s.gpu_util_coef * load, s.emc_util_coef * load, s.cpu_util_coef * load)


@dataclass
class BoardCounters:
    """Cumulative counters a governor samples (like devfreq's busy/total time and actmon counts)."""

    time_s: float = 0.0
    gpu_busy_s: float = 0.0
    dram_bytes: float = 0.0
    energy_J: float = 0.0
    switches: int = 0
    switch_s: float = 0.0


class SimulatedBoard:
    """DeviceBackend with a virtual clock; see the module docstring."""

    read_only = False

    def __init__(self, profile: Profile | str, mode: str | None = None,
                 interference: InterferenceSpec | Interference | str | None = "none", seed: int = 0,
                 runtime: str | None = None, cost_model: RooflineCostModel | None = None,
                 shape: CostShape | None = None,
                 switch_latency_ms: dict[str, float] | None = None) -> None:
        self.profile = load_profile(profile) if isinstance(profile, str) else profile
        if getattr(self.profile, "kind", None) != "board":
            raise CloneError(f"profile {self.profile.name}: the simulated board needs a board profile")
        self.mode = self.profile.mode(mode)
        self.name = f"sim:{self.profile.name}"
        self.cost = cost_model or RooflineCostModel(self.profile, runtime=runtime, mode=self.mode.name)
        self.interference = (interference if isinstance(interference, Interference)
                             else Interference(interference, seed))
        self.switch_latency_ms = dict(SWITCH_LATENCY_MS, **(switch_latency_ms or {}))
        self.shape = shape
        self._clocks = Clocks(**self.mode.max_clocks())
        self.counters = BoardCounters()
        self._phase: PhaseAccount | None = None
        self._stored: Clocks | None = None
        self.clock_log: list[tuple[float, Clocks]] = [(0.0, self._clocks)]

    # ---------------------------------------------------------------- DeviceBackend
    def available_MHz(self, domain: str) -> tuple[float, ...]:
        if domain not in DOMAINS:
            raise CloneError(f"clock domain {domain!r} (allowed: {', '.join(DOMAINS)})")
        return self.profile.clock_choices(domain, self.mode.name)

    def get_clocks(self) -> Clocks:
        return self._clocks

    def _validate(self, domain: str, MHz: float) -> float:
        listed = self.available_MHz(domain)
        for f in listed:
            if isinstance(MHz, (int, float)) and abs(f - MHz) <= 1e-3:
                return f
        raise CloneError(f"{domain} clock: {MHz!r} MHz is not a frequency {self.profile.name} lists in mode "
                         f"{self.mode.name} (allowed MHz: {', '.join(f'{x:g}' for x in listed)})")

    def set_clocks(self, clocks: Clocks) -> None:
        """Apply listed clocks; each changed domain costs its switch latency in virtual time."""
        new = {d: self._validate(d, clocks.get(d)) for d in DOMAINS}
        changed = [d for d in DOMAINS if new[d] != self._clocks.get(d)]
        if not changed:
            return
        self._clocks = Clocks(new["gpu"], new["emc"], new["cpu"])
        stall = sum(self.switch_latency_ms[d] for d in changed) * 1e-3
        self.counters.switches += len(changed)
        self.counters.switch_s += stall
        self._advance_idle(stall, switching=True)
        self.clock_log.append((self.now(), self._clocks))

    def begin_phase(self, phase: str) -> None:
        self._phase = PhaseAccount(phase=phase)

    def end_phase(self) -> PhaseAccount:
        if self._phase is None:
            raise CloneError("end_phase() without begin_phase()")
        acct, self._phase = self._phase, None
        return acct

    def __enter__(self) -> "SimulatedBoard":
        self._stored = self._clocks
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stored is not None:
            self._clocks = self._stored  # restore without charging time: the session is over
            self._stored = None

    # ---------------------------------------------------------------- virtual time
    def now(self) -> float:
        """Virtual seconds since the board started (the engine's clock)."""
        return self.counters.time_s

    def bind(self, shape: CostShape) -> None:
        """The model the board runs (shapes and storage precision)."""
        self.shape = shape

    def co_runner_load(self) -> float:
        return self.interference.load_at(self.now())

    def _account(self, time_s: float, energy_J: float, busy_s: float = 0.0, nbytes: float = 0.0) -> None:
        c = self.counters
        c.time_s += time_s
        c.energy_J += energy_J
        c.gpu_busy_s += busy_s
        c.dram_bytes += nbytes
        if self._phase is not None:
            self._phase.time_s += time_s
            self._phase.energy_J += energy_J
            self._phase.samples += 1

    def _advance_idle(self, seconds: float, switching: bool = False) -> None:
        if seconds <= 0:
            return
        cont = self.interference.contention(self.co_runner_load())
        power = self.cost.idle_power_W(self._clocks, cont)
        self._account(seconds, power * seconds)
        if switching and self._phase is not None:
            self._phase.extra["switch_s"] = self._phase.extra.get("switch_s", 0.0) + seconds

    def idle(self, seconds: float) -> None:
        """Nothing to run: the board idles at the current clocks (the co-runner may still load it)."""
        self._advance_idle(seconds)

    def advance_to(self, t: float) -> float:
        """Idle until virtual time t (an arrival); returns the idle seconds (0 if already past t)."""
        gap = t - self.now()
        if gap > 0:
            self._advance_idle(gap)
        return max(gap, 0.0)

    def _need_shape(self) -> CostShape:
        if self.shape is None:
            raise CloneError("simulated board: no model bound (call bind(CostShape) first)")
        return self.shape

    def run_layer(self, layer: int | None, n_new: int, kv_len: int) -> StepCost:
        """Advance by one decoder layer (layer=None: embedding + head + sampling) at the current clocks
        and co-runner load."""
        cont = self.interference.contention(self.co_runner_load())
        step = self.cost.step(self._need_shape(), layer, n_new, kv_len, self._clocks, cont)
        self._account(step.time_s, step.energy_J, step.gpu_busy * step.time_s, step.bytes)
        return step

    def run_pass(self, n_new: int, kv_len: int) -> float:
        """A whole forward pass (every layer, then the head); returns its virtual seconds."""
        t0 = self.now()
        for i in range(self._need_shape().n_layers):
            self.run_layer(i, n_new, kv_len)
        self.run_layer(None, n_new, kv_len)
        return self.now() - t0


def parse_device(spec: str, mode: str | None = None, interference: str | None = "none", seed: int = 0,
                 runtime: str | None = None) -> Any:
    """`--device auto|jetson|sim:PROFILE` -> a device backend (SimulatedBoard or JetsonBackend)."""
    text = (spec or "auto").strip()
    if text.startswith("sim:"):
        name = text[4:]
        if not name:
            raise CloneError("--device sim:PROFILE needs a profile name (e.g. sim:jetson-orin-nano-8gb)")
        return SimulatedBoard(name, mode=mode, interference=interference, seed=seed, runtime=runtime)
    if text in ("auto", "jetson"):
        from clone.runtime.jetson import auto_backend

        real = auto_backend()
        if real is not None:
            return real
        if text == "jetson":
            raise CloneError("--device jetson: no Jetson control files found on this machine "
                             "(use --device sim:PROFILE or auto)")
        return SimulatedBoard("jetson-orin-nano-8gb", mode=mode, interference=interference, seed=seed,
                              runtime=runtime)
    raise CloneError(f"--device {spec!r}: unknown device (allowed: auto, jetson, sim:PROFILE)")
