"""Request traces: JSONL, one request per line, and a generator of realistic ones.

Line format (keys; units in names):
  {"id": "r0007", "prompt": "...", "max_new_tokens": 64, "expected_output_tokens": 41,
   "app_class": "chatbot", "ttft_ms": 1000, "tpot_ms": 200, "arrival_s": 3.25}
`prompt` and `max_new_tokens` are required; `ttft_ms` / `tpot_ms` default to the profile's budget
for `app_class` when a profile is given; `arrival_s` defaults to 0 (all at once) and must not
decrease; `expected_output_tokens` is what a length predictor would say (<= max_new_tokens).

The generator draws long-tailed (log-normal) prompt and output lengths, Poisson arrivals and a mix of
the profiles' application classes, with prompts cut from the project's corpora (clone.data; the
test splits of fortunes, techprose, shakespeare, bible) when present, else synthetic text.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from clone.atomic import write_text_atomic
from clone.errors import CloneError

DEFAULT_MIX = {"chatbot": 0.4, "voice_assistant": 0.2, "code_completion": 0.2, "summarization": 0.2}
# Per class: (median prompt words, sigma, median output tokens, sigma). Estimates: chat turns are
# short, summaries read long inputs and write longer outputs, code completions are short.
CLASS_LENGTHS = {
    "chatbot": (40, 0.8, 48, 0.7),
    "voice_assistant": (16, 0.5, 32, 0.5),
    "code_completion": (60, 0.6, 20, 0.5),
    "summarization": (160, 0.5, 80, 0.5),
}
CORPUS_FOR_CLASS = {"chatbot": "fortunes", "voice_assistant": "fortunes", "code_completion": "techprose",
                    "summarization": "shakespeare"}
_KEYS = {"id", "prompt", "max_new_tokens", "expected_output_tokens", "app_class", "ttft_ms", "tpot_ms", "arrival_s"}


@dataclass
class TraceRequest:
    prompt: str
    max_new_tokens: int
    app_class: str = "default"
    ttft_ms: float | None = None
    tpot_ms: float | None = None
    arrival_s: float = 0.0
    expected_output_tokens: int | None = None
    id: str = ""

    def to_json(self) -> str:
        return json.dumps({k: v for k, v in asdict(self).items() if v is not None}, ensure_ascii=False)


def _num(where: str, key: str, value: Any, positive: bool = True, integer: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise CloneError(f"{where}: {key} {value!r} must be a number")
    if integer and int(value) != value:
        raise CloneError(f"{where}: {key} {value!r} must be an integer")
    if (positive and value <= 0) or value < 0:
        raise CloneError(f"{where}: {key} {value!r} must be {'> 0' if positive else '>= 0'}")
    return value


def parse_line(text: str, where: str, profile: Any = None) -> TraceRequest:
    try:
        d = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CloneError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(d, dict):
        raise CloneError(f"{where}: a request must be a JSON object")
    unknown = set(d) - _KEYS
    if unknown:
        raise CloneError(f"{where}: unknown keys {sorted(unknown)} (allowed: {', '.join(sorted(_KEYS))})")
    for key in ("prompt", "max_new_tokens"):
        if key not in d:
            raise CloneError(f"{where}: missing {key}")
    if not isinstance(d["prompt"], str) or not d["prompt"]:
        raise CloneError(f"{where}: prompt must be a non-empty string")
    req = TraceRequest(prompt=d["prompt"], max_new_tokens=int(_num(where, "max_new_tokens", d["max_new_tokens"], integer=True)),
                       app_class=str(d.get("app_class", "default")), id=str(d.get("id", "")))
    for key in ("ttft_ms", "tpot_ms"):
        if d.get(key) is not None:
            setattr(req, key, float(_num(where, key, d[key])))
    if "arrival_s" in d:
        req.arrival_s = float(_num(where, "arrival_s", d["arrival_s"], positive=False))
    if d.get("expected_output_tokens") is not None:
        e = int(_num(where, "expected_output_tokens", d["expected_output_tokens"], integer=True))
        if e > req.max_new_tokens:
            raise CloneError(f"{where}: expected_output_tokens {e} exceeds max_new_tokens {req.max_new_tokens}")
        req.expected_output_tokens = e
    cls = profile.default_app_class if profile is not None and req.app_class == "default" else req.app_class
    if profile is not None and (req.ttft_ms is None or req.tpot_ms is None) and cls in profile.budgets:
        b = profile.budgets[cls]
        req.ttft_ms = req.ttft_ms if req.ttft_ms is not None else b.ttft_ms
        req.tpot_ms = req.tpot_ms if req.tpot_ms is not None else b.tpot_ms
    elif profile is not None and cls not in profile.budgets and (req.ttft_ms is None or req.tpot_ms is None):
        raise CloneError(f"{where}: app_class {req.app_class!r} has no budget in profile {profile.name} and the "
                         f"line gives no ttft_ms/tpot_ms (allowed classes: {', '.join(profile.budgets)})")
    return req


def load_trace(path: str | os.PathLike, profile: Any = None) -> list[TraceRequest]:
    """Read a JSONL trace; a malformed line raises a CloneError naming FILE:LINE."""
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise CloneError(f"{p}: cannot read trace ({exc})") from None
    out: list[TraceRequest] = []
    for no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        req = parse_line(line, f"{p}:{no}", profile)
        if out and req.arrival_s < out[-1].arrival_s:
            raise CloneError(f"{p}:{no}: arrival_s {req.arrival_s} is before the previous line's {out[-1].arrival_s}")
        req.id = req.id or f"r{len(out):04d}"
        out.append(req)
    if not out:
        raise CloneError(f"{p}: the trace has no requests")
    return out


def save_trace(requests: Iterable[TraceRequest], path: str | os.PathLike) -> Path:
    return write_text_atomic(path, "".join(r.to_json() + "\n" for r in requests))


def _corpus_words(corpus: str) -> list[str] | None:
    try:
        from clone.data.corpora import load_split

        docs = load_split(corpus, "test")
    except Exception:  # corpus not fetched (or clone.data absent): fall back to synthetic text
        return None
    words = " ".join(d.text for d in docs[:20]).split()
    return words if len(words) > 1000 else None


_SYNTH = ("the a of to and in board clock energy token model layer memory request latency power edge "
          "device runs fast slow prompt answer question summary code function value").split()


class PromptText:
    """Prompt bodies for an application class: a seeded run of words from the class's corpus (test
    split, so no training text leaks into traces), or synthetic words when the corpus is not fetched."""

    def __init__(self, use_corpora: bool = True) -> None:
        self.use_corpora = use_corpora
        self._words: dict[str, list[str] | None] = {}

    def body(self, rng: np.random.Generator, app_class: str, n_words: int) -> str:
        corpus = CORPUS_FOR_CLASS.get(app_class, "fortunes")
        if corpus not in self._words:
            self._words[corpus] = _corpus_words(corpus) if self.use_corpora else None
        words = self._words[corpus]
        if words:
            start = int(rng.integers(0, len(words) - n_words))
            return " ".join(words[start:start + n_words])
        return " ".join(rng.choice(_SYNTH, n_words))


def generate_trace(n: int, seed: int = 0, rate_per_s: float = 0.5, profile: Any = None,
                   mix: dict[str, float] | None = None, max_prompt_words: int = 400,
                   max_new_tokens_cap: int = 256, use_corpora: bool = True) -> list[TraceRequest]:
    """n requests with Poisson arrivals (rate_per_s), class mix, log-normal lengths (see module doc)."""
    if n < 1 or rate_per_s <= 0:
        raise CloneError(f"generate_trace: n {n} must be >= 1 and rate_per_s {rate_per_s} > 0")
    mix = mix or DEFAULT_MIX
    classes = list(mix)
    probs = np.array([mix[c] for c in classes], dtype=float)
    probs /= probs.sum()
    rng = np.random.default_rng(seed)
    text = PromptText(use_corpora)
    t = 0.0
    out = []
    for i in range(n):
        t += float(rng.exponential(1.0 / rate_per_s))
        cls = classes[int(rng.choice(len(classes), p=probs))]
        pw, ps, ow, os_ = CLASS_LENGTHS.get(cls, (40, 0.7, 40, 0.7))
        n_words = int(min(max(rng.lognormal(math.log(pw), ps), 3), max_prompt_words))
        expected = int(min(max(rng.lognormal(math.log(ow), os_), 4), max_new_tokens_cap))
        max_new = int(min(max_new_tokens_cap, max(expected, math.ceil(expected * 1.5))))
        body = text.body(rng, cls, n_words)
        lead = {"summarization": "Summarize: ", "code_completion": "Continue: ", "voice_assistant": "Answer briefly: "}
        prompt = lead.get(cls, "") + body
        ttft = tpot = None
        if profile is not None and cls in profile.budgets:
            ttft, tpot = profile.budgets[cls].ttft_ms, profile.budgets[cls].tpot_ms
        out.append(TraceRequest(prompt, max_new, cls, ttft, tpot, round(t, 3), expected, f"r{i:04d}"))
    return out


def main(argv: list[str] | None = None) -> int:
    """python -m clone.runtime.traces OUT.jsonl --n 30 --seed 0 --rate 0.5 [--profile P]"""
    import argparse

    ap = argparse.ArgumentParser(description="generate a request trace (JSONL)")
    ap.add_argument("out")
    ap.add_argument("--n", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rate", type=float, default=0.5, help="arrivals per second")
    ap.add_argument("--profile", default="jetson-orin-nano-8gb")
    ap.add_argument("--max-prompt-words", type=int, default=400)
    ap.add_argument("--max-new-tokens", type=int, default=256)
    ap.add_argument("--mix", default=None, help="class=weight,... (default: the four profile classes)")
    a = ap.parse_args(argv)
    from clone.profiles import load_profile

    mix = None
    if a.mix:
        mix = {k: float(v) for k, v in (p.split("=") for p in a.mix.split(","))}
    reqs = generate_trace(a.n, a.seed, a.rate, load_profile(a.profile), mix, a.max_prompt_words, a.max_new_tokens)
    print(save_trace(reqs, a.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
