"""DVFS request traces whose output lengths follow what the prompt asks for.

The runtime's trace generator (clone.runtime.traces) draws output lengths independently of the prompt
text, so nothing could predict them beyond the class average. Real requests carry cues ("briefly",
"in detail", "list five ...", "in 50 words"); this generator writes such cues into the prompt and
draws the true length from them (log-normal noise, sigma 0.25), so a length predictor has something
to learn. `expected_output_tokens` in the written trace is the true length; `max_new_tokens` caps it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from clone.runtime.traces import CLASS_LENGTHS, DEFAULT_MIX, PromptText, TraceRequest

NUMBER_WORDS = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "ten": 10}
# (cue text, multiplier on the class median length). Estimates chosen to span 0.3x .. 2.5x.
STYLE_CUES = [("Answer briefly: ", 0.35), ("In one sentence: ", 0.5), ("", 1.0), ("Explain: ", 1.6),
              ("Explain in detail, step by step: ", 2.5)]
MAX_NEW_TOKENS = 256


def estimate_prompt_tokens(text: str) -> int:
    """Prompt tokens without a tokenizer: ~1.3 BPE tokens per English word (SmolLM2/Llama tokenizers
    on the project's corpora give 1.2..1.4)."""
    return max(1, round(1.3 * len(text.split())))


def generate_dvfs_trace(n: int, seed: int = 0, rate_per_s: float = 0.25, profile: Any = None,
                        mix: dict[str, float] | None = None, use_corpora: bool = True) -> list[TraceRequest]:
    mix = mix or DEFAULT_MIX
    classes = list(mix)
    probs = np.array([mix[c] for c in classes], float)
    probs /= probs.sum()
    rng = np.random.default_rng(seed)
    text = PromptText(use_corpora)
    out, t = [], 0.0
    for i in range(n):
        t += float(rng.exponential(1.0 / rate_per_s))
        cls = classes[int(rng.choice(len(classes), p=probs))]
        pw, ps, ow, _ = CLASS_LENGTHS.get(cls, (40, 0.7, 40, 0.7))
        n_words = int(min(max(rng.lognormal(math.log(pw), ps), 3), 400))
        body = text.body(rng, cls, n_words)
        kind = rng.random()
        if kind < 0.25:  # an explicit list
            k = int(rng.choice(list(NUMBER_WORDS.values())))
            word = next(w for w, v in NUMBER_WORDS.items() if v == k) if rng.random() < 0.5 else str(k)
            cue, base = f"List {word} points about this: ", 11.0 * k
        elif kind < 0.40:  # an explicit word count
            k = int(rng.choice([20, 30, 50, 80, 120]))
            cue, base = f"Reply in about {k} words: ", 1.3 * k
        else:
            cue, mult = STYLE_CUES[int(rng.integers(len(STYLE_CUES)))]
            scale = (n_words / pw) ** 0.5 if cls == "summarization" else 1.0  # longer input, longer summary
            base = ow * mult * scale
            if cls == "summarization" and not cue:
                cue = "Summarize: "
        true_len = int(min(max(round(base * rng.lognormal(0.0, 0.25)), 2), MAX_NEW_TOKENS))
        max_new = int(min(MAX_NEW_TOKENS, math.ceil(true_len * 1.5) + 4))
        ttft = tpot = None
        if profile is not None and cls in profile.budgets:
            ttft, tpot = profile.budgets[cls].ttft_ms, profile.budgets[cls].tpot_ms
        out.append(TraceRequest(cue + body, max_new, cls, ttft, tpot, round(t, 3), true_len, f"r{i:04d}"))
    return out
