"""Clock policies: decide GPU / EMC / CPU clocks at request start, at the prefill/decode boundary,
per token and per layer, from a PolicyState. The learned DVFS controller implements the same Policy
interface (its state vector is built from PolicyState's fields).

- `max`: the power mode's highest clocks, always (what `jetson_clocks` does).
- `static:gpu=MHz,emc=MHz,cpu=MHz`: fixed clocks (missing domains at the mode's max).
- `governor`: a load-driven governor like the stock ones. GPU: simple_ondemand-style (devfreq
  upthreshold 90%, downdifferential 5%): above the threshold jump to max, else scale to
  f * load / (up - down) and snap up to a listed step. EMC: follows bandwidth demand (as the Tegra
  actmon-driven EMC scaling does): lowest rate whose capacity keeps utilisation under 80%, and the
  top rate whenever utilisation is above that (demand above capacity cannot be measured), as
  simple_ondemand does for the GPU. CPU: the
  host thread spins on the GPU, so schedutil keeps it at max. It samples every period_s of board time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from clone.errors import CloneError
from clone.runtime.device import DOMAINS, Clocks

EVENTS = ("request_start", "prefill_end", "token", "layer")


@dataclass
class PolicyState:
    """What a policy sees at a decision point. Fields a backend cannot measure are None."""

    event: str  # one of EVENTS
    now_s: float  # board time
    clocks: Clocks  # current clocks
    phase: str  # prefill | decode
    prompt_tokens: int
    max_new_tokens: int
    token_index: int = 0  # tokens produced so far in this request
    layer: int | None = None
    n_layers: int = 0
    expected_output_tokens: int | None = None  # a length predictor's estimate (or the trace's)
    ttft_target_ms: float | None = None
    tpot_target_ms: float | None = None
    elapsed_s: float = 0.0  # since the request started
    ttft_s: float | None = None  # once prefill is done
    co_runner_load: float | None = None  # the simulated co-runner's load (None on a real board)
    gpu_load: float | None = None  # GPU busy fraction since the previous decision
    emc_util: float | None = None  # DRAM bandwidth used / available since the previous decision
    app_class: str = "default"
    # Cumulative board counters (board seconds, GPU-busy seconds, DRAM bytes) and the DRAM bandwidth
    # at the current EMC clock, so a sampling governor can measure load over its own period.
    counters: tuple[float, float, float] | None = None
    bandwidth_Bps: float | None = None


@runtime_checkable
class Policy(Protocol):
    name: str
    events: tuple[str, ...]  # the decision points it wants (others are not called)

    def bind(self, board: Any) -> None:
        """Learn the board's listed clocks (called once before any decision)."""

    def decide(self, state: PolicyState) -> Clocks | None:
        """Clocks to apply now, or None to keep the current ones.

        Optional attribute `next_due_s`: board time before which decide() would do nothing; the
        driver then skips building the state (keeps per-layer hooks cheap)."""


def _mode_max(board: Any) -> Clocks:
    return Clocks(*(board.available_MHz(d)[-1] for d in DOMAINS))


class MaxPolicy:
    name = "max"
    events = ("request_start",)

    def bind(self, board: Any) -> None:
        self.target = _mode_max(board)

    def decide(self, state: PolicyState) -> Clocks | None:
        return self.target if state.clocks != self.target else None


class StaticPolicy:
    events = ("request_start",)

    def __init__(self, gpu_MHz: float | None = None, emc_MHz: float | None = None, cpu_MHz: float | None = None) -> None:
        self.want = {"gpu": gpu_MHz, "emc": emc_MHz, "cpu": cpu_MHz}
        self.name = "static:" + ",".join(f"{d}={v:g}" for d, v in self.want.items() if v is not None)

    def bind(self, board: Any) -> None:
        vals = {}
        for d in DOMAINS:
            listed = board.available_MHz(d)
            v = self.want[d]
            if v is None:
                vals[d] = listed[-1]
                continue
            match = [f for f in listed if abs(f - v) <= 1e-3]
            if not match:
                raise CloneError(f"--policy {self.name}: {d}={v:g} MHz is not a frequency the board lists "
                                 f"(allowed {d} MHz: {', '.join(f'{f:g}' for f in listed)})")
            vals[d] = match[0]
        self.target = Clocks(vals["gpu"], vals["emc"], vals["cpu"])

    def decide(self, state: PolicyState) -> Clocks | None:
        return self.target if state.clocks != self.target else None


