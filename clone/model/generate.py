"""Token generation with a KV cache: greedy or sampled, streamed, with TTFT and TPOT measured."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import torch

from clone.model.llama import Transformer
from clone.model.tokenizer import Tokenizer


@dataclass
class GenerationResult:
    prompt_tokens: int
    tokens: list[int]
    text: str
    ttft_s: float
    tpot_s: float
    stop_reason: str  # eos | length

    @property
    def e2e_s(self) -> float:
        return self.ttft_s + self.tpot_s * max(len(self.tokens) - 1, 0)


class TextStreamer:
    """Turns a growing token list into text deltas, holding back incomplete UTF-8 sequences."""

    def __init__(self, tokenizer: Tokenizer, emit: Callable[[str], None]) -> None:
        self.tokenizer, self.emit, self.tokens, self.sent = tokenizer, emit, [], 0

    def push(self, token: int) -> None:
        self.tokens.append(token)
        text = self.tokenizer.decode(self.tokens)
        if text.endswith("\ufffd"):
            return
        if len(text) > self.sent:
            self.emit(text[self.sent:])
            self.sent = len(text)


def sample(logits: torch.Tensor, temperature: float, top_k: int | None, generator: torch.Generator | None) -> int:
    if temperature <= 0:
        return int(logits.argmax())
    logits = logits / temperature
    if top_k:
        kth = torch.topk(logits, min(top_k, logits.numel())).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits.float(), dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator))


@torch.inference_mode()
def generate(
    model: Transformer,
    tokenizer: Tokenizer,
    prompt_ids: list[int],
    max_new_tokens: int,
    temperature: float = 0.0,
    top_k: int | None = None,
    seed: int | None = None,
    on_text: Callable[[str], None] | None = None,
    stop_at_eos: bool = True,
) -> GenerationResult:
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    cache = model.new_cache(1, len(prompt_ids) + max_new_tokens)
    streamer = TextStreamer(tokenizer, on_text) if on_text else None
    out: list[int] = []
    eos = set(tokenizer.eos_ids) if stop_at_eos else set()
    start = time.perf_counter()
    logits = model(torch.tensor([prompt_ids]), cache=cache, last_only=True)
    token = sample(logits[0, -1], temperature, top_k, generator)
    ttft = time.perf_counter() - start
    first_done = time.perf_counter()
    reason = "length"
    while True:
        if token in eos:
            reason = "eos"
            break
        out.append(token)
        if streamer:
            streamer.push(token)
        if len(out) >= max_new_tokens:
            break
        logits = model(torch.tensor([[token]]), cache=cache)
        token = sample(logits[0, -1], temperature, top_k, generator)
    decode_steps = max(len(out) - 1 + (reason == "eos"), 0)
    tpot = (time.perf_counter() - first_done) / decode_steps if decode_steps else 0.0
    return GenerationResult(len(prompt_ids), out, tokenizer.decode(out), ttft, tpot, reason)
