"""Perplexity of a causal LM on a corpus split, reported together with its protocol.

Protocol (the Hugging Face "perplexity of fixed-length models" recipe): the split is tokenized as
one stream (no BOS is prepended) and cut into windows of `seq_len` tokens starting every `stride`
tokens. With `stride == seq_len` (the default) windows do not overlap and the first token of each
window is only context, so `n_windows` tokens go unscored. With `stride < seq_len` each window
re-reads `seq_len - stride` tokens of context and scores only the tokens no earlier window scored,
so every token except the very first is scored exactly once. Perplexity is exp of the mean
negative log-likelihood over scored tokens (log-softmax and sums in float64, so a model with
uniform logits scores exactly the vocabulary size).
"""

from __future__ import annotations

import dataclasses
import math
import sys
from dataclasses import dataclass
from typing import Any, Iterator

import torch
import torch.nn.functional as F
from tqdm import tqdm

from clone.data.tokens import Tokenizer, tokenize_split
from clone.errors import CloneError


@dataclass(frozen=True)
class PerplexityResult:
    ppl: float
    nll_mean: float
    n_tokens_scored: int
    n_tokens_total: int  # tokens in the split (or tensor) before any max_tokens cut
    n_windows: int
    seq_len: int
    stride: int
    corpus: str
    split: str
    n_tokens_evaluated: int | None = None  # tokens actually read, when max_tokens cut the stream
    spread: bool = False  # windows evenly spaced over the whole split instead of its first tokens

    def protocol(self) -> str:
        if self.spread:
            return (f"{self.corpus} {self.split} split, {self.n_windows:,} windows of {self.seq_len} tokens evenly "
                    f"spaced over its {self.n_tokens_total:,} tokens, {self.n_tokens_scored:,} tokens scored "
                    "(the first of each window is context only), BOS not prepended")
        kind = "non-overlapping" if self.stride >= self.seq_len else "sliding"
        text = (f"{self.corpus} {self.split} split, {self.seq_len}-token windows, "
                f"stride {self.stride} ({kind}, {self.n_windows:,} windows), "
                f"{self.n_tokens_scored:,} tokens scored")
        evaluated = self.n_tokens_evaluated
        if evaluated is not None and evaluated < self.n_tokens_total:
            text += f" (first {evaluated:,} of {self.n_tokens_total:,} tokens)"
        return text + ", BOS not prepended"

    def __str__(self) -> str:
        return f"perplexity {self.ppl:.3f} ({self.protocol()})"


@dataclass(frozen=True)
class Window:
    begin: int
    end: int
    score_from: int  # first position whose token is scored; earlier ones are context only


def plan_windows(n_tokens: int, seq_len: int, stride: int) -> list[Window]:
    """Windows covering a stream of `n_tokens`, each scoring only tokens not scored before."""
    windows, prev_end = [], 0
    for begin in range(0, n_tokens, stride):
        end = min(begin + seq_len, n_tokens)
        score_from = max(prev_end, begin + 1)
        if end > score_from:
            windows.append(Window(begin, end, score_from))
        prev_end = end
        if end == n_tokens:
            break
    return windows


def _logits_of(output: Any) -> torch.Tensor:
    if isinstance(output, torch.Tensor):
        return output
    if hasattr(output, "logits"):
        return output.logits
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    raise TypeError(f"model returned {type(output).__name__}; expected a logits tensor [B, T, V]")


def _device_of(model: torch.nn.Module) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def _batches(windows: list[Window], batch_size: int) -> Iterator[list[Window]]:
    """Consecutive windows of equal length, at most `batch_size` at a time (only the last window of
    a stream can be shorter, so this never splits the bulk of the work)."""
    batch: list[Window] = []
    for window in windows:
        if batch and (len(batch) == batch_size or
                      window.end - window.begin != batch[0].end - batch[0].begin):
            yield batch
            batch = []
        batch.append(window)
    if batch:
        yield batch


def window_nll(logits: torch.Tensor, inputs: torch.Tensor, w: Window) -> tuple[float, int]:
    """(sum of negative log-likelihoods, tokens scored) of one window: logits [T, V] of the window's
    inputs [T]; only tokens from w.score_from on count (float64 log-softmax)."""
    # logits at position p predict the token at position p + 1
    pred = logits[w.score_from - w.begin - 1: w.end - w.begin - 1].double()
    target = inputs[w.score_from - w.begin:]
    return F.cross_entropy(pred, target, reduction="sum").item(), target.numel()


def _check_lengths(seq_len: int, stride: int | None, batch_size: int) -> int:
    if seq_len < 2:
        raise CloneError(f"perplexity: seq_len={seq_len}; must be at least 2")
    stride = seq_len if stride is None else stride
    if not 1 <= stride <= seq_len:
        raise CloneError(f"perplexity: stride={stride}; must be between 1 and seq_len={seq_len}")
    if batch_size < 1:
        raise CloneError(f"perplexity: batch_size={batch_size}; must be at least 1")
    return stride


