"""Fast request episodes on the simulated board's physics, for training, the oracle's search and the
benchmark: the same cost model (clone.costmodel), the same seeded co-runner process
(clone.runtime.simboard.Interference) and the same clock-switch latencies as SimulatedBoard, but costed
per forward pass (the co-runner load is read at the start of each pass rather than each layer) with
pass costs cached per (clocks, load, tokens, KV bucket of 16). tests/test_dvfs.py checks it against
SimulatedBoard.

A policy is driven at the events `clone deploy` uses (request_start, prefill_end, token), with a
PolicyState, so every Policy (max, governor, static, the controller, the oracle) runs unchanged here.
Timing follows the engine: TTFT counts from request start and includes a switch made at
request_start; TPOT is decode time (switch stalls included) over N - 1 steps. Energy: the board's
account (power model with the co-runner's added utilisation) and, for the reward, the power table's
P_phase(clocks) x time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

from clone.costmodel.base import CostShape
from clone.costmodel.roofline import RooflineCostModel
from clone.dvfs.requests import estimate_prompt_tokens
from clone.runtime.device import DOMAINS, Clocks
from clone.runtime.policies import PolicyState
from clone.runtime.simboard import SWITCH_LATENCY_MS, Interference
from clone.runtime.traces import TraceRequest

KV_BUCKET = 16


@dataclass
class DvfsState(PolicyState):
    """PolicyState plus the prompt text (the length predictor's text cue) and the true output length
    (used only by the oracle and the 'true lengths' controller variant)."""

    prompt: str | None = None
    true_output_tokens: int | None = None


@dataclass
class Outcome:
    id: str
    app_class: str
    prompt_tokens: int
    output_tokens: int
    ttft_s: float
    tpot_s: float
    energy_J: float  # board account (prefill + decode)
    prefill_J: float
    decode_J: float
    table_prefill_J: float  # power table x time: the reward's energy
    table_decode_J: float
    ttft_target_s: float | None
    tpot_target_s: float | None
    start_s: float
    end_s: float
    switches: int = 0
    decisions: int = 0

    @property
    def ttft_met(self) -> bool:
        return self.ttft_target_s is None or self.ttft_s <= self.ttft_target_s + 1e-9

    @property
    def tpot_met(self) -> bool:
        return self.tpot_target_s is None or self.output_tokens < 2 or self.tpot_s <= self.tpot_target_s + 1e-9

    @property
    def met(self) -> bool:
        return self.ttft_met and self.tpot_met


class FastBoard:
    """Pass-level simulated board (module docstring). Also exposes what policies read from a board:
    available_MHz, get_clocks, profile, mode, interference, shape, cost."""

    def __init__(self, profile: Any, shape: CostShape, mode: str | None = None,
                 interference: str | Interference | None = "websearch", seed: int = 0,
                 runtime: str | None = None, power_table: Any = None) -> None:
        self.profile = profile
        self.mode = profile.mode(mode)
        self.name = f"fastsim:{profile.name}"
        self.shape = shape
        self.cost = RooflineCostModel(profile, runtime=runtime, mode=self.mode.name)
        self.interference = interference if isinstance(interference, Interference) else Interference(interference, seed)
        self.table = power_table
        self._cache: dict[tuple, tuple[float, float, float, float]] = {}
        self.clocks = Clocks(*(self.available_MHz(d)[-1] for d in DOMAINS))
        self.counters = [0.0, 0.0, 0.0]  # board seconds, GPU-busy seconds, DRAM bytes (for the governor)

    def available_MHz(self, domain: str) -> tuple[float, ...]:
        return self.profile.clock_choices(domain, self.mode.name)

    def get_clocks(self) -> Clocks:
        return self.clocks

    def bind(self, shape: CostShape) -> None:
        self.shape = shape

    # ---------------------------------------------------------------- costs
    def pass_cost(self, clocks: Clocks, load: float, n_new: int, kv: int) -> tuple[float, float, float, float]:
        """(seconds, joules, GPU-busy seconds, DRAM bytes) of one forward pass."""
        kvb = kv if n_new > 1 else (kv // KV_BUCKET) * KV_BUCKET + KV_BUCKET // 2
        key = (clocks, load, n_new, kvb)
        hit = self._cache.get(key)
        if hit is None:
            cont = self.interference.contention(load)
            t = e = busy = nbytes = 0.0
            memo: dict[Any, Any] = {}
            for i, s in enumerate(self.shape.layers):
                st = memo.get(s)
                if st is None:
                    st = memo[s] = self.cost.step(self.shape, i, n_new, kvb, clocks, cont)
                t, e, busy, nbytes = t + st.time_s, e + st.energy_J, busy + st.gpu_busy * st.time_s, nbytes + st.bytes
            st = self.cost.step(self.shape, None, n_new, kvb, clocks, cont)
            hit = (t + st.time_s, e + st.energy_J, busy + st.gpu_busy * st.time_s, nbytes + st.bytes)
            self._cache[key] = hit
        return hit

    def switch_cost(self, old: Clocks, new: Clocks, load: float) -> tuple[float, float]:
        changed = [d for d in DOMAINS if old.get(d) != new.get(d)]
        if not changed:
            return 0.0, 0.0
        stall = sum(SWITCH_LATENCY_MS[d] for d in changed) * 1e-3
        return stall, self.cost.idle_power_W(new, self.interference.contention(load)) * stall

    def table_power(self, phase: str, clocks: Clocks) -> float:
        if self.table is None:
            return math.nan
        return self.table.power_W(phase, clocks)


def prompt_tokens_of(state: Any) -> int:
    """The prompt length a policy can use. clone deploy calls request_start before it tokenizes the
    prompt (prompt_tokens is 0 there): fall back to the text estimate, else 1."""
    if state.prompt_tokens:
        return int(state.prompt_tokens)
    text = getattr(state, "prompt", None)
    return estimate_prompt_tokens(text) if text else 1


def _state(board: FastBoard, req: TraceRequest, event: str, now: float, t0: float, phase: str, P: int, n_out: int,
           ttft: float | None, true_n: int) -> DvfsState:
    c = board.counters
    return DvfsState(event=event, now_s=now, clocks=board.clocks, phase=phase, prompt_tokens=P,
                     max_new_tokens=req.max_new_tokens, token_index=n_out, n_layers=board.shape.n_layers,
                     expected_output_tokens=req.expected_output_tokens, ttft_target_ms=req.ttft_ms,
                     tpot_target_ms=req.tpot_ms, elapsed_s=now - t0, ttft_s=ttft,
                     co_runner_load=board.interference.load_at(now), app_class=req.app_class,
                     counters=(c[0], c[1], c[2]), bandwidth_Bps=board.cost.bandwidth_Bps(board.clocks.emc_MHz),
                     prompt=req.prompt, true_output_tokens=true_n)


def run_request(board: FastBoard, policy: Any, req: TraceRequest, start_s: float,
                prompt_tokens: int | None = None, output_tokens: int | None = None) -> Outcome:
    """One request from start_s (the board is free) with the board's current clocks; the board's clocks
    and counters are left as the request leaves them."""
    P = prompt_tokens or estimate_prompt_tokens(req.prompt)
    N = max(1, min(output_tokens or req.expected_output_tokens or req.max_new_tokens, req.max_new_tokens))
    ev = policy.events
    t = start_s
    switches = decisions = 0
    acc = {"prefill": [0.0, 0.0], "decode": [0.0, 0.0]}  # board J, table J
    cnt = board.counters

    def account(phase: str | None, dt: float, e: float, busy: float = 0.0, nbytes: float = 0.0) -> None:
        cnt[0] += dt
        cnt[1] += busy
        cnt[2] += nbytes
        if phase is not None:
            acc[phase][0] += e
            acc[phase][1] += board.table_power(phase, board.clocks) * dt

    def decide(event: str, phase: str | None, n_out: int, ttft: float | None) -> None:
        nonlocal t, switches, decisions
        if event not in ev:
            return
        decisions += 1
        new = policy.decide(_state(board, req, event, t, start_s, phase or "prefill", P, n_out, ttft, N))
        if new is not None and new != board.clocks:
            dt, e = board.switch_cost(board.clocks, new, board.interference.load_at(t))
            board.clocks = new
            switches += 1
            account(phase, dt, e)
            t += dt

    decide("request_start", None, 0, None)
    dt, e, busy, nb = board.pass_cost(board.clocks, board.interference.load_at(t), P, 0)
    account("prefill", dt, e, busy, nb)
    t += dt
    ttft = t - start_s
    t_dec0 = t
    decide("prefill_end", "decode", 0, ttft)
    for k in range(N):  # token k was just produced
        decide("token", "decode", k + 1, ttft)
        if k == N - 1:
            break
        dt, e, busy, nb = board.pass_cost(board.clocks, board.interference.load_at(t), 1, P + k)
        account("decode", dt, e, busy, nb)
        t += dt
    tpot = (t - t_dec0) / (N - 1) if N > 1 else 0.0
    return Outcome(req.id, req.app_class, P, N, ttft, tpot, acc["prefill"][0] + acc["decode"][0], acc["prefill"][0],
                   acc["decode"][0], acc["prefill"][1], acc["decode"][1],
                   None if req.ttft_ms is None else req.ttft_ms / 1e3, None if req.tpot_ms is None else req.tpot_ms / 1e3,
                   start_s, t, switches, decisions)


def run_trace(board: FastBoard, policy: Any, requests: Sequence[TraceRequest]) -> list[Outcome]:
    """Requests in arrival order, one at a time (a later arrival waits for the board)."""
    policy.bind(board)
    free = 0.0
    out = []
    for r in requests:
        start = max(r.arrival_s, free)
        o = run_request(board, policy, r, start)
        free = o.end_s
        out.append(o)
    return out


def feasible_flags(board: FastBoard, requests: Sequence[TraceRequest], outs: Sequence[Outcome]) -> list[bool]:
    """Per request of a run: could it have met both targets from the time it started? Judged by max clocks
    from that start time (no switch needed), on the run's own timeline (policies shift start times, so
    the co-runner load a request meets differs between runs); a request the run met counts as feasible."""
    from clone.runtime.policies import MaxPolicy

    pol = MaxPolicy()
    pol.bind(board)
    flags = []
    for r, o in zip(requests, outs):
        board.clocks = pol.target
        flags.append(o.met or run_request(board, pol, r, o.start_s).met)
    return flags


@dataclass
class Summary:
    policy: str
    requests: int
    tokens: int
    energy_J: float
    J_per_token: float
    met_pct: float
    feasible_met_pct: float = math.nan
    extra: dict = field(default_factory=dict)


def summarize(name: str, outs: Sequence[Outcome], feasible: Sequence[bool] | None = None) -> Summary:
    toks = sum(o.output_tokens for o in outs)
    e = sum(o.energy_J for o in outs)
    met = [o.met for o in outs]
    fm = math.nan
    if feasible is not None:
        pairs = [m for m, f in zip(met, feasible) if f]
        fm = 100.0 * sum(pairs) / len(pairs) if pairs else math.nan
    return Summary(name, len(outs), toks, e, e / toks if toks else math.nan, 100.0 * sum(met) / len(met), fm)