class GovernorPolicy:
    """Stock-like load-driven governor (module docstring). Called at every layer boundary, it acts
    only once per sampling period of board time, on the load measured over that period."""

    name = "governor"
    events = ("request_start", "prefill_end", "token", "layer")

    def __init__(self, period_s: float = 0.05, up_threshold: float = 0.90, down_differential: float = 0.05,
                 emc_target_util: float = 0.80) -> None:
        self.period_s, self.up, self.down, self.emc_target = period_s, up_threshold, down_differential, emc_target_util
        self._last: tuple[float, float, float] | None = None
        self.next_due_s: float | None = None

    def bind(self, board: Any) -> None:
        self.steps = {d: board.available_MHz(d) for d in DOMAINS}
        self._last = None
        self.next_due_s = None

    @staticmethod
    def _snap_up(steps: tuple[float, ...], f: float) -> float:
        for s in steps:
            if s >= f - 1e-6:
                return s
        return steps[-1]

    def decide(self, state: PolicyState) -> Clocks | None:
        if state.counters is None:  # a real board: its own governor would be running instead
            return None
        if self._last is None:
            self._last = state.counters
            self.next_due_s = state.counters[0] + self.period_s
            return None
        t, busy, nbytes = state.counters
        t0, b0, n0 = self._last
        if t - t0 < self.period_s:
            return None
        self._last = state.counters
        self.next_due_s = t + self.period_s
        c = state.clocks
        gsteps, esteps = self.steps["gpu"], self.steps["emc"]
        load = (busy - b0) / (t - t0)
        gpu = gsteps[-1] if load > self.up else self._snap_up(gsteps, c.gpu_MHz * load / (self.up - self.down))
        emc = c.emc_MHz
        if state.bandwidth_Bps:
            util = (nbytes - n0) / (t - t0) / state.bandwidth_Bps
            emc = self._snap_up(esteps, util * c.emc_MHz / self.emc_target)
            if util > self.emc_target:  # saturated: demand above capacity is unknown, go to max
                emc = esteps[-1]
        new = Clocks(gpu, emc, self.steps["cpu"][-1])
        return new if new != c else None


def make_policy(spec: str) -> Policy:
    """`max`, `governor`, `static:gpu=MHz,emc=MHz,cpu=MHz` -> a Policy (bind it to a board next)."""
    text = (spec or "").strip()
    if text == "max":
        return MaxPolicy()
    if text == "governor":
        return GovernorPolicy()
    if text.startswith("static:"):
        vals: dict[str, float] = {}
        for part in filter(None, text[7:].split(",")):
            key, _, value = part.partition("=")
            key = key.strip().removesuffix("_MHz")
            if key not in DOMAINS:
                raise CloneError(f"--policy {spec!r}: unknown clock {key!r} (allowed: gpu, emc, cpu)")
            try:
                vals[f"{key}_MHz"] = float(value)
            except ValueError:
                raise CloneError(f"--policy {spec!r}: {key}={value!r} is not a frequency in MHz") from None
        if not vals:
            raise CloneError(f"--policy {spec!r}: give at least one of gpu=, emc=, cpu= (MHz)")
        return StaticPolicy(**vals)
    raise CloneError(f"--policy {spec!r}: unknown policy (allowed: max, governor, static:gpu=MHz,emc=MHz,cpu=MHz)")
