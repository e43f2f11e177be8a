"""Serving requests on a device backend: the real model runs on this CPU through the engine while the
device (the simulated board, or a real Jetson) keeps the time and energy account and a clock policy
acts at the engine's hooks. Used by `clone deploy`, `clone serve` and experiments/bench_deploy.py.
"""

from __future__ import annotations

import csv
import json
import math
import os
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from clone.costmodel.base import CostShape
from clone.errors import CloneError
from clone.runtime.device import Clocks
from clone.runtime.engine import Engine, Hooks, Request, RequestResult, TokenEvent
from clone.runtime.policies import Policy, PolicyState
from clone.runtime.simboard import SimulatedBoard
from clone.runtime.traces import TraceRequest


def is_simulated(board: Any) -> bool:
    return isinstance(board, SimulatedBoard)


class BoardMeter:
    """A Backend wrapper: after each real layer (or, for backends without layer boundaries, after the
    whole pass) the simulated board advances by that layer's cost, and the driver's per-layer hook
    runs. Layer boundaries therefore exist in board time for every backend."""

    supports_layer_hooks = True

    def __init__(self, backend: Any, driver: "Deployment") -> None:
        self.backend, self.driver = backend, driver
        self.name = f"{backend.name}+{driver.board.name}"
        self.n_layers = backend.n_layers
        self.pos = 0
        self._engine_hook: Callable[[int], None] | None = None
        self._n = self._kv = 0
        if backend.supports_layer_hooks:
            backend.set_layer_hook(self._layer)

    def set_layer_hook(self, hook: Callable[[int], None] | None) -> None:
        self._engine_hook = hook

    def close(self) -> None:
        """Take our hook off the wrapped backend (a model may be shared by several deployments)."""
        if self.backend.supports_layer_hooks:
            self.backend.set_layer_hook(None)

    def reset(self, max_len: int) -> None:
        self.backend.reset(max_len)
        self.pos = 0

    def _layer(self, i: int) -> None:
        t0 = time.perf_counter()
        self.driver.on_layer(i, self._n, self._kv)
        if self._engine_hook is not None:
            self._engine_hook(i)
        self.driver.overhead_s += time.perf_counter() - t0

    def _pass(self, run: Callable[[], Any], n: int) -> Any:
        self._n, self._kv = n, self.pos
        out = run()
        if not self.backend.supports_layer_hooks:
            for i in range(self.n_layers):
                self._layer(i)
        t0 = time.perf_counter()
        self.driver.on_head(n, self._kv)
        self.driver.overhead_s += time.perf_counter() - t0
        self.pos += n
        return out

    def prefill(self, tokens: Any) -> Any:
        self.pos = 0
        return self._pass(lambda: self.backend.prefill(tokens), len(tokens))

    def partial_pass(self, run: Callable[[], Any], n: int, n_layers: int) -> Any:
        """A side pass of `n` tokens through the first `n_layers` layers with no cache and no LM head
        (the router's embedding pass): the board is charged for exactly those layers."""
        self._n, self._kv = n, 0
        out = run()
        if not self.backend.supports_layer_hooks:
            for i in range(n_layers):
                self._layer(i)
        return out

    def decode(self, token: int) -> Any:
        return self._pass(lambda: self.backend.decode(token), 1)


@dataclass
class RequestRecord:
    id: str
    app_class: str
    arrival_s: float
    start_s: float
    queue_s: float
    prompt_tokens: int
    output_tokens: int
    stop_reason: str
    ttft_ms: float
    tpot_ms: float
    e2e_s: float
    prefill_J: float
    decode_J: float
    energy_J: float
    J_per_token: float
    gpu_MHz_mean: float
    emc_MHz_mean: float
    cpu_MHz_mean: float
    clock_switches: int
    co_runner_load_mean: float
    ttft_target_ms: float | None
    tpot_target_ms: float | None
    ttft_met: bool | None
    tpot_met: bool | None
    met: bool
    expert_weights: str = ""  # JSON {expert: weight} chosen by the router for this request ("" without experts)
    text: str = ""