def perplexity_of_tokens(
    model: torch.nn.Module,
    tokens: torch.Tensor,
    seq_len: int = 512,
    stride: int | None = None,
    max_tokens: int | None = None,
    batch_size: int = 1,
    progress: bool = True,
    corpus: str = "tokens",
    split: str = "given",
) -> PerplexityResult:
    """Perplexity of `model` on a token stream (1-D) or on independent rows ([n, L], e.g. calibration
    samples: each row is one window of length L scoring L-1 tokens; seq_len/stride are then L)."""
    tokens = torch.as_tensor(tokens, dtype=torch.long)
    if tokens.dim() == 2:
        rows, length = tokens.shape
        seq_len, stride = length, length
        _check_lengths(seq_len, stride, batch_size)
        stream = tokens.reshape(-1)
        windows = [Window(i * length, (i + 1) * length, i * length + 1) for i in range(rows)]
        n_total = n_evaluated = stream.numel()
    elif tokens.dim() == 1:
        stride = _check_lengths(seq_len, stride, batch_size)
        n_total = tokens.numel()
        stream = tokens if max_tokens is None else tokens[: max(0, int(max_tokens))]
        n_evaluated = stream.numel()
        windows = plan_windows(n_evaluated, seq_len, stride)
    else:
        raise CloneError(f"perplexity: tokens must be 1-D or 2-D, got shape {tuple(tokens.shape)}")
    if not windows:
        raise CloneError(f"perplexity: {n_evaluated} tokens of {corpus} {split}; need at least 2 to score one")

    device = _device_of(model)
    nll_sum, n_scored = 0.0, 0
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), tqdm(total=len(windows), unit="window", file=sys.stderr,
                                          disable=not progress, desc=f"perplexity {corpus}/{split}") as bar:
            for batch in _batches(windows, batch_size):
                inputs = torch.stack([stream[w.begin:w.end] for w in batch]).to(device)
                logits = _logits_of(model(inputs))
                for row, w in enumerate(batch):
                    nll, n = window_nll(logits[row], inputs[row], w)
                    nll_sum, n_scored = nll_sum + nll, n_scored + n
                bar.update(len(batch))
                bar.set_postfix(ppl=f"{math.exp(nll_sum / n_scored):.3f}")
    finally:
        model.train(was_training)

    nll_mean = nll_sum / n_scored
    return PerplexityResult(
        ppl=math.exp(nll_mean), nll_mean=nll_mean, n_tokens_scored=n_scored, n_tokens_total=n_total,
        n_windows=len(windows), seq_len=seq_len, stride=stride, corpus=corpus, split=split,
        n_tokens_evaluated=n_evaluated,
    )


def spread_windows(tokens: torch.Tensor, max_tokens: int, seq_len: int) -> torch.Tensor:
    """max_tokens // seq_len windows [n, seq_len] evenly spaced over a 1-D stream, the first at its
    start and the last at its end. A split's first tokens come from one or two documents; windows
    spread over it sample every part, so model comparisons depend less on which document leads."""
    tokens = torch.as_tensor(tokens, dtype=torch.long).reshape(-1)
    n = max(1, int(max_tokens) // seq_len)
    if tokens.numel() < seq_len:
        raise CloneError(f"perplexity: {tokens.numel()} tokens; a {seq_len}-token window does not fit")
    if n * seq_len >= tokens.numel():
        n = tokens.numel() // seq_len
    starts = torch.linspace(0, tokens.numel() - seq_len, n).round().long() if n > 1 else torch.zeros(1, dtype=torch.long)
    return tokens[starts[:, None] + torch.arange(seq_len)]


def perplexity(
    model: torch.nn.Module,
    tokenizer: Tokenizer,
    corpus: str = "shakespeare",
    split: str = "test",
    seq_len: int = 512,
    stride: int | None = None,
    max_tokens: int | None = None,
    batch_size: int = 1,
    progress: bool = True,
    spread: bool = False,
) -> PerplexityResult:
    """Perplexity on a named corpus split (tokenized once and cached; see the module protocol).
    With `spread` and `max_tokens`, windows evenly spaced over the split (`spread_windows`) replace
    its first `max_tokens` tokens."""
    _check_lengths(seq_len, stride, batch_size)
    tokens = tokenize_split(tokenizer, corpus, split)
    if spread and max_tokens:
        rows = spread_windows(tokens, max_tokens, seq_len)
        res = perplexity_of_tokens(model, rows, batch_size=batch_size, progress=progress, corpus=corpus, split=split)
        return dataclasses.replace(res, n_tokens_total=tokens.numel(), spread=True)
    return perplexity_of_tokens(model, tokens, seq_len=seq_len, stride=stride, max_tokens=max_tokens,
                                batch_size=batch_size, progress=progress, corpus=corpus, split=split)
