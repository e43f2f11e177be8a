"""Generation engine: runs requests on a backend, streams tokens, measures TTFT / TPOT against each
request's targets, and calls hooks where a clock policy may act.

Hook order for one request producing n tokens (EOS ends early; the EOS token is not emitted):

    on_request_start(request)
    on_prefill_start(request, n_prompt_tokens)
      on_layer(i, "prefill") for every layer i          (backends with layer boundaries only)
    on_prefill_end(request, ttft_s)                     the prefill/decode boundary
    on_token(0, token_0, t_0)
    for k in 1 .. n-1:
      on_layer(i, "decode") for every layer i
      on_token(k, token_k, t_k)
    on_request_end(result)

t_k is seconds since the request started when token k became known; ttft_s == t_0. Hooks run on
the critical path and their time counts in TTFT / TPOT, as a real policy's would. The clock is
injectable (`Engine(clock=...)`) so a simulated board can keep virtual time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch

from clone.errors import CloneError
from clone.runtime.backends.base import Backend


@dataclass
class Request:
    prompt: str | None = None
    prompt_ids: list[int] | None = None
    max_new_tokens: int = 64
    ttft_target_ms: float | None = None
    tpot_target_ms: float | None = None
    app_class: str = "default"
    temperature: float = 0.0
    top_k: int | None = None
    seed: int | None = None
    stop_at_eos: bool = True
    id: str = ""

    def __post_init__(self) -> None:
        if self.prompt is None and self.prompt_ids is None:
            raise CloneError("request: give a prompt or prompt_ids")
        if self.max_new_tokens < 1:
            raise CloneError(f"request: max_new_tokens must be at least 1, got {self.max_new_tokens}")
        for key in ("ttft_target_ms", "tpot_target_ms"):
            v = getattr(self, key)
            if v is not None and not v > 0:
                raise CloneError(f"request: {key} must be positive, got {v}")


@dataclass
class RequestResult:
    request: Request
    prompt_tokens: int
    tokens: list[int]
    text: str
    ttft_s: float
    tpot_s: float
    token_times_s: list[float]
    stop_reason: str  # eos | length
    ttft_met: bool | None  # None: the request had no target
    tpot_met: bool | None

    @property
    def met(self) -> bool:
        """Every target the request carried was met."""
        return self.ttft_met is not False and self.tpot_met is not False

    @property
    def e2e_s(self) -> float:
        return self.token_times_s[-1] if self.token_times_s else self.ttft_s


@dataclass
class TokenEvent:
    index: int
    token: int
    text: str  # decoded text delta (complete UTF-8 only; may be empty)
    time_s: float


@dataclass
class Hooks:
    """Optional callbacks; see the module docstring for order and arguments."""

    on_request_start: Callable[[Request], None] | None = None
    on_prefill_start: Callable[[Request, int], None] | None = None
    on_prefill_end: Callable[[Request, float], None] | None = None
    on_token: Callable[[int, int, float], None] | None = None
    on_layer: Callable[[int, str], None] | None = None
    on_request_end: Callable[[RequestResult], None] | None = None


def deadline_flags(ttft_s: float, tpot_s: float, ttft_target_ms: float | None,
                   tpot_target_ms: float | None) -> tuple[bool | None, bool | None]:
    ttft_met = None if ttft_target_ms is None else ttft_s * 1e3 <= ttft_target_ms
    tpot_met = None if tpot_target_ms is None else tpot_s * 1e3 <= tpot_target_ms
    return ttft_met, tpot_met


class Engine:
    def __init__(self, backend: Backend, tokenizer: Any = None, hooks: Hooks | None = None,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.backend = backend
        self.tokenizer = tokenizer
        self.clock = clock
        self.hooks = Hooks()
        self.last_result: RequestResult | None = None
        self._phase = "prefill"
        self.set_hooks(hooks or Hooks())

    def set_hooks(self, hooks: Hooks) -> None:
        if hooks.on_layer is not None and not self.backend.supports_layer_hooks:
            raise CloneError(f"backend {self.backend.name} has no layer boundaries: on_layer is not available "
                             "(use on_token / on_prefill_end, or the torch backend)")
        self.hooks = hooks
        if self.backend.supports_layer_hooks:
            on_layer = hooks.on_layer
            self.backend.set_layer_hook(None if on_layer is None else (lambda i: on_layer(i, self._phase)))

    def prompt_ids(self, request: Request) -> list[int]:
        if request.prompt_ids is not None:
            return list(request.prompt_ids)
        if self.tokenizer is None:
            raise CloneError("request has a text prompt but the engine has no tokenizer")
        return self.tokenizer.encode(request.prompt)

    def _eos(self, request: Request) -> set[int]:
        if not request.stop_at_eos or self.tokenizer is None:
            return set()
        return set(getattr(self.tokenizer, "eos_ids", []) or [])

    def stream(self, request: Request) -> Iterator[TokenEvent]:
        """Yield tokens as they are produced; the RequestResult is then in `self.last_result` (and
        is the generator's return value)."""
        from clone.model.generate import TextStreamer, sample

        h, clock, backend = self.hooks, self.clock, self.backend
        ids = self.prompt_ids(request)
        if not ids:
            raise CloneError("request: the prompt is empty")
        eos = self._eos(request)
        greedy = request.temperature <= 0
        generator = torch.Generator().manual_seed(request.seed) if request.seed is not None else None
        deltas: list[str] = []
        streamer = TextStreamer(self.tokenizer, deltas.append) if self.tokenizer is not None else None

        def pick(logits: Any) -> int:
            if greedy:
                return int(logits.argmax())
            t = torch.from_numpy(np.asarray(logits)) if not isinstance(logits, torch.Tensor) else logits
            return sample(t.float(), request.temperature, request.top_k, generator)

        t_start = clock()
        if h.on_request_start:
            h.on_request_start(request)
        backend.reset(len(ids) + request.max_new_tokens)
        self._phase = "prefill"
        if h.on_prefill_start:
            h.on_prefill_start(request, len(ids))
        token = pick(backend.prefill(ids))
        ttft = clock() - t_start
        self._phase = "decode"
        if h.on_prefill_end:
            h.on_prefill_end(request, ttft)
        out: list[int] = []
        times: list[float] = []
        reason = "length"
        t_now = ttft
        on_token = h.on_token
        while True:
            if token in eos:
                reason = "eos"
                break
            out.append(token)
            times.append(t_now)
            text = ""
            if streamer is not None:
                streamer.push(token)
                if deltas:
                    text = "".join(deltas)
                    deltas.clear()
            if on_token:
                on_token(len(out) - 1, token, t_now)
            yield TokenEvent(len(out) - 1, token, text, t_now)
            if len(out) >= request.max_new_tokens:
                break
            token = pick(backend.decode(token))
            t_now = clock() - t_start
        decode_steps = len(out) - 1 + (reason == "eos")
        tpot = (t_now - ttft) / decode_steps if decode_steps > 0 else 0.0
        ttft_met, tpot_met = deadline_flags(ttft, tpot, request.ttft_target_ms, request.tpot_target_ms)
        text = self.tokenizer.decode(out) if self.tokenizer is not None else ""
        result = RequestResult(request, len(ids), out, text, ttft, tpot, times, reason, ttft_met, tpot_met)
        self.last_result = result
        if h.on_request_end:
            h.on_request_end(result)
        return result

    def run(self, request: Request, on_text: Callable[[str], None] | None = None) -> RequestResult:
        for event in self.stream(request):
            if on_text is not None and event.text:
                on_text(event.text)
        assert self.last_result is not None
        return self.last_result

    def run_all(self, requests: Sequence[Request]) -> list[RequestResult]:
        return [self.run(r) for r in requests]
