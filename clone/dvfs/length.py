"""Output-length predictor: log(output tokens) by ridge regression on what is known at arrival
(prompt tokens, application class, cheap text cues). Ridge on log-length is a few microseconds per
request and needs no extra package; the cues are the words users write when they want a short or long
answer and explicit counts ("list five", "in 50 words")."""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from clone.atomic import write_text_atomic
from clone.dvfs.requests import NUMBER_WORDS, estimate_prompt_tokens
from clone.errors import CloneError
from clone.runtime.traces import TraceRequest

CLASSES = ("chatbot", "voice_assistant", "code_completion", "summarization")
SHORT_WORDS = ("briefly", "brief", "one sentence", "short", "yes or no")
LONG_WORDS = ("explain", "describe", "why")
DETAIL_WORDS = ("detail", "step by step", "thorough")
_LIST_RE = re.compile(r"\blist (\w+)", re.I)
_WORDS_RE = re.compile(r"\b(?:about|in) (\d+) words\b", re.I)


def features(prompt: str | None, prompt_tokens: int, app_class: str) -> np.ndarray:
    """[1, class one-hot x4 and log prompt tokens x class (both only without an explicit count),
    short / long / detail / summarize cues, log list count, log word count, has list, has word count].
    An explicit count overrides the class's typical length, hence the gating."""
    text = (prompt or "")[:200].lower()  # cues sit at the start of a request
    m = _LIST_RE.search(text)
    m2 = _WORDS_RE.search(text)
    free = 0.0 if (m or m2) else 1.0
    lp = math.log(max(prompt_tokens, 1))
    f = [1.0] + [free if app_class == c else 0.0 for c in CLASSES]
    f += [free * lp if app_class == c else 0.0 for c in CLASSES]
    f.append(1.0 if any(w in text for w in SHORT_WORDS) else 0.0)
    f.append(1.0 if any(w in text for w in LONG_WORDS) else 0.0)
    f.append(1.0 if any(w in text for w in DETAIL_WORDS) else 0.0)
    f.append(1.0 if "summar" in text else 0.0)
    k = None
    if m:
        w = m.group(1)
        k = int(w) if w.isdigit() else NUMBER_WORDS.get(w)
    n_words = int(m2.group(1)) if m2 else None
    f += [math.log(k) if k else 0.0, math.log(n_words) if n_words else 0.0, 1.0 if k else 0.0, 1.0 if n_words else 0.0]
    return np.asarray(f)


@dataclass
class LengthPredictor:
    weights: np.ndarray
    max_tokens: int = 256

    def predict(self, prompt: str | None, prompt_tokens: int, app_class: str, max_new_tokens: int | None = None) -> int:
        y = float(features(prompt, prompt_tokens, app_class) @ self.weights)
        cap = max_new_tokens or self.max_tokens
        return int(min(max(round(math.exp(y)), 1), cap))

    def predict_request(self, r: TraceRequest) -> int:
        return self.predict(r.prompt, estimate_prompt_tokens(r.prompt), r.app_class, r.max_new_tokens)

    @classmethod
    def fit(cls, requests: Sequence[TraceRequest], ridge: float = 1e-2) -> "LengthPredictor":
        rows = [r for r in requests if r.expected_output_tokens]
        if len(rows) < 5:
            raise CloneError(f"length predictor: need at least 5 requests with expected_output_tokens, got {len(rows)}")
        X = np.stack([features(r.prompt, estimate_prompt_tokens(r.prompt), r.app_class) for r in rows])
        y = np.log([r.expected_output_tokens for r in rows])
        A = X.T @ X + ridge * len(rows) * np.diag([0.0] + [1.0] * (X.shape[1] - 1))
        return cls(np.linalg.solve(A, X.T @ y), max(r.max_new_tokens for r in rows))

    def to_dict(self) -> dict:
        return {"kind": "ridge-log-length", "weights": [float(w) for w in self.weights], "max_tokens": self.max_tokens}

    @classmethod
    def from_dict(cls, d: dict, where: str = "length predictor") -> "LengthPredictor":
        try:
            w = np.asarray([float(x) for x in d["weights"]])
            if len(w) != len(features("", 1, "chatbot")) or not np.all(np.isfinite(w)):
                raise ValueError("wrong number of weights")
            return cls(w, int(d.get("max_tokens", 256)))
        except (KeyError, TypeError, ValueError) as exc:
            raise CloneError(f"{where}: not a length predictor ({exc})") from None

    def save(self, path: str | os.PathLike) -> Path:
        return write_text_atomic(path, json.dumps(self.to_dict()))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "LengthPredictor":
        try:
            d = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise CloneError(f"{path}: cannot read length predictor ({exc.__class__.__name__})") from None
        return cls.from_dict(d, str(path))


def errors(pred: Sequence[int], true: Sequence[int]) -> dict[str, float]:
    """Mean absolute error (tokens) and the fraction of predictions within 20% of the true length."""
    p, t = np.asarray(pred, float), np.asarray(true, float)
    return {"mae_tokens": float(np.mean(np.abs(p - t))), "within_20pct": float(np.mean(np.abs(p - t) <= 0.2 * t)),
            "n": int(len(t))}


def evaluate(predictor: LengthPredictor, requests: Sequence[TraceRequest]) -> dict[str, float]:
    rows = [r for r in requests if r.expected_output_tokens]
    return errors([predictor.predict_request(r) for r in rows], [r.expected_output_tokens for r in rows])