class Deployment:
    """One model on one device under one policy; `serve(request)` runs a request to completion."""

    def __init__(self, backend: Any, tokenizer: Any, board: Any, policy: Policy, shape: CostShape | None = None,
                 expected_tokens: dict[str, int] | None = None, router: Any = None) -> None:
        """`router` (a clone.experts.Router on the backend's own model) sets each request's mixture of
        LoRA experts before its prefill; its embedding pass is charged to the request."""
        self.board, self.policy, self.tokenizer, self.router = board, policy, tokenizer, router
        if router is not None and getattr(backend, "model", None) is not router.model:
            raise CloneError(f"LoRA experts need the torch backend running the router's model (backend: {backend.name})")
        self.sim = is_simulated(board)
        if self.sim:
            if shape is None:
                raise CloneError("a simulated board needs the model's CostShape")
            board.bind(shape)
        policy.bind(board)
        self.overhead_s = 0.0
        self.meter = BoardMeter(backend, self)
        clock = board.now if self.sim else time.perf_counter
        self.engine = Engine(self.meter, tokenizer, Hooks(
            on_request_start=self._on_request_start, on_prefill_start=self._on_prefill_start,
            on_prefill_end=self._on_prefill_end, on_token=self._on_token, on_request_end=None), clock=clock)
        self.records: list[RequestRecord] = []
        self.wall_s = 0.0
        self.tokens = 0
        self._req: Request | None = None

    # ---------------------------------------------------------------- hooks
    def _counters(self) -> tuple[float, float, float]:
        c = self.board.counters
        return c.time_s, c.gpu_busy_s, c.dram_bytes

    def _state(self, event: str, layer: int | None = None) -> PolicyState:
        r = self._req
        assert r is not None
        now = self.board.now() if self.sim else time.perf_counter()
        gpu_load = emc_util = load = counters = bw = None
        if self.sim:
            counters = self._counters()
            bw = self.board.cost.bandwidth_Bps(self.board.get_clocks().emc_MHz)
            t, busy, nbytes = self._counters()
            t0, b0, n0 = self._last_counters
            dt = t - t0
            if dt > 0:
                gpu_load = (busy - b0) / dt
                emc_util = (nbytes - n0) / dt / self.board.cost.bandwidth_Bps(self.board.get_clocks().emc_MHz)
            load = self.board.co_runner_load()
        elif hasattr(self.board, "gpu_load"):
            gpu_load = self.board.gpu_load()
        return PolicyState(event=event, now_s=now, clocks=self.board.get_clocks(), phase=self._phase,
                           prompt_tokens=self._prompt_tokens, max_new_tokens=r.max_new_tokens,
                           token_index=self._ntok, layer=layer, n_layers=self.meter.n_layers,
                           expected_output_tokens=self._expected, ttft_target_ms=r.ttft_target_ms,
                           tpot_target_ms=r.tpot_target_ms, elapsed_s=now - self._t_start, ttft_s=self._ttft,
                           co_runner_load=load, gpu_load=gpu_load, emc_util=emc_util, app_class=r.app_class,
                           counters=counters, bandwidth_Bps=bw)

    def _decide(self, event: str, layer: int | None = None) -> None:
        if event not in self.policy.events:
            return
        due = getattr(self.policy, "next_due_s", None)
        if due is not None and self.sim and event == "layer" and self.board.now() < due:
            return
        state = self._state(event, layer)
        new = self.policy.decide(state)
        if self.sim:
            self._last_counters = self._counters()
        if new is not None and new != self.board.get_clocks():
            self.board.set_clocks(new)
            self._switches += 1

    def _timed(self, fn: Callable[[], None]) -> None:
        t0 = time.perf_counter()
        fn()
        self.overhead_s += time.perf_counter() - t0

    def _on_request_start(self, request: Request) -> None:
        self._timed(lambda: self._decide("request_start"))

    def _on_prefill_start(self, request: Request, n: int) -> None:
        self._prompt_tokens = n
        self.board.begin_phase("prefill")
        if self.router is not None:
            self._route(self.engine.prompt_ids(request))

    def _route(self, ids: list[int]) -> None:
        """Embed the prompt (base model up to the router's layer), set this request's mixture. Runs in
        the prefill phase, so its board time counts in TTFT and its energy in prefill_J."""
        import torch

        r = self.router
        tokens = torch.tensor([ids[: r.prefix]], dtype=torch.long)
        w = self.meter.partial_pass(lambda: r.weights_for(tokens), len(tokens[0]), r.experts.layer + 1)
        r.install(w)
        self._weights = r.named_weights(w)

    def _on_prefill_end(self, request: Request, ttft_s: float) -> None:
        self._timed(lambda: self._prefill_end(ttft_s))

    def _prefill_end(self, ttft_s: float) -> None:
        self._prefill_acct = self.board.end_phase()
        self._ttft = ttft_s
        self._phase = "decode"
        self.board.begin_phase("decode")
        self._decide("prefill_end")

    def _on_token(self, index: int, token: int, t: float) -> None:
        self._ntok = index + 1
        self._timed(lambda: self._decide("token"))

    def on_layer(self, i: int, n_new: int, kv_len: int) -> None:
        if self._req is None:  # not serving (a forward pass run by someone else)
            return
        if self.sim:
            step = self.board.run_layer(i, n_new, kv_len)
            c = self.board.get_clocks()
            self._clock_time += step.time_s
            self._clock_acc = [a + step.time_s * f for a, f in zip(self._clock_acc, (c.gpu_MHz, c.emc_MHz, c.cpu_MHz))]
            self._load_acc += step.time_s * self.board.co_runner_load()
        self._decide("layer", i)

    def on_head(self, n_new: int, kv_len: int) -> None:
        if self.sim and self._req is not None:
            self.board.run_layer(None, n_new, kv_len)

    def close(self) -> None:
        self.meter.close()

    def __enter__(self) -> "Deployment":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- serving
    def stream(self, tr: TraceRequest, temperature: float = 0.0, seed: int | None = 0,
               top_k: int | None = None) -> Iterator[TokenEvent]:
        """Run one request, yielding tokens; the RequestRecord is appended to self.records."""
        queue = 0.0
        if self.sim:
            self.board.begin_phase("idle")
            self.board.advance_to(tr.arrival_s)
            self.board.end_phase()
            queue = max(self.board.now() - tr.arrival_s, 0.0)
        # Tokenized here, not in the engine, so the request-start clock decision already knows the prompt length.
        ids = self.tokenizer.encode(tr.prompt) if self.tokenizer is not None else None
        req = Request(prompt=tr.prompt, max_new_tokens=tr.max_new_tokens, ttft_target_ms=tr.ttft_ms,
                      tpot_target_ms=tr.tpot_ms, app_class=tr.app_class, temperature=temperature, top_k=top_k,
                      seed=seed, id=tr.id, prompt_ids=ids)
        self._req, self._phase, self._ntok, self._ttft, self._switches = req, "prefill", 0, None, 0
        self._weights: dict[str, float] | None = None
        self._expected = tr.expected_output_tokens
        self._prompt_tokens = len(ids) if ids else 0
        self._clock_time, self._clock_acc, self._load_acc = 0.0, [0.0, 0.0, 0.0], 0.0
        self._last_counters = self._counters() if self.sim else (0.0, 0.0, 0.0)
        start = self.board.now() if self.sim else time.perf_counter()
        self._t_start = start
        w0 = time.perf_counter()
        gen = self.engine.stream(req)
        try:
            yield from gen
        finally:
            self.wall_s += time.perf_counter() - w0
        res = self.engine.last_result
        assert res is not None
        dec = self.board.end_phase()
        self._req = None
        self.records.append(self._record(tr, res, start, queue, dec))
        self.tokens += len(res.tokens)

    def serve(self, tr: TraceRequest, **kw: Any) -> RequestRecord:
        for _ in self.stream(tr, **kw):
            pass
        return self.records[-1]

    def _record(self, tr: TraceRequest, res: RequestResult, start: float, queue: float, dec: Any) -> RequestRecord:
        pre = self._prefill_acct
        n = len(res.tokens)
        energy = pre.energy_J + dec.energy_J
        if self._clock_time > 0:
            g, e, c = (a / self._clock_time for a in self._clock_acc)
            load = self._load_acc / self._clock_time
        else:
            now = self.board.get_clocks()
            g, e, c, load = now.gpu_MHz, now.emc_MHz, now.cpu_MHz, math.nan
        return RequestRecord(
            id=tr.id, app_class=tr.app_class, arrival_s=tr.arrival_s, start_s=start, queue_s=queue,
            prompt_tokens=res.prompt_tokens, output_tokens=n, stop_reason=res.stop_reason,
            ttft_ms=res.ttft_s * 1e3, tpot_ms=res.tpot_s * 1e3, e2e_s=res.e2e_s, prefill_J=pre.energy_J,
            decode_J=dec.energy_J, energy_J=energy, J_per_token=energy / n if n else math.nan,
            gpu_MHz_mean=g, emc_MHz_mean=e, cpu_MHz_mean=c, clock_switches=self._switches,
            co_runner_load_mean=load, ttft_target_ms=tr.ttft_ms, tpot_target_ms=tr.tpot_ms,
            ttft_met=res.ttft_met, tpot_met=res.tpot_met, met=res.met, text=res.text,
            expert_weights=json.dumps(self._weights) if self._weights is not None else "")

    def summary(self) -> dict[str, Any]:
        rs = self.records
        if not rs:
            return {"requests": 0}
        toks = sum(r.output_tokens for r in rs)
        energy = sum(r.energy_J for r in rs)
        with_t = [r for r in rs if r.ttft_met is not None or r.tpot_met is not None]
        pct = lambda xs, q: sorted(xs)[min(len(xs) - 1, int(q * len(xs)))]  # noqa: E731
        ttfts, tpots = [r.ttft_ms for r in rs], [r.tpot_ms for r in rs if r.output_tokens > 1]
        out = {
            "device": self.board.name, "policy": self.policy.name, "requests": len(rs), "output_tokens": toks,
            "energy_J": energy, "J_per_token": energy / toks if toks else math.nan,
            "prefill_J": sum(r.prefill_J for r in rs), "decode_J": sum(r.decode_J for r in rs),
            "ttft_ms_mean": statistics.fmean(ttfts), "ttft_ms_p90": pct(ttfts, 0.9),
            "tpot_ms_mean": statistics.fmean(tpots) if tpots else math.nan,
            "tpot_ms_p90": pct(tpots, 0.9) if tpots else math.nan,
            "ttft_attainment": _frac([r.ttft_met for r in rs]), "tpot_attainment": _frac([r.tpot_met for r in rs]),
            "target_attainment": (sum(r.met for r in with_t) / len(with_t)) if with_t else math.nan,
            "clock_switches": sum(r.clock_switches for r in rs),
            "engine_wall_s": self.wall_s, "engine_overhead_s": self.overhead_s,
            "overhead_fraction_of_token_time": self.overhead_s / self.wall_s if self.wall_s else math.nan,
        }
        if self.router is not None:
            out["router"] = self._router_summary()
        if self.sim:
            out["board_time_s"] = self.board.now()
            out["board_energy_J_incl_idle"] = self.board.counters.energy_J
        return out


    def _router_summary(self) -> dict[str, Any]:
        r = self.router
        ws = [json.loads(rec.expert_weights) for rec in self.records if rec.expert_weights]
        mean = {n: statistics.fmean(w[n] for w in ws) for n in r.experts.names} if ws else {}
        return {"mode": r.mode, "tau": r.tau if math.isfinite(r.tau) else "inf", "chunk": r.chunk, "prefix": r.prefix, "layer": r.experts.layer,
                "experts": r.experts.names, "mean_weights": mean}


def _frac(flags: list[bool | None]) -> float:
    xs = [f for f in flags if f is not None]
    return sum(xs) / len(xs) if xs else math.nan


CSV_FIELDS = [f for f in RequestRecord.__dataclass_fields__ if f != "text"]


def write_outputs(records: list[RequestRecord], summary: dict[str, Any], out_dir: str | os.PathLike) -> Path:
    """requests.csv, outputs.jsonl and summary.json in out_dir, each written to a temp file and renamed."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    def atomic(name: str, write: Callable[[Any], None]) -> None:
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=out)
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as f:
            write(f)
        os.replace(tmp, out / name)

    def w_csv(f: Any) -> None:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        w.writeheader()
        for r in records:
            d = asdict(r)
            d.pop("text")
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in d.items()})

    atomic("requests.csv", w_csv)
    atomic("outputs.jsonl", lambda f: f.writelines(json.dumps(_output(r)) + "\n" for r in records))
    atomic("summary.json", lambda f: json.dump(summary, f, indent=1))
    return out


def _output(r: RequestRecord) -> dict[str, Any]:
    out: dict[str, Any] = {"id": r.id, "text": r.text}
    if r.expert_weights:
        out["expert_weights"] = json.loads(r.expert_weights)
    return out
